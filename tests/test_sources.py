import json
import shutil

import numpy as np
import pytest
from PIL import Image

from core.schema import Rejection, SceneGraph
from pipeline.sources.base import SourceError
from pipeline.sources.coco import CocoSource
from pipeline.sources.registry import open_source
from pipeline.sources.synthetic import COLORS, MATERIALS, make_scene, write_synthetic_vg
from pipeline.sources.visual_genome import VisualGenomeSource
from pipeline.steps import BuildConfig, ingest


@pytest.fixture(scope="module")
def vg_clean(tmp_path_factory):
    return write_synthetic_vg(tmp_path_factory.mktemp("vg") / "vg", images=8, seed=3, workers=1)


@pytest.fixture()
def vg_broken(vg_clean, tmp_path):
    """A Visual Genome folder with one of each kind of bad record."""
    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    (root / "VG_100K" / "2.jpg").unlink()  # missing image
    (root / "VG_100K" / "3.jpg").write_bytes(b"not a jpeg")  # corrupt image
    graphs = json.loads((root / "scene_graphs.json").read_text())
    graphs[3]["objects"][0]["x"] = 10_000  # box out of range (image 4)
    graphs[4]["relationships"].append({"relationship_id": 1, "predicate": "on", "subject_id": 999999, "object_id": graphs[4]["objects"][0]["object_id"]})
    graphs.append({"image_id": 777, "objects": [], "relationships": []})  # not in image_data.json
    (root / "scene_graphs.json").write_text(json.dumps(graphs))
    return root


def test_synthetic_scenes_are_deterministic_and_varied():
    a, rec_a = make_scene(7, 1)
    b, rec_b = make_scene(7, 1)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and rec_a == rec_b
    c, rec_c = make_scene(8, 1)
    assert rec_c != rec_a
    colors, materials, sizes, counts = set(), set(), set(), []
    for i in range(1, 40):
        img, rec = make_scene(0, i)
        counts.append(len(rec["objects"]))
        for o in rec["objects"]:
            size, color, material = o["attributes"]
            colors.add(color), materials.add(material), sizes.add(size)
            assert 0 <= o["x"] and o["x"] + o["w"] <= img.width and 0 <= o["y"] and o["y"] + o["h"] <= img.height
    assert min(counts) >= 3 and max(counts) <= 10
    assert len(colors) >= 8 and len(materials) >= 3 and sizes == {"small", "large"}
    assert len(COLORS) >= 8 and len(MATERIALS) >= 3


def test_synthetic_writes_visual_genome_layout(vg_clean):
    assert (vg_clean / "image_data.json").is_file() and (vg_clean / "scene_graphs.json").is_file()
    meta = json.loads((vg_clean / "image_data.json").read_text())
    assert meta[0]["url"].endswith("VG_100K/1.jpg") and {"width", "height", "image_id"} <= set(meta[0])
    with Image.open(vg_clean / "VG_100K" / "1.jpg") as im:
        assert im.size == (meta[0]["width"], meta[0]["height"])


def test_vg_reader_normalizes_boxes(vg_clean):
    graphs = [r for r in VisualGenomeSource(vg_clean).iter_records()]
    assert all(isinstance(g, SceneGraph) for g in graphs) and len(graphs) == 8
    raw = json.loads((vg_clean / "scene_graphs.json").read_text())[0]["objects"][0]
    g = graphs[0]
    o = g.objects[0]
    assert o.box == pytest.approx((raw["x"] / g.width, raw["y"] / g.height, raw["w"] / g.width, raw["h"] / g.height))
    assert o.attributes == tuple(raw["attributes"])


def test_bad_records_are_rejected_with_file_and_record_and_the_run_goes_on(vg_broken):
    recs = list(VisualGenomeSource(vg_broken).iter_records())
    rej = {(r.id, r.rule): r for r in recs if isinstance(r, Rejection)}
    graphs = [r for r in recs if isinstance(r, SceneGraph)]
    assert ("2", "image_missing") in rej and "2.jpg" in rej[("2", "image_missing")].detail
    assert ("3", "image_corrupt") in rej and rej[("3", "image_corrupt")].file.endswith("3.jpg")
    assert any(r.rule == "box_out_of_range" and r.id.startswith("4/") and r.file.endswith("scene_graphs.json") for r in rej.values())
    assert any(r.rule == "relation_unknown_object" and r.id.startswith("5/") for r in rej.values())
    assert ("777", "image_metadata_missing") in rej
    assert sorted(g.image_id for g in graphs) == ["1", "4", "5", "6", "7", "8"]  # image 4 keeps its other objects


def test_strict_stops_at_the_first_bad_record(vg_broken, tmp_path):
    with pytest.raises(SourceError, match="2.jpg"):
        ingest(BuildConfig(source=f"vg:{vg_broken}", strict=True, out=str(tmp_path / "r"), work_dir=str(tmp_path / "w")))
    res = ingest(BuildConfig(source=f"vg:{vg_broken}", out=str(tmp_path / "r"), work_dir=str(tmp_path / "w")))
    assert res.images == 6 and len(res.rejections) == 5


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="unknown source 'flickr:x'"):
        open_source("flickr:x", tmp_path)
    with pytest.raises(SourceError, match="needs a path"):
        open_source("vg", tmp_path)


def test_coco_reader(vg_clean, tmp_path):
    (tmp_path / "val2017").mkdir()
    meta = json.loads((vg_clean / "image_data.json").read_text())[:3]
    images, anns = [], []
    for m in meta:
        shutil.copy(vg_clean / "VG_100K" / f"{m['image_id']}.jpg", tmp_path / "val2017" / f"{m['image_id']:012d}.jpg")
        images.append({"id": m["image_id"], "file_name": f"{m['image_id']:012d}.jpg", "width": m["width"], "height": m["height"]})
        anns.append({"id": 10 * m["image_id"], "image_id": m["image_id"], "category_id": 1, "bbox": [10, 20, 100, 50], "iscrowd": 0, "area": 5000})
        anns.append({"id": 10 * m["image_id"] + 1, "image_id": m["image_id"], "category_id": 2, "bbox": [200, 100, 60, 80], "iscrowd": 0, "area": 4800})
    anns.append({"id": 5, "image_id": meta[0]["image_id"], "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1, "area": 100})
    (tmp_path / "annotations").mkdir()
    f = tmp_path / "annotations" / "instances_val2017.json"
    f.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "frisbee"}]}))
    src = CocoSource(f)
    recs = list(src.iter_records())
    graphs = [r for r in recs if isinstance(r, SceneGraph)]
    assert len(graphs) == 3 and [o.name for o in graphs[0].objects] == ["dog", "frisbee"]
    assert graphs[0].objects[0].box == pytest.approx((10 / meta[0]["width"], 20 / meta[0]["height"], 100 / meta[0]["width"], 50 / meta[0]["height"]))
    assert [r.rule for r in recs if isinstance(r, Rejection)] == ["crowd_annotation"]
    assert src.release_path(graphs[0]) == f"coco/val2017/{images[0]['file_name']}"
