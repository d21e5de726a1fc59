"""Visual Genome region descriptions (``region_descriptions.json``) beside the scene graphs.

The file is a list of ``{"id": image_id, "regions": [{"region_id", "phrase", "x", "y", "width",
"height", ...}]}`` in image order, like the scene graphs. It is streamed alongside them: records are
matched by image id, and those met early (another order) are held until their image comes, so the
5.4M regions of the full dataset never sit in memory at once when both files keep the same order.
Boxes are absolute pixels, normalized (and small overhangs clipped) as objects' are; a region with an
unusable box or no phrase is rejected like any bad record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from core.schema import Region, Rejection, SceneGraph
from pipeline.sources.base import SourceError, normalize_box, reject
from pipeline.sources.visual_genome import VisualGenomeSource, _stream

REGIONS_FILE = "region_descriptions.json"


class RegionStream:
    """Regions of each image, looked up in the order the scene graphs come."""

    def __init__(self, path):
        self.path = path
        self._items = _stream(path)
        self._held: dict[str, list[dict]] = {}
        self._done = False
        self.error: str | None = None  # a malformed file: the regions read so far are kept, the rest are not

    def regions_of(self, image_id: str) -> list[dict]:
        if image_id in self._held:
            return self._held.pop(image_id)
        while not self._done:
            try:
                rec = next(self._items, None)
            except SourceError as e:
                self.error, rec = str(e), None
            if rec is None:
                self._done = True
                break
            rid = str(rec.get("id", rec.get("image_id")))
            if rid == image_id:
                return rec.get("regions") or []
            self._held[rid] = rec.get("regions") or []
        return []


def regions_for(graph: SceneGraph, raw: list[dict], file: str) -> tuple[list[Region], list[Rejection]]:
    out, bad = [], []
    for r in raw:
        rid = str(r.get("region_id", r.get("id", "?")))
        phrase = " ".join(str(r.get("phrase") or "").split())
        if not phrase:
            bad.append(reject(file, f"{graph.image_id}/region-{rid}", "region_without_phrase", f"region {rid} of image {graph.image_id} has no phrase"))
            continue
        box, why = normalize_box(r.get("x"), r.get("y"), r.get("width"), r.get("height"), graph.width, graph.height)
        if box is None:
            bad.append(reject(file, f"{graph.image_id}/region-{rid}", "box_out_of_range", f"region {rid} of image {graph.image_id}: {why}"))
            continue
        out.append(Region(rid, phrase, box))
    return out, bad


class VisualGenomeWithRegions(VisualGenomeSource):
    """The Visual Genome reader, each scene graph carrying its image's region descriptions."""

    def iter_records(self) -> Iterator[SceneGraph | Rejection]:
        path = self.root / REGIONS_FILE
        stream = RegionStream(path) if path.is_file() else None
        for rec in super().iter_records():
            if stream is None or isinstance(rec, Rejection):
                yield rec
                continue
            regions, bad = regions_for(rec, stream.regions_of(rec.image_id), str(path))
            if stream.error:
                yield reject(str(path), REGIONS_FILE, "malformed_json", stream.error)
                stream.error, stream = None, None
            yield from bad
            yield replace(rec, regions=regions)
