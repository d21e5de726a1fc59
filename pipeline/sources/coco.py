"""COCO instances reader: objects only (COCO has no relations; geometric ones are computed later).

``coco:annotations/instances_val2017.json`` looks for images in ``../val2017/`` beside the annotation
folder, then beside the JSON; pass ``images_dir`` to say where they are. Crowd regions are skipped
(recorded). Boxes are absolute pixel ``[x, y, w, h]`` in the file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from core.schema import Rejection, SceneGraph, SceneObject
from pipeline.sources.base import Source, SourceError, check_image, normalize_box, reject


class CocoSource(Source):
    def __init__(self, annotation_file: str | Path, images_dir: str | Path | None = None, limit: int | None = None, check_images: bool = True):
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise SourceError(f"{self.annotation_file}: COCO annotation file not found")
        split = self.annotation_file.stem.replace("instances_", "")
        if images_dir is None:
            for cand in (self.annotation_file.parent.parent / split, self.annotation_file.parent / split, self.annotation_file.parent):
                if cand.is_dir():
                    images_dir = cand
                    break
        super().__init__(name="coco", root=Path(images_dir), release_prefix=f"coco/{split}")
        self.limit = limit
        self.check_images = check_images

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        f = str(self.annotation_file)
        try:
            data = json.loads(self.annotation_file.read_text())
        except json.JSONDecodeError as e:
            raise SourceError(f"{f}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        cats = {c["id"]: c["name"] for c in data.get("categories", [])}
        by_image = defaultdict(list)
        for a in data.get("annotations", []):
            by_image[a.get("image_id")].append(a)
        for n, img in enumerate(sorted(data.get("images", []), key=lambda i: i["id"])):
            if self.limit is not None and n >= self.limit:
                return
            image_id = str(img["id"])
            width, height = int(img["width"]), int(img["height"])
            if self.check_images:
                bad = check_image(self.root / img["file_name"], width, height)
                if bad:
                    yield reject(str(self.root / img["file_name"]), image_id, *bad)
                    continue
            objects = []
            for a in sorted(by_image.get(img["id"], []), key=lambda a: a["id"]):
                rid = f"{image_id}/{a['id']}"
                if a.get("iscrowd"):
                    yield reject(f, rid, "crowd_annotation", f"annotation {a['id']} of image {image_id} is a crowd region")
                    continue
                name = cats.get(a.get("category_id"))
                if name is None:
                    yield reject(f, rid, "unknown_category", f"annotation {a['id']} has unknown category {a.get('category_id')}")
                    continue
                bbox = a.get("bbox") or [None] * 4
                box, why = normalize_box(*bbox[:4], width, height) if len(bbox) >= 4 else (None, f"bbox {bbox} has fewer than 4 numbers")
                if box is None:
                    yield reject(f, rid, "box_out_of_range", f"annotation {a['id']} of image {image_id}: {why}")
                    continue
                objects.append(SceneObject(str(a["id"]), name.lower(), box, ()))
            yield SceneGraph(image_id, img["file_name"], width, height, objects, [], source="coco")
