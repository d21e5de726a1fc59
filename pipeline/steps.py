"""The build-gcot steps as plain functions; the Prefect flow only wires these.

ingest (source -> scene-graph shards on disk) -> build_shard (relation graph, chains, verification;
per shard of a few hundred images) -> finalize (splits by image, ids, cross-split check) ->
write_release (atomic).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline.chains.relations import build_relation_graph
from pipeline.chains.rewriter import get_rewriter
from pipeline.chains.sampler import ChainConfig, ChainSampler
from pipeline.schema import SPLITS, Example, Rejection, SceneGraph
from pipeline.sources.base import SourceError
from pipeline.sources.registry import open_source
from pipeline.verify import check_splits, verify_batch

log = logging.getLogger(__name__)


@dataclass
class BuildConfig:
    source: str = "synthetic"
    images: int = 300  # synthetic: scenes to render; vg/coco: at most this many images (0 = all)
    seed: int = 0
    out: str = "releases/demo"
    work_dir: str | None = None  # scene-graph shards and rendered scenes; default <out parent>/.gcot-work
    shard_size: int = 250  # images per shard: the unit of a Prefect task
    strict: bool = False  # stop at the first bad input record instead of recording it
    rewriter: str = "none"
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, validation, test, by image
    per_type: dict[str, int] = field(default_factory=lambda: dict(ChainConfig().per_type))

    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.out).resolve().parent / ".gcot-work"


@dataclass
class IngestResult:
    source_name: str
    source_root: str
    release_prefix: str
    shards: list[str]  # scene-graph JSONL files
    digests: list[str]  # sha256 of each shard file (cache keys)
    images: int
    rejections: list[Rejection]


@dataclass
class ShardResult:
    examples: list[Example]
    rejections: list[Rejection]
    candidates: int


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest(cfg: BuildConfig) -> IngestResult:
    """Read the source once, check every record, write our scene graphs in shards of JSON lines."""
    work = cfg.work_path()
    source = open_source(cfg.source, work / "sources", images=cfg.images, seed=cfg.seed, limit=(cfg.images or None) if cfg.source != "synthetic" else None)
    key = hashlib.sha256(json.dumps([cfg.source, str(source.root), cfg.images, cfg.seed, cfg.shard_size]).encode()).hexdigest()[:16]
    shard_dir = work / "scene_graphs" / key
    shard_dir.mkdir(parents=True, exist_ok=True)
    for old in shard_dir.glob("shard-*.jsonl"):
        old.unlink()
    shards, rejections, buf, n = [], [], [], 0

    def flush():
        path = shard_dir / f"shard-{len(shards):05d}.jsonl"
        path.write_text("".join(json.dumps(g.to_dict(), sort_keys=True) + "\n" for g in buf))
        shards.append(str(path))
        buf.clear()

    for rec in tqdm(source.iter_records(), desc=f"read {source.name}", unit="img"):
        if isinstance(rec, Rejection):
            if cfg.strict:
                raise SourceError(f"{rec.file}: record {rec.id}: {rec.rule}: {rec.detail}")
            log.warning("%s: record %s rejected (%s): %s", rec.file, rec.id, rec.rule, rec.detail)
            rejections.append(rec)
            continue
        buf.append(rec)
        n += 1
        if len(buf) >= cfg.shard_size:
            flush()
    if buf:
        flush()
    return IngestResult(source.name, str(source.root), source.release_prefix, shards, [_sha256(Path(s)) for s in shards], n, rejections)


def load_shard(path: str | Path) -> list[SceneGraph]:
    return [SceneGraph.from_dict(json.loads(line)) for line in Path(path).read_text().splitlines() if line]


def build_shard(shard: str, release_prefix: str, seed: int, per_type: dict[str, int], rewriter: str = "none") -> ShardResult:
    """Relation graphs, chain candidates and verification for every image of one shard."""
    sampler = ChainSampler(ChainConfig(per_type=dict(per_type)), get_rewriter(rewriter))
    graphs, relations, candidates, rejections = {}, {}, [], []
    for g in load_shard(shard):
        rg = build_relation_graph(g)
        graphs[g.image_id], relations[g.image_id] = g, rg
        image_path = f"{release_prefix}/{g.image}" if release_prefix else g.image
        exs, rej = sampler.sample(g, rg, image_path, seed)
        candidates += exs
        rejections += rej
    kept, rejected = verify_batch(candidates, graphs, relations)
    return ShardResult(kept, rejections + rejected, len(candidates) + len(rejections))


def split_of(image_id: str, source: str, seed: int, ratios: tuple[float, ...]) -> str:
    """Deterministic split by image: a hash of (seed, source, image) against cumulative ratios."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{source}:{image_id}".encode(), digest_size=8).digest(), "big") / 2**64
    acc = 0.0
    for name, r in zip(SPLITS, ratios, strict=True):
        acc += r
        if h < acc:
            return name
    return SPLITS[-1]


def finalize(results: list[ShardResult], seed: int, ratios: tuple[float, ...]) -> tuple[list[Example], list[Rejection], int]:
    """Merge shards: splits by image, release order, integer MM-GCoT ids, the cross-split check."""
    examples = [ex for r in results for ex in r.examples]
    rejections = [rj for r in results for rj in r.rejections]
    candidates = sum(r.candidates for r in results)
    for ex in examples:
        ex.split = split_of(ex.image_id, ex.source, seed, ratios)
    order = {s: i for i, s in enumerate(SPLITS)}
    examples.sort(key=lambda e: (order.get(e.split, 9), _natural(e.image_id), e.id))
    leaks = {r.id for r in check_splits(examples)}
    rejections += [r for r in check_splits(examples)]
    examples = [e for e in examples if e.id not in leaks]
    for i, ex in enumerate(examples):
        ex.provenance["mmgcot_id"] = str(i)
    return examples, rejections, candidates


def _natural(image_id: str) -> tuple:
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def summary(examples: list[Example], rejections: list[Rejection], candidates: int, out: str) -> dict:
    from collections import Counter

    return {
        "release": str(Path(out).resolve()),
        "examples": len(examples),
        "images": len({e.image_id for e in examples}),
        "per_type": dict(sorted(Counter(e.type for e in examples).items())),
        "per_split": dict(sorted(Counter(e.split for e in examples).items())),
        "candidates": candidates,
        "rejected": sum(1 for r in rejections if r.stage != "source"),
        "source_rejections": sum(1 for r in rejections if r.stage == "source"),
    }


def run_plain(cfg: BuildConfig) -> dict:
    """The whole build as plain function calls, no Prefect (for tests and the overhead benchmark)."""
    from pipeline.release.writer import write_release

    ing = ingest(cfg)
    results = [build_shard(s, ing.release_prefix, cfg.seed, cfg.per_type, cfg.rewriter) for s in tqdm(ing.shards, desc="build shards", unit="shard")]
    examples, rejections, candidates = finalize(results, cfg.seed, cfg.split_ratios)
    write_release(examples, ing.rejections + rejections, candidates, cfg, ing)
    return summary(examples, ing.rejections + rejections, candidates, cfg.out)


def config_dict(cfg: BuildConfig) -> dict:
    return asdict(cfg)
