"""Examples to Label Studio tasks and annotations back to edits: the Label Studio border.

Label Studio rectangles are percent of the image (top-left x, y, width, height); inside the project
boxes are normalized ``[x, y, w, h]``; the conversion happens here and nowhere else. A step's text
is shown with its box literal as ``[box]`` (reviewers move boxes, not numbers); on the way back the
placeholder becomes the new box.
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from datetime import datetime

from annotation.configs import STEP_COLORS, VERDICTS
from core.boxes import find_boxes, format_box, iou, quantize, replace_last_box
from core.schema import Box, Example
from pipeline.detect.crosscheck import SUPPORT_IOU

BOX_PLACEHOLDER = "[box]"


class MalformedAnnotation(ValueError):
    pass


def to_percent(box: Box) -> dict:
    x, y, w, h = box
    return {"x": x * 100, "y": y * 100, "width": w * 100, "height": h * 100, "rotation": 0}


def from_percent(value: dict) -> Box:
    try:
        x, y, w, h = (float(value[k]) / 100 for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedAnnotation(f"rectangle without numeric x, y, width, height: {value}") from e
    if float(value.get("rotation") or 0) != 0:
        raise MalformedAnnotation(f"rotated rectangle ({value.get('rotation')} degrees): boxes must be axis-aligned")
    return quantize((x, y, w, h))


def text_with_placeholder(text: str) -> str:
    return replace_last_box(text, BOX_PLACEHOLDER)


def text_with_box(text: str, box: Box) -> str:
    if BOX_PLACEHOLDER in text:
        return text.replace(BOX_PLACEHOLDER, format_box(box))
    if find_boxes(text):
        return replace_last_box(text, box)
    return f"{text.rstrip().rstrip('.')} at {format_box(box)}"


def step_name(example: Example, k: int) -> str | None:
    """The noun of grounded step ``k`` (0-based) as the detector cross-check matched it: an object
    question's last step hides its noun, and the answer names it."""
    grounded = example.grounded_steps
    name = grounded[k].name
    if name is None and k == len(grounded) - 1 and example.type == "object":
        name = example.answer
    return name


def flag_reason(example: Example) -> str:
    """One line saying why the task is where it is in the review queue (least detector agreement first)."""
    d = example.detector
    if d is None:
        return "Not cross-checked by a detector: check every step's box and text"
    weak = []
    for k, (v, cls) in enumerate(zip(d.step_iou, d.step_class)):
        if v > SUPPORT_IOU:
            continue
        name = (step_name(example, k) or "matching object").lower()
        why = f"no {name} found" if cls is None or v == 0 else f"the box does not match the detected {cls}"
        weak.append(f"Step {k + 1}: detector IoU {v:.2f} — {why}")
    if not weak:
        return f"Detector agrees with every step (lowest IoU {d.min_iou:.2f})"
    return "Flagged: " + "; ".join(weak)


def _chain_html(example: Example) -> str:
    """The chain's steps as a list, each boxed step in its box's colour with its detector IoU."""
    ious = example.detector.step_iou if example.detector else []
    items, k = [], 0
    for n, step in enumerate(example.steps, 1):
        if step.box is None:
            items.append(f'<li><b>Step {n}</b>: {html.escape(step.text)} <small>(no box)</small></li>')
            continue
        color = STEP_COLORS[k % len(STEP_COLORS)]
        iou_note = f" <small>(detector IoU {ious[k]:.2f})</small>" if k < len(ious) else ""
        items.append(f'<li><b style="color: {color}">Step {k + 1}</b>: {html.escape(text_with_placeholder(step.text))}{iou_note}</li>')
        k += 1
    return '<ul style="margin: 0; padding-left: 0; list-style: none">' + "".join(items) + "</ul>"


def task_for(example: Example, image_url: str, model_version: str) -> dict:
    """A task whose prediction pre-fills every box and text of the example; its labels are the
    chain's own steps (``Step 1`` ... ``Step k``, each usable once), and the prediction's score is the
    chain's lowest detector IoU, so Label Studio's prediction-score column sorts and filters by it."""
    result, unboxed, labels = [], [], []
    k = 0
    for n, step in enumerate(example.steps, 1):
        if step.box is None:
            unboxed.append(f"Step {n}: {step.text}")
            continue
        k += 1
        rid = f"step{n}"
        labels.append({"value": f"Step {k}", "background": STEP_COLORS[(k - 1) % len(STEP_COLORS)]})
        common = {"id": rid, "to_name": "image", "original_width": example.width, "original_height": example.height, "image_rotation": 0}
        result.append({**common, "from_name": "box", "type": "rectanglelabels", "value": {**to_percent(step.box), "rectanglelabels": [f"Step {k}"]}})
        result.append({**common, "from_name": "step_text", "type": "textarea", "value": {**to_percent(step.box), "text": [text_with_placeholder(step.text)]}})
    for name, text in (("question", example.question), ("answer", example.answer), ("unboxed_steps", "\n".join(unboxed))):
        if text:
            result.append({"id": name, "from_name": name, "to_name": "image", "type": "textarea", "value": {"text": [text]}})
    data = {
        "image": image_url,
        "example_id": example.id,
        "type": example.type,
        "question": example.question,
        "answer": example.answer,
        "detector_min_iou": example.detector.min_iou if example.detector else None,
        "reason": flag_reason(example),
        "steps": labels,
        "chain": _chain_html(example),
    }
    prediction = {"model_version": model_version, "result": result}
    if example.detector:
        prediction["score"] = example.detector.min_iou
    return {"data": data, "predictions": [prediction]}


