"""Train the project's detector on synthetic scenes: ``make detector``.

YOLO11n built from its yaml (random init; nothing downloaded), trained on rendered synthetic scenes
whose exact boxes come from the generator, one class per shape. Held-out scenes (another seed)
measure mAP50 and mAP50-95; the weights, the metrics and the training log land in
``pipeline/detect/weights/``, which the repository ships so that the demo and tests need no
training.

CPU budget (2 cores): about 0.1 s per 320 px training image per epoch, so a 600-scene epoch takes
about a minute. ``make detector`` runs two stages (30 epochs from random init, then more epochs from
those weights with a fresh schedule); the shipped weights record both in ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import CliSubCommand

from core.cli import ConfigCommand, Group, single
from core.config import Config
from core.guard import OutputGuard, OutputRefused, check_output_file, prepare_run_folder
from pipeline.detect.detector import DEFAULT_WEIGHTS as WEIGHTS
from pipeline.detect.offline import prepare
from pipeline.sources.synthetic import SHAPES, make_scene

TRAIN_SEED, VAL_SEED, HOLDOUT_SEED = 1001, 1002, 1003  # none of them a demo or test seed

log = logging.getLogger(__name__)


def write_yolo_split(root: Path, split: str, seed: int, n: int) -> None:
    """Rendered scenes and their labels in the YOLO layout (class cx cy w h, normalized)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        img, rec = make_scene(seed, i)
        W, H = img.size
        img.save(root / "images" / split / f"{seed}-{i}.jpg", quality=90)
        lines = [
            f"{SHAPES.index(o['names'][0])} {(o['x'] + o['w'] / 2) / W:.6f} {(o['y'] + o['h'] / 2) / H:.6f} {o['w'] / W:.6f} {o['h'] / H:.6f}"
            for o in rec["objects"]
        ]
        (root / "labels" / split / f"{seed}-{i}.txt").write_text("\n".join(lines) + "\n")


def dataset(root: Path, train: int, val: int, holdout: int) -> tuple[Path, Path]:
    write_yolo_split(root, "train", TRAIN_SEED, train)
    write_yolo_split(root, "val", VAL_SEED, val)
    write_yolo_split(root, "holdout", HOLDOUT_SEED, holdout)
    names = "".join(f"  {k}: {n}\n" for k, n in enumerate(SHAPES))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    (root / "holdout.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/holdout\nnames:\n{names}")
    return root / "data.yaml", root / "holdout.yaml"


def holdout_metrics(weights: Path, holdout_yaml: Path, imgsz: int) -> dict:
    from ultralytics import YOLO

    r = YOLO(str(weights)).val(data=str(holdout_yaml), imgsz=imgsz, batch=16, device="cpu", plots=False, verbose=False, workers=0)
    return {"mAP50": float(r.box.map50), "mAP50-95": float(r.box.map), "precision": float(r.box.mp), "recall": float(r.box.mr)}


class DetectorTrainConfig(Config):
    """Train the shipped detector (YOLO11n from its yaml) on rendered synthetic scenes."""

    train_images: int = Field(600, ge=1, description="synthetic training scenes")
    val_images: int = Field(60, ge=1, description="synthetic validation scenes (model selection)")
    holdout_images: int = Field(200, ge=1, description="held-out scenes (another seed) for the recorded mAP50 and mAP50-95")
    epochs: int = Field(30, ge=1, description="training epochs")
    imgsz: int = Field(320, ge=32, description="training and inference size (objects are >= 7 % of the width)")
    init: str | None = Field(None, description="start from these weights instead of random init (a second stage)")
    work: str = Field(".gcot-work/detector", description="dataset and run folder")
    out: str = Field(str(WEIGHTS), description="where the weights go (default: the shipped file, whose metrics.json records every stage); metrics.json and training_log.csv go beside it")
    overwrite: bool = Field(False, description="replace the weights (and their metrics.json, training_log.csv) already at --out")


