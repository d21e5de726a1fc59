"""Source specs as users write them: ``synthetic``, ``vg:PATH``, ``coco:PATH``."""

from __future__ import annotations

from pathlib import Path

from pipeline.sources.base import Source, SourceError
from pipeline.sources.coco import CocoSource
from pipeline.sources.image_folder import ImageFolderSource
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.sources.vg_regions import VisualGenomeWithRegions
from pipeline.sources.visual_genome import VisualGenomeSource

KINDS = ("synthetic", "vg", "coco", "images")


def open_source(spec: str, work_dir: str | Path, images: int = 300, seed: int = 0, limit: int | None = None) -> Source:
    kind, _, path = spec.partition(":")
    if kind == "synthetic":
        root = write_synthetic_vg(Path(work_dir) / f"synthetic-n{images}-s{seed}", images, seed)
        return VisualGenomeSource(root, name="synthetic", limit=limit)
    if kind in ("vg", "coco", "images") and not path:
        raise SourceError(f"source {spec!r} needs a path: {kind}:PATH")
    if kind == "vg":
        return VisualGenomeWithRegions(path, limit=limit)
    if kind == "coco":
        return CocoSource(path, limit=limit)
    if kind == "images":
        return ImageFolderSource(path, limit=limit)
    raise SourceError(f"unknown source {spec!r}; use one of: synthetic, vg:PATH, coco:PATH, images:PATH")


def release_file(source_root: str | Path, release_prefix: str, image: str) -> Path:
    """The file behind a released image path ("vg/VG_100K/1.jpg" -> <root>/VG_100K/1.jpg)."""
    rel = image[len(release_prefix) + 1 :] if release_prefix and image.startswith(release_prefix + "/") else image
    return Path(source_root) / rel
