"""The detector: any Ultralytics detection weights, batched, offline, boxes converted at the border.

Ultralytics reports absolute or normalized ``xyxy``; inside the project boxes are normalized
``xywh``, so `Detection.box` is converted here and nowhere else. A weights file that is missing (which
Ultralytics would try to download), unreadable, or not a detection model gives a `DetectorError`
naming the file. ``name_map`` renames detector classes to scene-graph nouns (a COCO model's
``person`` -> ``man``, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.schema import Box
from pipeline.detect.offline import prepare

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "gcot-yolo11n.pt"
DEFAULT_METRICS = DEFAULT_WEIGHTS.parent / "metrics.json"  # its held-out scores, written by train.py


class DetectorError(Exception):
    pass


@dataclass(frozen=True)
class Detection:
    name: str  # scene-graph noun (after the name map)
    label: str  # the detector's class name
    confidence: float
    box: Box  # normalized xywh

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Detection:
        return cls(d["name"], d["label"], d["confidence"], tuple(d["box"]))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class Detector:
    def __init__(
        self,
        weights: str | Path = DEFAULT_WEIGHTS,
        name_map: dict[str, str] | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | None = None,
        batch: int = 16,
        device: str = "cpu",
    ):
        prepare()
        path = Path(weights)
        if not path.is_file():
            raise DetectorError(f"detector weights {path} not found (nothing is downloaded: give a local .pt file)")
        from ultralytics import YOLO

        try:
            model = YOLO(str(path))
        except Exception as e:  # Ultralytics raises many kinds on a bad file
            raise DetectorError(f"{path}: not readable as Ultralytics weights ({type(e).__name__}: {e})") from e
        if model.task != "detect":
            raise DetectorError(f"{path} is a {model.task!r} model; a detection model is needed")
        self.model = model
        self.path = path
        self.names: dict[int, str] = dict(model.names)
        self.name_map = {k.lower(): v.lower() for k, v in (name_map or {}).items()}
        self.conf, self.iou, self.batch, self.device = conf, iou, batch, device
        self.imgsz = imgsz or int(model.overrides.get("imgsz") or 640)
        self.version = f"{path.name}@{file_digest(path)}"

    def _convert(self, result) -> list[Detection]:
        out = []
        boxes = result.boxes
        for (x1, y1, x2, y2), c, k in zip(boxes.xyxyn.tolist(), boxes.conf.tolist(), boxes.cls.tolist()):
            name, label = self.noun(k)
            out.append(Detection(name, label, round(float(c), 4), (round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4))))
        return sorted(out, key=lambda d: (-d.confidence, d.box))

    def results(self, images: Sequence) -> Iterator:
        """Ultralytics' own Results of each image (paths or BGR arrays), in order, ``batch`` a pass."""
        yield from self.model.predict(list(images), imgsz=self.imgsz, conf=self.conf, iou=self.iou, device=self.device, batch=self.batch, stream=True, verbose=False)

    def stream(self, images: Sequence) -> Iterator[tuple[list[Detection], np.ndarray]]:
        """(detections, RGB pixels) of each image, in order; Ultralytics batches ``batch`` images a
        forward pass and hands back the pixels it read, so nothing is decoded twice."""
        for r in self.results(images):
            yield self._convert(r), r.orig_img[..., ::-1]

    def noun(self, cls: int) -> tuple[str, str]:
        """(scene-graph noun, detector label) of a class index."""
        label = self.names[int(cls)]
        return self.name_map.get(label.lower(), label.lower()), label

    def predict(self, images: Sequence) -> list[list[Detection]]:
        return [d for d, _ in self.stream(images)]
