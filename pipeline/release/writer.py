"""Assemble a release folder aside, then rename it into place: a crash leaves the old one intact.

Layout::

    RELEASE/
      README.md                      data card (YAML configs make load_dataset(RELEASE) work)
      data/<split>-0000k-of-0000n.parquet
      mmgcot/GCoT_dataset_<attributes|judge|objects>_<split>.json
      llava/<split>.json
      plots/*.png
      rejections.jsonl               every rejected record: stage, id, rule, detail, file
      review_queue.jsonl             the examples least supported by the detector first
      stats.json

The release is written as the examples stream by, in release order and a split at a time: Parquet
row groups, MM-GCoT records and LLaVA rows go to their files as they come, the card's numbers are
counted on the way (``data_cards.stats.CardStats``) and the review queue is sorted on disk, so
memory depends on a row group, not on the source. Images are read when their row group is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from core import __version__
from core.schema import SPLITS, Example, Rejection
from core.shards import write_atomically
from data_cards.card import render_gcot_card
from data_cards.stats import CardStats
from pipeline.detect.crosscheck import review_order
from pipeline.detect.detector import DEFAULT_METRICS
from pipeline.release import arrow, llava, mmgcot
from pipeline.release.jsonlist import JsonListWriter
from pipeline.release.spill import SortedSpill
from pipeline.sources.base import reconcile
from pipeline.sources.registry import release_file


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class SourceImages:
    """The files behind released image paths: under the source folder, or ingest's upright copy of an
    EXIF-rotated image (``upright_root``); sizes of the last images met are cached (a release's rows of
    one image are adjacent)."""

    def __init__(self, source_root: str | Path, release_prefix: str, upright_root: str | Path | None = None):
        self.root, self.prefix, self.upright = Path(source_root), release_prefix, upright_root
        self._size = lru_cache(maxsize=1024)(lambda image: self.file(image).stat().st_size)

    def file(self, image: str) -> Path:
        return release_file(self.root, self.prefix, image, self.upright)

    def size(self, ex: Example) -> int:
        return self._size(ex.image)

    def read(self, ex: Example) -> bytes:
        return self.file(ex.image).read_bytes()

    def relative(self, ex: Example) -> str:
        """The image's path relative to the source folder (a release by reference stores it)."""
        return release_file(self.root, self.prefix, ex.image).relative_to(self.root).as_posix()


