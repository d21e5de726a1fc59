"""The embedded default: synthetic long videos of the synthetic scenes' objects, with ground truth.

A video is a few shots separated by hard cuts. The cast (2-3 objects: shapes, colours and
materials from `pipeline.sources.synthetic`, drawn with the same textures) stays across shots, as a
real video follows its subject; each shot has its own background (the scene renderer's gradients,
tiles, carpet and wall-and-floor), the objects move and bounce, and in most shots the camera pans
across a background wider than the frame. Deterministic by seed: the same seed gives the same
frames (and, with the same OpenCV build, the same bytes). The ground truth (cut frames, cast,
per-shot pan) is written beside the videos, in ``truth/<id>.json``, never into the videos folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.longv.video import write_video
from pipeline.sources.synthetic import COLORS, MATERIALS, _background, _mask, _texture

CAST_SHAPES = ("cube", "ball", "cone", "cylinder", "ring", "star")
LAYOUT_VERSION = "gcot-forge-longv-synthetic-v2"  # v2: H.264


@dataclass(frozen=True)
class VideoSpec:
    seconds: float = 60.0
    fps: int = 24
    width: int = 640
    height: int = 360
    cuts: int = 2


@dataclass
class _Sprite:
    name: str
    color: str
    material: str
    rgb: np.ndarray  # h x w x 3 float32
    alpha: np.ndarray  # h x w x 1 float32 in [0, 1]
    x: float
    y: float
    vx: float  # pixels a frame
    vy: float


def _sprite(rng: np.random.Generator, shape: str, color: str, material: str, height: int) -> tuple[np.ndarray, np.ndarray]:
    side = int(height * rng.uniform(0.16, 0.26))
    w, h = (side, int(side * 1.3)) if shape in ("cone", "cylinder") else (side, side)
    tex, opacity = _texture(rng, material, COLORS[color], w, h)
    mask = np.asarray(_mask(shape, w, h), np.float32)[..., None] / 255.0 * opacity
    return tex.astype(np.float32), mask


def _distinct_background(rng: np.random.Generator, w: int, h: int, previous: np.ndarray | None) -> np.ndarray:
    """A background that differs clearly from the previous shot's (a cut is a change of place)."""
    for _ in range(20):
        bg = np.asarray(_background(rng, w, h), np.float32)
        if previous is None or np.abs(bg.mean(axis=(0, 1)) - previous.mean(axis=(0, 1))).max() >= 35:
            return bg
    return bg


def _cut_frames(rng: np.random.Generator, n: int, cuts: int, fps: int) -> list[int]:
    """Shot starts after 0: evenly spread with jitter, every shot at least two seconds long."""
    base = [round(n * (k + 1) / (cuts + 1)) for k in range(cuts)]
    jitter = max(1, n // (4 * (cuts + 1)))
    out = sorted({int(np.clip(b + rng.integers(-jitter, jitter + 1), 2 * fps, n - 2 * fps)) for b in base})
    return [c for i, c in enumerate(out) if i == 0 or c - out[i - 1] >= 2 * fps]


def render(seed: int, index: int, spec: VideoSpec = VideoSpec()):
    """(frame generator of BGR uint8 frames, truth dict) of one video."""
    rng = np.random.default_rng([seed, index, 17])
    W, H, fps = spec.width, spec.height, spec.fps
    n = int(round(spec.seconds * fps))
    k = int(rng.integers(2, 4))
    shapes = rng.choice(CAST_SHAPES, size=k, replace=False)
    colors = rng.choice(list(COLORS), size=k, replace=False)
    cast = [(str(s), str(c), MATERIALS[int(rng.integers(len(MATERIALS)))]) for s, c in zip(shapes, colors)]
    cuts = _cut_frames(rng, n, spec.cuts, fps) if n > 4 * fps else []
    starts = [0, *cuts]
    shots, previous = [], None
    for s, start in enumerate(starts):
        end = (starts[s + 1] if s + 1 < len(starts) else n) - 1
        pan = float(rng.choice([0.0, 1.0, -1.0], p=[0.3, 0.35, 0.35]))
        canvas_w = int(W * 1.5) if pan else W
        bg = _distinct_background(rng, canvas_w, H, previous)
        previous = bg
        shots.append({"start": start, "end": end, "pan": pan, "canvas": bg})
    sprites = []
    for name, color, material in cast:
        rgb, alpha = _sprite(rng, name, color, material, H)
        speed = rng.uniform(0.6, 2.2)  # pixels a frame
        angle = rng.uniform(0, 2 * np.pi)
        sprites.append(_Sprite(name, color, material, rgb, alpha, 0.0, 0.0, speed * np.cos(angle), speed * 0.5 * np.sin(angle)))
    truth = {
        "layout": LAYOUT_VERSION, "seed": seed, "index": index, "fps": fps, "frames": n, "width": W, "height": H,
        "cuts": cuts,
        "cast": [{"name": s.name, "color": s.color, "material": s.material} for s in sprites],
        "shots": [{"start": s["start"], "end": s["end"], "pan": s["pan"]} for s in shots],
    }

    def frames():
        for shot in shots:
            for sp in sprites:  # new shot, new places
                h, w = sp.alpha.shape[:2]
                sp.x, sp.y = float(rng.uniform(0, W - w)), float(rng.uniform(H * 0.25, H - h))
            canvas, length = shot["canvas"], shot["end"] - shot["start"] + 1
            travel = canvas.shape[1] - W
            for t in range(length):
                off = int(round(travel * (t / max(1, length - 1) if shot["pan"] > 0 else 1 - t / max(1, length - 1)))) if travel else 0
                frame = canvas[:, off : off + W].copy()
                for sp in sorted(sprites, key=lambda s: s.y + s.alpha.shape[0]):
                    h, w = sp.alpha.shape[:2]
                    x, y = int(round(sp.x)), int(round(sp.y))
                    region = frame[y : y + h, x : x + w]
                    region[:] = region * (1 - sp.alpha) + sp.rgb * sp.alpha
                    sp.x += sp.vx
                    sp.y += sp.vy
                    if not 0 <= sp.x <= W - w:
                        sp.vx, sp.x = -sp.vx, float(np.clip(sp.x, 0, W - w))
                    if not H * 0.1 <= sp.y <= H - h:
                        sp.vy, sp.y = -sp.vy, float(np.clip(sp.y, H * 0.1, H - h))
                yield np.ascontiguousarray(frame[..., ::-1]).astype(np.uint8)

    return frames(), truth


def write_synthetic_videos(out: str | Path, count: int, seed: int, spec: VideoSpec = VideoSpec()) -> Path:
    """``out/videos/00001.mp4 ...`` and ``out/truth/00001.json ...``; reuses a finished folder."""
    out = Path(out)
    marker = out / "_COMPLETE.json"
    params = {"layout": LAYOUT_VERSION, "count": count, "seed": seed, **spec.__dict__}
    if marker.exists() and json.loads(marker.read_text()) == params:
        return out
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(1, count + 1), desc="render videos", unit="video"):
        vid = f"{i:05d}"
        frames, truth = render(seed, i, spec)
        write_video(out / "videos" / f"{vid}.mp4", frames, spec.fps, (spec.width, spec.height))
        (out / "truth" / f"{vid}.json").write_text(json.dumps(truth, indent=2))
    marker.write_text(json.dumps(params))
    return out
