"""How each model family writes a box, both ways: a normalized ``(x, y, w, h)`` box to the family's text,
and a model's text back to the box.

Inside the project every box is normalized ``xywh`` (MM-GCoT's own convention). Models were pretrained
on their own conventions, so fine-tuning writes targets in the model's (`training/families`), the runner
records which one a results line uses, and strict evaluation reads it back here. ``size`` is the
``(width, height)`` the pixel coordinates of an absolute format refer to: the stored image for most,
Qwen2.5-VL's resized image (a multiple of its 28-pixel patches: the frame the model saw).

| name | text | scale |
|---|---|---|
| ``xywh-norm`` | ``[0.062, 0.324, 0.105, 0.140]`` | MM-GCoT: top-left, width, height on 0-1, 3 decimals |
| ``xyxy-norm`` | ``[0.062, 0.324, 0.167, 0.464]`` | corners on 0-1, 3 decimals |
| ``xyxy-abs`` / ``xywh-abs`` | ``[40, 156, 107, 223]`` | pixels of ``size`` |
| ``xyxy-1000`` | ``[62, 324, 167, 464]`` | corners on 0-1000 (integers) |
| ``llava-1.5`` | ``[0.06, 0.37, 0.17, 0.47]`` | corners on 0-1 of the image padded to a centred square, 2 decimals (LLaVA-1.5's grounding data) |
| ``qwen2-vl`` | ``<|box_start|>(62,324),(167,464)<|box_end|>`` | corners on 0-1000 |
| ``qwen2.5-vl`` | ``{"bbox_2d": [40, 156, 107, 223]}`` | corners in pixels of the resized image |
| ``qwen3-vl`` | ``{"bbox_2d": [62, 324, 167, 464]}`` | corners on 0-1000 |
| ``internvl`` | ``<box>[[62, 324, 167, 464]]</box>`` | corners on 0-1000 |
| ``paligemma`` | ``<loc0332><loc0063><loc0475><loc0171>`` | y1, x1, y2, x2 on 1024 bins (``value / 1024``) |

Reading is lenient in what surrounds the numbers (special tokens a decoder dropped, JSON or not,
brackets of any kind): the numbers' order and scale are what a format fixes. ``quantum`` is the largest
round-trip error of a corner coordinate, as a fraction of the side (tested for every format).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

Box = tuple[float, float, float, float]
Size = tuple[int, int]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_GROUP = re.compile(r"[\[({<]([^\[\](){}<>]*)[\])}>]")
_LOC = re.compile(r"<loc(\d{4})>")
LOC_BINS = 1024


def numbers(text) -> tuple[list[float] | None, str]:
    """The first four numbers of a box text (JSON ``bbox_2d`` and friends, any bracket style, or bare);
    (None, reason) when there are not four."""
    if text is None:
        return None, "missing"
    if isinstance(text, (list, tuple)):
        nums = [v for v in text if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return (list(map(float, nums[:4])), "") if len(nums) >= 4 else (None, "fewer_than_4_numbers")
    if isinstance(text, dict):
        for key in ("bbox_2d", "bbox", "box", "coordinate", "coordinates"):
            if key in text:
                return numbers(text[key])
        return None, "json_without_box"
    text = str(text)
    if not text.strip():
        return None, "empty"
    for start in (i for i, ch in enumerate(text) if ch in "[{"):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        while isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], (dict, list)):
            obj = obj[0]  # [{"bbox_2d": ...}] (Qwen), [[x1, y1, x2, y2]] (InternVL)
        if isinstance(obj, (dict, list)):
            box, _ = numbers(obj)
            if box is not None:
                return box, ""
        break
    for group in _GROUP.findall(text):
        nums = _NUMBER.findall(group)
        if len(nums) >= 4:
            return [float(n) for n in nums[:4]], ""
    nums = _NUMBER.findall(text)
    if len(nums) >= 4:
        return [float(n) for n in nums[:4]], ""
    return None, "fewer_than_4_numbers"


def _f(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def _xyxy(box: Box) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return x, y, x + w, y + h


def _xywh(x1: float, y1: float, x2: float, y2: float) -> Box:
    return (x1, y1, x2 - x1, y2 - y1)


def _need(size: Size | None, name: str) -> Size:
    if size is None:
        raise ValueError(f"box format {name} is in pixels: the image size (or the frame the model saw) is needed")
    return size


def _square(size: Size) -> tuple[float, float, float]:
    """LLaVA-1.5's padding: the image centred on a square of its longer side; (side, x offset, y offset) in pixels."""
    w, h = size
    s = max(w, h)
    return s, (s - w) / 2, (s - h) / 2


@dataclass(frozen=True)
class BoxFormat:
    name: str
    description: str
    _write: Callable[[Box, Size | None], str]
    _read: Callable[[str, Size | None], Box | None]
    needs_size: bool = False
    quantum: Callable[[Size | None], float] = lambda size: 0.0005  # largest round-trip error, as a fraction of the side

    def format(self, box: Box, size: Size | None = None) -> str:
        """The normalized ``xywh`` box as the family writes it."""
        return self._write(tuple(float(v) for v in box), _need(size, self.name) if self.needs_size else size)

    def parse(self, text, size: Size | None = None) -> tuple[Box | None, str]:
        """(normalized ``xywh`` box, "") or (None, the reason it could not be read)."""
        try:
            box = self._read(text, _need(size, self.name) if self.needs_size else size)
        except _Unreadable as e:
            return None, str(e)
        return box, ""


class _Unreadable(Exception):
    pass


def _four(text) -> list[float]:
    nums, why = numbers(text)
    if nums is None:
        raise _Unreadable(why)
    return nums