class SplitFormats:
    """``data/``, ``llava/`` and ``mmgcot/``, fed example by example, each split's examples together."""

    def __init__(self, tmp: Path, load_image, image_size, image_ref: Callable[[Example], str] | None = None):
        self.tmp, self.load_image, self.image_size, self.image_ref = tmp, load_image, image_size, image_ref
        (tmp / "data").mkdir()
        (tmp / "llava").mkdir()
        self.mmgcot = mmgcot.DirWriter(tmp / "mmgcot")
        self.splits: list[str] = []
        self._parquet: arrow.SplitWriter | None = None
        self._llava: JsonListWriter | None = None
        self.per_row_image_bytes = self.unique_image_bytes = 0
        self._images: set[str] = set()

    def add(self, ex: Example, fallback_id: int) -> None:
        """``fallback_id``: the MM-GCoT id of an example that carries none (its position in the release)."""
        if not self.splits or ex.split != self.splits[-1]:
            if ex.split in self.splits:
                raise ValueError(f"example {ex.id}: the examples of split {ex.split!r} must come together, and it came back after {self.splits[-1]!r}")
            self._close_split()
            self.splits.append(ex.split)
            self._parquet = arrow.SplitWriter(self.tmp / "data", ex.split, self.load_image, self.image_size, self.image_ref)
            self._llava = JsonListWriter(self.tmp / "llava" / f"{ex.split}.json")
        self._parquet.add(ex, mmgcot.mmgcot_id(ex, fallback_id))
        for row in llava.conversations(ex):
            self._llava.add(row)
        self.mmgcot.add(ex, fallback_id)
        size = self.image_size(ex)
        self.per_row_image_bytes += size
        if ex.image not in self._images:
            self._images.add(ex.image)
            self.unique_image_bytes += size

    def _close_split(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._llava.close()
            self._parquet = self._llava = None

    def close(self) -> dict:
        self._close_split()
        self.mmgcot.close()
        return {
            "splits": self.splits,
            "parquet_files": len(list((self.tmp / "data").glob("*.parquet"))),
            "parquet_bytes": _dir_bytes(self.tmp / "data"),
            "unique_image_bytes": self.unique_image_bytes,
            "per_row_image_bytes": self.per_row_image_bytes,
            "mmgcot_bytes": _dir_bytes(self.tmp / "mmgcot"),
            "llava_bytes": _dir_bytes(self.tmp / "llava"),
        }


def _review_line(e: Example) -> str:
    d = e.detector
    judged = {"judge": e.provenance["judge.outcome"], "judge_answer": e.provenance.get("judge.answer")} if "judge.outcome" in e.provenance else {}
    return json.dumps({"id": e.id, "img": e.image, "min_iou": d.min_iou if d else None, "flagged": d.flagged if d else None, "drafted_by": e.provenance.get("drafted_by"), **judged})


class ReviewQueue:
    """``review_queue.jsonl`` in ``review_order``'s order (the answerability judge's disagreements first;
    within each group least detector agreement first, the examples never checked after them in release
    order), sorted on disk under ``folder``."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        # (agrees, never checked, min IoU, mean IoU, id) for checked examples, (agrees, never checked, position) for the rest
        self.spill = SortedSpill(folder / "review", key=lambda r: tuple(r["key"]))
        self._seq = 0

    def add(self, e: Example) -> None:
        agrees = e.provenance.get("judge.outcome") != "disagrees"
        key = [agrees, False, e.detector.min_iou, e.detector.mean_iou, e.id] if e.detector else [agrees, True, self._seq]
        self._seq += 1
        self.spill.add({"key": key, "line": _review_line(e)})

    def write(self, path: Path) -> None:
        with open(path, "w") as f:
            for r in self.spill.merged():
                f.write(r["line"] + "\n")


def write_release(
    examples: Iterable[Example], rejections: Iterable[Rejection], candidates: int, cfg, ingest, spill_dir: Path, models: dict | None = None
) -> dict:
    """build-gcot's release from ``examples`` in release order (MM-GCoT ids set) and every rejection,
    streamed; images come from the source folder (their bytes, or ``cfg.image_storage == "reference"``:
    their paths under it). ``spill_dir`` takes the review queue's sorted runs; ``models``: the run's
    model-stage summary (`pipeline.models.usage`), when a stage ran. Returns the card's numbers."""
    out = Path(cfg.out).resolve()
    images = SourceImages(ingest.source_root, ingest.release_prefix, ingest.upright_root)
    by_reference = getattr(cfg, "image_storage", "bytes") == "reference"
    done: dict = {}

    def fill(tmp: Path) -> None:
        formats = SplitFormats(tmp, images.read, images.size, images.relative if by_reference else None)
        stats, review = CardStats(), ReviewQueue(Path(spill_dir))
        for i, ex in enumerate(examples):
            formats.add(ex, i)
            stats.add(ex)
            review.add(ex)
        meta = {
            "name": f"GCoT release ({ingest.source_name}, {stats.examples} examples)",
            "source": cfg.source,
            "seed": cfg.seed,
            "command": cfg.release_command(),
            "config": cfg.stored(),
            **({"models": models} if models else {}),
            "records": reconcile(ingest.counts, ingest.images, len(stats.image_ids)),  # every ingest counts its records
        }
        if by_reference:
            meta["image_root"] = str(Path(ingest.source_root).resolve())
        done["stats"] = finish_release(tmp, out, formats.close(), stats, review.write, rejections, candidates, meta)
        (tmp / "config.yaml").write_text(meta["config"])

    write_atomically(out, fill, cfg.output_guard(("the source images", ingest.source_root)))
    return done["stats"]


def fill_release(tmp: Path, out: Path, examples: list[Example], rejections, candidates, meta: dict, load_image, image_size) -> None:
    """Every release format into ``tmp`` from examples held in memory; ``out`` is where it will live
    (for the card). Splits go in SPLITS order, each split's examples in the order given."""
    formats = SplitFormats(tmp, load_image, image_size)
    splits = [s for s in SPLITS if any(e.split == s for e in examples)]
    splits += sorted({e.split for e in examples} - set(splits))
    for split in splits:
        for i, ex in enumerate(examples):
            if ex.split == split:
                formats.add(ex, i)
    stats = CardStats()
    for ex in examples:
        stats.add(ex)

    def review(path: Path) -> None:
        with open(path, "w") as f:
            f.writelines(_review_line(e) + "\n" for e in review_order(examples))

    finish_release(tmp, out, formats.close(), stats, review, rejections, candidates, meta)


def finish_release(tmp: Path, out: Path, sizes: dict, stats: CardStats, write_review, rejections: Iterable[Rejection], candidates: int, meta: dict) -> dict:
    """After the examples: rejections.jsonl (counted on the way), the review queue, stats.json, the card."""
    with open(tmp / "rejections.jsonl", "w") as f:
        for r in rejections:
            stats.add_rejection(r)
            f.write(json.dumps(r.to_dict(), sort_keys=True) + "\n")
    write_review(tmp / "review_queue.jsonl")
    result = stats.result(candidates)
    for key in ("models", "records"):  # the model stages' summary; the source's records reconciled
        if meta.get(key):
            result[key] = meta[key]
    (tmp / "stats.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    n = result["examples"]
    shipped = json.loads(DEFAULT_METRICS.read_text()) if DEFAULT_METRICS.is_file() else None
    if not (result.get("detector") and shipped and result["detector"]["model"].startswith(shipped["weights"] + "@")):
        shipped = None
    meta = {
        "detector_metrics": shipped,
        "license": "cc-by-4.0",
        "version": __version__,
        "load_path": out.name,  # relative, so that the card does not depend on where the release sits
        "size_category": "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M",
        **meta,
    }
    card = render_gcot_card(tmp, result, meta, {**sizes, "total_bytes": _dir_bytes(tmp)})
    (tmp / "README.md").write_text(card)
    return result
