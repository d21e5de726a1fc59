"""What every source reader shares: the record stream and its counts, read options, the border box conversion.

A source's *records* are its images: every image id named by any of its files (VG: image_data.json and
the scene graphs; COCO: ``images`` and the annotations' ``image_id``s; an image folder: its files). Each
record read ends as a `SceneGraph` or as one whole-record `Rejection`, so ``read = graphs + rejected``
(`SourceCounts`); rejections of an object or a relation inside a record do not end the record.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.boxes import from_abs_xywh
from core.schema import Box, Rejection, SceneGraph
from pipeline.sources.images import MAX_PIXELS, ImageInfo, inspect, write_upright
from pipeline.sources.paths import confine, leaves_root

BOX_CLIP_TOLERANCE = 0.01  # boxes up to 1 % of the image size outside it are clipped, beyond: rejected
# Image checks decode every file (1.1 ms a 560x420 JPEG in draft mode on an idle core; Pillow releases
# the GIL while it decodes): they run on a few threads a window ahead of the reader. Measured on this
# shared 2-core machine at load ~11: 600 images in 1.6-2.1 s with 1 thread or 2 alike, 0.2-0.4 s of
# which is the reading and checking of the records; more cores are where the threads pay.
IMAGE_THREADS = min(4, os.cpu_count() or 1)
WINDOW = 64


class SourceError(Exception):
    """A bad record met in strict mode, or a source that cannot be read at all."""


@dataclass(frozen=True)
class ReadOptions:
    limit: int | None = None  # read at most this many records
    follow_symlinks: bool = False  # follow symlinks that lead out of the source folder
    max_pixels: int = MAX_PIXELS
    check_images: bool = True
    upright_dir: Path | None = None  # where upright copies of EXIF-rotated images go (none: not written)


@dataclass
class SourceCounts:
    """How many records the source holds and what became of those read."""

    held: int = 0  # records in the source (with --limit, the ones past it are counted, not read)
    read: int = 0
    rejected: int = 0  # read and rejected whole; the others became scene graphs
    lost: int = 0  # about how many records a malformed JSON file's broken brackets hid (not read, not in `held`)
    transposed: int = 0  # images turned upright by their EXIF orientation
    symlinks_followed: int = 0  # image paths that leave the source folder through a symlink (--follow-symlinks)
    hidden_skipped: int = 0  # hidden files and folders of an image folder (names starting with '.')

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


Finish = Callable[[str, ImageInfo], Iterator[SceneGraph | Rejection]]  # (image path as released, image) -> the record


@dataclass(frozen=True)
class Pending:
    """A record waiting for its image check."""

    clean: str  # the image's path under the root, normalized: as released
    path: Path
    declared: tuple[int, int] | None  # the annotation's size; None: any (an image folder)
    record: str
    finish: Finish


@dataclass
class Source:
    name: str  # "vg", "coco", "synthetic", "images"
    root: Path  # image paths of the scene graphs are relative to it
    release_prefix: str  # prepended to image paths in the release ("vg" -> "vg/VG_100K/1.jpg")
    options: ReadOptions = field(default_factory=ReadOptions)
    counts: SourceCounts = field(default_factory=SourceCounts)

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        raise NotImplementedError

    def release_path(self, graph: SceneGraph) -> str:
        return f"{self.release_prefix}/{graph.image}" if self.release_prefix else graph.image

    def image_file(self, graph: SceneGraph) -> Path:
        return self.root / graph.image

    def limit_reached(self) -> bool:
        return self.options.limit is not None and self.counts.read >= self.options.limit

    def reject_record(self, file: str, record: str, rule: str, detail: str) -> Rejection:
        """A whole record rejected: it counts against ``read``."""
        self.counts.rejected += 1
        return Rejection("source", record, rule, detail, file=file)

    def locate(self, rel: str, declared: tuple[int, int] | None, file: str, record: str, finish: Finish) -> Pending | Rejection:
        """The record's image, to be checked (`with_images`), or the record's rejection when its path
        leaves the source folder. ``finish`` makes the record once its image is known."""
        clean, bad = confine(self.root, rel, self.options.follow_symlinks)
        if bad:
            return self.reject_record(file, record, *bad)
        path = self.root / clean
        if self.options.follow_symlinks and leaves_root(self.root, path):
            self.counts.symlinks_followed += 1
        return Pending(clean, path, declared, record, finish)

    def with_images(self, stream: Iterator[SceneGraph | Rejection | Pending]) -> Iterator[SceneGraph | Rejection]:
        """The records of ``stream`` in order, each `Pending` one finished once its image is checked:
        the checks (a full decode each) run on a few threads, up to `WINDOW` records ahead."""
        if not self.options.check_images:
            for item in stream:
                yield from self._settle(item, None)
            return
        with ThreadPoolExecutor(IMAGE_THREADS) as pool:
            window: deque = deque()
            for item in stream:
                job = pool.submit(inspect, item.path, item.declared, self.options.max_pixels) if isinstance(item, Pending) else None
                window.append((item, job))
                if len(window) > WINDOW:
                    yield from self._settle(*window.popleft())
            while window:
                yield from self._settle(*window.popleft())

    def _settle(self, item: SceneGraph | Rejection | Pending, job: Future | None) -> Iterator[SceneGraph | Rejection]:
        if not isinstance(item, Pending):
            yield item
            return
        if job is None and item.declared is not None:  # images not checked (check_images=False)
            info = ImageInfo(*item.declared, item.declared)
        else:
            info = job.result() if job else inspect(item.path, item.declared, self.options.max_pixels)
        if isinstance(info, tuple):
            yield self.reject_record(str(item.path), item.record, *info)
            return
        if info.orientation != 1:
            self.counts.transposed += 1
            if self.options.upright_dir is not None:
                write_upright(item.path, self.options.upright_dir / item.clean)
        yield from item.finish(item.clean, info)


def reconcile(counts: dict, ingested: int, released: int) -> dict:
    """``in = released + rejected`` over the source's records (images), beside the candidates' own
    reconciliation: every record read was released (at least one example) or rejected, at ingest
    (``counts["rejected"]``) or after it (``without_example``: no chain, every candidate rejected, or
    moved out by the split check; the reasons are in rejections.jsonl). ``counts`` is
    `SourceCounts.to_dict()` with the ``limit``; ``ingested``: scene graphs ingest passed on; ``released``:
    distinct images of the released examples."""
    without_example = ingested - released
    rejected = counts["rejected"] + without_example
    return {
        "held": counts["held"],
        "read": counts["read"],
        "limit": counts.get("limit"),
        "not_read": counts["held"] - counts["read"],
        "released": released,
        "rejected": rejected,
        "rejected_at_ingest": counts["rejected"],
        "without_example": without_example,
        "reconciles": counts["read"] == released + rejected and without_example >= 0,
        "lost_in_malformed_json": counts["lost"],
        "transposed": counts["transposed"],
        "symlinks_followed": counts["symlinks_followed"],
        "hidden_skipped": counts["hidden_skipped"],
    }


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[tuple[float, float, float, float] | None, str]:
    """An absolute pixel xywh box clipped to the image: small overhangs are clipped, the rest is an error."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y, w, h)):
        return None, f"box values are not finite numbers: {[x, y, w, h]}"
    if w <= 0 or h <= 0:
        return None, f"box {[x, y, w, h]} has zero or negative size"
    tx, ty = BOX_CLIP_TOLERANCE * width, BOX_CLIP_TOLERANCE * height
    if x < -tx or y < -ty or x + w > width + tx or y + h > height + ty:
        return None, f"box {[x, y, w, h]} lies outside the {width}x{height} image"
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + w), min(float(height), y + h)
    if x2 <= x1 or y2 <= y1:  # a sliver in the tolerance band, clipped to nothing
        return None, f"box {[x, y, w, h]} has no area inside the {width}x{height} image"
    return (x1, y1, x2 - x1, y2 - y1), ""


def normalize_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[Box | None, str]:
    """Absolute pixel xywh -> normalized xywh (`clip_box`)."""
    box, why = clip_box(x, y, w, h, width, height)
    return (from_abs_xywh(*box, width, height), "") if box else (None, why)


def image_box(x: float, y: float, w: float, h: float, declared: tuple[int, int], info: ImageInfo) -> tuple[Box | None, str]:
    """An annotation's pixel box (in the ``declared`` frame) -> normalized, in the released upright frame."""
    box, why = clip_box(x, y, w, h, *declared)
    if box is None:
        return None, why
    return from_abs_xywh(*info.upright_box(*box), info.width, info.height), ""


def reject(stage_file: str, record: str, rule: str, detail: str) -> Rejection:
    """A rejection inside a record (an object, a relation): the record goes on without it."""
    return Rejection("source", record, rule, detail, file=stage_file)
