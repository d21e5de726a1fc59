"""Consistency metrics of (edited) videos, as LongV-EVAL reports them, with a pluggable backbone.

- SC, semantic consistency: the mean cosine similarity of adjacent frames' image embeddings
  (published with CLIP image embeddings).
- OC, object consistency: the same over DINO features (the CLS token), which follow objects'
  appearance more than their meaning.

Backbones: ``clip:PATH`` (a local CLIP checkpoint: `CLIPVisionModelWithProjection`'s image
embeddings), ``dino:PATH`` (a local DINO/DINOv2 checkpoint: the CLS token of `AutoModel`), or
``pixels``, the offline default: the keyframe selector's colour-histogram patch features, flattened,
so adjacent frames are compared patch by patch. Nothing is downloaded; with ``pixels`` the numbers
rank videos by flicker but are NOT comparable to the published CLIP/DINO values (the report says
so). FQ and VQ (aesthetic predictor, DOVER) need their own weights and are not computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.longv import keyframes as kf
from pipeline.longv.video import frames, probe


class PixelBackbone:
    name = "pixels"
    comparable = False

    def embed(self, rgb: list[np.ndarray]) -> np.ndarray:
        out = []
        for f in rgb:
            shape = kf.grid_shape(f.shape[1], f.shape[0])
            v = kf.patch_features(np.ascontiguousarray(f[..., ::-1]), shape).ravel()
            out.append(v / max(np.linalg.norm(v), 1e-9))
        return np.stack(out)


class HFBackbone:
    """A local Hugging Face image model: CLIP image embeddings or DINO's CLS token."""

    comparable = True

    def __init__(self, kind: str, path: str, device: str = "cpu", batch: int = 16):
        import torch
        from transformers import AutoImageProcessor, AutoModel, CLIPVisionModelWithProjection

        if not Path(path).is_dir():
            raise FileNotFoundError(f"{kind} checkpoint {path}: not a folder (nothing is downloaded: give a local checkpoint)")
        self.kind, self.name, self.device, self.batch = kind, f"{kind}:{Path(path).name}", device, batch
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        cls = CLIPVisionModelWithProjection if kind == "clip" else AutoModel
        self.model = cls.from_pretrained(path, local_files_only=True).to(device).eval()
        self.torch = torch

    def embed(self, rgb: list[np.ndarray]) -> np.ndarray:
        out = []
        with self.torch.no_grad():
            for i in range(0, len(rgb), self.batch):
                x = self.processor(images=list(rgb[i : i + self.batch]), return_tensors="pt").to(self.device)
                o = self.model(**x)
                e = o.image_embeds if self.kind == "clip" else o.last_hidden_state[:, 0]
                out.append(self.torch.nn.functional.normalize(e.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


def load_backbone(spec: str):
    if spec == "pixels":
        return PixelBackbone()
    kind, _, path = spec.partition(":")
    if kind not in ("clip", "dino") or not path:
        raise ValueError(f"backbone {spec!r}: use 'pixels', 'clip:PATH' or 'dino:PATH'")
    return HFBackbone(kind, path)


def adjacent_consistency(emb: np.ndarray) -> float:
    """Mean cosine of consecutive rows (rows need not be unit length)."""
    if len(emb) < 2:
        raise ValueError("consistency needs at least two frames")
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return float((e[:-1] * e[1:]).sum(axis=1).mean())


@dataclass
class Consistency:
    video: str
    frames_used: int
    sc: float
    oc: float
    sc_backbone: str
    oc_backbone: str
    comparable: bool  # False when an offline default backbone was used


def video_consistency(path: str | Path, sc_backbone, oc_backbone, every: int = 1, max_frames: int | None = None) -> Consistency:
    probe(path)
    rgb = [f[..., ::-1].copy() for i, f in frames(path) if i % every == 0]
    if max_frames:
        rgb = rgb[:max_frames]
    sc = adjacent_consistency(sc_backbone.embed(rgb))
    oc = sc if oc_backbone is sc_backbone else adjacent_consistency(oc_backbone.embed(rgb))
    return Consistency(str(path), len(rgb), round(sc, 6), round(oc, 6), sc_backbone.name, oc_backbone.name, sc_backbone.comparable and oc_backbone.comparable)
