"""Assemble a release folder aside, then rename it into place: a crash leaves the old one intact.

Layout::

    RELEASE/
      README.md                      data card (YAML configs make load_dataset(RELEASE) work)
      data/<split>-0000k-of-0000n.parquet
      mmgcot/GCoT_dataset_<attributes|judge|objects>_<split>.json
      llava/<split>.json
      plots/*.png
      rejections.jsonl               every rejected record: stage, id, rule, detail, file
      stats.json
"""

from __future__ import annotations

import json
from pathlib import Path

from core import __version__
from core.schema import SPLITS, Example, Rejection
from core.shards import write_atomically
from data_cards.card import render_gcot_card
from data_cards.stats import compute
from pipeline.detect.crosscheck import review_order
from pipeline.detect.detector import DEFAULT_METRICS
from pipeline.release import arrow, llava, mmgcot
from pipeline.sources.registry import release_file


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_release(examples: list[Example], rejections: list[Rejection], candidates: int, cfg, ingest) -> Path:
    """build-gcot's release: images come from the source folder."""
    out = Path(cfg.out).resolve()
    sizes: dict[str, int] = {}

    def load_image(ex: Example) -> bytes:
        return release_file(ingest.source_root, ingest.release_prefix, ex.image).read_bytes()

    def image_size(ex: Example) -> int:
        if ex.image not in sizes:
            sizes[ex.image] = release_file(ingest.source_root, ingest.release_prefix, ex.image).stat().st_size
        return sizes[ex.image]

    meta = {
        "name": f"GCoT release ({ingest.source_name}, {len(examples)} examples)",
        "source": cfg.source,
        "seed": cfg.seed,
        "command": cfg.release_command(),
        "config": cfg.stored(),
    }

    def fill(tmp: Path) -> None:
        fill_release(tmp, out, examples, rejections, candidates, meta, load_image, image_size)
        (tmp / "config.yaml").write_text(meta["config"])

    return write_atomically(out, fill, cfg.output_guard(("the source images", ingest.source_root)))


def fill_release(tmp: Path, out: Path, examples, rejections, candidates, meta: dict, load_image, image_size) -> None:
    """Every release format into ``tmp``; ``out`` is where it will live (for the card)."""
    ids = {ex.id: mmgcot.mmgcot_id(ex, i) for i, ex in enumerate(examples)}
    (tmp / "data").mkdir()
    (tmp / "llava").mkdir()
    splits = [s for s in SPLITS if any(e.split == s for e in examples)]
    splits += sorted({e.split for e in examples} - set(splits))
    per_row = 0
    for split in splits:
        part = [e for e in examples if e.split == split]
        arrow.write_split(part, split, tmp / "data", load_image, image_size, ids)
        llava.write_split(part, tmp / "llava" / f"{split}.json")
        per_row += sum(image_size(e) for e in part)
    mmgcot.write_dir(examples, tmp / "mmgcot")
    with open(tmp / "rejections.jsonl", "w") as f:
        for r in rejections:
            f.write(json.dumps(r.to_dict(), sort_keys=True) + "\n")
    with open(tmp / "review_queue.jsonl", "w") as f:  # what reviewers see first: least detector support
        for e in review_order(examples):
            d = e.detector
            f.write(json.dumps({"id": e.id, "img": e.image, "min_iou": d.min_iou if d else None, "flagged": d.flagged if d else None, "drafted_by": e.provenance.get("drafted_by")}) + "\n")
    stats = compute(examples, rejections, candidates)
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    unique = {e.image: image_size(e) for e in examples}
    sizes = {
        "splits": splits,
        "parquet_files": len(list((tmp / "data").glob("*.parquet"))),
        "parquet_bytes": _dir_bytes(tmp / "data"),
        "unique_image_bytes": sum(unique.values()),
        "per_row_image_bytes": per_row,
        "mmgcot_bytes": _dir_bytes(tmp / "mmgcot"),
        "llava_bytes": _dir_bytes(tmp / "llava"),
    }
    n = len(examples)
    shipped = json.loads(DEFAULT_METRICS.read_text()) if DEFAULT_METRICS.is_file() else None
    if not (stats.get("detector") and shipped and stats["detector"]["model"].startswith(shipped["weights"] + "@")):
        shipped = None
    meta = {
        "detector_metrics": shipped,
        "license": "cc-by-4.0",
        "version": __version__,
        "load_path": out.name,  # relative, so that the card does not depend on where the release sits
        "size_category": "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M",
        **meta,
    }
    card = render_gcot_card(tmp, stats, meta, {**sizes, "total_bytes": _dir_bytes(tmp)})
    (tmp / "README.md").write_text(card)
