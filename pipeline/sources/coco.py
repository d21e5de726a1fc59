"""COCO instances reader: objects only (COCO has no relations; geometric ones are computed later).

``coco:annotations/instances_val2017.json`` looks for images in ``../val2017/`` beside the annotation
folder, then beside the JSON; pass ``images_dir`` to say where they are. Crowd regions are skipped
(recorded). Boxes are absolute pixel ``[x, y, w, h]`` in the file.

The records are the images: each entry of ``images``, and each image id that annotations name but
``images`` does not list (rejected, ``image_not_listed``, with its annotations). Fields are validated by
`pipeline.sources.records`; a bad annotation or category is rejected on its own, a bad image entry with
its annotations.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from core.schema import Rejection, SceneGraph, SceneObject
from pipeline.sources.base import Pending, ReadOptions, Source, SourceError, image_box, reject
from pipeline.sources.records import CocoAnnotation, CocoCategory, CocoFile, CocoImage, check, record_id


def _natural(image_id: str) -> tuple:
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def images_folder(annotation_file: Path) -> Path:
    """Where a COCO annotation file's images are: ``../<split>/`` or ``<split>/`` beside it, else its folder."""
    split = annotation_file.stem.replace("instances_", "")
    return next((c for c in (annotation_file.parent.parent / split, annotation_file.parent / split) if c.is_dir()), annotation_file.parent)


class CocoSource(Source):
    def __init__(self, annotation_file: str | Path, images_dir: str | Path | None = None, options: ReadOptions | None = None):
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise SourceError(f"{self.annotation_file}: COCO annotation file not found")
        split = self.annotation_file.stem.replace("instances_", "")
        images_dir = images_folder(self.annotation_file) if images_dir is None else images_dir
        super().__init__(name="coco", root=Path(images_dir), release_prefix=f"coco/{split}", options=options or ReadOptions())

    def _load(self) -> CocoFile:
        f = self.annotation_file
        try:
            data = json.loads(f.read_bytes())
        except json.JSONDecodeError as e:
            raise SourceError(f"{f}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        except (UnicodeDecodeError, RecursionError) as e:
            raise SourceError(f"{f}: not readable as JSON: {e}") from e
        if not isinstance(data, dict):
            raise SourceError(f"{f}: the top level is {type(data).__name__}; a COCO instances file is an object with images, annotations and categories")
        top, why = check(CocoFile, data)
        if top is None:
            raise SourceError(f"{f}: {why}")
        return top

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        yield from self.with_images(self._records())

    def _records(self) -> Iterator[SceneGraph | Rejection | Pending]:
        f = str(self.annotation_file)
        top = self._load()
        cats: dict[str, str] = {}
        for k, c in enumerate(top.categories):
            cat, why = check(CocoCategory, c)
            cid = record_id(c, k, "id")
            if cat is None:
                yield reject(f, f"category {cid}", "invalid_category", f"{f}: category {cid}: {why}")
            elif cat.id in cats:
                yield reject(f, f"category {cid}", "duplicate_category_id", f"{f}: category {cid} is given twice; the first one is kept")
            else:
                cats[cat.id] = cat.name
        by_image: dict[str, list[CocoAnnotation]] = defaultdict(list)
        ann_ids: set[str] = set()
        for k, a in enumerate(top.annotations):
            ann, why = check(CocoAnnotation, a)
            aid = record_id(a, k, "id")
            rid = f"{record_id(a, k, 'image_id')}/{aid}"
            if ann is None:
                yield reject(f, rid, "invalid_annotation", f"{f}: annotation {aid}: {why}")
            elif ann.id in ann_ids:
                yield reject(f, rid, "duplicate_annotation_id", f"{f}: annotation {aid} is given twice; the first one is kept")
            else:
                ann_ids.add(ann.id)
                by_image[ann.image_id].append(ann)
        images, seen = [], set()
        for k, img in enumerate(top.images):
            image_id = record_id(img, k, "id")
            if image_id in seen:
                images.append((image_id, k, img, "duplicate"))
                continue
            seen.add(image_id)
            images.append((image_id, k, img, None))
        unlisted = sorted((i for i in by_image if i not in seen), key=_natural)
        self.counts.held = len(images) + len(unlisted)
        for image_id, k, img, dup in sorted(images, key=lambda t: (_natural(t[0]), t[1])):
            if self.limit_reached():
                return
            self.counts.read += 1
            if dup:
                yield self.reject_record(f, image_id, "duplicate_image_id", f"{f}: images entry #{k} gives image {image_id} again; the first one is kept")
                continue
            yield from self._image(img, k, image_id, by_image.get(image_id, []), cats, f)
        for image_id in unlisted:
            if self.limit_reached():
                return
            self.counts.read += 1
            anns = by_image[image_id]
            ids = ", ".join(a.id for a in anns[:5]) + (", ..." if len(anns) > 5 else "")
            yield self.reject_record(f, image_id, "image_not_listed", f"{f}: {len(anns)} annotation(s) ({ids}) name image {image_id}, which is not in images")

    def _image(self, raw: object, k: int, image_id: str, anns: list[CocoAnnotation], cats: dict[str, str], f: str) -> Iterator[Rejection | Pending]:
        img, why = check(CocoImage, raw)
        if img is None:
            yield self.reject_record(f, image_id, "invalid_image_record", f"{f}: images entry #{k} (image {image_id}): {why}" + (f"; its {len(anns)} annotation(s) go with it" if anns else ""))
            return
        declared = (img.width, img.height)
        yield self.locate(img.file_name, declared, f, image_id, lambda image, info: self._graph(image_id, anns, cats, declared, image, info, f))

    def _graph(self, image_id: str, anns: list[CocoAnnotation], cats: dict[str, str], declared: tuple[int, int], image: str, info, f: str) -> Iterator[SceneGraph | Rejection]:
        objects = []
        for a in sorted(anns, key=lambda a: _natural(a.id)):
            rid = f"{image_id}/{a.id}"
            if a.iscrowd:
                yield reject(f, rid, "crowd_annotation", f"annotation {a.id} of image {image_id} is a crowd region")
                continue
            name = cats.get(a.category_id)
            if name is None:
                yield reject(f, rid, "unknown_category", f"annotation {a.id} has unknown category {a.category_id}")
                continue
            box, why = image_box(*a.bbox, declared, info)
            if box is None:
                yield reject(f, rid, "box_out_of_range", f"annotation {a.id} of image {image_id}: {why}")
                continue
            objects.append(SceneObject(a.id, name.strip().lower(), box, ()))
        yield SceneGraph(image_id, image, info.width, info.height, objects, [], source="coco", transposed=info.transposed)
