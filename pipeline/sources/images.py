"""What ingest checks of an image file: it exists, is not too large, decodes to the end, has the declared
size, and which way up it is.

- A full decode (``verify()`` passes truncated files, which ship and then break ``load_dataset``). JPEGs
  are decoded in draft mode: the entropy-coded data is still read to the end, so truncation is still
  caught, at about half the cost of a full-size decode (1.1 against 2.2 ms for a 560x420 image).
- The pixel count is read from the header before any decode: above ``max_pixels`` the image is rejected
  (``image_too_large``), and Pillow's decompression-bomb error becomes the same rejection.
- The EXIF orientation (`datasets` applies it when it decodes a row, as viewers do) is applied once,
  here: the scene graph gets the upright size, boxes given in the stored frame turn with the image, and
  `write_upright` writes the upright copy (orientation tag dropped) that the release must carry.
  Annotations are taken to be in the stored frame when the declared size is the stored one (how COCO
  and Visual Genome were annotated), and in the upright frame when it is the upright one.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, JpegImagePlugin

ORIENTATION = 0x0112  # EXIF tag
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's warning threshold (89,478,485, about 9459 x 9459)
PILLOW_LIMIT = 2 * Image.MAX_IMAGE_PIXELS  # above this Pillow refuses to open a file at all
_TURNS = {5, 6, 7, 8}  # orientations that swap width and height
_NAMES = {2: "mirrored left-right", 3: "rotated 180°", 4: "mirrored top-bottom", 5: "transposed", 6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}


@dataclass(frozen=True)
class ImageInfo:
    """An image as it will be released: upright size, and how the stored file and its boxes turn."""

    width: int  # upright
    height: int
    stored: tuple[int, int]  # the file's own pixel size (width, height)
    orientation: int = 1  # EXIF orientation of the file; 1: stored upright
    turn_boxes: bool = False  # the annotation's boxes are in the stored frame and turn with the image

    @property
    def transposed(self) -> str:
        """What ingest did to the image, for the record ("" when nothing)."""
        if self.orientation == 1:
            return ""
        boxes = "boxes turned with it" if self.turn_boxes else "boxes were already upright"
        return f"EXIF orientation {self.orientation}: stored {_NAMES[self.orientation]}, released upright ({boxes})"

    def upright_box(self, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        """An absolute-pixel ``x, y, w, h`` box of the annotation, in the released (upright) frame."""
        if not self.turn_boxes:
            return x, y, w, h
        sw, sh = self.stored
        o = self.orientation
        if o == 2:
            return sw - x - w, y, w, h
        if o == 3:
            return sw - x - w, sh - y - h, w, h
        if o == 4:
            return x, sh - y - h, w, h
        if o == 5:  # transpose: (px, py) -> (py, px)
            return y, x, h, w
        if o == 6:  # shown rotated 90° clockwise: (px, py) -> (sh - py, px)
            return sh - y - h, x, h, w
        if o == 7:  # transverse: (px, py) -> (sh - py, sw - px)
            return sh - y - h, sw - x - w, h, w
        if o == 8:  # shown rotated 90° counter-clockwise: (px, py) -> (py, sw - px)
            return y, sw - x - w, h, w
        return x, y, w, h


def inspect(path: Path, declared: tuple[int, int] | None, max_pixels: int = MAX_PIXELS) -> ImageInfo | tuple[str, str]:
    """The image's `ImageInfo`, or (rule, detail) when it cannot be released."""
    if not path.is_file():
        return "image_missing", f"{path} does not exist" + (" (it is a folder)" if path.is_dir() else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bound is ours, below
            with Image.open(path) as im:
                stored = im.size
                if stored[0] * stored[1] > max_pixels:
                    return "image_too_large", f"{path} is {stored[0]}x{stored[1]} = {stored[0] * stored[1]:,} pixels, over the bound of {max_pixels:,} (--max-image-pixels)"
                orientation = im.getexif().get(ORIENTATION, 1)
                if isinstance(im, JpegImagePlugin.JpegImageFile):
                    im.draft(im.mode, (max(stored[0] // 8, 1), max(stored[1] // 8, 1)))
                im.load()
    except Image.DecompressionBombError as e:
        return "image_too_large", f"{path}: {e}"
    except Exception as e:  # noqa: BLE001 - once Ultralytics is imported, its PIL patch turns an
        # unidentified image into an ImportError (it reaches for an optional HEIF plugin)
        return "image_corrupt", f"{path} cannot be decoded: {e}"
    orientation = orientation if isinstance(orientation, int) and orientation in _NAMES else 1  # 0, 9, junk: as `datasets` does, none
    upright = (stored[1], stored[0]) if orientation in _TURNS else stored
    if declared is None or declared == stored:
        return ImageInfo(*upright, stored, orientation, turn_boxes=orientation != 1 and declared is not None)
    if declared == upright:
        return ImageInfo(*upright, stored, orientation, turn_boxes=False)
    return "image_size_mismatch", f"{path} is {stored[0]}x{stored[1]}, the annotation says {declared[0]}x{declared[1]}"


def write_upright(src: Path, dst: Path) -> None:
    """The image turned by its EXIF orientation, the tag dropped, written atomically: JPEG again with the
    file's own quantization tables and subsampling (the quality it had), other formats as PNG (lossless)."""
    with Image.open(src) as im:
        upright = ImageOps.exif_transpose(im)
        extra = {k: v for k, v in (("icc_profile", im.info.get("icc_profile")), ("exif", upright.info.get("exif"))) if v}
        buf = io.BytesIO()
        if isinstance(im, JpegImagePlugin.JpegImageFile) and upright.mode in ("L", "RGB", "CMYK"):
            upright.save(buf, "JPEG", qtables=im.quantization, subsampling=JpegImagePlugin.get_sampling(im), **extra)
        else:
            upright.save(buf, "PNG", **extra)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(dst)
