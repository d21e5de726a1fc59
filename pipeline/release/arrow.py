"""Parquet shards through `datasets`, one example a row, each image's bytes stored once.

MM-GCoT asks ~5 questions of an image. Rows of one image sit in the same row group, and the
``image.bytes`` column is dictionary-encoded with a dictionary page large enough for the whole row
group: Parquet then stores every distinct image once (in the dictionary page) and each row holds an
index. ``datasets.load_dataset(RELEASE_DIR, split=...)`` still gives every row its decoded image.
(`datasets` itself writes image columns PLAIN, for the Hub's chunk-level dedupe, so the writer here
calls pyarrow with the features' schema.) A shard is written one row group at a time, so the writer
holds one row group, never a split.

A release by reference stores ``{"bytes": None, "path": <relative path>}``: ``with_image_root``
makes such a dataset load its images from the folder the paths are relative to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from core.schema import DetectorCheck, Example, Query, Review, Step, Verification

MAX_SHARD_IMAGE_BYTES = 256 * 2**20  # unique image bytes per shard; keeps one dictionary page < 2 GiB
# A row group is what the writer holds, and pyarrow copies an image's bytes into every row of it
# (~5 rows an image) before dictionary-encoding them. Measured on 20,000 Visual-Genome-size scenes
# (4 KB images): the release's peak RSS rose 213 MB over the imports with row groups of 10,000 rows,
# 64 MB with 2,500. The demo's largest split (1,438 rows, 11 MB of images) stays one row group.
ROW_GROUP_IMAGE_BYTES = 16 * 2**20
ROW_GROUP_ROWS = 2048

BOX = List(Value("float64"), length=4)
FEATURES = Features(
    {
        "id": Value("string"),
        "mmgcot_id": Value("int64"),
        "image": Image(),
        "image_id": Value("string"),
        "img": Value("string"),  # the image path as MM-GCoT writes it, also when no bytes are stored
        "width": Value("int32"),
        "height": Value("int32"),
        "question": Value("string"),
        "type": Value("string"),
        "steps": List(
            {
                "text": Value("string"),
                "box": BOX,
                "object_id": Value("string"),
                "name": Value("string"),
                "attributes": List(Value("string")),
                "relation": Value("string"),
                "relation_origin": Value("string"),  # annotated, geometric (photo boxes) or exact (rendered scene)
                "relation_inverse": Value("bool"),  # the relation reads previous -> this step's object
                "region": Value("string"),  # the region description the step's expression was made from
            }
        ),
        "answer": Value("string"),
        "answer_box": BOX,
        "split": Value("string"),
        "source": Value("string"),
        "query": {"kind": Value("string"), "value": Value("string")},
        "verification": {"passed": Value("bool"), "failures": List({"rule": Value("string"), "detail": Value("string")})},
        "review": {"status": Value("string"), "reviewer": Value("string"), "reviewed_at": Value("string"), "comment": Value("string")},
        "provenance": Value("string"),  # JSON object of strings (free keys: model names, versions, ...)
        "detector": {
            "model": Value("string"),
            "step_iou": List(Value("float64")),
            "step_class": List(Value("string")),
            "min_iou": Value("float64"),
            "mean_iou": Value("float64"),
            "flagged": Value("bool"),
        },
    }
)


def to_row(ex: Example, image_bytes: bytes | None, mmgcot_id: int, image_path: str | None = None) -> dict:
    """``image_path`` without bytes: the image by reference (a path relative to the release's image root)."""
    if image_bytes is not None:
        image = {"bytes": image_bytes, "path": ex.image}
    else:
        image = {"bytes": None, "path": image_path} if image_path is not None else None
    return {
        "id": ex.id,
        "mmgcot_id": mmgcot_id,
        "image": image,
        "image_id": ex.image_id,
        "img": ex.image,
        "width": ex.width,
        "height": ex.height,
        "question": ex.question,
        "type": ex.type,
        "steps": [
            {
                "text": s.text,
                "box": list(s.box) if s.box is not None else None,
                "object_id": s.object_id,
                "name": s.name,
                "attributes": list(s.attributes),
                "relation": s.relation,
                "relation_origin": s.relation_origin,
                "relation_inverse": s.relation_inverse,
                "region": s.region,
            }
            for s in ex.steps
        ],
        "answer": ex.answer,
        "answer_box": list(ex.answer_box) if ex.answer_box is not None else None,
        "split": ex.split,
        "source": ex.source,
        "query": {"kind": ex.query.kind, "value": ex.query.value} if ex.query else None,
        "verification": {"passed": ex.verification.passed, "failures": ex.verification.failures},
        "review": {"status": ex.review.status, "reviewer": ex.review.reviewer, "reviewed_at": ex.review.reviewed_at, "comment": ex.review.comment},
        "provenance": json.dumps(ex.provenance, sort_keys=True),
        "detector": asdict(ex.detector) if ex.detector else None,
    }


def from_row(row: dict) -> Example:
    """A row as `datasets` returns it (image decoded or not) -> Example."""
    v = row.get("verification") or {}
    r = row.get("review") or {}
    q = row.get("query")
    provenance = json.loads(row.get("provenance") or "{}")
    provenance.setdefault("mmgcot_id", str(row["mmgcot_id"]))
    return Example(
        id=row["id"],
        image_id=row["image_id"],
        image=row["img"],
        width=row["width"],
        height=row["height"],
        question=row["question"],
        type=row["type"],
        steps=[
            Step(
                text=s["text"],
                box=tuple(s["box"]) if s["box"] is not None else None,
                object_id=s["object_id"],
                name=s["name"],
                attributes=tuple(s["attributes"] or ()),
                relation=s["relation"],
                relation_origin=s.get("relation_origin"),
                relation_inverse=bool(s.get("relation_inverse")),
                region=s.get("region"),
            )
            for s in row["steps"]
        ],
        answer=row["answer"],
        answer_box=tuple(row["answer_box"]) if row["answer_box"] is not None else None,
        split=row["split"],
        source=row["source"],
        query=Query(q["kind"], q["value"]) if q and q.get("kind") else None,
        provenance=provenance,
        verification=Verification(passed=bool(v.get("passed")), failures=list(v.get("failures") or [])),
        review=Review(**{k: r.get(k) for k in ("status", "reviewer", "reviewed_at", "comment")}) if r else Review(),
        detector=DetectorCheck(**row["detector"]) if row.get("detector") else None,
    )


class SplitWriter:
    """One split's shards ``<split>-0000k-of-0000n.parquet``, written row group by row group.

    Examples come in release order. A shard is cut before an image that would take its distinct image
    bytes past MAX_SHARD_IMAGE_BYTES, a row group before one that would take it past
    ROW_GROUP_IMAGE_BYTES or ROW_GROUP_ROWS: cuts fall between images only, so all rows of an image
    share a row group and its dictionary page stores the image once. A shard under both row-group
    limits is one row group, byte for byte the file written whole. Only the open row group is held,
    its images read when it is written; shards get their ``-of-0000n`` names on ``close()``.
    ``image_ref`` (the release by reference) stores each image as a relative path, no bytes.
    """

    def __init__(
        self,
        data_dir: Path,
        split: str,
        load_image: Callable[[Example], bytes | None],
        image_size: Callable[[Example], int],
        image_ref: Callable[[Example], str] | None = None,
    ):
        self.data_dir, self.split = Path(data_dir), split
        self.load_image, self.image_size, self.image_ref = load_image, image_size, image_ref
        self._parts: list[Path] = []  # shards so far, under temporary names
        self._writer: pq.ParquetWriter | None = None
        self._group: list[tuple[Example, int]] = []
        self._group_bytes = self._shard_bytes = self._shard_rows = 0
        self._last_image: str | None = None

    def add(self, ex: Example, mmgcot_id: int) -> None:
        if ex.image != self._last_image:
            size = self.image_size(ex)
            if (self._shard_rows or self._group) and self._shard_bytes + size > MAX_SHARD_IMAGE_BYTES:
                self._close_shard()
            elif self._group and (self._group_bytes + size > ROW_GROUP_IMAGE_BYTES or len(self._group) >= ROW_GROUP_ROWS):
                self._write_group()
            self._shard_bytes += size
            self._group_bytes += size
            self._last_image = ex.image
        self._group.append((ex, mmgcot_id))

    def _write_group(self) -> None:
        if not self._group:
            return
        images: dict[str, bytes | None] = {}
        rows = []
        for ex, i in self._group:
            if self.image_ref is not None:
                rows.append(to_row(ex, None, i, image_path=self.image_ref(ex)))
                continue
            if ex.image not in images:
                images[ex.image] = self.load_image(ex)
            rows.append(to_row(ex, images[ex.image], i))
        # pyarrow directly: Dataset.from_list would hash every row (images included) for a fingerprint
        table = pa.Table.from_pylist(rows, schema=FEATURES.arrow_schema)
        if self._writer is None:
            path = self.data_dir / f".{self.split}-{len(self._parts):05d}.parquet.partial"
            self._parts.append(path)
            self._writer = pq.ParquetWriter(
                path,
                schema=FEATURES.arrow_schema,
                compression="zstd",
                use_dictionary=True,
                dictionary_pagesize_limit=MAX_SHARD_IMAGE_BYTES + 2**20,
            )
        self._writer.write_table(table, row_group_size=max(1, len(rows)))
        self._shard_rows += len(rows)
        self._group, self._group_bytes = [], 0

    def _close_shard(self) -> None:
        self._write_group()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._shard_bytes = self._shard_rows = 0

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns the paths in order."""
        self._close_shard()
        final = [self.data_dir / f"{self.split}-{k:05d}-of-{len(self._parts):05d}.parquet" for k in range(len(self._parts))]
        for part, path in zip(self._parts, final, strict=True):
            part.rename(path)
        return final


def read_images(paths: Iterable[str | Path], image_root: str | Path | None = None) -> dict[str, bytes]:
    """img path -> image bytes, once per distinct image, from Parquet shards; an image stored by
    reference is read from ``image_root`` (the root the release's card names) when it is given."""
    out: dict[str, bytes] = {}
    for f in paths:
        t = pq.read_table(f, columns=["img", "image"])
        for img, image in zip(t.column("img").to_pylist(), t.column("image").to_pylist()):
            if img in out or not image:
                continue
            if image.get("bytes"):
                out[img] = image["bytes"]
            elif image_root is not None and image.get("path"):
                out[img] = (Path(image_root) / image["path"]).read_bytes()
    return out


def with_image_root(ds: datasets.Dataset, image_root: str | Path) -> datasets.Dataset:
    """A dataset of a release by reference whose images load from ``image_root`` (the card names it);
    rows that carry bytes keep them."""
    root = str(Path(image_root).resolve())

    def resolve(image: dict | None) -> dict | None:
        if image is None or image["bytes"] is not None or not image["path"]:
            return image
        return {"bytes": None, "path": f"{root}/{image['path']}"}

    ds = ds.cast_column("image", Image(decode=False))
    ds = ds.map(lambda row: {"image": resolve(row["image"])}, desc="image paths")
    return ds.cast_column("image", Image())


def read_examples(paths: Iterable[str | Path]) -> list[Example]:
    """Examples back from Parquet shards (images not decoded)."""
    ds = datasets.Dataset.from_parquet([str(p) for p in paths], features=FEATURES).cast_column("image", Image(decode=False))
    return [from_row(r) for r in ds]
