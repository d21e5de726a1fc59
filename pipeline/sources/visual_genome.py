"""Visual Genome reader (v1.2/v1.4 layout), streamed so the 108k-image files need little memory.

Reads ``image_data.json`` (sizes and image paths) and ``scene_graphs.json`` (objects with names,
boxes and attributes; relationships with ``subject_id``/``object_id``). Where the scene graphs carry no
attributes, ``attributes.json`` is merged in; without ``scene_graphs.json``, ``attributes.json`` (or
``objects.json``) and ``relationships.json`` (nested subject/object records) are used instead.
Boxes are absolute pixel ``x, y, w, h`` in the files; they are normalized here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import ijson

from core.schema import Rejection, Relation, SceneGraph, SceneObject
from pipeline.sources.base import Source, SourceError, check_image, normalize_box, reject

log = logging.getLogger(__name__)


def _stream(path: Path) -> Iterator[dict]:
    """Items of a top-level JSON array; a malformed file raises SourceError naming where."""
    with open(path, "rb") as f:
        try:
            yield from ijson.items(f, "item", use_float=True)
        except ijson.JSONError as e:
            raise SourceError(f"{path}: malformed JSON near byte {f.tell()}: {e}") from e


def _image_path(meta: dict) -> str:
    url = meta.get("url") or ""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2].startswith("VG_100K"):
        return f"{parts[-2]}/{parts[-1]}"
    return f"VG_100K/{meta['image_id']}.jpg"


def _object_id(ref) -> str:
    return str(ref["object_id"] if isinstance(ref, dict) else ref)


class VisualGenomeSource(Source):
    def __init__(self, root: str | Path, name: str = "vg", limit: int | None = None, check_images: bool = True):
        super().__init__(name=name, root=Path(root), release_prefix="vg")
        self.limit = limit
        self.check_images = check_images
        if not (self.root / "image_data.json").is_file():
            raise SourceError(f"{self.root}: no image_data.json; is this a Visual Genome folder?")

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        root = self.root
        meta_file = root / "image_data.json"
        metas = {}
        try:
            for m in _stream(meta_file):
                metas[str(m.get("image_id", m.get("id")))] = m
        except SourceError as e:
            yield reject(str(meta_file), "image_data.json", "malformed_json", str(e))
            if not metas:
                return
        sg_file = root / "scene_graphs.json"
        if sg_file.is_file():
            graphs = _stream(sg_file)
            extra_attrs = self._attributes_by_object() if not self._graphs_have_attributes(sg_file) else {}
            gfile = sg_file
        else:
            gfile = root / ("attributes.json" if (root / "attributes.json").is_file() else "objects.json")
            graphs = self._joined(gfile, root / "relationships.json")
            extra_attrs = {}
        n = 0
        try:
            for rec in graphs:
                if self.limit is not None and n >= self.limit:
                    return
                n += 1
                yield from self._convert(rec, metas, extra_attrs, str(gfile))
        except SourceError as e:
            yield reject(str(gfile), f"after record {n}", "malformed_json", str(e))

    @staticmethod
    def _graphs_have_attributes(path: Path) -> bool:
        for rec in _stream(path):
            return any("attributes" in o for o in rec.get("objects", []))
        return False

    def _attributes_by_object(self) -> dict[str, list[str]]:
        path = self.root / "attributes.json"
        if not path.is_file():
            return {}
        out: dict[str, list[str]] = {}
        for rec in _stream(path):
            for a in rec.get("attributes", []):
                out[str(a["object_id"])] = a.get("attributes") or []
        return out

    def _joined(self, objects_file: Path, relationships_file: Path) -> Iterator[dict]:
        """Rebuild scene-graph records from the per-kind files (same image order in both)."""
        if not objects_file.is_file():
            raise SourceError(f"{self.root}: neither scene_graphs.json nor {objects_file.name}")
        rels = {}
        if relationships_file.is_file():
            for r in _stream(relationships_file):
                rels[str(r["image_id"])] = r.get("relationships", [])
        for rec in _stream(objects_file):
            objs = rec.get("attributes", rec.get("objects", []))
            yield {"image_id": rec.get("image_id", rec.get("id")), "objects": objs, "relationships": rels.get(str(rec.get("image_id")), [])}

    def _convert(self, rec: dict, metas: dict, extra_attrs: dict, gfile: str) -> Iterator[SceneGraph | Rejection]:
        image_id = str(rec.get("image_id", rec.get("id", "?")))
        meta = metas.get(image_id)
        if meta is None:
            yield reject(gfile, image_id, "image_metadata_missing", f"image {image_id} of {gfile} is not in image_data.json")
            return
        width, height = int(meta["width"]), int(meta["height"])
        image = _image_path(meta)
        if self.check_images:
            bad = check_image(self.root / image, width, height)
            if bad:
                yield reject(str(self.root / image), image_id, *bad)
                return
        objects: list[SceneObject] = []
        for o in rec.get("objects", []):
            oid = str(o.get("object_id", o.get("id", "?")))
            names = o.get("names") or ([o["name"]] if o.get("name") else [])
            if not names:
                yield reject(gfile, f"{image_id}/{oid}", "object_without_name", f"object {oid} of image {image_id} has no name")
                continue
            box, why = normalize_box(o.get("x"), o.get("y"), o.get("w"), o.get("h"), width, height)
            if box is None:
                yield reject(gfile, f"{image_id}/{oid}", "box_out_of_range", f"object {oid} of image {image_id}: {why}")
                continue
            attrs = o.get("attributes") or extra_attrs.get(oid) or []
            objects.append(SceneObject(oid, names[0].strip().lower(), box, tuple(a.strip().lower() for a in attrs if a and a.strip()),
                                       names=tuple(n.strip().lower() for n in names[1:] if n and n.strip()), synsets=tuple(o.get("synsets") or ())))
        ids = {o.id for o in objects}
        relations: list[Relation] = []
        for r in rec.get("relationships", []):
            s = _object_id(r.get("subject_id", r.get("subject", {})) or {}) if "subject_id" in r or "subject" in r else None
            t = _object_id(r.get("object_id", r.get("object", {})) or {}) if "object_id" in r or "object" in r else None
            if s not in ids or t not in ids:
                yield reject(gfile, f"{image_id}/rel-{r.get('relationship_id', '?')}", "relation_unknown_object",
                             f"relationship {r.get('relationship_id', '?')} of image {image_id} names an object that is not kept")
                continue
            pred = str(r.get("predicate", "")).strip().lower()
            if pred:
                relations.append(Relation(s, pred, t, "given"))
        yield SceneGraph(image_id, image, width, height, objects, relations, source=self.name)
