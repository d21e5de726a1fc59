"""Issue 15, part B: bad inputs of the VG, COCO and image-folder readers that used to slip through.

Each case: the rejection names the file and the record and carries its reason, the log line says the same,
the run goes on past it (or stops where documented), and the source's counts reconcile
(``read = scene graphs + rejected``, ``held = read`` when nothing caps the read).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core.schema import Rejection, SceneGraph
from pipeline.sources.base import ReadOptions, SourceError
from pipeline.sources.coco import CocoSource
from pipeline.sources.image_folder import ImageFolderSource
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.sources.visual_genome import VisualGenomeSource
from pipeline.steps import BuildConfig, ingest, run_plain

N = 8  # images of the clean folder, ids 1..8


@pytest.fixture(scope="module")
def vg_clean(tmp_path_factory) -> Path:
    return write_synthetic_vg(tmp_path_factory.mktemp("vgf") / "vg", images=N, seed=3, workers=1)


def load(root: Path, name: str):
    return json.loads((root / name).read_text())


def dump(root: Path, name: str, value) -> None:
    (root / name).write_text(json.dumps(value))  # NaN and Infinity are written as Python does


def copy(vg_clean: Path, tmp_path: Path) -> Path:
    root = tmp_path / "vg"
    shutil.copytree(vg_clean, root)
    return root


def read(source) -> tuple[list[SceneGraph], list[Rejection]]:
    recs = list(source.iter_records())
    graphs = [r for r in recs if isinstance(r, SceneGraph)]
    c = source.counts
    assert c.read == len(graphs) + c.rejected, "every record read is a scene graph or a rejection"
    return graphs, [r for r in recs if isinstance(r, Rejection)]


def only(rejections: list[Rejection], rule: str) -> Rejection:
    found = [r for r in rejections if r.rule == rule]
    assert len(found) == 1, (rule, rejections)
    return found[0]


# --- one edit of the clean folder each: (edit, record id, rule, file the rejection names, text in the detail)


def _meta(root, i, **change):
    metas = load(root, "image_data.json")
    metas[i - 1].update(change)
    for k in [k for k, v in change.items() if v is _DROP]:
        del metas[i - 1][k]
    dump(root, "image_data.json", metas)


def _graph(root, i, fn):
    graphs = load(root, "scene_graphs.json")
    fn(graphs[i - 1])
    dump(root, "scene_graphs.json", graphs)


_DROP = object()


def no_width(root):
    _meta(root, 2, width=_DROP)


def width_not_a_number(root):
    _meta(root, 2, width="wide")


def width_nan(root):
    _meta(root, 2, width=math.nan)


def objects_null(root):
    _graph(root, 3, lambda g: g.update(objects=None))


def graph_not_an_object(root):
    graphs = load(root, "scene_graphs.json")
    graphs[2] = ["not", "a", "graph"]
    dump(root, "scene_graphs.json", graphs)


def image_listed_without_graph(root):
    dump(root, "scene_graphs.json", [g for g in load(root, "scene_graphs.json") if g["image_id"] != 5])


def graph_without_metadata(root):
    dump(root, "image_data.json", [m for m in load(root, "image_data.json") if m["image_id"] != 5])


def image_id_twice_in_image_data(root):
    metas = load(root, "image_data.json")
    dump(root, "image_data.json", [*metas, {**metas[1], "width": 1}])


def image_id_escapes(root):
    (root.parent / "secret.jpg").write_bytes((root / "VG_100K" / "2.jpg").read_bytes())
    metas, graphs = load(root, "image_data.json"), load(root, "scene_graphs.json")
    metas[1].update(image_id="../../secret", url=None)
    graphs[1]["image_id"] = "../../secret"
    dump(root, "image_data.json", metas)
    dump(root, "scene_graphs.json", graphs)


def symlink_out(root):
    outside = root.parent / "elsewhere.jpg"
    shutil.move(root / "VG_100K" / "3.jpg", outside)
    os.symlink(outside, root / "VG_100K" / "3.jpg")


def truncated_jpeg(root):
    f = root / "VG_100K" / "3.jpg"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def too_many_pixels(root):
    pass  # the bound is lowered in the test (max_pixels)


VG_CASES = {
    # case: (edit, record, rule, file the rejection names, its detail mentions, scene graphs left, records rejected)
    "vg_image_without_width": (no_width, "2", "invalid_image_record", "image_data.json", "field width: Field required", 7, 1),
    "vg_width_not_a_number": (width_not_a_number, "2", "invalid_image_record", "image_data.json", "field width: must be a whole number", 7, 1),
    "vg_width_nan": (width_nan, "2", "invalid_image_record", "image_data.json", "nan", 7, 1),
    "vg_objects_null": (objects_null, "3", "invalid_graph_record", "scene_graphs.json", "field objects: must be a list, not null", 7, 1),
    # the list is a record of its own; image 3's metadata then has no graph: two records
    "vg_graph_not_an_object": (graph_not_an_object, "#2", "invalid_graph_record", "scene_graphs.json", "the record is a list, not an object", 7, 2),
    "vg_image_without_graph": (image_listed_without_graph, "5", "image_without_graph", "image_data.json", "has no scene graph", 7, 1),
    "vg_graph_without_metadata": (graph_without_metadata, "5", "image_metadata_missing", "scene_graphs.json", "not in image_data.json", 7, 1),
    "vg_image_id_twice": (image_id_twice_in_image_data, "2", "duplicate_image_id", "image_data.json", "again; the first one is kept", 8, 1),
    "vg_image_id_escapes": (image_id_escapes, "../../secret", "path_outside_source", "image_data.json", "outside the source folder", 7, 1),
    "vg_symlink_out": (symlink_out, "3", "symlink_outside_source", "image_data.json", "--follow-symlinks", 7, 1),
    "vg_truncated_jpeg": (truncated_jpeg, "3", "image_corrupt", "3.jpg", "truncated", 7, 1),
}


@pytest.mark.parametrize("case", sorted(VG_CASES))
def test_a_bad_vg_record_is_one_rejection_and_the_run_goes_on(case, vg_clean, tmp_path, caplog):
    edit, record, rule, file, mentions, graphs, rejected = VG_CASES[case]
    root = copy(vg_clean, tmp_path)
    edit(root)
    cfg = BuildConfig(source=f"vg:{root}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    with caplog.at_level(logging.WARNING, logger="pipeline.steps"):
        ing = ingest(cfg)
    found = [r for r in ing.rejections if r.id == record and r.rule == rule]
    assert len(found) == 1, ing.rejections
    r = found[0]
    assert r.file.endswith(file) and mentions in r.detail, r
    assert any(r.file in m and f"record {record} rejected ({rule})" in m for m in caplog.messages)  # the log names both
    c = ing.counts
    assert (ing.images, c["rejected"]) == (graphs, rejected)  # the run went on past it
    assert c["read"] == c["held"] == ing.images + c["rejected"]
    with pytest.raises(SourceError, match=rf"record {re.escape(record)}: {rule}"):  # --strict stops at it, naming it
        ingest(cfg.model_copy(update={"strict": True}))


def test_no_silent_cap_every_record_is_read_and_limit_is_explicit(tmp_path):
    """The README's `--source vg:PATH` read only 300 images: 305 tiny images are all read; --limit reads
    what it says and the counts say how many the source holds."""
    root = tmp_path / "vg"
    (root / "VG_100K").mkdir(parents=True)
    metas, graphs = [], []
    for i in range(1, 306):
        Image.new("RGB", (16, 12), (i % 256, 0, 0)).save(root / "VG_100K" / f"{i}.jpg")
        metas.append({"image_id": i, "width": 16, "height": 12})
        graphs.append({"image_id": i, "objects": [{"object_id": i, "x": 1, "y": 1, "w": 5, "h": 5, "names": ["ball"]}], "relationships": []})
    dump(root, "image_data.json", metas)
    dump(root, "scene_graphs.json", graphs)
    cfg = BuildConfig(source=f"vg:{root}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    assert cfg.images is None and cfg.limit is None
    ing = ingest(cfg)
    assert ing.images == 305 and ing.counts["held"] == ing.counts["read"] == 305
    ing = ingest(cfg.model_copy(update={"limit": 7}))
    assert ing.images == 7 and ing.counts["read"] == 7 and ing.counts["held"] == 305
    with pytest.raises(ValueError, match="--images is the number of synthetic scenes.*--limit"):
        BuildConfig(source=f"vg:{root}", images=300)


def test_limit_counts_bad_metadata_records_too(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    dump(root, "image_data.json", [*load(root, "image_data.json"), {"width": 3}, "junk", {"image_id": 1, "width": 5, "height": 5}])
    for limit, rules in ((2, ["invalid_image_record", "invalid_image_record"]), (5, ["invalid_image_record", "invalid_image_record", "duplicate_image_id"])):
        src = VisualGenomeSource(root, options=ReadOptions(limit=limit))
        graphs, rej = read(src)
        assert src.counts.read == limit and src.counts.held == N + 3 and [r.rule for r in rej] == rules and len(graphs) == limit - len(rej)


@pytest.mark.parametrize("name", ["scene_graphs.json", "image_data.json"])
@pytest.mark.parametrize("body,says", [(b'{"1": {"objects": []}}', "the top level is an object"), (b"", "the file is empty"), (b"  \n", "the file is empty")])
def test_a_file_that_is_not_an_array_is_a_clear_error(name, body, says, vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    (root / name).write_bytes(body)
    with pytest.raises(SourceError, match=rf"{name}: {says}"):
        ingest(BuildConfig(source=f"vg:{root}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))


def test_a_source_that_yields_nothing_is_an_error_unless_allow_empty(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    dump(root, "scene_graphs.json", [])
    cfg = BuildConfig(source=f"vg:{root}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    with pytest.raises(SourceError, match=r"no usable record: the source holds 8, 8 read, 8 rejected.*--allow-empty"):
        ingest(cfg)
    ing = ingest(cfg.model_copy(update={"allow_empty": True}))
    assert ing.images == 0 and {r.rule for r in ing.rejections} == {"image_without_graph"} and len(ing.rejections) == N
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(SourceError, match="no usable record: the source holds 0"):
        ingest(BuildConfig(source=f"images:{tmp_path / 'photos'}", out=str(tmp_path / "rel2"), work_dir=str(tmp_path / "w")))


def test_empty_release_with_allow_empty_says_what_happened(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    dump(root, "scene_graphs.json", [])
    s = run_plain(BuildConfig(source=f"vg:{root}", allow_empty=True, out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    assert s["examples"] == 0 and s["records"]["reconciles"] and s["records"]["rejected"] == N
    lines = [json.loads(line) for line in (tmp_path / "rel" / "rejections.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == [str(i) for i in range(1, N + 1)]


def test_symlink_followed_with_follow_symlinks_and_the_config_says_so(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    symlink_out(root)
    cfg = BuildConfig(source=f"vg:{root}", follow_symlinks=True, out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    s = run_plain(cfg)
    assert s["records"]["symlinks_followed"] == 1 and s["records"]["rejected_at_ingest"] == 0
    assert "follow_symlinks: true" in (tmp_path / "rel" / "config.yaml").read_text()
    card = (tmp_path / "rel" / "README.md").read_text()
    assert "follow_symlinks: true" in card and "--follow-symlinks" in card


def test_an_escaping_image_id_never_reads_outside_nor_releases_an_escaping_path(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    image_id_escapes(root)
    s = run_plain(BuildConfig(source=f"vg:{root}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    assert s["records"]["reconciles"] and s["records"]["rejected_at_ingest"] == 1
    released = json.loads((tmp_path / "rel" / "llava" / "train.json").read_text())
    assert released and all(".." not in row["image"] and not row["image"].startswith("/") for row in released)


# --- fields: validated, one rejection of the object (the image goes on) or of the record -----------


def test_object_fields(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)

    def edit(g):
        g["objects"][0]["x"] = math.nan  # was clipped into a full-width box
        g["objects"][1]["names"] = [7]  # a name that is not a string
        g["objects"][2]["attributes"] = "Blue"  # one attribute, not four letters
        g["objects"][3]["w"] = math.inf
        g["objects"].append(dict(g["objects"][4]))  # an object id given twice

    _graph(root, 1, edit)
    raw = load(root, "scene_graphs.json")[0]["objects"]
    graphs, rej = read(VisualGenomeSource(root))
    g = next(g for g in graphs if g.image_id == "1")
    bad = {r.id: r for r in rej}
    assert bad[f"1/{raw[0]['object_id']}"].rule == "invalid_object" and "field x: must be a finite number, not nan" in bad[f"1/{raw[0]['object_id']}"].detail
    assert bad[f"1/{raw[1]['object_id']}"].rule == "invalid_object" and "field names: item 0 must be a string" in bad[f"1/{raw[1]['object_id']}"].detail
    assert bad[f"1/{raw[3]['object_id']}"].rule == "invalid_object" and "field w" in bad[f"1/{raw[3]['object_id']}"].detail
    assert bad[f"1/{raw[4]['object_id']}"].rule == "duplicate_object_id"
    assert all(r.file.endswith("scene_graphs.json") for r in bad.values())
    kept = {o.id: o for o in g.objects}
    assert kept[str(raw[2]["object_id"])].attributes == ("blue",)
    assert len(g.objects) == len(raw) - 4 and len(graphs) == N
    assert all(math.isfinite(v) for o in g.objects for v in o.box)


def test_relationship_fields(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    graphs = load(root, "scene_graphs.json")
    n_given = len(graphs[0]["relationships"])
    a, b = graphs[0]["objects"][0]["object_id"], graphs[0]["objects"][1]["object_id"]
    graphs[0]["relationships"] += [
        {"relationship_id": 1, "predicate": None, "subject_id": a, "object_id": b},
        {"relationship_id": 2, "predicate": "  ", "subject_id": a, "object_id": b},
        {"relationship_id": 3, "predicate": "on", "subject": {"object_id": a}, "object": {"object_id": b}},  # nested, as relationships.json
        "on",
    ]
    dump(root, "scene_graphs.json", graphs)
    out, rej = read(VisualGenomeSource(root))
    rules = {r.id: r.rule for r in rej}
    assert rules == {"1/rel-1": "invalid_relationship", "1/rel-2": "relation_without_predicate", "1/rel-#" + str(n_given + 3): "invalid_relationship"}
    g = next(g for g in out if g.image_id == "1")
    assert len(g.relations) == n_given + 1


def test_graph_given_twice_keeps_the_first(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    graphs = load(root, "scene_graphs.json")
    dump(root, "scene_graphs.json", [*graphs, {**graphs[1], "objects": []}])
    out, rej = read(VisualGenomeSource(root))
    assert only(rej, "duplicate_image_id").id == "2" and len(out) == N
    assert len(next(g for g in out if g.image_id == "2").objects) == len(graphs[1]["objects"])


def test_image_too_large_is_rejected_before_decoding(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    with Image.open(root / "VG_100K" / "1.jpg") as im:
        pixels = im.width * im.height
    out, rej = read(VisualGenomeSource(root, options=ReadOptions(max_pixels=pixels - 1)))
    assert {r.rule for r in rej} == {"image_too_large"} and len(rej) == N and not out
    assert f"over the bound of {pixels - 1:,}" in rej[0].detail and rej[0].file.endswith("1.jpg")


# --- malformed JSON: a fault costs its own record ----------------------------------------------------


def test_a_malformed_byte_mid_file_costs_only_its_record(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    text = (root / "scene_graphs.json").read_bytes()
    at = text.index(b'"image_id": 4') + len(b'"image_id": 4')
    (root / "scene_graphs.json").write_bytes(text[:at] + b"x" + text[at:])
    out, rej = read(VisualGenomeSource(root))
    r = only(rej, "malformed_json")
    assert r.id == "4" and r.file.endswith("scene_graphs.json")
    assert "record #3" in r.detail and "every later record was read" in r.detail
    assert sorted(int(g.image_id) for g in out) == [1, 2, 3, 5, 6, 7, 8] and len(rej) == 1


def test_a_fault_in_the_brackets_says_how_many_records_were_not_read(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    text = (root / "scene_graphs.json").read_bytes()
    at = text.index(b'{"image_id": 4')
    (root / "scene_graphs.json").write_bytes(text[:at] + b"{" + text[at:])  # an opening brace that never closes
    src = VisualGenomeSource(root)
    out, rej = read(src)
    r = only(rej, "malformed_json")
    assert r.id == "#3" and f"bytes from byte {at} on were not read: about 4 more record(s) lost" in r.detail
    assert sorted(x.id for x in rej if x.rule == "graph_not_read") == ["4", "5", "6", "7", "8"]
    assert src.counts.lost == 4 and len(out) == 3 and src.counts.held == src.counts.read == 9


def test_a_truncated_file_names_the_images_it_lost(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    text = (root / "scene_graphs.json").read_text()
    (root / "scene_graphs.json").write_text(text[: len(text) // 2])
    src = VisualGenomeSource(root)
    out, rej = read(src)
    cut = only(rej, "malformed_json")
    assert "scene_graphs.json" in cut.detail and "were not read" in cut.detail
    not_read = {r.id for r in rej if r.rule == "graph_not_read"}
    assert 1 <= len(out) < N and {g.image_id for g in out} | not_read | {cut.id} == {str(i) for i in range(1, N + 1)}
    assert src.counts.held == src.counts.read == N  # the cut record is its image's, found by its id


def test_nan_in_the_json_reaches_field_validation(vg_clean, tmp_path):
    root = copy(vg_clean, tmp_path)
    _graph(root, 6, lambda g: g["objects"][0].update(h=math.nan))  # a NaN token: not JSON, written by json.dumps
    assert b"NaN" in (root / "scene_graphs.json").read_bytes()
    out, rej = read(VisualGenomeSource(root))
    assert [r.rule for r in rej] == ["invalid_object"] and rej[0].id.startswith("6/") and "field h" in rej[0].detail and len(out) == N


# --- COCO ---------------------------------------------------------------------------------------------


@pytest.fixture()
def coco(vg_clean, tmp_path) -> Path:
    (tmp_path / "val2017").mkdir()
    images, anns = [], []
    for m in load(vg_clean, "image_data.json")[:4]:
        i = m["image_id"]
        shutil.copy(vg_clean / "VG_100K" / f"{i}.jpg", tmp_path / "val2017" / f"{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": m["width"], "height": m["height"]})
        anns.append({"id": 10 * i, "image_id": i, "category_id": 1, "bbox": [10, 20, 100, 50], "iscrowd": 0})
    (tmp_path / "annotations").mkdir()
    f = tmp_path / "annotations" / "instances_val2017.json"
    dump(f.parent, f.name, {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "dog"}]})
    return f


def _coco(f: Path, fn) -> None:
    data = load(f.parent, f.name)
    fn(data)
    dump(f.parent, f.name, data)


COCO_CASES = {
    "coco_image_without_width": (lambda d: d["images"][1].pop("width"), "2", "invalid_image_record", "field width: Field required"),
    "coco_width_not_a_number": (lambda d: d["images"][1].update(width=[1]), "2", "invalid_image_record", "field width"),
    "coco_file_name_escapes": (lambda d: d["images"][1].update(file_name="../../etc/passwd"), "2", "path_outside_source", "outside the source folder"),
    "coco_image_id_twice": (lambda d: d["images"].append(dict(d["images"][1])), "2", "duplicate_image_id", "the first one is kept"),
    "coco_annotations_of_an_unknown_image": (lambda d: d["annotations"].append({"id": 99, "image_id": 77, "category_id": 1, "bbox": [1, 1, 5, 5]}), "77", "image_not_listed", "1 annotation(s) (99) name image 77"),
}


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_a_bad_coco_record_is_one_rejection_and_the_run_goes_on(case, coco, tmp_path, caplog):
    edit, record, rule, mentions = COCO_CASES[case]
    _coco(coco, edit)
    cfg = BuildConfig(source=f"coco:{coco}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"))
    with caplog.at_level(logging.WARNING, logger="pipeline.steps"):
        ing = ingest(cfg)
    r = only(ing.rejections, rule)
    assert r.id == record and r.file == str(coco) and mentions in r.detail, r
    assert any(f"{coco}: record {record} rejected ({rule})" in m for m in caplog.messages)
    c = ing.counts
    assert c["read"] == c["held"] == ing.images + c["rejected"] and c["rejected"] == 1
    assert ing.images == (4 if rule in ("duplicate_image_id", "image_not_listed") else 3)


def test_coco_annotation_fields(coco):
    def edit(d):
        d["annotations"] += [
            {"id": 50, "image_id": 1, "category_id": 1, "bbox": [math.nan, 1, 5, 5]},
            {"id": 51, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5]},
            {"id": 52, "image_id": 1, "category_id": 1, "bbox": "1 1 5 5"},
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},  # an id given twice
            {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ]

    _coco(coco, edit)
    out, rej = read(CocoSource(coco))
    assert [(r.id, r.rule) for r in rej] == [("1/50", "invalid_annotation"), ("1/51", "invalid_annotation"), ("1/52", "invalid_annotation"), ("1/10", "duplicate_annotation_id"), ("1/#8", "invalid_annotation")]
    assert "field bbox.0: must be a finite number" in rej[0].detail and "field id: Field required" in rej[4].detail
    assert len(out) == 4 and [len(g.objects) for g in out] == [1, 1, 1, 1]


def test_coco_top_level_must_be_an_object_with_an_images_list(coco):
    coco.write_text("[]")
    with pytest.raises(SourceError, match="the top level is list"):
        list(CocoSource(coco).iter_records())
    coco.write_text('{"images": null}')
    with pytest.raises(SourceError, match="field images: must be a list, not null"):
        list(CocoSource(coco).iter_records())


# --- image folders ------------------------------------------------------------------------------------


def test_image_folder_counts_every_file(vg_clean, tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(vg_clean / "VG_100K" / "1.jpg", root / "a.jpg")
    shutil.copy(vg_clean / "VG_100K" / "2.jpg", root / "a.png")  # would be image "a" again
    shutil.copy(vg_clean / "VG_100K" / "3.jpg", root / "sub" / "b.jpg")
    (root / "notes.txt").write_text("x")
    (root / ".cache" / "c.jpg").write_bytes(b"x")
    (root / ".hidden.jpg").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(vg_clean / "VG_100K" / "4.jpg", outside / "d.jpg")
    os.symlink(outside, root / "linked")
    os.symlink(outside / "d.jpg", root / "e.jpg")
    src = ImageFolderSource(root)
    out, rej = read(src)
    assert sorted(g.image for g in out) == ["a.jpg", "sub/b.jpg"]
    assert sorted((r.id, r.rule) for r in rej) == [("a.png", "duplicate_image_id"), ("e.jpg", "symlink_outside_source"), ("linked", "symlink_outside_source"), ("notes.txt", "not_an_image")]
    assert src.counts.held == src.counts.read == 6 and src.counts.hidden_skipped == 2
    followed = ImageFolderSource(root, options=ReadOptions(follow_symlinks=True))
    out, rej = read(followed)
    assert sorted(g.image for g in out) == ["a.jpg", "e.jpg", "linked/d.jpg", "sub/b.jpg"] and followed.counts.symlinks_followed == 2


# --- what the user sees -------------------------------------------------------------------------------


def test_the_summary_says_how_many_records_the_source_holds_and_how_many_were_read(vg_clean, tmp_path, capsys):
    from gcot.cli import main  # in this process: the command's own parsing, errors and summary

    assert main(["build", "--source", f"vg:{vg_clean}", "--images", "300", "--no-prefect"]) == 2
    err = capsys.readouterr().err
    assert "--images is the number of synthetic scenes" in err and "--limit N" in err and "Traceback" not in err
    assert main(["build", "--source", f"vg:{vg_clean}", "--limit", "5", "--out", str(tmp_path / "rel"), "--work-dir", str(tmp_path / "w"), "--no-prefect"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "records:" in x)
    assert "the source holds 8, read 5 (--limit 5) = released" in line and "DOES NOT RECONCILE" not in line
    assert "limit: 5" in (tmp_path / "rel" / "config.yaml").read_text()
    root = copy(vg_clean, tmp_path)
    dump(root, "scene_graphs.json", [])
    assert main(["build", "--source", f"vg:{root}", "--out", str(tmp_path / "rel2"), "--work-dir", str(tmp_path / "w"), "--no-prefect"]) == 2
    err = capsys.readouterr().err
    assert "no usable record: the source holds 8, 8 read, 8 rejected" in err and "Traceback" not in err
    assert not (tmp_path / "rel2").exists()


def test_the_card_shows_the_source_records_when_the_writer_passes_them(tmp_path):
    """The card's block for the source's records (shown once the writer hands `records` to the card)."""
    from data_cards.card import _env

    stats = {"candidates": 3, "examples": 2, "rejected": 1, "reconciles": True, "source_rejections": 4, "rejections_by_rule": []}
    records = {"held": 12, "read": 10, "limit": 10, "not_read": 2, "released": 5, "rejected": 5, "rejected_at_ingest": 4,
               "without_example": 1, "reconciles": True, "lost_in_malformed_json": 3, "transposed": 1, "symlinks_followed": 2, "hidden_skipped": 0}
    template = _env().from_string((Path(__file__).parent.parent / "data_cards" / "templates" / "gcot_card.md.j2").read_text().split("## Verification and rejections")[1].split("| stage |")[0])
    text = " ".join(template.render(stats=stats, meta={"records": records}).split())
    assert "the source holds 12; 10 read (`--limit 10`) = released 5 + rejected 5 (4 at ingest, 1 with no example released) (reconciles)" in text
    assert "2 record(s) were not read" in text and "About 3 more record(s)" in text and "1 image(s) were stored rotated" in text and "2 image path(s) lead out" in text
    assert "Source records (images)" not in " ".join(template.render(stats=stats, meta={}).split())
