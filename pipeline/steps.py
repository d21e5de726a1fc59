"""The build-gcot steps as plain functions; the Prefect flow only wires these.

ingest (source -> scene-graph shards on disk) -> build_shard (normalise, relation graph, chains,
verification; per shard of a few hundred images) -> finalize (splits by image, ids, cross-split check) ->
write_release (atomic).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from tqdm import tqdm

from core.config import PLACEMENT, Config, Runner, yaml_text
from core.schema import SPLITS, Example, Rejection, SceneObject
from core.shards import code_digest, load_scene_graphs, write_text_atomic
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.rewriter import get_rewriter
from pipeline.chains.sampler import ChainConfig, ChainSampler
from pipeline.detect.crosscheck import check_example
from pipeline.detect.detections import load_detections
from pipeline.normalise.graph import normalise
from pipeline.normalise.names import LEXICON_FILE
from pipeline.sources.base import SourceError
from pipeline.sources.registry import open_source
from pipeline.verify import check_splits, verify_batch

log = logging.getLogger(__name__)

# What a GCoT shard's results depend on: editing the CLI, the flows or LongV-EVAL keeps finished shards.
GCOT_CODE = ("core", "pipeline.sources", "pipeline.normalise", "pipeline.chains", "pipeline.verify", "pipeline.detect", "pipeline.evaluation", "pipeline.steps")


def gcot_code_digest() -> str:
    """The code's digest and the normalise lexicon's (a data file: code_digest reads .py files only)."""
    return hashlib.sha256((code_digest(*GCOT_CODE) + LEXICON_FILE.read_text()).encode()).hexdigest()[:16]


class BuildConfig(Config):
    """build-gcot: scene graphs in, a verified GCoT release out.

    The same model is `gcot build`'s flags, the build-gcot flow's one parameter and the config.yaml a
    release keeps (``gcot build --config releases/demo/config.yaml`` builds it again, byte for byte).
    """

    source: str = Field("synthetic", description="synthetic (the embedded default: rendered scenes), vg:PATH (a Visual Genome folder), coco:PATH (a COCO instances JSON), images:PATH (unannotated images; the detector drafts the objects)")
    images: int = Field(300, ge=0, description="synthetic: scenes to render; vg/coco: read at most this many images, 0 for all")
    seed: int = Field(0, description="seed of scenes, chains and splits; same inputs and seed, same bytes")
    out: str | None = Field(None, description="the release folder, replaced atomically; none: releases/<flow run name> (Prefect) or releases/gcot-<time>, never an existing release")
    work_dir: str | None = Field(None, description="rendered scenes, scene-graph shards and finished shards' results; none: <out's parent>/.gcot-work")
    shard_size: int = Field(250, ge=1, description="images per shard: the unit of a Prefect task")
    strict: bool = Field(False, description="stop at the first bad input record instead of recording it in rejections.jsonl and going on")
    rewriter: Literal["none"] = Field("none", description="question rewriter (MM-GCoT's LLM rewrite step); none keeps the templated questions")
    split_ratios: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, validation, test shares, by image")
    per_type: dict[str, int] = Field(default_factory=lambda: dict(ChainConfig().per_type), description="chains to draw per image and question type (attribute, judge, object)")
    detector: str | None = Field(None, description="'default' (the shipped YOLO11n) or a path to Ultralytics detection weights: cross-checks every step box; an images:PATH source uses the default when none is given")
    name_map: dict[str, str] = Field(default_factory=dict, description='detector class -> scene-graph noun, e.g. {"person": "man"}')
    detector_conf: float = Field(0.25, ge=0, le=1, description="detection confidence threshold")
    runner: Runner = Field("threads", description="where shard tasks run: threads or processes on this machine, a Dask cluster (local, or dask_address), Ray (uv sync --extra ray); the bytes do not depend on it")
    dask_address: str | None = Field(None, description="an existing Dask scheduler (tcp://HOST:8786) or Ray cluster (ray://HOST:10001); none: a local cluster of `workers` processes")
    workers: int = Field(2, ge=1, description="threads, processes or local cluster workers")

    def detector_weights(self) -> str | None:
        if self.detector is None and self.source.startswith("images:"):
            return "default"
        return self.detector

    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.out).resolve().parent / ".gcot-work"

    def results_dir(self) -> Path:
        return self.work_path() / "shard_results"

    def with_out(self, run_name: str | None = None) -> BuildConfig:
        """This config with ``out`` filled in: a new folder named after the run (a flow run's name, else
        the time), so that a run given no ``out`` never writes over a release."""
        if self.out:
            return self
        import time

        return self.model_copy(update={"out": f"releases/{run_name or time.strftime('gcot-%Y%m%d-%H%M%S')}"})

    def released(self) -> dict:
        """What a release keeps of its config: the folder by its name, and none of the fields that say where
        the work ran (work folder, runner, cluster, workers: the bytes do not depend on them)."""
        data = self.model_dump(mode="json", exclude={"work_dir", *PLACEMENT})
        return {**data, "out": Path(self.out).name}

    def stored(self) -> str:
        """The config.yaml a release keeps (`released`); ``--config`` takes it back."""
        return yaml_text(self.released(), f"gcot build --config {Path(self.out).name}/config.yaml")

    def release_command(self) -> str:
        """The exact command of what was released (no placement flags)."""
        return type(self)(**self.released()).command_line("gcot build")


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
    """What one shard produced, on disk: examples and rejections as JSON lines, then a marker."""

    key: str  # content key: shard digest + parameters + code; names the files
    examples_file: str
    rejections_file: str
    candidates: int
    examples: int
    rejected: int
    counts: dict[str, int] | None = None  # what the normalise step changed, region phrases by outcome


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


def shard_key(digest: str, release_prefix: str, seed: int, per_type: dict[str, int], rewriter: str, code: str, detections: str | None = None) -> str:
    """Names a shard's results: its content, the parameters, the code, and the detections used
    (their file name is their own content key)."""
    payload = json.dumps([digest, release_prefix, seed, sorted(per_type.items()), rewriter, code, Path(detections).name if detections else None])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def shard_done(out_dir: str | Path, key: str) -> bool:
    return (Path(out_dir) / f"{key}.done.json").is_file()


def build_shard(
    shard: str,
    digest: str,
    release_prefix: str,
    seed: int,
    per_type: dict[str, int],
    rewriter: str,
    out_dir: str | Path,
    code: str | None = None,
    detections: str | None = None,
) -> ShardResult:
    """Relation graphs, chain candidates, verification (and the detector cross-check when the
    shard's ``detections`` are given) for every image of one shard.

    Results go to ``out_dir/<key>.{examples,rejections}.jsonl``; the ``<key>.done.json`` marker is
    written last, so a shard that finished is never redone and one cut off midway is redone whole.
    """
    out = Path(out_dir)
    key = shard_key(digest, release_prefix, seed, per_type, rewriter, code or gcot_code_digest(), detections)
    marker = out / f"{key}.done.json"
    if marker.is_file():
        return ShardResult(**json.loads(marker.read_text()))
    detector, found = load_detections(detections) if detections else ("", {})
    sampler = ChainSampler(ChainConfig(per_type=dict(per_type)), get_rewriter(rewriter))
    graphs, relations, candidates, rejections, counts = {}, {}, [], [], Counter()
    for g in load_scene_graphs(shard):
        drafted = not g.objects and g.image_id in found
        if drafted:  # an image-folder source: the detector's objects, with measured colours
            g.objects = [SceneObject(f"{g.image_id}-d{k}", d.name, d.box, (c,) if c else ()) for k, (d, c) in enumerate(found[g.image_id])]
        norm = normalise(g)
        g = norm.graph
        rejections += norm.records
        counts.update(norm.counts)
        rg = build_relation_graph(g)
        graphs[g.image_id], relations[g.image_id] = g, rg
        image_path = f"{release_prefix}/{g.image}" if release_prefix else g.image
        exs, rej = sampler.sample(g, rg, image_path, seed)
        counts.update(sampler.last_region_counts)
        if not exs and not rej:  # nothing to ask of this image: say so rather than drop it silently
            why = f"{len(g.objects)} object(s)" + (" detected" if drafted or g.source == "images" else "") + ", no relation path of 2 or more"
            rejections.append(Rejection("scene", g.image_id, "no_chain", why, file=g.image))
        for ex in exs if drafted else ():
            ex.provenance["drafted_by"] = f"detector:{detector}"
        candidates += exs
        rejections += rej
    n_candidates = len(candidates) + sum(r.is_example for r in rejections)  # formed + rejected while forming
    kept, rejected = verify_batch(candidates, graphs, relations)
    rejections += rejected
    for ex in kept if found else ():
        ex.detector = check_example(ex, [d for d, _ in found.get(ex.image_id, [])], detector)
    out.mkdir(parents=True, exist_ok=True)
    ex_file, rj_file = out / f"{key}.examples.jsonl", out / f"{key}.rejections.jsonl"
    write_text_atomic(ex_file, "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in kept))
    write_text_atomic(rj_file, "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejections))
    result = ShardResult(key, str(ex_file), str(rj_file), n_candidates, len(kept), len(rejections), dict(sorted(counts.items())))
    write_text_atomic(marker, json.dumps(asdict(result)))
    return result


def load_shard_result(r: ShardResult) -> tuple[list[Example], list[Rejection]]:
    examples = [Example.from_dict(json.loads(line)) for line in Path(r.examples_file).read_text().splitlines() if line]
    rejections = [Rejection(**json.loads(line)) for line in Path(r.rejections_file).read_text().splitlines() if line]
    if len(examples) != r.examples or len(rejections) != r.rejected:
        raise RuntimeError(f"shard {r.key}: files hold {len(examples)} examples / {len(rejections)} rejections, the marker says {r.examples} / {r.rejected}")
    return examples, rejections


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
    examples, rejections = [], []
    for r in results:
        e, j = load_shard_result(r)
        examples += e
        rejections += j
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
        "per_split_type": {sp: dict(sorted(Counter(e.type for e in examples if e.split == sp).items())) for sp in sorted({e.split for e in examples})},
        "candidates": candidates,
        "rejected": sum(1 for r in rejections if r.is_example),
        "source_rejections": sum(1 for r in rejections if not r.is_example),
    }


def run_plain(cfg: BuildConfig) -> dict:
    """The whole build as plain function calls, no Prefect (for tests and the overhead benchmark)."""
    cfg = cfg.with_out()
    ing = ingest(cfg)
    detections = [None] * len(ing.shards)
    weights = cfg.detector_weights()
    if weights:
        from pipeline.detect.detections import detect_shard

        detections = [
            detect_shard(s, d, ing.source_root, weights, cfg.name_map, cfg.detector_conf, cfg.results_dir())
            for s, d in tqdm(list(zip(ing.shards, ing.digests)), desc="detect", unit="shard")
        ]
    results = [
        build_shard(s, d, ing.release_prefix, cfg.seed, cfg.per_type, cfg.rewriter, cfg.results_dir(), detections=dets)
        for s, d, dets in tqdm(list(zip(ing.shards, ing.digests, detections)), desc="build shards", unit="shard")
    ]
    return release(cfg, ing, results)


def release(cfg: BuildConfig, ing: IngestResult, results: list[ShardResult]) -> dict:
    """Finalize the shards' results and write the release; returns the summary."""
    from pipeline.release.writer import write_release

    examples, rejections, candidates = finalize(results, cfg.seed, cfg.split_ratios)
    rejections = ing.rejections + rejections
    write_release(examples, rejections, candidates, cfg, ing)
    return summary(examples, rejections, candidates, cfg.out)
