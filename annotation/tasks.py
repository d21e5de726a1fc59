"""Examples to Label Studio tasks and annotations back to edits: the Label Studio border.

Label Studio rectangles are percent of the image (top-left x, y, width, height); inside the project
boxes are normalized ``[x, y, w, h]``; the conversion happens here and nowhere else. A step's text
is shown with its box literal as ``[box]`` (reviewers move boxes, not numbers); on the way back the
placeholder becomes the new box.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from annotation.configs import VERDICTS
from core.boxes import find_boxes, format_box, quantize, replace_last_box
from core.schema import Box, Example

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


def task_for(example: Example, image_url: str, model_version: str) -> dict:
    """A task whose prediction pre-fills every box and text of the example."""
    result = []
    unboxed = []
    k = 0
    for n, step in enumerate(example.steps, 1):
        if step.box is None:
            unboxed.append(f"Step {n}: {step.text}")
            continue
        k += 1
        rid = f"step{n}"
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
    }
    return {"data": data, "predictions": [{"model_version": model_version, "result": result}]}


@dataclass
class Review:
    """One annotation read back: the verdict and the example as the annotator left it."""

    verdict: str | None
    example: Example
    changed: list[str] = field(default_factory=list)  # what differs from the pushed example
    reviewer: str | None = None
    reviewed_at: str | None = None
    comment: str | None = None


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
    changed = []
    step_texts = {region_label[str(r.get("id"))]: (r.get("value") or {}).get("text", [None])[0] for r in result if r.get("from_name") == "step_text" and str(r.get("id")) in region_label}
    for k, idx in enumerate(grounded, 1):
        step = ex.steps[idx]
        box = boxes.get(k, step.box)  # a deleted rectangle keeps the pushed box
        text = step_texts.get(k) or text_with_placeholder(step.text)
        new_text = text_with_box(text, box)
        if box != step.box:
            changed.append(f"step {idx + 1} box")
        if new_text != step.text:
            changed.append(f"step {idx + 1} text")
        step.box, step.text = box, new_text
    unboxed = [i for i, s in enumerate(ex.steps) if s.box is None]
    lines = [line for t in texts_of(result, "unboxed_steps") for line in t.split("\n") if line.strip()]
    for i, line in zip(unboxed, lines):
        text = line.split(": ", 1)[1] if line.startswith("Step ") and ": " in line else line
        if text != ex.steps[i].text:
            changed.append(f"step {i + 1} text")
            ex.steps[i].text = text
    for name in ("question", "answer"):
        texts = texts_of(result, name)
        if texts and texts[-1].strip() and texts[-1] != getattr(ex, name):
            setattr(ex, name, texts[-1].strip())
            changed.append(name)
    if grounded:
        ex.answer_box = ex.steps[grounded[-1]].box
    v = verdict_of(annotation)
    return Review(v.verdict, ex, changed, v.reviewer, v.reviewed_at, v.comment)