class DetectorTrainCommand(DetectorTrainConfig, ConfigCommand):
    """Train the shipped detector on synthetic scenes (about 50 min on 2 CPU cores for make detector's two stages).

    Examples:
      gcot detector train --epochs 30 --overwrite
      gcot detector train --epochs 20 --init pipeline/detect/weights/gcot-yolo11n.pt --overwrite
    """

    CONFIG = DetectorTrainConfig

    def run(self) -> int:
        train(self.resolve())
        return 0


class DetectorGroup(Group):
    """The shipped detector."""

    train: CliSubCommand[DetectorTrainCommand] = Field(description="train it on rendered synthetic scenes (make detector)")


def train(a: DetectorTrainConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare()
    from ultralytics import YOLO

    work = Path(a.work).resolve()
    init = Path(a.init).resolve() if a.init else None
    if init is not None and not init.is_file():
        raise SystemExit(f"--init {init} not found")
    try:  # before anything is deleted or trained: the work folder is ours, the weights may be written
        check_output_file(a.out, "detector weights", overwrite=a.overwrite, beside=("metrics.json", "training_log.csv"))
        guard = OutputGuard(work, "detector work folder", owned=("data", "runs"), flag="--work")
        prepare_run_folder(guard, guard.check())
    except OutputRefused as e:
        raise SystemExit(f"error: {e}") from None
    shutil.rmtree(work / "data", ignore_errors=True)
    shutil.rmtree(work / "runs" / "train", ignore_errors=True)
    data_yaml, holdout_yaml = dataset(work / "data", a.train_images, a.val_images, a.holdout_images)
    t = time.time()
    model = YOLO(str(init)) if init else YOLO("yolo11n.yaml")
    model.train(
        data=str(data_yaml), epochs=a.epochs, imgsz=a.imgsz, batch=16, workers=2, device="cpu", amp=False, seed=0,
        deterministic=True, project=str(work / "runs"), name="train", exist_ok=True, plots=False, cache=True,
        close_mosaic=5, val=True, pretrained=init is not None,  # False would re-initialize the --init weights
    )
    minutes = (time.time() - t) / 60
    best = work / "runs" / "train" / "weights" / "best.pt"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, out)
    metrics = holdout_metrics(out, holdout_yaml, a.imgsz)  # before the record: each stage keeps its own
    previous = json.loads((out.parent / "metrics.json").read_text()) if init and (out.parent / "metrics.json").is_file() else None
    stage = {"init": init.name if init else "yolo11n.yaml (random)", "epochs": a.epochs, "train_minutes_cpu": round(minutes, 1), "holdout": metrics}
    stages = (previous or {}).get("stages", []) + [stage]
    record = {
        "weights": out.name, "architecture": "yolo11n.yaml (random init)", "stages": stages, "classes": list(SHAPES), "imgsz": a.imgsz,
        "train_images": a.train_images, "epochs": sum(st["epochs"] for st in stages), "train_minutes_cpu": round(sum(st["train_minutes_cpu"] for st in stages), 1),
        "seeds": {"train": TRAIN_SEED, "val": VAL_SEED, "holdout": HOLDOUT_SEED},
        "holdout_images": a.holdout_images, "holdout": metrics,
        "commands": (previous or {}).get("commands", []) + [a.command_line("gcot detector train")],
    }
    (out.parent / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    results_csv = work / "runs" / "train" / "results.csv"
    if results_csv.exists():  # the per-epoch log, stages appended
        log_file = out.parent / "training_log.csv"
        rows = results_csv.read_text().splitlines()
        if init and log_file.exists():
            log_file.write_text(log_file.read_text().rstrip("\n") + "\n" + "\n".join(rows[1:]) + "\n")
        else:
            log_file.write_text("\n".join(rows) + "\n")
    log.info("held-out mAP50 %.3f, mAP50-95 %.3f (%d scenes); weights %s", metrics["mAP50"], metrics["mAP50-95"], a.holdout_images, out)


if __name__ == "__main__":
    sys.exit(single(DetectorGroup, "python -m pipeline.detect.train"))
