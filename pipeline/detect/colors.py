"""Colour names measured from pixels, for objects a detector found (no annotation to say it).

The box's rim estimates the background; the pixels inside that differ from it are the object (rings
and stars leave much background in their box), and their median colour is named by its hue,
saturation and value: low value is black, low saturation white or gray, else hue bins. The
bins are ours, checked on the synthetic palette (tests/test_detect.py measures the agreement).
"""

from __future__ import annotations

import colorsys

import numpy as np

from core.schema import Box

HUE_BINS = ((15, "red"), (45, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"), (260, "blue"), (300, "purple"), (345, "pink"), (360, "red"))


def name_rgb(r: float, g: float, b: float) -> str:
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if v < 0.22:
        return "black"
    if s < 0.2:
        return "white" if v > 0.78 else "gray"
    deg = h * 360
    for upper, name in HUE_BINS:
        if deg < upper:
            if name == "orange" and v < 0.6:
                return "brown"
            return name
    return "red"


def measure(rgb: np.ndarray, box: Box) -> str | None:
    """Colour name of the object in ``box`` (normalized xywh) of an H x W x 3 RGB array."""
    H, W = rgb.shape[:2]
    x, y, w, h = box
    x1, y1 = max(0, int(x * W)), max(0, int(y * H))
    x2, y2 = min(W, max(x1 + 1, int((x + w) * W))), min(H, max(y1 + 1, int((y + h) * H)))
    step = max(1, min(y2 - y1, x2 - x1) // 32)  # ~32 px a side is plenty for a median; keeps detection's pace
    crop = rgb[y1:y2:step, x1:x2:step].astype(np.float32)
    if crop.size == 0:
        return None
    ch, cw = crop.shape[:2]
    rim = max(1, min(ch, cw) // 12)
    border = np.concatenate([crop[:rim].reshape(-1, 3), crop[-rim:].reshape(-1, 3), crop[:, :rim].reshape(-1, 3), crop[:, -rim:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    inner = crop[ch // 8 : ch - ch // 8 or None, cw // 8 : cw - cw // 8 or None].reshape(-1, 3)
    far = inner[np.linalg.norm(inner - background, axis=1) > 40]  # 40 of 441: clearly not the background
    pixels = far if len(far) >= 0.1 * len(inner) else inner
    r, g, b = np.median(pixels, axis=0)
    return name_rgb(float(r), float(g), float(b))
