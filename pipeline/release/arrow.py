"""Parquet shards through `datasets`, one example a row, each image's bytes stored once.

MM-GCoT asks ~5 questions of an image. Rows of one image sit in the same shard, each shard is a
single row group, and the ``image.bytes`` column is dictionary-encoded with a dictionary page large
enough for the whole shard: Parquet then stores every distinct image once (in the dictionary page)
and each row holds an index. ``datasets.load_dataset(RELEASE_DIR, split=...)`` still gives every
row its decoded image. (`datasets` itself writes image columns PLAIN, for the Hub's chunk-level
dedupe, so the writer here calls pyarrow with the features' schema.)
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


def to_row(ex: Example, image_bytes: bytes | None, mmgcot_id: int) -> dict:
    return {
        "id": ex.id,
        "mmgcot_id": mmgcot_id,
        "image": {"bytes": image_bytes, "path": ex.image} if image_bytes is not None else None,
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


def _shards(examples: list[Example], image_size: Callable[[Example], int]) -> list[list[Example]]:
    """Cut a split into shards at image boundaries, each under MAX_SHARD_IMAGE_BYTES of images."""
    shards: list[list[Example]] = [[]]
    used, last_image = 0, None
    for ex in examples:
        if ex.image != last_image:
            size = image_size(ex)
            if shards[-1] and used + size > MAX_SHARD_IMAGE_BYTES:
                shards.append([])
                used = 0
            used += size
            last_image = ex.image
        shards[-1].append(ex)
    return shards


def write_split(
    examples: list[Example],
    split: str,
    data_dir: Path,
    load_image: Callable[[Example], bytes | None],
    image_size: Callable[[Example], int],
    mmgcot_ids: dict[str, int],
) -> list[Path]:
    """Write one split's shards ``<split>-0000k-of-0000n.parquet`` in the order given.

    Dictionary encoding dedupes an image within a shard wherever its rows are; give the rows grouped
    by image (build-gcot does) so that shard cuts never split an image's rows.
    """
    cache: dict[str, bytes | None] = {}

    def image_of(ex: Example) -> bytes | None:
        if ex.image not in cache:
            cache[ex.image] = load_image(ex)
        return cache[ex.image]

    shards = _shards(examples, image_size)
    paths = []
    schema = FEATURES.arrow_schema
    for k, shard in enumerate(shards):
        path = data_dir / f"{split}-{k:05d}-of-{len(shards):05d}.parquet"
        rows = [to_row(ex, image_of(ex), mmgcot_ids[ex.id]) for ex in shard]
        cache.clear()  # one shard's images in memory at a time
        # pyarrow directly: Dataset.from_list would hash every row (images included) for a fingerprint
        table = pa.Table.from_pylist(rows, schema=schema)
        with pq.ParquetWriter(
            path,
            schema=schema,
            compression="zstd",
            use_dictionary=True,
            dictionary_pagesize_limit=MAX_SHARD_IMAGE_BYTES + 2**20,
        ) as w:
            w.write_table(table, row_group_size=max(1, len(rows)))
        paths.append(path)
    return paths


def read_images(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """img path -> image bytes, once per distinct image, from Parquet shards."""
    out: dict[str, bytes] = {}
    for f in paths:
        t = pq.read_table(f, columns=["img", "image"])
        for img, image in zip(t.column("img").to_pylist(), t.column("image").to_pylist()):
            if image and image.get("bytes") and img not in out:
                out[img] = image["bytes"]
    return out


def read_examples(paths: Iterable[str | Path]) -> list[Example]:
    """Examples back from Parquet shards (images not decoded)."""
    ds = datasets.Dataset.from_parquet([str(p) for p in paths], features=FEATURES).cast_column("image", Image(decode=False))
    return [from_row(r) for r in ds]
