"""Property-based: VG and COCO records with arbitrary field types and values never raise, every record
read is a scene graph or a rejection (and the counts say so), and every kept box is finite and inside
its image. Chains are then drawn from what was kept (build_shard), which must not raise either."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")  # in the dev group; the venv may predate it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from core.boxes import inside_image  # noqa: E402
from core.schema import Rejection, SceneGraph  # noqa: E402
from pipeline.sources.base import ReadOptions  # noqa: E402
from pipeline.sources.coco import CocoSource  # noqa: E402
from pipeline.sources.visual_genome import VisualGenomeSource  # noqa: E402
from pipeline.steps import BuildConfig, build_shard, ingest  # noqa: E402

SIZE = (40, 30)  # every image file on disk
IDS = [1, 2, 3]  # images that exist: VG_100K/<id>.jpg, val2017/<id>.jpg

anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy = anything, bad_in: int = 8) -> st.SearchStrategy:
    """A good value, or one time in ``bad_in`` a bad one: records with every field bad would never
    reach the checks behind the first one."""
    return st.integers(1, bad_in).flatmap(lambda k: bad if k == 1 else good)


def record(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A record with every field, one field dropped, or any JSON value in its place."""
    full = st.fixed_dictionaries(fields)
    dropped = full.flatmap(lambda d: st.sampled_from(sorted(d)).map(lambda k: {x: v for x, v in d.items() if x != k}))
    return mostly(full, st.one_of(dropped, anything), bad_in=6)


odd = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -(2**70), "3", "", None, True, [1], {"x": 1}])
ids = mostly(st.sampled_from(IDS), st.sampled_from(["1", "../../x", "VG_100K/1", "", 1.0, True, None, [1]]) | anything)
width, height = mostly(st.just(SIZE[0]), odd | st.sampled_from([float(SIZE[0]), 0, -1, SIZE[1]])), mostly(st.just(SIZE[1]), odd | st.just(float(SIZE[1])))
corner = mostly(st.integers(-1, 25) | st.floats(-0.5, 25), odd | anything, bad_in=12)  # a box's x or y
extent = mostly(st.integers(1, 16) | st.floats(0.5, 16), odd | st.sampled_from([0, -3, 50]) | anything, bad_in=12)  # its w or h
object_ids = mostly(st.integers(0, 6), odd, bad_in=12)
words = mostly(st.sampled_from(["ball", "cube", "tray", " Red Ball ", "ring"]), odd | st.text(max_size=4))
attributes = mostly(st.lists(st.sampled_from(["red", "blue", "metal", "rubber", "large", "small", " "]), max_size=3) | st.just("blue"), st.lists(words, max_size=2) | odd)

vg_object = record({"object_id": object_ids, "x": corner, "y": corner, "w": extent, "h": extent,
                    "names": mostly(st.lists(words, min_size=1, max_size=2), words | odd), "attributes": attributes})
vg_relation = record({"relationship_id": mostly(st.integers(0, 99), odd), "predicate": mostly(st.sampled_from(["on", "left of", "near", "  "]), odd),
                      "subject_id": object_ids, "object_id": object_ids})
vg_meta = record({"image_id": ids, "width": width, "height": height,
                  "url": mostly(st.sampled_from([None, "http://x/VG_100K/1.jpg", "http://x/VG_100K_2/2.jpg"]), st.sampled_from(["http://x/VG_100K/../../../etc/passwd", "VG_100K/"]) | odd)})
vg_graph = record({"image_id": ids, "objects": mostly(st.lists(vg_object, max_size=6), odd), "relationships": mostly(st.lists(vg_relation, max_size=5), odd)})

coco_image = record({"id": ids, "file_name": mostly(st.sampled_from(["1.jpg", "2.jpg", "3.jpg"]), st.sampled_from(["../1.jpg", "/etc/passwd", "9.jpg", ""]) | odd),
                     "width": width, "height": height})
