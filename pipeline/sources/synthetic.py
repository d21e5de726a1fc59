"""The embedded default source: synthetic scenes rendered with their exact scene graph.

Each image holds 3-10 objects: 7 shapes, 12 colours, 4 materials drawn as distinct textures (metal:
brushed stripes and a highlight; wood: grain; rubber: matte speckle; glass: translucent with a
glint), two sizes, on varied backgrounds (gradients, tiles, carpet noise, wall + floor). Objects may
overlap (partial occlusion), stand on one another (stacking) or lie in a tray. The output is written
in the Visual Genome layout (``image_data.json``, ``scene_graphs.json``, ``VG_100K/<id>.jpg``) so the
demo walks the same reader as real Visual Genome data. Deterministic by seed.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from core.boxes import intersection

log = logging.getLogger(__name__)

SHAPES = ("cube", "ball", "cone", "cylinder", "ring", "star", "tray")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35), "green": (40, 160, 60), "blue": (40, 80, 210), "yellow": (235, 210, 40),
    "purple": (130, 50, 170), "orange": (240, 130, 20), "white": (238, 238, 238), "black": (25, 25, 25),
    "gray": (128, 128, 128), "brown": (120, 75, 35), "pink": (240, 130, 180), "cyan": (40, 200, 210),
}
MATERIALS = ("metal", "wood", "rubber", "glass")
SIZES = {"small": (0.07, 0.11), "large": (0.15, 0.22)}  # side as a fraction of the image width
IMAGE_SIZES = ((640, 480), (600, 450), (560, 420))
JPEG_QUALITY = 90
LAYOUT_VERSION = "gcot-forge-synthetic-v1"


def _texture(rng: np.random.Generator, material: str, rgb: tuple[int, int, int], w: int, h: int) -> tuple[np.ndarray, float]:
    """An RGB texture of the box size and the material's opacity."""
    base = np.empty((h, w, 3), np.float32)
    base[:] = rgb
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if material == "metal":
        stripes = 0.85 + 0.15 * np.sin(yy / max(h, 1) * np.pi * 9.0)[..., None]
        glint = np.exp(-(((xx - 0.3 * w) / (0.12 * w + 1)) ** 2))[..., None] * 90
        tex, alpha = base * stripes + glint, 1.0
    elif material == "wood":
        phase = rng.uniform(0, 6.28)
        grain = np.sin((xx * 0.35 + 3.0 * np.sin(yy / (0.15 * h + 1) + phase)) * 0.9)
        tex, alpha = base * (0.78 + 0.22 * grain[..., None]), 1.0
    elif material == "rubber":
        speckle = rng.normal(0.0, 14.0, (h, w, 1)).astype(np.float32)
        tex, alpha = base * 0.9 + speckle, 1.0
    else:  # glass
        diag = np.exp(-(((xx - yy * w / max(h, 1)) / (0.08 * w + 1)) ** 2))[..., None] * 120
        tex, alpha = base + diag, 0.6
    return np.clip(tex, 0, 255).astype(np.uint8), alpha