def _read_scaled(order: str, sx: Callable[[Size | None], float], sy: Callable[[Size | None], float]):
    def read(text, size):
        a, b, c, d = _four(text)
        kx, ky = sx(size), sy(size)
        if order == "xyxy":
            return _xywh(a / kx, b / ky, c / kx, d / ky)
        return (a / kx, b / ky, c / kx, d / ky)
    return read


def _write_norm(order: str, decimals: int):
    def write(box, size):
        vals = _xyxy(box) if order == "xyxy" else box
        return "[" + ", ".join(_f(v, decimals) for v in vals) + "]"
    return write


def _write_abs(order: str):
    def write(box, size):
        w, h = size
        vals = _xyxy(box) if order == "xyxy" else box
        return "[" + ", ".join(str(round(v * k)) for v, k in zip(vals, (w, h, w, h))) + "]"
    return write


def _ints1000(box: Box) -> list[int]:
    return [round(v * 1000) for v in _xyxy(box)]


def _write_llava15(box, size):
    s, ox, oy = _square(size)
    w, h = size
    x1, y1, x2, y2 = _xyxy(box)
    return "[" + ", ".join(_f(v, 2) for v in ((x1 * w + ox) / s, (y1 * h + oy) / s, (x2 * w + ox) / s, (y2 * h + oy) / s)) + "]"


def _read_llava15(text, size):
    s, ox, oy = _square(size)
    w, h = size
    a, b, c, d = _four(text)
    return _xywh((a * s - ox) / w, (b * s - oy) / h, (c * s - ox) / w, (d * s - oy) / h)


def _write_loc(box, size):
    x1, y1, x2, y2 = _xyxy(box)
    return "".join(f"<loc{min(LOC_BINS - 1, max(0, round(v * LOC_BINS))):04d}>" for v in (y1, x1, y2, x2))


def _read_loc(text, size):
    locs = _LOC.findall(str(text))
    if len(locs) < 4:
        raise _Unreadable("fewer_than_4_loc_tokens")
    y1, x1, y2, x2 = (int(v) / LOC_BINS for v in locs[:4])
    return _xywh(x1, y1, x2, y2)


_one = lambda size: 1.0  # noqa: E731
_thousand = lambda size: 1000.0  # noqa: E731

FORMATS: dict[str, BoxFormat] = {f.name: f for f in (
    BoxFormat("xywh-norm", "MM-GCoT's: [x, y, w, h] on 0-1, 3 decimals", _write_norm("xywh", 3), _read_scaled("xywh", _one, _one),
              quantum=lambda s: 0.001),  # a far corner is x + w: two roundings
    BoxFormat("xyxy-norm", "[x1, y1, x2, y2] on 0-1, 3 decimals", _write_norm("xyxy", 3), _read_scaled("xyxy", _one, _one)),
    BoxFormat("xyxy-abs", "[x1, y1, x2, y2] in pixels", _write_abs("xyxy"), _read_scaled("xyxy", lambda s: s[0], lambda s: s[1]), needs_size=True,
              quantum=lambda s: 0.5 / min(s)),
    BoxFormat("xywh-abs", "[x, y, w, h] in pixels", _write_abs("xywh"), _read_scaled("xywh", lambda s: s[0], lambda s: s[1]), needs_size=True,
              quantum=lambda s: 1.0 / min(s)),
    BoxFormat("xyxy-1000", "[x1, y1, x2, y2] on 0-1000", lambda b, s: "[" + ", ".join(map(str, _ints1000(b))) + "]",
              _read_scaled("xyxy", _thousand, _thousand)),
    BoxFormat("llava-1.5", "[x1, y1, x2, y2] on 0-1 of the image padded to a square, 2 decimals", _write_llava15, _read_llava15, needs_size=True,
              quantum=lambda s: 0.005 * max(s) / min(s)),
    BoxFormat("qwen2-vl", "<|box_start|>(x1,y1),(x2,y2)<|box_end|> on 0-1000",
              lambda b, s: "<|box_start|>({},{}),({},{})<|box_end|>".format(*_ints1000(b)), _read_scaled("xyxy", _thousand, _thousand)),
    BoxFormat("qwen2.5-vl", '{"bbox_2d": [x1, y1, x2, y2]} in pixels of the resized image',
              lambda b, s: '{"bbox_2d": ' + _write_abs("xyxy")(b, s) + "}", _read_scaled("xyxy", lambda s: s[0], lambda s: s[1]), needs_size=True,
              quantum=lambda s: 0.5 / min(s)),
    BoxFormat("qwen3-vl", '{"bbox_2d": [x1, y1, x2, y2]} on 0-1000',
              lambda b, s: '{"bbox_2d": [' + ", ".join(map(str, _ints1000(b))) + "]}", _read_scaled("xyxy", _thousand, _thousand)),
    BoxFormat("internvl", "<box>[[x1, y1, x2, y2]]</box> on 0-1000",
              lambda b, s: "<box>[[" + ", ".join(map(str, _ints1000(b))) + "]]</box>", _read_scaled("xyxy", _thousand, _thousand)),
    BoxFormat("paligemma", "<locY1><locX1><locY2><locX2> on 1024 bins", _write_loc, _read_loc, quantum=lambda s: 1 / LOC_BINS),
)}
NAMES = tuple(FORMATS)


def get(name: str) -> BoxFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown box format {name!r}; choose from {', '.join(NAMES)}") from None


_MMGCOT_BOX = re.compile(r"\[\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*\]")


def rewrite(text: str, fmt: BoxFormat, size: Size | None = None) -> str:
    """Every MM-GCoT box literal of a text (a chain's step lines, a box answer) in ``fmt``."""
    if fmt.name == "xywh-norm":
        return text
    return _MMGCOT_BOX.sub(lambda m: fmt.format(tuple(float(g) for g in m.groups()), size), text)
