"""A folder of unannotated images: each readable image becomes a scene graph without objects; the
detector fills them in per shard (`pipeline.detect.detections`), so the chains that follow are
detector-drafted and go to human review.

Every file is a record: an image, or a rejection (not an image, unreadable, too large, a symlink out of
the folder, an id taken by another file). Hidden files and folders (``.name``) are skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from core.schema import Rejection, SceneGraph
from pipeline.sources.base import Pending, ReadOptions, Source, SourceError
from pipeline.sources.paths import leaves_root, symlink_detail

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageFolderSource(Source):
    def __init__(self, root: str | Path, options: ReadOptions | None = None):
        super().__init__(name="images", root=Path(root), release_prefix="images", options=options or ReadOptions())
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: image folder not found")

    def _files(self) -> tuple[list[str], list[str]]:
        """(files, symlinked folders not followed), relative to the root, in sorted order."""
        files, refused, visited = [], [], set()
        follow = self.options.follow_symlinks
        for top, dirs, names in os.walk(self.root, followlinks=follow):
            real = os.path.realpath(top)
            if real in visited:  # a symlink loop, or a second way into a folder already read
                dirs[:] = []
                continue
            visited.add(real)
            rel_top = Path(top).relative_to(self.root)
            keep = []
            for d in sorted(dirs):
                if d.startswith("."):
                    self.counts.hidden_skipped += 1
                elif not follow and os.path.islink(os.path.join(top, d)):
                    if leaves_root(self.root, Path(top) / d):
                        refused.append((rel_top / d).as_posix())
                    # a link to a folder inside the root: its files are read where they are
                else:
                    keep.append(d)
            dirs[:] = keep
            for n in names:
                if n.startswith("."):
                    self.counts.hidden_skipped += 1
                else:
                    files.append((rel_top / n).as_posix())
        return sorted(files), sorted(refused)

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        yield from self.with_images(self._records())

    def _records(self) -> Iterator[Rejection | Pending]:
        files, refused = self._files()
        self.counts.held = len(files) + len(refused)
        ids: dict[str, str] = {}
        for rel in refused:
            if self.limit_reached():
                return
            self.counts.read += 1
            yield self.reject_record(str(self.root / rel), rel, "symlink_outside_source", symlink_detail(self.root, self.root / rel))
        for rel in files:
            if self.limit_reached():
                return
            self.counts.read += 1
            path = self.root / rel
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield self.reject_record(str(path), rel, "not_an_image", f"{path} has no image extension ({', '.join(sorted(IMAGE_SUFFIXES))})")
                continue
            image_id = rel.rsplit(".", 1)[0].replace("/", "__")
            yield self.locate(rel, None, str(path), rel, lambda image, info, image_id=image_id, path=path: self._graph(image_id, path, image, info, ids))

    def _graph(self, image_id: str, path: Path, image: str, info, ids: dict[str, str]) -> Iterator[SceneGraph | Rejection]:
        """The first file that decodes takes its id (``a.jpg`` and ``a.png`` are both image ``a``)."""
        if image_id in ids:
            yield self.reject_record(str(path), image, "duplicate_image_id", f"{path} would be image {image_id}, which {ids[image_id]} already is")
            return
        ids[image_id] = image
        yield SceneGraph(image_id, image, info.width, info.height, [], [], source="images", transposed=info.transposed)
