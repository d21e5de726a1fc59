"""Detector-assisted labeling with the shipped detector: offline loading, accuracy on held-out
synthetic scenes, the image-folder source, and the cross-check catching a planted wrong box."""

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from pipeline.detect.colors import measure
from pipeline.detect.detector import DEFAULT_WEIGHTS, Detector, DetectorError
from pipeline.detect.offline import prepare
from pipeline.sources.synthetic import make_scene, write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain


@pytest.fixture()
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(self, address, *a, **k):
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def detector():
    return Detector()


def test_loads_and_predicts_offline(no_network, detector):
    img, rec = make_scene(5, 1)
    dets = detector.predict([np.asarray(img)[..., ::-1].copy()])[0]  # Ultralytics takes BGR arrays
    assert dets and all(0 <= d.box[0] <= 1 and d.box[2] > 0 for d in dets)
    assert detector.version.startswith("gcot-yolo11n.pt@") and detector.model.task == "detect"


def test_missing_and_wrong_weights_are_clear_errors(tmp_path):
    with pytest.raises(DetectorError, match="nope.pt not found"):
        Detector(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DetectorError, match="junk.pt: not readable"):
        Detector(tmp_path / "junk.pt")
    prepare()
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(tmp_path / "cls.pt")
    with pytest.raises(DetectorError, match="'classify' model; a detection model is needed"):
        Detector(tmp_path / "cls.pt")


def test_name_map_renames_classes(detector):
    mapped = Detector(DEFAULT_WEIGHTS, name_map={"cube": "box"})
    img, _ = make_scene(5, 2)
    arr = np.asarray(img)[..., ::-1].copy()
    names = {d.name for d in mapped.predict([arr])[0]}
    labels = {d.label for d in detector.predict([arr])[0]}
    assert ("cube" not in names) and (("box" in names) == ("cube" in labels))


def test_finds_the_objects_of_held_out_scenes(tmp_path):
    """mAP50 against the generator's exact boxes on scenes of a seed never trained on."""
    from pipeline.detect.train import HOLDOUT_SEED, holdout_metrics, write_yolo_split

    root = tmp_path / "holdout"
    write_yolo_split(root, "train", HOLDOUT_SEED, 1)
    write_yolo_split(root, "holdout", HOLDOUT_SEED + 10, 60)
    (root / "holdout.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/holdout\nnames:\n" + "".join(f"  {k}: {n}\n" for k, n in Detector().names.items()))
    m = holdout_metrics(DEFAULT_WEIGHTS, root / "holdout.yaml", Detector().imgsz)
    assert m["mAP50"] >= 0.8, m


def test_measured_colours_agree_with_the_generator():
    hits = total = 0
    for i in range(1, 40):
        img, rec = make_scene(9, i)
        a, (W, H) = np.asarray(img), img.size
        for o in rec["objects"]:
            if o["attributes"][2] == "glass":
                continue  # translucent: its colour is half the background's
            total += 1
            hits += measure(a, (o["x"] / W, o["y"] / H, o["w"] / W, o["h"] / H)) == o["attributes"][1]
    assert hits / total >= 0.8


def test_image_folder_source(tmp_path):
    import ultralytics

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    assets = Path(ultralytics.__file__).parent / "assets"
    shutil.copy(assets / "bus.jpg", folder / "bus.jpg")
    shutil.copy(assets / "zidane.jpg", folder / "sub" / "zidane.jpg")
    for i in range(1, 7):
        make_scene(21, i)[0].save(folder / f"scene{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "notes.txt").write_text("not an image")
    s = run_plain(BuildConfig(source=f"images:{folder}", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"), seed=1))
    rejections = [json.loads(line) for line in (tmp_path / "rel" / "rejections.jsonl").read_text().splitlines()]
    rules = {(r["id"], r["rule"]) for r in rejections}
    assert ("broken.jpg", "image_corrupt") in rules and ("notes.txt", "not_an_image") in rules
    assert s["candidates"] == s["examples"] + s["rejected"] and s["examples"] > 0
    # every readable image is accounted for: it gave examples or a record saying why not
    images_with_examples = {e["img"] for e in map(json.loads, (tmp_path / "rel" / "review_queue.jsonl").read_text().splitlines())}
    recorded = {r["file"] for r in rejections}  # "no_chain" names the image; chain rejections its release path
    for rel in ("bus.jpg", "sub/zidane.jpg", *(f"scene{i}.png" for i in range(1, 7))):
        assert f"images/{rel}" in images_with_examples | recorded or rel in recorded, rel
    queue = [json.loads(line) for line in (tmp_path / "rel" / "review_queue.jsonl").read_text().splitlines()]
    assert all(q["drafted_by"].startswith("detector:gcot-yolo11n.pt@") for q in queue)
    card = (tmp_path / "rel" / "README.md").read_text()
    assert "## Detector cross-check" in card and "mAP50" in card


def test_cross_check_flags_a_planted_wrong_box(tmp_path):
    root = write_synthetic_vg(tmp_path / "vg", images=6, seed=4, workers=1)
    graphs = json.loads((root / "scene_graphs.json").read_text())
    obj = max(graphs[0]["objects"], key=lambda o: o["w"] * o["h"])
    meta = json.loads((root / "image_data.json").read_text())[0]
    obj["x"] = (obj["x"] + meta["width"] // 2) % max(1, meta["width"] - obj["w"])  # same size, wrong place
    obj["y"] = (obj["y"] + meta["height"] // 3) % max(1, meta["height"] - obj["h"])
    (root / "scene_graphs.json").write_text(json.dumps(graphs))
    run_plain(BuildConfig(source=f"vg:{root}", detector="default", out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    from pipeline.release.arrow import read_examples

    examples = read_examples(sorted((tmp_path / "rel" / "data").glob("*.parquet")))
    planted = str(obj["object_id"])
    touched = [e for e in examples if any(s.object_id == planted for s in e.steps)]
    untouched = [e for e in examples if e not in touched]
    assert touched and all(e.detector.flagged for e in touched)
    for e in touched:
        k = [s.object_id for s in e.grounded_steps].index(planted)
        assert e.detector.step_iou[k] < 0.5
    # the detector misses some small or glass objects, so a few honest chains are flagged too
    # (measured: 6 of 35 with the shipped weights); a planted box must stand out from that
    assert sum(e.detector.flagged for e in untouched) <= 0.25 * len(untouched)
    queue = [json.loads(line)["id"] for line in (tmp_path / "rel" / "review_queue.jsonl").read_text().splitlines()]
    assert set(queue[: len(touched)]) <= {e.id for e in examples if e.detector.flagged}


def test_detections_are_deterministic(tmp_path):
    from pipeline.detect.detections import detect_shard
    from pipeline.steps import ingest

    root = write_synthetic_vg(tmp_path / "vg", images=5, seed=8, workers=1)
    ing = ingest(BuildConfig(source=f"vg:{root}", out=str(tmp_path / "r"), work_dir=str(tmp_path / "w")))
    a = detect_shard(ing.shards[0], ing.digests[0], ing.source_root, "default", {}, 0.25, tmp_path / "a")
    b = detect_shard(ing.shards[0], ing.digests[0], ing.source_root, "default", {}, 0.25, tmp_path / "b")
    assert Path(a).read_bytes() == Path(b).read_bytes() and os.path.basename(a) == os.path.basename(b)
