"""Images at ingest: EXIF orientation applied once (sizes, boxes and the released pixels upright), the
upright copy the release must carry, and what `datasets` shows of a transposed image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from core.schema import SceneGraph
from pipeline.sources.base import ReadOptions
from pipeline.sources.images import ORIENTATION
from pipeline.sources.registry import release_file
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.sources.visual_genome import VisualGenomeSource
from pipeline.steps import BuildConfig, ingest, run_plain

T = Image.Transpose
SHOWN_BY = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}  # what a viewer applies
INVERSE = {**SHOWN_BY, 6: T.ROTATE_90, 8: T.ROTATE_270}  # stored = upright turned back


@pytest.fixture(scope="module")
def vg_clean(tmp_path_factory) -> Path:
    return write_synthetic_vg(tmp_path_factory.mktemp("vgi") / "vg", images=4, seed=11, workers=1)


def stored_box(box: list[int], size: tuple[int, int], o: int) -> list[int]:
    """The upright pixel box as it lies in the stored file: drawn on a mask and turned back by Pillow."""
    mask = Image.new("L", size)
    x, y, w, h = box
    ImageDraw.Draw(mask).rectangle([x, y, x + w - 1, y + h - 1], fill=255)
    x1, y1, x2, y2 = mask.transpose(INVERSE[o]).getbbox()
    return [x1, y1, x2 - x1, y2 - y1]


def store_rotated(root: Path, image_id: int, o: int, declare_upright: bool = False) -> Image.Image:
    """Image ``image_id`` saved as a camera would: pixels turned back, EXIF orientation ``o``, boxes and
    size in the stored frame (or, ``declare_upright``, annotated as shown)."""
    f = root / "VG_100K" / f"{image_id}.jpg"
    upright = Image.open(f).convert("RGB")
    stored = upright.transpose(INVERSE[o])
    exif = Image.Exif()
    exif[ORIENTATION] = o
    stored.save(f, "JPEG", quality=95, exif=exif)
    metas, graphs = (json.loads((root / n).read_text()) for n in ("image_data.json", "scene_graphs.json"))
    if not declare_upright:
        m = next(m for m in metas if m["image_id"] == image_id)
        m["width"], m["height"] = stored.size
        for ob in next(g for g in graphs if g["image_id"] == image_id)["objects"]:
            ob["x"], ob["y"], ob["w"], ob["h"] = stored_box([ob["x"], ob["y"], ob["w"], ob["h"]], upright.size, o)
    (root / "image_data.json").write_text(json.dumps(metas))
    (root / "scene_graphs.json").write_text(json.dumps(graphs))
    return upright


def graphs_of(root: Path, **options) -> dict[str, SceneGraph]:
    return {g.image_id: g for g in VisualGenomeSource(root, options=ReadOptions(**options)).iter_records() if isinstance(g, SceneGraph)}


@pytest.mark.parametrize("o", range(2, 9))
def test_exif_orientation_is_applied_once_boxes_turn_with_the_image(o, vg_clean, tmp_path):
    before = graphs_of(vg_clean)["2"]
    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    upright = store_rotated(root, 2, o)
    with Image.open(root / "VG_100K" / "2.jpg") as im:
        assert ImageOps.exif_transpose(im).size == upright.size  # what `datasets` shows
    g = graphs_of(root, upright_dir=tmp_path / "upright")["2"]
    assert (g.width, g.height) == upright.size == (before.width, before.height)
    assert f"EXIF orientation {o}" in g.transposed and "boxes turned" in g.transposed
    for a, b in zip(g.objects, before.objects, strict=True):
        assert a.id == b.id and a.box == pytest.approx(b.box, abs=1e-9)
    copy = release_file(root, "vg", "vg/VG_100K/2.jpg", tmp_path / "upright")
    assert copy == tmp_path / "upright" / "VG_100K" / "2.jpg"
    with Image.open(copy) as im:
        assert im.getexif().get(ORIENTATION, 1) == 1 and im.size == upright.size  # no viewer turns it again
        diff = np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
    assert diff < 4  # the same pixels up to JPEG re-encoding (the file's own quantization tables)
    assert release_file(root, "vg", "vg/VG_100K/1.jpg", tmp_path / "upright") == root / "VG_100K" / "1.jpg"


def test_annotations_already_upright_are_not_turned(vg_clean, tmp_path):
    before = graphs_of(vg_clean)["2"]
    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    store_rotated(root, 2, 6, declare_upright=True)  # width/height as shown: the boxes were drawn on the upright image
    g = graphs_of(root)["2"]
    assert "already upright" in g.transposed and [o.box for o in g.objects] == [o.box for o in before.objects]


def test_a_transposed_image_in_a_release(vg_clean, tmp_path):
    from datasets import load_dataset

    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    store_rotated(root, 2, 6)
    cfg = BuildConfig(source=f"vg:{root}", split_ratios=(1.0, 0.0, 0.0), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    ing = ingest(cfg)
    assert ing.counts["transposed"] == 1 and ing.image_file("vg/VG_100K/2.jpg") == Path(ing.upright_root) / "VG_100K" / "2.jpg"
    s = run_plain(cfg)
    assert s["records"]["transposed"] == 1 and s["records"]["reconciles"]
    rows = [r for r in load_dataset(str(tmp_path / "rel"), split="train") if r["image_id"] == "2"]
    assert rows and all("EXIF orientation 6" in json.loads(r["provenance"])["image_transposed"] for r in rows)
    assert all(r["image"].size == (r["width"], r["height"]) for r in rows)  # as `datasets` shows it


def test_the_release_stores_the_upright_pixels(vg_clean, tmp_path):
    import pyarrow.parquet as pq

    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    store_rotated(root, 2, 6)
    run_plain(BuildConfig(source=f"vg:{root}", split_ratios=(1.0, 0.0, 0.0), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    table = pq.read_table(next((tmp_path / "rel" / "data").glob("train-*.parquet")), columns=["image_id", "image", "width", "height"]).to_pylist()
    row = next(r for r in table if r["image_id"] == "2")
    import io

    with Image.open(io.BytesIO(row["image"]["bytes"])) as im:  # as training/data.py decodes it: no EXIF turn
        assert im.size == (row["width"], row["height"])