@dataclass(frozen=True)
class Change:
    """One thing a reviewer changed in an example: a step's box or text, the question or the answer."""

    what: str  # "box", "text", "question", "answer"
    step: int | None = None  # the step's number in the chain (1-based), for a box or a step text
    iou: float | None = None  # a box: IoU of the new box with the pushed one
    before: str | None = None  # a text: as pushed ([box] for the coordinates)
    after: str | None = None

    @property
    def label(self) -> str:
        """Short name, as the example's provenance keeps it: "step 2 box", "answer"."""
        return f"step {self.step} {self.what}" if self.step else self.what

    def describe(self) -> str:
        if self.what == "box":
            return f"{self.label} moved (IoU {self.iou:.2f} with the pushed box)"
        return f"{self.label}: {self.before!r} -> {self.after!r}"


@dataclass
class Review:
    """One annotation read back: the verdict and the example as the annotator left it."""

    verdict: str | None
    example: Example
    changes: list[Change] = field(default_factory=list)  # what differs from the pushed example
    reviewer: str | None = None
    reviewed_at: str | None = None
    comment: str | None = None

    @property
    def changed(self) -> list[str]:
        return [c.label for c in self.changes]


def texts_of(result: list[dict], name: str) -> list[str]:
    """Every text of the regions of control ``name`` in an annotation's result, in order."""
    out = []
    for r in result:
        if r.get("from_name") == name:
            out += [t for t in (r.get("value") or {}).get("text", []) if isinstance(t, str)]
    return out


def result_of(annotation: dict) -> list[dict]:
    result = annotation.get("result")
    if not isinstance(result, list):
        raise MalformedAnnotation("annotation without a result list")
    return result


@dataclass(frozen=True)
class Verdict:
    """What every review config shares: the verdict (checked), who gave it, when, and the comment."""

    verdict: str | None
    reviewer: str | None
    reviewed_at: str | None
    comment: str | None


def verdict_of(annotation: dict) -> Verdict:
    result = result_of(annotation)
    verdicts = [c for r in result if r.get("from_name") == "verdict" for c in (r.get("value") or {}).get("choices", [])]
    verdict = verdicts[-1] if verdicts else None
    if verdict is not None and verdict not in VERDICTS:
        raise MalformedAnnotation(f"unknown verdict {verdict!r}")
    comments = texts_of(result, "comment")
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    when = annotation.get("updated_at") or annotation.get("created_at")
    if isinstance(when, datetime):
        when = when.isoformat()
    return Verdict(verdict, str(who) if who is not None else None, str(when) if when else None, comments[-1] if comments else None)


def read_annotation(original: Example, annotation: dict) -> Review:
    """Apply one annotation's result to a copy of the pushed example."""
    result = result_of(annotation)
    ex = copy.deepcopy(original)
    grounded = [i for i, s in enumerate(ex.steps) if s.box is not None]
    boxes: dict[int, Box] = {}
    region_label: dict[str, int] = {}
    for r in result:
        if r.get("from_name") == "box":
            labels = (r.get("value") or {}).get("rectanglelabels") or []
            if len(labels) != 1 or not str(labels[0]).startswith("Step "):
                raise MalformedAnnotation(f"rectangle {r.get('id')} has labels {labels}, expected one 'Step k'")
            try:
                k = int(str(labels[0]).split()[1])
            except ValueError as e:
                raise MalformedAnnotation(f"rectangle label {labels[0]!r} is not 'Step <number>'") from e
            if not 1 <= k <= len(grounded):
                raise MalformedAnnotation(f"rectangle labelled Step {k}, but the chain has {len(grounded)} boxed steps")
            if k in boxes:
                raise MalformedAnnotation(f"two rectangles labelled Step {k}")
            boxes[k] = from_percent(r.get("value") or {})
            region_label[str(r.get("id"))] = k
    changes: list[Change] = []
    step_texts = {region_label[str(r.get("id"))]: (r.get("value") or {}).get("text", [None])[0] for r in result if r.get("from_name") == "step_text" and str(r.get("id")) in region_label}
    for k, idx in enumerate(grounded, 1):
        step = ex.steps[idx]
        box = boxes.get(k, step.box)  # a deleted rectangle keeps the pushed box
        text = step_texts.get(k) or text_with_placeholder(step.text)
        new_text = text_with_box(text, box)
        if box != step.box:
            changes.append(Change("box", idx + 1, iou=round(iou(step.box, box), 4)))
        before, after = text_with_placeholder(step.text), text_with_placeholder(new_text)
        if before != after:  # not when only the box literal followed the box
            changes.append(Change("text", idx + 1, before=before, after=after))
        step.box, step.text = box, new_text
    unboxed = [i for i, s in enumerate(ex.steps) if s.box is None]
    lines = [line for t in texts_of(result, "unboxed_steps") for line in t.split("\n") if line.strip()]
    for i, line in zip(unboxed, lines):
        text = line.split(": ", 1)[1] if line.startswith("Step ") and ": " in line else line
        if text != ex.steps[i].text:
            changes.append(Change("text", i + 1, before=ex.steps[i].text, after=text))
            ex.steps[i].text = text
    for name in ("question", "answer"):
        texts = texts_of(result, name)
        if texts and texts[-1].strip() and texts[-1] != getattr(ex, name):
            changes.append(Change(name, before=getattr(ex, name), after=texts[-1].strip()))
            setattr(ex, name, texts[-1].strip())
    if grounded:
        ex.answer_box = ex.steps[grounded[-1]].box
    v = verdict_of(annotation)
    return Review(v.verdict, ex, changes, v.reviewer, v.reviewed_at, v.comment)
