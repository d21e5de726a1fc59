"""Source specs as users write them: ``synthetic``, ``vg:PATH``, ``coco:PATH``, ``images:PATH``."""

from __future__ import annotations

from pathlib import Path

from pipeline.sources.base import ReadOptions, Source, SourceError
from pipeline.sources.coco import CocoSource
from pipeline.sources.image_folder import ImageFolderSource
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.sources.visual_genome import VisualGenomeSource

KINDS = ("synthetic", "vg", "coco", "images")
SYNTHETIC_SCENES = 300  # scenes rendered when no count is given


def open_source(spec: str, work_dir: str | Path, images: int | None = None, seed: int = 0, options: ReadOptions | None = None) -> Source:
    kind, _, path = spec.partition(":")
    options = options or ReadOptions()
    if kind not in KINDS:
        raise SourceError(f"unknown source {spec!r}; use one of: synthetic, vg:PATH, coco:PATH, images:PATH")
    if kind == "synthetic":
        n = SYNTHETIC_SCENES if images is None else images
        root = write_synthetic_vg(Path(work_dir) / f"synthetic-n{n}-s{seed}", n, seed)
        return VisualGenomeSource(root, name="synthetic", options=options)
    if not path:
        raise SourceError(f"source {spec!r} needs a path: {kind}:PATH")
    if images is not None:
        raise SourceError(f"--images is the number of synthetic scenes to render; to read part of {spec} use --limit N")
    if kind == "vg":
        return VisualGenomeSource(path, options=options)
    if kind == "coco":
        return CocoSource(path, options=options)
    return ImageFolderSource(path, options=options)


def release_file(source_root: str | Path, release_prefix: str, image: str, upright_root: str | Path | None = None) -> Path:
    """The file behind a released image path ("vg/VG_100K/1.jpg" -> <root>/VG_100K/1.jpg): the upright
    copy ingest wrote under ``upright_root`` for an EXIF-rotated image, else the source's own file."""
    rel = image[len(release_prefix) + 1 :] if release_prefix and image.startswith(release_prefix + "/") else image
    if upright_root is not None and (Path(upright_root) / rel).is_file():
        return Path(upright_root) / rel
    return Path(source_root) / rel
