"""The official MM-GCoT evaluation (DoubtedSteam/MM-GCoT ``eval.py``), reproduced to the bit.

Every quirk is kept on purpose, because numbers must equal the official script's on any results
file: the answer loses every ``.`` and is lower-cased, then must equal the lower-cased ground truth;
a box is the first ``[...]`` holding only digits, dots, commas and spaces, else the whole text minus
its first and last character, split on commas, ``[0, 0, 0, 0]`` on any failure or fewer than four
numbers; IoU reads both boxes as ``[x, y, w, h]``; grounding counts IoU strictly above 0.5;
consistency = CR / (CR + CM + WR) x 100. Percentages are computed with the same float operations
in the same order (``sum(hits) / len(hits) * 100``), so they are identical, not merely close.

Where the official script crashes (a box of five or more numbers reaching the IoU, a non-string
field, an empty file, no sample right on anything), this raises `OfficialScriptWouldFail` naming
the record, rather than invent a number the official script never gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

_OFFICIAL_BOX = re.compile(r"\[([0-9., ]+)\]")
MODEL_FORMATS = ("llava", "qwen", "internvl")


class OfficialScriptWouldFail(ValueError):
    """The official script raises on this input; there is no official number to reproduce."""


def answer_correct(text: str, gt_text: str) -> bool:
    return text.replace(".", "").lower() == gt_text.lower()


def parse_box(text) -> list[float]:
    if text is None:
        return [0, 0, 0, 0]
    if not isinstance(text, str):
        raise OfficialScriptWouldFail(f"box {text!r} is not a string (the official regex search raises TypeError)")
    m = _OFFICIAL_BOX.search(text)
    body = m.group(0) if m else text
    try:
        values = [float(x) for x in body[1:-1].split(",")]
    except ValueError:
        return [0, 0, 0, 0]
    return [0, 0, 0, 0] if len(values) < 4 else values


def iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != 4 or len(b) != 4:
        raise OfficialScriptWouldFail(f"box with {max(len(a), len(b))} numbers: the official IoU unpacks exactly four")
    x1, y1, w1, h1 = a
    x2, y2, w2, h2 = b
    ix1, iy1 = max(x1, x2), max(y1, y2)
    ix2, iy2 = min(x1 + w1, x2 + w2), min(y1 + h1, y2 + h2)
    inter = max(0, ix2 - ix1) * max(0, iy2 - iy1)
    union = w1 * h1 + w2 * h2 - inter
    return inter / union if union != 0 else 0


def convert_box(box: list[float], model_format: str, image_size: Callable[[], tuple[int, int]]) -> list[float]:
    """The official per-model conversion to normalized xywh (LLaVA family: as it is)."""
    if model_format == "qwen":  # absolute-pixel xyxy
        w, h = image_size()
        return [box[0] / w, box[1] / h, (box[2] - box[0]) / w, (box[3] - box[1]) / h]
    if model_format == "internvl":  # xyxy on a 0-1000 scale
        return [box[0] / 1000, box[1] / 1000, (box[2] - box[0]) / 1000, (box[3] - box[1]) / 1000]
    if model_format != "llava":
        raise ValueError(f"unknown model format {model_format!r}; choose from {', '.join(MODEL_FORMATS)}")
    return box


@dataclass
class SampleScore:
    answer_correct: bool
    iou: float

    @property
    def grounded(self) -> bool:
        return self.iou > 0.5


def score_sample(rec: dict, model_format: str = "llava", image_root: str | Path | None = None) -> SampleScore:
    for key in ("text", "gt_text"):
        if not isinstance(rec.get(key), str):
            raise OfficialScriptWouldFail(f"field {key!r} is {rec.get(key)!r}, not a string")
    if "coor" not in rec or "gt_coor" not in rec:
        raise OfficialScriptWouldFail("record lacks coor or gt_coor (the official script raises KeyError)")
    box = parse_box(rec["coor"])

    def image_size() -> tuple[int, int]:
        if image_root is None:
            raise ValueError("--model-format qwen needs --image-root to read image sizes")
        path = Path(image_root) / rec["img"]
        with Image.open(path) as im:
            return im.size

    box = convert_box(box, model_format, image_size)
    return SampleScore(answer_correct(rec["text"], rec["gt_text"]), iou_xywh(box, parse_box(rec["gt_coor"])))


def aggregate(scores: Sequence[SampleScore]) -> dict:
    """The three official percentages plus the four counts, with the official float arithmetic."""
    if not scores:
        raise OfficialScriptWouldFail("no results (the official script divides by zero)")
    correct = [1 if s.answer_correct else 0 for s in scores]
    ious = [s.iou for s in scores]
    cr = sum(1 for s in scores if s.answer_correct and s.grounded)
    cm = sum(1 for s in scores if s.answer_correct and not s.grounded)
    wr = sum(1 for s in scores if not s.answer_correct and s.grounded)
    ww = len(scores) - cr - cm - wr
    if cr + cm + wr == 0:
        raise OfficialScriptWouldFail("no sample has a right answer or a right box (the official consistency divides by zero)")
    return {
        "n": len(scores),
        "answer_accuracy": sum(correct) / len(correct) * 100,
        "grounding_accuracy": sum(1 for x in ious if x > 0.5) / len(ious) * 100,
        "consistency": cr / (cr + cm + wr) * 100,
        "CR": cr,
        "CM": cm,
        "WR": wr,
        "WW": ww,
    }


def evaluate(records: Sequence[dict], model_format: str = "llava", image_root: str | Path | None = None) -> dict:
    scores = []
    for i, rec in enumerate(records):
        try:
            scores.append(score_sample(rec, model_format, image_root))
        except OfficialScriptWouldFail as e:
            raise OfficialScriptWouldFail(f"line {i + 1}: {e}; the official script stops here (try --mode strict)") from None
    return aggregate(scores)
