"""Box conventions, converted only here.

Inside: normalized ``(x, y, w, h)``. Borders: absolute pixel ``xywh`` (Visual Genome, COCO), absolute
``xyxy`` (detectors), the MM-GCoT text form ``"[0.210, 0.058, 0.435, 0.150]"`` (3 decimals).
"""

from __future__ import annotations

import re

import numpy as np

from core.schema import Box

DECIMALS = 3  # MM-GCoT prints every box with 3 decimals
_BOX_LITERAL = re.compile(r"\[\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*\]")


def quantize(box: Box) -> Box:
    """Round to the printed precision so that the stored box equals the box in the text."""
    return tuple(round(float(v), DECIMALS) for v in box)  # type: ignore[return-value]


def format_box(box: Box) -> str:
    return "[" + ", ".join(f"{v:.{DECIMALS}f}" for v in box) + "]"


def parse_box(text: str) -> Box:
    """Parse one ``[a, b, c, d]`` literal; raises ValueError if the text is not exactly one."""
    m = _BOX_LITERAL.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a box literal: {text!r}")
    return tuple(float(g) for g in m.groups())  # type: ignore[return-value]


def find_boxes(text: str) -> list[tuple[Box, tuple[int, int]]]:
    """All box literals in a text with their character spans."""
    return [(tuple(float(g) for g in m.groups()), m.span()) for m in _BOX_LITERAL.finditer(text)]  # type: ignore[misc]


def replace_last_box(text: str, new: Box | str) -> str:
    """Rewrite the last box literal of a step sentence: a box (after a reviewer moved it) in the printed
    form, a string (a placeholder such as the review UI's ``[box]``) as it is. A text without a box is returned as is."""
    found = find_boxes(text)
    if not found:
        return text
    start, end = found[-1][1]
    return text[:start] + (new if isinstance(new, str) else format_box(new)) + text[end:]


def from_abs_xywh(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    return (x / width, y / height, w / width, h / height)


def from_abs_xyxy(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    return (x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height)


def to_abs_xyxy(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (x * width, y * height, (x + w) * width, (y + h) * height)


def area(box: Box) -> float:
    return max(0.0, box[2]) * max(0.0, box[3])


def intersection(a: Box, b: Box) -> float:
    """Area of the overlap of two ``xywh`` boxes, in their units (normalized here, pixels in a renderer)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(boxes) -> np.ndarray:
    """`iou` of every pair of ``boxes`` at once (n x n): the same float operations in the same order,
    so each entry equals ``iou(boxes[i], boxes[j])`` to the bit."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x1, y1 = x + w, y + h
    ix = np.maximum(0.0, np.minimum(x1[:, None], x1[None, :]) - np.maximum(x[:, None], x[None, :]))
    iy = np.maximum(0.0, np.minimum(y1[:, None], y1[None, :]) - np.maximum(y[:, None], y[None, :]))
    inter = ix * iy
    areas = np.maximum(0.0, w) * np.maximum(0.0, h)
    union = areas[:, None] + areas[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def intersection_over_first(a: Box, b: Box) -> float:
    """Share of ``a``'s area that lies inside ``b``."""
    return intersection(a, b) / area(a) if area(a) > 0 else 0.0


def inside_image(box: Box, tolerance: float = 1e-6) -> bool:
    x, y, w, h = box
    return x >= -tolerance and y >= -tolerance and x + w <= 1 + tolerance and y + h <= 1 + tolerance
