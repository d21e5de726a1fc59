"""Write a LongV-EVAL release, aside then renamed into place.

Layout (the published one, plus metadata)::

    RELEASE/
      videos/<id>.mp4                    the video (an .mp4 input is copied byte for byte; others re-encoded)
      foreground/<id>.txt                one quoted prompt each, as published
      background/<id>.txt
      style/<id>.txt
      keyframes/<id>/<frame>.jpg         the representative keyframe of each clip (320 px wide)
      data/longv-eval.parquet            one row per video: probe facts, clips, keyframes, tracks, caption, prompts, review
      README.md, plots/*.png             data card
      rejections.jsonl, stats.json
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core import __version__
from core.schema import EDIT_KINDS, LongVItem, Rejection
from core.shards import write_atomically
from pipeline.longv.video import frames, probe, write_video

_BOX = pa.list_(pa.float32(), 4)
SCHEMA = pa.schema([
    ("id", pa.string()), ("video", pa.string()), ("source_file", pa.string()),
    ("duration", pa.float64()), ("fps", pa.float64()), ("frames", pa.int32()), ("width", pa.int32()), ("height", pa.int32()),
    ("keyframes", pa.list_(pa.int32())),
    ("clips", pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32()), ("keyframe", pa.int32())]))),
    ("subjects", pa.list_(pa.struct([
        ("track_id", pa.int32()), ("name", pa.string()), ("color", pa.string()), ("confidence", pa.float32()),
        ("points", pa.list_(pa.struct([("frame", pa.int32()), ("box", _BOX)]))),
    ]))),
    ("camera", pa.string()), ("caption", pa.string()),
    ("foreground", pa.string()), ("background", pa.string()), ("style", pa.string()), ("style_name", pa.string()),
    ("review_status", pa.string()), ("reviewer", pa.string()), ("reviewed_at", pa.string()), ("comment", pa.string()),
    ("provenance", pa.string()),  # JSON object (a map column would not load with `datasets`)
])


def prompt_file_text(prompt: str) -> str:
    """As published: the prompt in double quotes on one line."""
    return f'"{prompt.strip()}"\n'


def read_prompt_file(path: Path) -> str:
    return path.read_text().strip().strip('"')


def to_row(item: LongVItem) -> dict:
    d = item.to_dict()
    r = d.pop("review")
    d["keyframes"] = item.keyframes
    d["provenance"] = json.dumps(item.provenance, sort_keys=True)
    return {**d, "review_status": r["status"], "reviewer": r["reviewer"], "reviewed_at": r["reviewed_at"], "comment": r["comment"]}


def from_row(row: dict) -> LongVItem:
    d = dict(row)
    d["review"] = {"status": d.pop("review_status"), "reviewer": d.pop("reviewer"), "reviewed_at": d.pop("reviewed_at"), "comment": d.pop("comment")}
    d["provenance"] = json.loads(d.get("provenance") or "{}")
    return LongVItem.from_dict(d)


def read_items(release: str | Path) -> list[LongVItem]:
    path = Path(release) / "data" / "longv-eval.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{release}: no data/longv-eval.parquet (is it a LongV-EVAL release?)")
    return [from_row(r) for r in pq.read_table(path).to_pylist()]


def _place_video(src: Path, dst: Path) -> None:
    if src.suffix.lower() == ".mp4":
        shutil.copyfile(src, dst)
        return
    info = probe(src)
    write_video(dst, (f for _, f in frames(src)), info.fps, (info.width, info.height))


def fill(tmp: Path, items: list[LongVItem], sources: dict[str, Path], keyframes: dict[str, dict[int, bytes]], rejections: list[Rejection], meta: dict) -> dict:
    """Every part of the release into ``tmp``; returns the stats."""
    from data_cards.card import render_longv_card

    for sub in ("videos", *EDIT_KINDS, "keyframes", "data"):
        (tmp / sub).mkdir()
    for item in items:
        _place_video(sources[item.id], tmp / item.video)
        for kind in EDIT_KINDS:
            (tmp / kind / f"{item.id}.txt").write_text(prompt_file_text(item.prompt(kind)))
        kdir = tmp / "keyframes" / item.id
        kdir.mkdir()
        for k, data in sorted(keyframes.get(item.id, {}).items()):
            (kdir / f"{k:06d}.jpg").write_bytes(data)
    table = pa.Table.from_pylist([to_row(i) for i in items], schema=SCHEMA)
    pq.write_table(table, tmp / "data" / "longv-eval.parquet", compression="zstd")
    with open(tmp / "rejections.jsonl", "w") as f:
        for r in rejections:
            f.write(json.dumps(r.to_dict(), sort_keys=True) + "\n")
    stats = compute_stats(items, rejections)
    if meta.get("models"):
        stats["models"] = meta["models"]
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    (tmp / "README.md").write_text(render_longv_card(tmp, items, stats, {"version": __version__, **meta}))
    return stats


def compute_stats(items: list[LongVItem], rejections: list[Rejection]) -> dict:
    words = [len(i.prompt(k).split()) for i in items for k in EDIT_KINDS]
    return {
        "videos": len(items),
        "rejected": len(rejections),
        "rejections_by_rule": dict(sorted(Counter(r.rule for r in rejections).items())),
        "frames": sum(i.frames for i in items),
        "hours": round(sum(i.duration for i in items) / 3600, 4),
        "clips": sum(len(i.clips) for i in items),
        "clips_per_video": round(sum(len(i.clips) for i in items) / max(1, len(items)), 2),
        "prompts": len(words),
        "prompt_words_mean": round(sum(words) / max(1, len(words)), 2),
        "prompt_words_max": max(words, default=0),
        "styles": dict(sorted(Counter(i.style_name for i in items).items())),
        "review": dict(sorted(Counter(i.review.status for i in items).items())),
        "no_subject": sum(1 for i in items if not i.subjects),
    }


def load_result(r) -> tuple[LongVItem | None, Rejection | None, dict[int, bytes]]:
    """A video's result files (``process_video``): the item and its keyframes, or the rejection."""
    if r.rejection:
        return None, Rejection(**r.rejection), {}
    item = LongVItem.from_dict(json.loads(Path(r.item_file).read_text()))
    kdir = Path(r.item_file).with_suffix("")
    return item, None, {int(p.stem): p.read_bytes() for p in sorted(kdir.glob("*.jpg"))}


def write_release(cfg, found, results, models: dict | None = None) -> dict:
    """build-longv-eval's release from the per-video results (``models``: the run's model-stage summary,
    `pipeline.models.usage`, when a stage ran); returns the summary."""
    items, keyframes, rejections = [], {}, list(found.rejections)
    sources = {}
    for r in results:
        item, rej, kf = load_result(r)
        if rej is not None:
            rejections.append(rej)
            continue
        items.append(item)
        keyframes[item.id] = kf
        sources[item.id] = Path(r.source)
    out = Path(cfg.out).resolve()
    meta = {
        "name": f"LongV-EVAL release ({len(items)} videos)",
        "source": cfg.videos,
        "seed": cfg.seed,
        "command": cfg.release_command(),
        "config": cfg.stored(),
        **({"models": models} if models else {}),
    }
    stats: dict = {}

    def _fill(tmp: Path) -> None:
        stats.update(fill(tmp, items, sources, keyframes, rejections, meta))
        (tmp / "config.yaml").write_text(meta["config"])

    write_atomically(out, _fill, cfg.output_guard(("the videos folder", found.folder)))
    return {"release": str(out), "candidates": len(found.videos) + len(found.rejections), **stats}
