"""Scene graphs at Visual Genome's density, with small images, in the Visual Genome layout.

Visual Genome v1.4 has 108,077 images with 3,843,636 objects (35.6 an image), 2,347,187
relationships (21.7 an image) and 2,813,001 attribute annotations (0.73 an object). The scenes here
draw about as many per image (objects 20-51, relationships 12-31, 0-2 attributes an object), from a
vocabulary of frequent Visual Genome names, attributes and predicates, with boxes from many small
to a few image-wide. The images are 128x96 JPEGs (about 2 KB) whose rectangles are the objects, so
that 100,000 scenes fit in well under a gigabyte of disk; what the build does per image does not
depend on the pixel count, only the release's image bytes do.

Deterministic by seed; each image depends on (seed, image id) alone, so a folder of N scenes is the
first N scenes of a larger one.

    .venv/bin/python benchmarks/vg_scale_scenes.py --images 20000 --out /tmp/vg20k
"""

from __future__ import annotations

import argparse
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

NAMES = (
    "man window person tree building shirt wall woman sign sky ground grass table head hand light cloud hair"
    " pole water leg car ear plate leaf people train fence door chair floor eye road jacket line snow field"
    " street boy shadow girl bus umbrella giraffe plane wheel nose pants bag shoe cup bottle horse dog cat"
    " clock boat bench box lamp".split()
)
ATTRIBUTES = (
    "white black blue green red brown gray yellow orange pink silver wooden metal glass plastic stone brick"
    " large small tall short standing open dark parked leafy cloudy clear striped young round".split()
)
PREDICATES = (
    "on", "has", "wearing", "of", "in", "near", "behind", "with", "holding", "above", "sitting on",
    "under", "next to", "standing on", "in front of", "attached to", "riding", "by", "on top of", "hanging on",
)
WIDTH, HEIGHT = 128, 96
LAYOUT = "gcot-forge-vg-scale-v1"


def make_scene(seed: int, image_id: int) -> tuple[bytes, dict]:
    """One image's JPEG bytes and its scene-graph record (pixel boxes, as Visual Genome writes them)."""
    rng = np.random.default_rng([seed, image_id])
    n = int(rng.integers(20, 52))
    objects = []
    for k in range(n):
        # box sides log-normal around a fifth of the image, a few image-wide (sky, ground, wall)
        fw, fh = (float(np.clip(np.exp(rng.normal(np.log(0.2), 0.8)), 0.03, 1.0)) for _ in range(2))
        w, h = max(1, round(fw * WIDTH)), max(1, round(fh * HEIGHT))
        x, y = int(rng.integers(0, WIDTH - w + 1)), int(rng.integers(0, HEIGHT - h + 1))
        attrs = [ATTRIBUTES[i] for i in rng.choice(len(ATTRIBUTES), size=int(rng.choice(3, p=(0.45, 0.37, 0.18))), replace=False)]
        objects.append({"object_id": image_id * 100 + k, "x": x, "y": y, "w": w, "h": h, "names": [NAMES[int(rng.integers(len(NAMES)))]], "attributes": attrs})
    pairs: set[tuple[int, int]] = set()
    for _ in range(int(rng.integers(12, 32))):
        s, o = (int(v) for v in rng.choice(n, size=2, replace=False))
        pairs.add((s, o))
    relationships = [
        {"relationship_id": image_id * 1000 + k, "predicate": PREDICATES[int(rng.integers(len(PREDICATES)))],
         "subject_id": objects[s]["object_id"], "object_id": objects[o]["object_id"]}
        for k, (s, o) in enumerate(sorted(pairs))
    ]
    img = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(c) for c in rng.integers(40, 215, 3)))
    draw = ImageDraw.Draw(img)
    for ob in objects:
        draw.rectangle([ob["x"], ob["y"], ob["x"] + ob["w"] - 1, ob["y"] + ob["h"] - 1], outline=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return buf.getvalue(), {"image_id": image_id, "objects": objects, "relationships": relationships}


def _render(args: tuple[int, int, int, str]) -> list[tuple[dict, str]]:
    seed, lo, hi, out = args
    rows = []
    for image_id in range(lo, hi):
        data, record = make_scene(seed, image_id)
        rel = f"VG_100K/{image_id}.jpg"
        Path(out, rel).write_bytes(data)
        meta = {"image_id": image_id, "url": f"https://cs.stanford.edu/people/rak248/{rel}", "width": WIDTH, "height": HEIGHT, "coco_id": None, "flickr_id": None}
        rows.append((meta, json.dumps(record)))
    return rows


def write_vg_scale_scenes(out: str | Path, images: int, seed: int = 0, workers: int | None = None) -> Path:
    """``images`` scenes into ``out`` (image_data.json, scene_graphs.json, VG_100K/); a finished folder is reused."""
    out = Path(out)
    marker, params = out / "_COMPLETE.json", {"layout": LAYOUT, "images": images, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return out
    tmp = out.with_name(out.name + ".partial")
    (tmp / "VG_100K").mkdir(parents=True, exist_ok=True)
    chunk = 500
    jobs = [(seed, lo, min(lo + chunk, images + 1), str(tmp)) for lo in range(1, images + 1, chunk)]
    with ProcessPoolExecutor(workers or min(2, os.cpu_count() or 1)) as pool, \
            open(tmp / "image_data.json", "w") as metas, open(tmp / "scene_graphs.json", "w") as graphs:
        metas.write("[")
        graphs.write("[")
        first = True
        for rows in pool.map(_render, jobs):  # written as they come, never all held
            for meta, record in rows:
                metas.write(("" if first else ", ") + json.dumps(meta))
                graphs.write(("" if first else ", ") + record)
                first = False
        metas.write("]")
        graphs.write("]")
    (tmp / "_COMPLETE.json").write_text(json.dumps(params))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    print(write_vg_scale_scenes(a.out, a.images, a.seed))


if __name__ == "__main__":
    main()
