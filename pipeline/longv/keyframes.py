"""Adaptive keyframe selection as AdaFlow's released code does it (``run.py``, "batch_size: auto").

1. A dense per-patch feature per frame. AdaFlow uses diffusion (DIFT) features; ours is cheap and
   documented: the frame is resized (area-averaged) so its long side has `GRID` patches of
   `CELL` x `CELL` pixels; a patch's feature is, per colour channel, a soft histogram of its pixels
   over `BINS` levels (each value split linearly between its two nearest levels), L2-normalised,
   the three concatenated and divided by sqrt(3): the cosine of two patches is the mean of their
   channels' histogram cosines (48 numbers, about 1 ms a frame). Measured on synthetic videos
   (30 s, 3 cuts, 8 seeds): a cut scores at most 0.60, a frame up to 400 frames into its shot at
   least 0.98, so AdaFlow's thresholds apply unchanged. The feature is colour, not semantics: it
   sees a change of place, not a change of meaning.
2. Greedy clip cutting: keep an anchor; match every anchor patch to its most similar patch of the
   next frame (cosine), giving a heat map; cut a new clip at that frame when the map's mean is below
   0.75, or any window of it (side max(h,w)//16, stride max(h,w)//32) has a mean below 0.6, or the
   clip reached 400 frames. As in the released loop, the frame after the cut becomes the new anchor.
3. One representative keyframe per clip: the frame whose thumbnail is nearest the clip's mean
   thumbnail (AdaFlow's editor draws a random frame of each clip every denoising step; an annotation
   set wants one, stable frame).
The cutter is streaming: frames are pushed in order and never held, so a long video costs a
thumbnail per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from core.schema import Clip

GRID = 32  # patches on the long side (>= 32 so the window stride max(h,w)//32 is at least 1)
CELL = 4  # pixels a patch side in the feature image
BINS = 16  # histogram levels per colour channel
THUMB = 16  # long side of the thumbnail used to pick the representative frame


@dataclass(frozen=True)
class CutRule:
    mean_threshold: float = 0.75  # AdaFlow: similarity_mean_threshold
    region_threshold: float = 0.6  # AdaFlow: similarity_region_threshold
    max_frames: int = 400  # AdaFlow: max_batch_size


def grid_shape(width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of the patch grid for a frame size."""
    if width >= height:
        return max(1, round(GRID * height / width)), GRID
    return GRID, max(1, round(GRID * width / height))


@lru_cache(maxsize=8)
def _patch_index(rows: int, cols: int) -> np.ndarray:
    """Patch number of every pixel of the (rows*CELL) x (cols*CELL) feature image."""
    return (np.arange(rows * CELL)[:, None] // CELL * cols + np.arange(cols * CELL)[None, :] // CELL).astype(np.int64)


def patch_features(bgr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(rows*cols, 3*BINS) unit vectors, one per patch."""
    rows, cols = shape
    small = cv2.resize(bgr, (cols * CELL, rows * CELL), interpolation=cv2.INTER_AREA).astype(np.float32)
    t = small * ((BINS - 1) / 255.0)
    lo = np.minimum(t.astype(np.int64), BINS - 2)
    frac = t - lo
    base = _patch_index(rows, cols) * BINS
    n = rows * cols * BINS
    parts = []
    for ch in range(3):
        idx = (base + lo[..., ch]).ravel()
        w = frac[..., ch].ravel()
        h = (np.bincount(idx, weights=1 - w, minlength=n) + np.bincount(idx + 1, weights=w, minlength=n)).reshape(rows * cols, BINS)
        parts.append(h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-9))
    return (np.concatenate(parts, axis=1) / np.sqrt(3)).astype(np.float32)


def heat_map(anchor: np.ndarray, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per anchor patch, the cosine of its best match among the frame's patches."""
    return (anchor @ frame.T).max(axis=1).reshape(shape)


def window_means(heat: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Means of the size x size windows at the given stride (the released double loop, vectorised)."""
    h, w = heat.shape
    if size < 1 or stride < 1 or h < size or w < size:
        return np.empty(0, np.float32)
    c = np.pad(heat.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.arange(0, h - size + 1, stride), np.arange(0, w - size + 1, stride)
    y0, x0 = np.meshgrid(ys, xs, indexing="ij")
    sums = c[y0 + size, x0 + size] - c[y0, x0 + size] - c[y0 + size, x0] + c[y0, x0]
    return (sums / (size * size)).ravel()


def similar_enough(heat: np.ndarray, rule: CutRule) -> bool:
    if heat.mean() < rule.mean_threshold:
        return False
    side = max(heat.shape)
    wm = window_means(heat, side // 16, side // 32)
    return not (wm.size and wm.min() < rule.region_threshold)


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    size = (THUMB, max(1, round(THUMB * h / w))) if w >= h else (max(1, round(THUMB * w / h)), THUMB)
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()


@dataclass
class ClipCutter:
    """Push frames in order; `clips()` gives the clips and their keyframes."""

    width: int
    height: int
    rule: CutRule = field(default_factory=CutRule)

    def __post_init__(self):
        self.shape = grid_shape(self.width, self.height)
        self.begins: list[int] = [0]
        self.anchor_index = 0  # the frame that becomes the anchor when it arrives
        self.anchor: np.ndarray | None = None
        self.thumbs: list[np.ndarray] = []
        self.mean_sims: list[float] = []  # heat-map mean of each frame against its anchor (nan for anchors)

    def push(self, index: int, bgr: np.ndarray) -> None:
        if index != len(self.thumbs):
            raise ValueError(f"frames must be pushed in order: got {index}, expected {len(self.thumbs)}")
        self.thumbs.append(thumbnail(bgr))
        feats = patch_features(bgr, self.shape)
        if index == self.anchor_index:
            self.anchor = feats
            self.mean_sims.append(float("nan"))
            return
        heat = heat_map(self.anchor, feats, self.shape)
        self.mean_sims.append(float(heat.mean()))
        if not similar_enough(heat, self.rule) or index - self.anchor_index >= self.rule.max_frames - 1:
            self.begins.append(index)
            self.anchor_index = index + 1  # as released: the frame after the cut is the next anchor

    def clips(self) -> list[Clip]:
        n = len(self.thumbs)
        if n == 0:
            return []
        ends = [b - 1 for b in self.begins[1:]] + [n - 1]
        thumbs = np.stack(self.thumbs)
        out = []
        for start, end in zip(self.begins, ends):
            part = thumbs[start : end + 1]
            nearest = int(np.argmin(((part - part.mean(axis=0)) ** 2).sum(axis=1)))
            out.append(Clip(start, end, start + nearest))
        return out
