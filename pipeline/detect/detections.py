"""Pre-annotation of a shard: the detector over its images in batches, colours measured from the
pixels, written as JSON lines beside the shard results (one line an image, raw detections kept)."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

from core.shards import code_digest, load_scene_graphs
from pipeline.detect.colors import measure
from pipeline.detect.detector import Detection, Detector

DETECTOR_DEFAULT = "default"


@cache
def get_detector(weights: str, name_map_json: str = "{}", conf: float = 0.25) -> Detector:
    """One loaded detector per process and setting (a shard task reuses it)."""
    from pipeline.detect.detector import DEFAULT_WEIGHTS

    return Detector(DEFAULT_WEIGHTS if weights == DETECTOR_DEFAULT else weights, json.loads(name_map_json), conf)


def detect_shard(shard: str, digest: str, source_root: str, weights: str, name_map: dict, conf: float, out_dir: str | Path) -> str:
    """Detections of every image of a scene-graph shard -> ``<key>.detections.jsonl`` (reused if there)."""
    det = get_detector(weights, json.dumps(name_map, sort_keys=True), conf)
    # the code digest too: a change to colour measurement or conversion must not reuse old files
    key = hashlib.sha256(json.dumps([digest, det.version, sorted(name_map.items()), conf, det.imgsz, code_digest("core", "pipeline.detect")]).encode()).hexdigest()[:20]
    out = Path(out_dir) / f"{key}.detections.jsonl"
    if out.is_file():
        return str(out)
    graphs = load_scene_graphs(shard)
    lines = []
    for g, (dets, rgb) in zip(graphs, det.stream([str(Path(source_root) / g.image) for g in graphs])):
        rec = [{**d.to_dict(), "color": measure(rgb, d.box)} for d in dets]
        lines.append(json.dumps({"image_id": g.image_id, "detector": det.version, "detections": rec}, sort_keys=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.rename(out)
    return str(out)


def load_detections(path: str | Path) -> tuple[str, dict[str, list[tuple[Detection, str | None]]]]:
    """(detector version, image id -> [(detection, measured colour)])."""
    version, out = "", {}
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        version = rec["detector"]
        out[rec["image_id"]] = [(Detection.from_dict(d), d.get("color")) for d in rec["detections"]]
    return version, out
