"""What every source reader shares: the record stream, image checks and the border box conversion."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core.boxes import from_abs_xywh
from core.schema import Box, Rejection, SceneGraph

BOX_CLIP_TOLERANCE = 0.01  # boxes up to 1 % of the image size outside it are clipped, beyond: rejected


class SourceError(Exception):
    """A bad record met in strict mode, or a source that cannot be read at all."""


@dataclass
class Source:
    name: str  # "vg", "coco", "synthetic"
    root: Path  # image paths of the scene graphs are relative to it
    release_prefix: str  # prepended to image paths in the release ("vg" -> "vg/VG_100K/1.jpg")

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        raise NotImplementedError

    def release_path(self, graph: SceneGraph) -> str:
        return f"{self.release_prefix}/{graph.image}" if self.release_prefix else graph.image

    def image_file(self, graph: SceneGraph) -> Path:
        return self.root / graph.image


def check_image(path: Path, width: int, height: int) -> tuple[str, str] | None:
    """None if the image opens and has the declared size, else (rule, detail)."""
    if not path.is_file():
        return "image_missing", f"{path} does not exist"
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except Exception as e:  # noqa: BLE001 - once Ultralytics is imported, its PIL patch turns an
        # unidentified image into an ImportError (it reaches for an optional HEIF plugin)
        return "image_corrupt", f"{path} cannot be read as an image: {e}"
    if size != (width, height):
        return "image_size_mismatch", f"{path} is {size[0]}x{size[1]}, the annotation says {width}x{height}"
    return None


def normalize_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[Box | None, str]:
    """Absolute pixel xywh -> normalized xywh; small overhangs are clipped, the rest is an error."""
    if not all(isinstance(v, (int, float)) for v in (x, y, w, h)):
        return None, f"box values are not numbers: {[x, y, w, h]}"
    if w <= 0 or h <= 0:
        return None, f"box {[x, y, w, h]} has zero or negative size"
    tx, ty = BOX_CLIP_TOLERANCE * width, BOX_CLIP_TOLERANCE * height
    if x < -tx or y < -ty or x + w > width + tx or y + h > height + ty:
        return None, f"box {[x, y, w, h]} lies outside the {width}x{height} image"
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + w), min(float(height), y + h)
    return from_abs_xywh(x1, y1, x2 - x1, y2 - y1, width, height), ""


def reject(stage_file: str, record: str, rule: str, detail: str) -> Rejection:
    return Rejection("source", record, rule, detail, file=stage_file)
