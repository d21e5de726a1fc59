"""A folder of unannotated images: each readable image becomes a scene graph without objects; the
detector fills them in per shard (`pipeline.detect.detections`), so the chains that follow are
detector-drafted and go to human review."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from core.schema import Rejection, SceneGraph
from pipeline.sources.base import Source, SourceError, reject

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageFolderSource(Source):
    def __init__(self, root: str | Path, limit: int | None = None):
        super().__init__(name="images", root=Path(root), release_prefix="images")
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: image folder not found")
        self.limit = limit

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        n = 0
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            rel = path.relative_to(self.root).as_posix()
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield reject(str(path), rel, "not_an_image", f"{path} has no image extension ({', '.join(sorted(IMAGE_SUFFIXES))})")
                continue
            if self.limit is not None and n >= self.limit:
                return
            try:  # a full decode: verify() passes truncated JPEGs, which would break the detector's batch
                with Image.open(path) as im:
                    width, height = im.size
                    im.load()
            except Exception as e:  # noqa: BLE001 - once Ultralytics is imported, its PIL patch turns an
                # unidentified image into an ImportError (it reaches for an optional HEIF plugin)
                yield reject(str(path), rel, "image_corrupt", f"{path} cannot be read as an image: {e}")
                continue
            n += 1
            image_id = rel.rsplit(".", 1)[0].replace("/", "__")
            yield SceneGraph(image_id, rel, width, height, [], [], source="images")
