"""Visual Genome region descriptions (``region_descriptions.json``) beside the scene graphs.

The file is a list of ``{"id": image_id, "regions": [{"region_id", "phrase", "x", "y", "width",
"height", ...}]}`` in image order, like the scene graphs. It is streamed alongside them (`RegionStream`):
records are matched by image id, and those met early (another order) are held until their image comes,
so the 5.4M regions of the full dataset never sit in memory at once when both files keep the same
order. Regions are parts of an image's record, not records: a region with no phrase or an unusable box,
and a record of the file that is not valid JSON or not a region record, are rejected on their own and
the image goes on. Boxes are absolute pixels in the stored frame, converted as objects' are
(`base.image_box`: normalized, small overhangs clipped, turned with an EXIF-rotated image).
"""

from __future__ import annotations

from pathlib import Path

from core.schema import Region, Rejection
from pipeline.sources.base import SourceError, image_box, reject
from pipeline.sources.images import ImageInfo
from pipeline.sources.json_stream import Fault, iter_array
from pipeline.sources.records import record_id

REGIONS_FILE = "region_descriptions.json"


class RegionStream:
    """Regions of each image, looked up in the order the scene graphs come; `faults` collects the
    file's bad records as they are met (the caller yields them)."""

    def __init__(self, path: Path):
        self.path = path
        self._items = iter_array(path)
        self._held: dict[str, list] = {}
        self._done = False
        self.faults: list[Rejection] = []

    def regions_of(self, image_id: str) -> list:
        if image_id in self._held:
            return self._held.pop(image_id)
        while not self._done:
            try:
                item = next(self._items, None)
            except SourceError as e:  # not an array at all: no regions from it
                self.faults.append(reject(str(self.path), REGIONS_FILE, "malformed_json", str(e)))
                item = None
            if item is None:
                self._done = True
                break
            if isinstance(item, Fault):
                self.faults.append(reject(str(self.path), f"#{item.index}", "malformed_json", item.describe(self.path)))
                continue
            index, raw = item
            regions = raw.get("regions") if isinstance(raw, dict) else None
            if not isinstance(regions, list):
                self.faults.append(reject(str(self.path), record_id(raw, index, "id", "image_id"), "invalid_region_record",
                                          f"{self.path}: record #{index}: not an object with a 'regions' list"))
                continue
            rid = record_id(raw, index, "id", "image_id")
            if rid == image_id:
                return regions
            self._held[rid] = regions
        return []


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def regions_for(image_id: str, raw: list, file: str, declared: tuple[int, int], info: ImageInfo) -> tuple[list[Region], list[Rejection]]:
    """The usable regions of one image, and a rejection for each of the others."""
    out, bad = [], []
    for k, r in enumerate(raw):
        rid = record_id(r, k, "region_id", "id")
        where = f"{image_id}/region-{rid}"
        if not isinstance(r, dict):
            bad.append(reject(file, where, "invalid_region", f"{file}: image {image_id}, region #{k}: not an object"))
            continue
        phrase = " ".join(str(r.get("phrase") or "").split())
        if not phrase:
            bad.append(reject(file, where, "region_without_phrase", f"region {rid} of image {image_id} has no phrase"))
            continue
        xywh = [r.get(f) for f in ("x", "y", "width", "height")]
        if not all(_number(v) for v in xywh):
            bad.append(reject(file, where, "invalid_region", f"{file}: image {image_id}, region {rid}: x, y, width and height must be numbers, got {xywh}"))
            continue
        box, why = image_box(*xywh, declared, info)
        if box is None:
            bad.append(reject(file, where, "box_out_of_range", f"region {rid} of image {image_id}: {why}"))
            continue
        out.append(Region(rid, phrase, box))
    return out, bad
