"""Visual Genome reader (v1.2/v1.4 layout), streamed so the 108k-image files need little memory.

Reads ``image_data.json`` (sizes and image paths) and ``scene_graphs.json`` (objects with names,
boxes and attributes; relationships with ``subject_id``/``object_id``). Where the scene graphs carry no
attributes, ``attributes.json`` is merged in; without ``scene_graphs.json``, ``attributes.json`` (or
``objects.json``) and ``relationships.json`` (nested subject/object records) are used instead.
``region_descriptions.json``, when there, gives each graph its image's region phrases (`vg_regions`).
Boxes are absolute pixel ``x, y, w, h`` in the files; they are normalized here.

Every image id of either file is one record (`pipeline.sources.base`): a graph with its image's
metadata becomes a scene graph or a rejection; a graph without metadata, metadata without a graph,
an id given twice, a record that is not valid JSON or whose fields do not validate
(`pipeline.sources.records`) are each rejected with the file, the record and the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from core.schema import Rejection, Relation, SceneGraph, SceneObject
from pipeline.sources.base import Pending, ReadOptions, Source, SourceError, image_box, reject
from pipeline.sources.json_stream import Fault, iter_array
from pipeline.sources.records import (
    VGAttributesRecord,
    VGGraph,
    VGImage,
    VGObject,
    VGObjectAttributes,
    VGRelationship,
    VGRelationshipsRecord,
    check,
    record_id,
)
from pipeline.sources.vg_regions import REGIONS_FILE, RegionStream, regions_for

log = logging.getLogger(__name__)


def _image_path(meta: VGImage) -> str:
    parts = (meta.url or "").rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2].startswith("VG_100K"):
        return f"{parts[-2]}/{parts[-1]}"
    return f"VG_100K/{meta.image_id}.jpg"


class VisualGenomeSource(Source):
    def __init__(self, root: str | Path, name: str = "vg", options: ReadOptions | None = None):
        super().__init__(name=name, root=Path(root), release_prefix="vg", options=options or ReadOptions())
        if not (self.root / "image_data.json").is_file():
            raise SourceError(f"{self.root}: no image_data.json; is this a Visual Genome folder?")
        self._regions: RegionStream | None = None

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        yield from self.with_images(self._records())

    def _records(self) -> Iterator[SceneGraph | Rejection | Pending]:
        regions_file = self.root / REGIONS_FILE
        self._regions = RegionStream(regions_file) if regions_file.is_file() else None  # read along with the graphs
        meta_file = self.root / "image_data.json"
        metas: dict[str, VGImage | str] = {}  # image id -> its metadata, or why it does not validate
        unfiled = [bad for item in iter_array(meta_file) if (bad := self._meta(item, metas, str(meta_file)))]  # records of their own
        sg_file = self.root / "scene_graphs.json"
        if sg_file.is_file():
            gfile = sg_file
            graphs = iter_array(sg_file)
            extra: dict[str, list[str]] = {}
            if not self._graphs_have_attributes(sg_file):
                extra = yield from self._attributes_by_object()
        else:
            gfile = self.root / ("attributes.json" if (self.root / "attributes.json").is_file() else "objects.json")
            graphs = yield from self._joined(gfile, self.root / "relationships.json")
            extra = {}
        paired: set[str] = set()  # image ids whose metadata met its (first) graph
        seen: set[str] = set()
        for k, bad in enumerate(unfiled):
            if self.limit_reached():
                self.counts.held = self.counts.read + len(unfiled) - k + self._unread(graphs, metas, paired)
                return
            self.counts.read += 1
            yield self.reject_record(*bad)
        lost_from = None  # byte where a fault hid the rest of the graph file
        for item in graphs:
            if self.limit_reached():
                self.counts.held = self.counts.read + self._unread(_chain(item, graphs), metas, paired)
                return
            self.counts.read += 1
            if isinstance(item, Fault):
                self.counts.lost += item.later_records
                lost_from = item.offset if item.lost_bytes else lost_from
                image_id = _id_in(item.head) or f"#{item.index}"
                if image_id in metas and image_id not in seen:  # the record of that image, even if unreadable
                    paired.add(image_id)
                    seen.add(image_id)
                yield self.reject_record(str(gfile), image_id, "malformed_json", item.describe(gfile))
                continue
            index, raw = item
            image_id = record_id(raw, index, "image_id", "id")
            if image_id in seen:
                yield self.reject_record(str(gfile), image_id, "duplicate_image_id", f"{gfile}: record #{index} gives image {image_id} again; the first one is kept")
                continue
            seen.add(image_id)
            meta = metas.get(image_id)
            if meta is not None:  # one record with its metadata; a graph without any is a record of its own
                paired.add(image_id)
            yield from self._convert(raw, index, image_id, meta, extra, str(gfile))
        left = [i for i in metas if i not in paired]  # metadata that no graph came for
        for k, image_id in enumerate(left):
            if self.limit_reached():
                self.counts.held = self.counts.read + len(left) - k
                return
            meta = metas[image_id]
            self.counts.read += 1
            if isinstance(meta, str):
                yield self.reject_record(str(meta_file), image_id, "invalid_image_record", f"{meta_file}: image {image_id}: {meta}")
            elif lost_from is not None:
                yield self.reject_record(str(meta_file), image_id, "graph_not_read", f"image {image_id}: its scene graph, if {gfile.name} has one, lies in the part from byte {lost_from} on that could not be read")
            else:
                yield self.reject_record(str(meta_file), image_id, "image_without_graph", f"image {image_id} of {meta_file.name} has no scene graph in {gfile.name}")
        self.counts.held = self.counts.read

    def _meta(self, item: tuple[int, object] | Fault, metas: dict, f: str) -> tuple[str, str, str, str] | None:
        """Files an image_data.json record in ``metas``; (file, record, rule, detail) of its rejection
        when it cannot be filed."""
        if isinstance(item, Fault):
            self.counts.lost += item.later_records
            return f, f"#{item.index}", "malformed_json", item.describe(f)
        index, raw = item
        image_id = record_id(raw, index, "image_id", "id")
        if image_id.startswith("#"):
            _, why = check(VGImage, raw)
            return f, image_id, "invalid_image_record", f"{f}: record {image_id}: {why or 'no usable image_id'}"
        if image_id in metas:
            return f, image_id, "duplicate_image_id", f"{f}: record #{index} gives image {image_id} again; the first one is kept"
        meta, why = check(VGImage, raw)
        metas[image_id] = meta if meta is not None else why
        return None

    def _unread(self, graphs: Iterator, metas: dict, paired: set[str]) -> int:
        """--limit reached: how many records are left unread (graphs left, and metadata no graph read so
        far came for; a graph and its metadata are one record), counted without checking them."""
        unread_metas = {i for i in metas if i not in paired}
        unread = 0
        for it in graphs:
            if isinstance(it, Fault):
                self.counts.lost += it.later_records
            else:
                unread_metas.discard(record_id(it[1], it[0], "image_id", "id"))  # counted once, with its metadata
            unread += 1
        return unread + len(unread_metas)

    @staticmethod
    def _graphs_have_attributes(path: Path) -> bool:
        for item in iter_array(path):
            raw = item[1] if isinstance(item, tuple) else None
            objects = raw.get("objects") if isinstance(raw, dict) else None
            return isinstance(objects, list) and any(isinstance(o, dict) and "attributes" in o for o in objects)
        return False

    def _attributes_by_object(self) -> Iterator[Rejection]:
        """attributes.json as object id -> attributes (returned); its bad entries are rejections."""
        path = self.root / "attributes.json"
        out: dict[str, list[str]] = {}
        if not path.is_file():
            return out
        for item in iter_array(path):
            rec, where = self._aux(item, path, VGAttributesRecord)
            if rec is None:
                yield where
                continue
            for k, a in enumerate(rec.entries):
                entry, why = check(VGObjectAttributes, a)
                if entry is None:
                    yield reject(str(path), f"{rec.image_id}/{record_id(a, k, 'object_id', 'id')}", "invalid_object", f"{path}: image {rec.image_id}, entry #{k}: {why}")
                    continue
                out[entry.object_id] = entry.attributes
        return out

    def _aux(self, item, path: Path, model):
        """A record of a file merged into the graphs (attributes.json, relationships.json): the record,
        or (None, its rejection). These are parts of records, not records: they do not count."""
        if isinstance(item, Fault):
            return None, reject(str(path), f"#{item.index}", "malformed_json", item.describe(path))
        index, raw = item
        rec, why = check(model, raw)
        if rec is None:
            return None, reject(str(path), record_id(raw, index, "image_id", "id"), "invalid_graph_record", f"{path}: record #{index}: {why}")
        return rec, None

    def _joined(self, objects_file: Path, relationships_file: Path) -> Iterator[Rejection]:
        """Rebuild scene-graph records from the per-kind files (returned as a record stream)."""
        if not objects_file.is_file():
            raise SourceError(f"{self.root}: neither scene_graphs.json nor {objects_file.name}")
        rels: dict[str, list] = {}
        if relationships_file.is_file():
            for item in iter_array(relationships_file):
                rec, bad = self._aux(item, relationships_file, VGRelationshipsRecord)
                if rec is None:
                    yield bad
                    continue
                rels[rec.image_id] = rec.relationships
        return _joined_records(objects_file, rels)

    def _convert(self, raw: object, index: int, image_id: str, meta: VGImage | str | None, extra: dict, gfile: str) -> Iterator[Rejection | Pending]:
        graph, why = check(VGGraph, raw)
        if graph is None:
            yield self.reject_record(gfile, image_id, "invalid_graph_record", f"{gfile}: record #{index} (image {image_id}): {why}")
            return
        if meta is None:
            yield self.reject_record(gfile, image_id, "image_metadata_missing", f"image {image_id} of {gfile} is not in image_data.json")
            return
        if isinstance(meta, str):
            yield self.reject_record(str(self.root / "image_data.json"), image_id, "invalid_image_record", f"{self.root / 'image_data.json'}: image {image_id}: {meta}")
            return
        declared = (meta.width, meta.height)
        yield self.locate(_image_path(meta), declared, str(self.root / "image_data.json"), image_id,  # the path comes from there
                          lambda image, info: self._graph(graph, image_id, declared, image, info, extra, gfile))

    def _graph(self, graph: VGGraph, image_id: str, declared: tuple[int, int], image: str, info, extra: dict, gfile: str) -> Iterator[SceneGraph | Rejection]:
        """The scene graph of a record whose image checked out; its bad objects and relations rejected."""
        objects: list[SceneObject] = []
        for k, o in enumerate(graph.objects):
            oid = record_id(o, k, "object_id", "id")
            rid = f"{image_id}/{oid}"
            obj, why = check(VGObject, o)
            if obj is None:
                yield reject(gfile, rid, "invalid_object", f"{gfile}: image {image_id}, object {oid}: {why}")
                continue
            if any(x.id == oid for x in objects):
                yield reject(gfile, rid, "duplicate_object_id", f"{gfile}: image {image_id} gives object {oid} twice; the first one is kept")
                continue
            name = obj.first_name
            if not name:
                yield reject(gfile, rid, "object_without_name", f"object {oid} of image {image_id} has no name")
                continue
            box, why = image_box(obj.x, obj.y, obj.w, obj.h, declared, info)
            if box is None:
                yield reject(gfile, rid, "box_out_of_range", f"object {oid} of image {image_id}: {why}")
                continue
            attrs = obj.attributes or extra.get(oid) or []
            objects.append(SceneObject(oid, name.lower(), box, tuple(a.strip().lower() for a in attrs if a and a.strip()),
                                       names=obj.other_names, synsets=tuple(obj.synsets)))
        ids = {o.id for o in objects}
        relations: list[Relation] = []
        for k, r in enumerate(graph.relationships):
            rid = f"{image_id}/rel-{record_id(r, k, 'relationship_id', 'id')}"
            rel, why = check(VGRelationship, r)
            if rel is None:
                yield reject(gfile, rid, "invalid_relationship", f"{gfile}: image {image_id}, relationship #{k}: {why}")
                continue
            if rel.subject_id not in ids or rel.object_id not in ids:
                yield reject(gfile, rid, "relation_unknown_object", f"relationship {rel.relationship_id or '#' + str(k)} of image {image_id} names an object that is not kept")
                continue
            pred = rel.predicate.strip().lower()
            if not pred:
                yield reject(gfile, rid, "relation_without_predicate", f"relationship {rel.relationship_id or '#' + str(k)} of image {image_id} has an empty predicate")
                continue
            relations.append(Relation(rel.subject_id, pred, rel.object_id, "given"))
        regions: list = []
        if self._regions is not None:
            regions, bad = regions_for(image_id, self._regions.regions_of(image_id), str(self._regions.path), declared, info)
            yield from self._regions.faults
            self._regions.faults.clear()
            yield from bad
        yield SceneGraph(image_id, image, info.width, info.height, objects, relations, source=self.name, transposed=info.transposed, regions=regions)


_ID = re.compile(rb'^\s*\{\s*"(?:image_id|id)"\s*:\s*(\d+|"[^"\\]{1,200}")')


def _id_in(head: bytes) -> str | None:
    """The image id at the start of a record that is not valid JSON (VG writes it first), if it is there."""
    m = _ID.match(head)
    return m.group(1).decode("utf-8", "replace").strip('"') if m else None


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _joined_records(objects_file: Path, rels: dict[str, list]) -> Iterator[tuple[int, object] | Fault]:
    for item in iter_array(objects_file):
        if isinstance(item, Fault):
            yield item
            continue
        index, raw = item
        if not isinstance(raw, dict):
            yield index, raw  # fails validation as it is
            continue
        image_id = record_id(raw, index, "image_id", "id")
        objs = raw.get("attributes", raw.get("objects", []))
        yield index, {"image_id": raw.get("image_id", raw.get("id")), "objects": objs, "relationships": rels.get(image_id, [])}