coco_ann = record({"id": mostly(st.integers(0, 9), odd), "image_id": ids, "category_id": mostly(st.integers(0, 2), odd),
                   "bbox": mostly(st.tuples(corner, corner, extent, extent).map(list), st.lists(corner, max_size=5) | odd), "iscrowd": mostly(st.just(0), st.sampled_from([1, 2, True, None]))})
coco_cat = record({"id": mostly(st.integers(0, 2), odd), "name": words})

SETTINGS = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _images(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in IDS:
        Image.new("RGB", SIZE, (60 * i, 20, 20)).save(folder / f"{i}.jpg")


def _check(make, limit: int | None) -> None:
    """``make(options)`` opens the source; read it whole and with ``limit``."""
    source = make(ReadOptions())
    recs = list(source.iter_records())  # never raises
    graphs = [r for r in recs if isinstance(r, SceneGraph)]
    assert all(isinstance(r, Rejection) and r.rule and r.file for r in recs if not isinstance(r, SceneGraph))
    c = source.counts
    assert c.read == c.held == len(graphs) + c.rejected  # every record read: a graph or a rejection
    assert len({g.image_id for g in graphs}) == len(graphs)
    for g in graphs:
        assert (g.width, g.height) == SIZE and ".." not in g.image.split("/") and not g.image.startswith("/")
        for o in g.objects:
            assert all(isinstance(v, float) and math.isfinite(v) for v in o.box) and o.box[2] > 0 and o.box[3] > 0
            assert inside_image(o.box), o.box
            assert isinstance(o.name, str) and o.name and all(isinstance(a, str) and a for a in o.attributes)
        ids = {o.id for o in g.objects}
        assert all(r.subject_id in ids and r.object_id in ids and r.predicate for r in g.relations)
    if limit is not None:  # a part read; the source still says how many records it holds
        part = make(ReadOptions(limit=limit))
        got = list(part.iter_records())
        assert part.counts.read == min(limit, c.read) and part.counts.held == c.held
        assert part.counts.read == sum(isinstance(r, SceneGraph) for r in got) + part.counts.rejected


def _build(cfg: BuildConfig) -> None:
    ing = ingest(cfg)
    assert ing.counts["read"] == ing.images + ing.counts["rejected"]
    for shard, digest in zip(ing.shards, ing.digests, strict=True):
        r = build_shard(shard, digest, ing.release_prefix, 0, {"attribute": 1, "judge": 2, "object": 1}, "none", Path(cfg.work_dir) / "results")
        assert r.candidates == r.examples + sum(1 for line in Path(r.rejections_file).read_text().splitlines() if json.loads(line)["stage"] in ("chains", "verify"))


limits = st.none() | st.integers(1, 8)


@SETTINGS
@given(metas=st.lists(vg_meta, max_size=5), graphs=st.lists(vg_graph, max_size=5), limit=limits)
def test_visual_genome_records_of_any_shape(metas, graphs, limit):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "vg"
        _images(root / "VG_100K")
        (root / "image_data.json").write_text(json.dumps(metas))
        (root / "scene_graphs.json").write_text(json.dumps(graphs))
        _check(lambda options: VisualGenomeSource(root, options=options), limit)
        _build(BuildConfig(source=f"vg:{root}", allow_empty=True, out=str(Path(d) / "rel"), work_dir=str(Path(d) / "w")))


@SETTINGS
@given(images=st.lists(coco_image, max_size=5), anns=st.lists(coco_ann, max_size=8), cats=st.lists(coco_cat, max_size=3), limit=limits)
def test_coco_records_of_any_shape(images, anns, cats, limit):
    with tempfile.TemporaryDirectory() as d:
        _images(Path(d) / "val2017")
        f = Path(d) / "annotations" / "instances_val2017.json"
        f.parent.mkdir()
        f.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
        _check(lambda options: CocoSource(f, options=options), limit)
        _build(BuildConfig(source=f"coco:{f}", allow_empty=True, out=str(Path(d) / "rel"), work_dir=str(Path(d) / "w")))