def _mask(shape: str, w: int, h: int) -> Image.Image:
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    if shape in ("cube", "tray"):
        d.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif shape == "ball":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif shape == "cone":
        d.polygon([(w / 2, 0), (w - 1, h - 1), (0, h - 1)], fill=255)
    elif shape == "cylinder":
        cap = max(2, h // 6)
        d.rectangle([0, cap // 2, w - 1, h - 1 - cap // 2], fill=255)
        d.ellipse([0, 0, w - 1, cap], fill=255)
        d.ellipse([0, h - 1 - cap, w - 1, h - 1], fill=255)
    elif shape == "ring":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
        t = max(3, w // 4)
        d.ellipse([t, t, w - 1 - t, h - 1 - t], fill=0)
    elif shape == "star":
        cx, cy, r1, r2 = w / 2, h / 2, min(w, h) / 2, min(w, h) / 5
        pts = [
            (cx + (r1 if i % 2 == 0 else r2) * np.sin(i * np.pi / 5), cy - (r1 if i % 2 == 0 else r2) * np.cos(i * np.pi / 5))
            for i in range(10)
        ]
        d.polygon(pts, fill=255)
    return m


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    kind = rng.integers(4)
    c1 = rng.integers(90, 200, 3).astype(np.float32)
    c2 = rng.integers(60, 170, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # vertical gradient
        t = (yy / h)[..., None]
        arr = c1 * (1 - t) + c2 * t
    elif kind == 1:  # floor tiles
        s = int(rng.integers(30, 70))
        chk = (((xx // s) + (yy // s)) % 2)[..., None]
        arr = c1 * chk + c2 * (1 - chk)
    elif kind == 2:  # carpet noise
        arr = c1 + rng.normal(0, 18, (h, w, 1)).astype(np.float32)
    else:  # wall above a floor
        horizon = int(h * rng.uniform(0.3, 0.5))
        arr = np.where((yy < horizon)[..., None], c1, c2 * (0.8 + 0.2 * yy[..., None] / h))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _overlap_frac(a, b) -> float:
    return intersection(a, b) / max(1, min(a[2] * a[3], b[2] * b[3]))


def make_scene(seed: int, image_id: int) -> tuple[Image.Image, dict]:
    """Render one scene; returns the image and its Visual Genome scene-graph record."""
    rng = np.random.default_rng([seed, image_id])
    W, H = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    img = _background(rng, W, H)
    n = int(rng.integers(3, 11))
    placed: list[dict] = []  # dicts with box (x, y, w, h px), name, attributes
    relations: list[tuple[int, str, int]] = []
    oid = image_id * 100
    tries = 0
    while len(placed) < n and tries < 200:
        tries += 1
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        if shape == "tray" and any(p["name"] == "tray" for p in placed):
            continue
        size = "large" if shape == "tray" else ("small", "large")[int(rng.integers(2))]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        lo, hi = SIZES[size]
        side = int(W * rng.uniform(lo, hi))
        if shape == "tray":
            w, h = int(side * 2.2), int(side * 0.9)
        elif shape in ("cone", "cylinder"):
            w, h = side, int(side * 1.3)
        else:
            w, h = side, side
        # Stacking and trays: sometimes put the new object on a cube/cylinder or in the tray.
        support = None
        bases = [p for p in placed if p["name"] in ("cube", "cylinder", "tray") and p["size"] == "large"]
        if bases and size == "small" and shape != "tray" and rng.random() < 0.35:
            support = bases[int(rng.integers(len(bases)))]
        if support is not None:
            sx, sy, sw, sh = support["box"]
            if support["name"] == "tray":
                if w > sw - 8 or h > sh - 8:
                    continue
                x = int(rng.integers(sx + 4, sx + sw - w - 3))
                y = int(rng.integers(sy + 4, sy + sh - h - 3))
                pred = "in"
            else:
                x = int(sx + (sw - w) * rng.uniform(0.1, 0.9))
                y = sy - h
                pred = "on"
            if x < 0 or y < 0 or x + w > W or y + h > H:
                continue
        else:
            x, y = int(rng.integers(0, W - w)), int(rng.integers(int(H * 0.15), H - h))
            pred = None
        box = (x, y, w, h)
        others = [p for p in placed if p is not support and not (p.get("support") is support and support is not None)]
        if any(_overlap_frac(box, p["box"]) > (0.3 if shape != "tray" else 0.0) for p in others):
            continue  # keep occlusion partial
        obj = {"id": oid + len(placed), "name": shape, "size": size, "color": color, "material": material, "box": box, "support": support}
        placed.append(obj)
        if pred:
            relations.append((obj["id"], pred, support["id"]))
    # Painter's order: trays first, then by bottom edge, so nearer (lower) objects occlude farther ones.
    for p in sorted(placed, key=lambda p: (p["name"] != "tray", p["box"][1] + p["box"][3], p["id"])):
        x, y, w, h = p["box"]
        tex, alpha = _texture(rng, p["material"], COLORS[p["color"]], w, h)
        mask = _mask(p["name"], w, h)
        if alpha < 1:
            mask = mask.point(lambda v, a=alpha: int(v * a))
        img.paste(Image.fromarray(tex, "RGB"), (x, y), mask)
    record = {
        "image_id": image_id,
        "objects": [
            {
                "object_id": p["id"], "x": p["box"][0], "y": p["box"][1], "w": p["box"][2], "h": p["box"][3],
                "names": [p["name"]], "attributes": [p["size"], p["color"], p["material"]],
            }
            for p in placed
        ],
        "relationships": [
            {"relationship_id": image_id * 1000 + k, "predicate": pred, "subject_id": s, "object_id": o}
            for k, (s, pred, o) in enumerate(relations)
        ],
    }
    return img, record


def _render_one(args: tuple[int, int, str]) -> tuple[dict, dict]:
    seed, image_id, out = args
    img, record = make_scene(seed, image_id)
    rel = f"VG_100K/{image_id}.jpg"
    img.save(os.path.join(out, rel), "JPEG", quality=JPEG_QUALITY)
    meta = {"image_id": image_id, "url": f"https://cs.stanford.edu/people/rak248/{rel}", "width": img.width, "height": img.height, "coco_id": None, "flickr_id": None}
    return meta, record


def write_synthetic_vg(out: str | Path, images: int, seed: int, workers: int | None = None) -> Path:
    """Render ``images`` scenes into ``out`` in the Visual Genome layout; reuses a finished folder."""
    out = Path(out)
    marker = out / "_COMPLETE.json"
    params = {"layout": LAYOUT_VERSION, "images": images, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == params:
        log.info("synthetic scenes already rendered at %s", out)
        return out
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    (tmp / "VG_100K").mkdir(parents=True)
    jobs = [(seed, i, str(tmp)) for i in range(1, images + 1)]
    workers = workers or min(4, os.cpu_count() or 1)
    metas, records = [], []
    with ProcessPoolExecutor(workers) as pool:
        for meta, rec in tqdm(pool.map(_render_one, jobs, chunksize=16), total=images, desc="render scenes", unit="img"):
            metas.append(meta)
            records.append(rec)
    (tmp / "image_data.json").write_text(json.dumps(metas))
    (tmp / "scene_graphs.json").write_text(json.dumps(records))
    (tmp / "_COMPLETE.json").write_text(json.dumps(params))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
