"""Cross-check chains against a detector: is every grounded step's box where the detector sees an
object of a compatible class? Unsupported examples are flagged and go to the front of the review
queue (least agreement first)."""

from __future__ import annotations

from collections.abc import Sequence

from core.boxes import iou
from core.schema import DetectorCheck, Example
from pipeline.detect.detector import Detection
from pipeline.evaluation.strict import singular

SUPPORT_IOU = 0.5  # a step is supported when a compatible detection overlaps it with IoU > 0.5
# Scene-graph nouns a detector class may stand for (Visual Genome names people many ways).
GROUPS = [
    {"person", "man", "woman", "boy", "girl", "child", "kid", "people", "player", "lady", "guy", "skier", "surfer"},
    {"car", "vehicle", "taxi"},
    {"cup", "mug"},
    {"couch", "sofa"},
    {"tv", "television", "monitor", "screen"},
]


def compatible(step_name: str | None, detection_name: str) -> bool:
    if step_name is None:
        return True
    a, b = singular(step_name.lower().strip()), singular(detection_name.lower().strip())
    return a == b or any(a in g and b in g for g in GROUPS)


def check_example(ex: Example, detections: Sequence[Detection], model: str) -> DetectorCheck:
    ious, classes = [], []
    grounded = ex.grounded_steps
    for k, step in enumerate(grounded):
        name = step.name
        if name is None and k == len(grounded) - 1 and ex.type == "object":
            name = ex.answer  # the question hides the target's noun; the answer names it
        best, cls = 0.0, None
        for d in detections:
            if compatible(name, d.name):
                v = iou(step.box, d.box)
                if v > best:
                    best, cls = v, d.label
        ious.append(round(best, 4))
        classes.append(cls)
    lo = min(ious) if ious else 0.0
    return DetectorCheck(model, ious, classes, lo, round(sum(ious) / len(ious), 4) if ious else 0.0, lo <= SUPPORT_IOU)


def review_order(examples: Sequence[Example]) -> list[Example]:
    """Examples the answerability judge disagreed with first (`pipeline.models.questions`); within
    each group least detector agreement first, and examples never cross-checked after them, in
    release order."""
    checked = sorted((e for e in examples if e.detector), key=lambda e: (e.detector.min_iou, e.detector.mean_iou, e.id))
    ordered = checked + [e for e in examples if not e.detector]
    return sorted(ordered, key=lambda e: e.provenance.get("judge.outcome") != "disagrees")  # stable: keeps the order within each group
