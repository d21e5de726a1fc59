"""The build-gcot steps as plain functions; the Prefect flow only wires these.

ingest (source -> scene-graph shards on disk) -> build_shard (normalise, relation graph, chains,
verification; per shard of a few hundred images) -> model_shard (only with a model stage on: question
rewriting, answerability judge) -> finalize (splits by image, ids, cross-split check) -> write_release (atomic).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar, Literal

from pydantic import Field, model_validator
from tqdm import tqdm

from core.config import BuildConfigBase, Runner
from core.schema import SPLITS, Example, Rejection, SceneObject
from core.shards import code_digest, load_scene_graphs, write_text_atomic
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.rewriter import get_rewriter
from pipeline.chains.sampler import ChainConfig, ChainSampler
from pipeline.detect.crosscheck import check_example
from pipeline.detect.detections import load_detections
from pipeline.models import settings as m  # the model fields' types, each with its description
from pipeline.models.questions import JUDGE, REWRITE, judge_answers, rewrite_questions
from pipeline.models.settings import ModelSettings
from pipeline.models.usage import StageUsage, merge
from pipeline.normalise.graph import normalise
from pipeline.normalise.names import LEXICON_FILE
from pipeline.release.spill import SortedSpill
from pipeline.sources.base import ReadOptions, SourceError
from pipeline.sources.coco import images_folder
from pipeline.sources.images import MAX_PIXELS, PILLOW_LIMIT
from pipeline.sources.registry import SYNTHETIC_SCENES, open_source, release_file
from pipeline.verify import check_splits, verify_batch

log = logging.getLogger(__name__)

# What a GCoT shard's results depend on: editing the CLI, the flows or LongV-EVAL keeps finished shards.
GCOT_CODE = ("core", "pipeline.sources", "pipeline.normalise", "pipeline.chains", "pipeline.verify", "pipeline.wording", "pipeline.detect", "pipeline.evaluation", "pipeline.steps")


def gcot_code_digest() -> str:
    """The code's digest and the normalise lexicon's (a data file: code_digest reads .py files only)."""
    return hashlib.sha256((code_digest(*GCOT_CODE) + LEXICON_FILE.read_text()).encode()).hexdigest()[:16]


class BuildConfig(BuildConfigBase):
    """build-gcot: scene graphs in, a verified GCoT release out.

    The same model is `gcot build`'s flags, the build-gcot flow's one parameter and the config.yaml a
    release keeps (``gcot build --config releases/demo/config.yaml`` builds it again, byte for byte).
    """

    PROG: ClassVar[str] = "gcot build"
    OUT_PREFIX: ClassVar[str] = "gcot"
    KIND: ClassVar[str] = "GCoT release"

    source: str = Field("synthetic", description="synthetic (the embedded default: rendered scenes), vg:PATH (a Visual Genome folder), coco:PATH (a COCO instances JSON), images:PATH (unannotated images; the detector drafts the objects)")
    images: int | None = Field(None, ge=0, description=f"synthetic only: scenes to render (none: {SYNTHETIC_SCENES}); other sources are read whole unless --limit")
    limit: int | None = Field(None, ge=1, description="read at most this many records (images) of the source; none: all. The summary and card say how many it holds and how many were read")
    follow_symlinks: bool = Field(False, description="follow image symlinks that lead out of the source folder (refused otherwise: path_outside_source); the card's config says so")
    allow_empty: bool = Field(False, description="write a release even when the source yields no usable record (otherwise an error)")
    max_image_pixels: int = Field(MAX_PIXELS, ge=1, le=PILLOW_LIMIT, description=f"images with more pixels are rejected (image_too_large) before they are decoded; at most {PILLOW_LIMIT:,}, Pillow's own bound")
    seed: int = Field(0, description="seed of scenes, chains and splits; same inputs and seed, same bytes")
    out: str | None = Field(None, description="the release folder, replaced atomically; none: releases/<flow run name> (Prefect) or releases/gcot-<time>, never an existing release")
    overwrite: bool = Field(False, description="replace the release already at --out (only one this tool wrote: a folder it did not write, or one that is, holds or lies inside an input, is never replaced)")
    work_dir: str | None = Field(None, description="rendered scenes, scene-graph shards and finished shards' results; none: <out's parent>/.gcot-work")
    shard_size: int = Field(250, ge=1, description="images per shard: the unit of a Prefect task")
    strict: bool = Field(False, description="stop at the first bad input record instead of recording it in rejections.jsonl and going on")
    rewriter: Literal["none"] = Field("none", description="in-process question rewriter hook (pipeline/chains/rewriter.py); none keeps the templated questions (for a model's rewrite: --rewrite-questions)")
    split_ratios: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, validation, test shares, by image")
    per_type: dict[str, int] = Field(default_factory=lambda: dict(ChainConfig().per_type), description="chains to draw per image and question type (attribute, judge, object)")
    detector: str | None = Field(None, description="'default' (the shipped YOLO11n) or a path to Ultralytics detection weights: cross-checks every step box; an images:PATH source uses the default when none is given")
    name_map: dict[str, str] = Field(default_factory=dict, description='detector class -> scene-graph noun, e.g. {"person": "man"}')
    detector_conf: float = Field(0.25, ge=0, le=1, description="detection confidence threshold")
    rewrite_questions: bool = Field(False, description="MM-GCoT's last stage: --model rewrites every verified templated question into a natural one; a rewrite that drops an object, attribute or relation, gives the answer away or fails verification again is not used (the template stays; the reason is in the example's provenance and counted in the card)")
    judge_answers: bool = Field(False, description="answerability judge: --vision-model answers every question from the image alone; disagreement with the scene graph's answer is stored per example (provenance judge.outcome, judge.answer) and puts it first in the review queue")
    model: m.Model = None
    vision_model: m.VisionModel = None
    model_endpoint: m.Endpoint = None
    model_api_key_env: m.ApiKeyEnv = "OPENAI_API_KEY"
    model_concurrency: m.Concurrency = 4
    model_timeout: m.Timeout = 60.0
    model_retries: m.Retries = 2
    model_max_tokens: m.MaxTokens = 256
    model_temperature: m.Temperature = 0.0
    model_cache: m.CachePath = None
    image_storage: Literal["bytes", "reference"] = Field("bytes", description="bytes: every image stored in the Parquet shards; reference: only its path relative to the source folder, which the card names (for very large sources; load with pipeline.release.arrow.with_image_root)")
    runner: Runner = Field("threads", description="where shard tasks run: threads or processes on this machine, a Dask cluster (local, or dask_address), Ray (uv sync --extra ray); the bytes do not depend on it")
    dask_address: str | None = Field(None, description="an existing Dask scheduler (tcp://HOST:8786) or Ray cluster (ray://HOST:10001); none: a local cluster of `workers` processes")
    workers: int = Field(2, ge=1, description="threads, processes or local cluster workers")

    @model_validator(mode="after")
    def _images_for_synthetic_only(self) -> BuildConfig:
        if self.images is not None and not self.source.startswith("synthetic"):
            raise ValueError(f"--images is the number of synthetic scenes to render; to read part of {self.source} use --limit N")
        return self

    def detector_weights(self) -> str | None:
        if self.detector is None and self.source.startswith("images:"):
            return "default"
        return self.detector

    def inputs(self) -> list[tuple[str, Path]]:
        """What the build reads, as (role, path): the release may not be, hold or lie inside any of them."""
        kind, _, path = self.source.partition(":")
        found: list[tuple[str, Path]] = []
        if kind in ("vg", "images") and path:
            found.append((f"the source folder of {self.source}", Path(path)))
        elif kind == "coco" and path:
            ann = Path(path)
            found.append(("the COCO annotation file", ann))
            found += [("the COCO images folder", images_folder(ann))] if ann.is_file() else []  # no file: the source says so
        if self.detector and self.detector != "default":
            found.append(("the detector weights", Path(self.detector)))
        return found

    def results_dir(self) -> Path:
        return self.work_path() / "shard_results"

    def model_stages(self) -> tuple[str, ...]:
        """The model stages that are on, in the order they run (none by default: templates only)."""
        return tuple(name for name, on in ((REWRITE, self.rewrite_questions), (JUDGE, self.judge_answers)) if on)

    def model_settings(self) -> ModelSettings:
        return ModelSettings.of(self, self.work_path())


@dataclass
class IngestResult:
    source_name: str
    source_root: str
    release_prefix: str
    shards: list[str]  # scene-graph JSONL files
    digests: list[str]  # sha256 of each shard file (cache keys)
    images: int
    rejections: list[Rejection]
    counts: dict[str, int | None] = field(default_factory=dict)  # the source's records: held, read, rejected, ... (`SourceCounts`), and limit
    upright_root: str | None = None  # upright copies of EXIF-rotated images: the release carries these (`release_file`)

    def image_file(self, image: str) -> Path:
        """The file whose bytes the release stores for a released image path."""
        return release_file(self.source_root, self.release_prefix, image, self.upright_root)


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
    """Read the source once, check every record, write our scene graphs in shards of JSON lines.

    Every record read ends as a scene graph or a rejection (``read = images + rejected``, checked); a
    source that yields no scene graph is an error unless ``allow_empty``."""
    work = cfg.work_path()
    options = ReadOptions(limit=cfg.limit, follow_symlinks=cfg.follow_symlinks, max_pixels=cfg.max_image_pixels)
    source = open_source(cfg.source, work / "sources", images=cfg.images, seed=cfg.seed, options=options)
    key = hashlib.sha256(json.dumps([cfg.source, str(source.root), cfg.images, cfg.seed, cfg.shard_size, cfg.limit, cfg.follow_symlinks, cfg.max_image_pixels]).encode()).hexdigest()[:16]
    shard_dir, upright = work / "scene_graphs" / key, work / "upright" / key
    shard_dir.mkdir(parents=True, exist_ok=True)
    for old in shard_dir.glob("shard-*.jsonl"):
        old.unlink()
    if upright.is_dir():  # ours (work folder): copies of an earlier read must not stand in for changed files
        shutil.rmtree(upright)
    source.options = replace(source.options, upright_dir=upright)
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
    c = source.counts
    if c.read != n + c.rejected:
        raise RuntimeError(f"{source.name} reader: {c.read} records read, but {n} scene graphs + {c.rejected} rejected")
    if c.symlinks_followed:
        log.warning("%s: %d image path(s) lead out of %s through a symlink, followed (--follow-symlinks)", cfg.source, c.symlinks_followed, source.root)
    if not n and not cfg.allow_empty:
        raise SourceError(
            f"{cfg.source}: no usable record: the source holds {c.held}, {c.read} read, {c.rejected} rejected"
            + (" (the reasons are logged above)" if c.rejected else "")
            + "; --allow-empty writes a release without examples"
        )
    counts = {**c.to_dict(), "limit": cfg.limit}
    return IngestResult(source.name, str(source.root), source.release_prefix, shards, [_sha256(Path(s)) for s in shards], n, rejections, counts, str(upright) if c.transposed else None)


def shard_key(digest: str, release_prefix: str, seed: int, per_type: dict[str, int], rewriter: str, code: str, detections: str | None = None) -> str:
    """Names a shard's results: its content, the parameters, the code, and the detections used
    (their file name is their own content key)."""
    payload = json.dumps([digest, release_prefix, seed, sorted(per_type.items()), rewriter, code, Path(detections).name if detections else None])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def shard_done(out_dir: str | Path, key: str) -> bool:
    return (Path(out_dir) / f"{key}.done.json").is_file()


def _draft(g, found: dict) -> bool:
    """An image-folder source's scene graph gets the detector's objects, with measured colours."""
    if g.objects or g.image_id not in found:
        return False
    g.objects = [SceneObject(f"{g.image_id}-d{k}", d.name, d.box, (c,) if c else ()) for k, (d, c) in enumerate(found[g.image_id])]
    return True


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
        drafted = _draft(g, found)
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
        for ex in exs if g.transposed else ():
            ex.provenance["image_transposed"] = g.transposed
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


def model_shard(
    r: ShardResult, shard: str, source_root: str, release_prefix: str, settings: ModelSettings, stages: tuple[str, ...], out_dir: str | Path, detections: str | None = None
) -> tuple[ShardResult, dict]:
    """The model stages on one shard's verified examples (`pipeline.models.questions`): rewriting
    (re-verified against the shard's scene graphs) and the judge (the source's images). Returns the
    shard's results with the model's outputs, and the run's summary of its stages.

    Results go to ``out_dir/<key>.examples.jsonl`` (the shard's rejections file is the same: model
    stages reject no example); the marker is written only when every call had an answer, so a rerun
    asks again what failed (the answers it had come from the cache)."""
    key = hashlib.sha256(f"{r.key}:{settings.key(stages)}".encode()).hexdigest()[:20]
    out = Path(out_dir)
    marker = out / f"{key}.done.json"
    if marker.is_file():
        done = ShardResult(**json.loads(marker.read_text()))
        examples, _ = load_shard_result(done)
        names = {REWRITE: settings.model, JUDGE: settings.vision}
        return done, {st: StageUsage(model=names[st] or "", reused=len(examples)).count_outcomes((e.provenance for e in examples), st).to_dict() for st in stages}
    examples, _ = load_shard_result(r)
    clients: dict = {}
    if REWRITE in stages:
        found = load_detections(detections)[1] if detections else {}
        graphs = {g.image_id: g for g in load_scene_graphs(shard)}
        for g in graphs.values():
            _draft(g, found)  # the same objects build_shard verified against
        relations = {i: build_relation_graph(g) for i, g in graphs.items()}
        rewrite_questions(examples, graphs, relations, settings.client(clients=clients), settings)
    if JUDGE in stages:
        judge_answers(examples, lambda ex: release_file(source_root, release_prefix, ex.image).read_bytes(), settings.client(vision=True, clients=clients), settings)
    usage = {st: c.usage[st].count_outcomes((e.provenance for e in examples), st).to_dict() for c in clients.values() for st in stages if st in c.usage}
    ex_file = out / f"{key}.examples.jsonl"
    write_text_atomic(ex_file, "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in examples))
    result = ShardResult(key, str(ex_file), r.rejections_file, r.candidates, len(examples), r.rejected)
    if not any(u["failed"] for u in usage.values()):
        write_text_atomic(marker, json.dumps(asdict(result)))
    return result, usage


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


def _lines(path: str | Path) -> Iterator[str]:
    with open(path) as f:
        for line in f:
            if line.strip():
                yield line


@dataclass
class Finalized:
    """The shards' examples in release order, sorted on disk (``examples()`` streams them once), and
    every rejection of the shards (``rejections()``, the cross-split ones last)."""

    results: list[ShardResult]
    spill: SortedSpill
    split: Callable[[dict], str]
    leaks: set[str]
    leak_rejections: list[Rejection]
    candidates: int

    def examples(self) -> Iterator[Example]:
        """Release order (split, image, id), leaks left out, MM-GCoT ids numbered on the way."""
        n = 0
        for d in self.spill.merged():
            if d["id"] in self.leaks:
                continue
            ex = Example.from_dict(d)
            ex.split = self.split(d)
            ex.provenance["mmgcot_id"] = str(n)
            n += 1
            yield ex

    def rejections(self) -> Iterator[Rejection]:
        for r in self.results:
            for line in _lines(r.rejections_file):
                yield Rejection(**json.loads(line))
        yield from self.leak_rejections


def finalize(results: list[ShardResult], seed: int, ratios: tuple[float, ...], spill_dir: str | Path) -> Finalized:
    """Merge shards: splits by image, release order, integer MM-GCoT ids, the cross-split check.

    The release order is sorted out of core: every shard's examples go to a ``SortedSpill`` under
    ``spill_dir`` keyed by (split, image, id), stable, so the order is the one sorting them all in
    memory gives, with a bounded buffer. Splits hash (seed, source, image), so an image can sit in two
    splits only when two sources share its id; only then are the examples read again for the check.
    """
    order = {s: i for i, s in enumerate(SPLITS)}

    def split(d: dict) -> str:
        return split_of(str(d["image_id"]), d.get("source", ""), seed, ratios)

    def key(d: dict) -> tuple:
        return (order.get(split(d), 9), _natural(str(d["image_id"])), d["id"])

    spill = SortedSpill(spill_dir, key)
    sources: set[str] = set()
    for r in results:
        n = 0
        for line in _lines(r.examples_file):
            d = json.loads(line)
            spill.add(d, line)
            sources.add(d.get("source", ""))
            n += 1
        rejected = sum(1 for _ in _lines(r.rejections_file))
        if n != r.examples or rejected != r.rejected:
            raise RuntimeError(f"shard {r.key}: files hold {n} examples / {rejected} rejections, the marker says {r.examples} / {r.rejected}")
    leak_rejections = _split_leaks(results, split, key) if len(sources) > 1 else []
    return Finalized(results, spill, split, {r.id for r in leak_rejections}, leak_rejections, sum(r.candidates for r in results))


def _split_leaks(results: list[ShardResult], split: Callable[[dict], str], key: Callable[[dict], tuple]) -> list[Rejection]:
    """check_splits over the examples of the images found in two splits, in release order."""
    splits: dict[str, set[str]] = {}
    for r in results:
        for line in _lines(r.examples_file):
            d = json.loads(line)
            splits.setdefault(str(d["image_id"]), set()).add(split(d))
    twice = {i for i, s in splits.items() if len(s) > 1}
    seen = []
    for r in results:
        for line in _lines(r.examples_file):
            d = json.loads(line)
            if str(d["image_id"]) in twice:
                seen.append((key(d), len(seen), SimpleNamespace(id=d["id"], image_id=str(d["image_id"]), split=split(d))))
    return check_splits(e for _, _, e in sorted(seen, key=lambda t: t[:2]))


def _natural(image_id: str) -> tuple:
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def summary(stats: dict, out: str) -> dict:
    """The build's counts from the card's numbers (``data_cards.stats``)."""
    per_split_type = {sp: {t: n for t, n in sorted(c.items()) if n} for sp, c in sorted(stats["per_split_type"].items())}
    per_type: dict[str, int] = {}
    for c in per_split_type.values():
        for t, n in c.items():
            per_type[t] = per_type.get(t, 0) + n
    return {
        "release": str(Path(out).resolve()),
        "examples": stats["examples"],
        "images": stats["images"],
        "per_type": dict(sorted(per_type.items())),
        "per_split": {sp: sum(c.values()) for sp, c in per_split_type.items()},
        "per_split_type": per_split_type,
        "candidates": stats["candidates"],
        "rejected": stats["rejected"],
        "source_rejections": stats["source_rejections"],
    }


def run_plain(cfg: BuildConfig) -> dict:
    """The whole build as plain function calls, no Prefect (for tests and the overhead benchmark)."""
    cfg = cfg.with_out()
    cfg.check_output()
    check_models(cfg)
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
    models = None
    if cfg.model_stages():
        settings, stages = cfg.model_settings(), cfg.model_stages()
        done = [
            model_shard(r, s, ing.source_root, ing.release_prefix, settings, stages, cfg.results_dir(), dets)
            for r, s, dets in tqdm(list(zip(results, ing.shards, detections)), desc="model stages", unit="shard")
        ]
        results, models = [r for r, _ in done], merge([u for _, u in done])
    return release(cfg, ing, results, models)


def check_models(cfg: BuildConfig) -> None:
    """Before any work: the model stages that are on have their models (and a server that answers)."""
    cfg.model_settings().check({"rewrite_questions": cfg.rewrite_questions, "judge_answers": cfg.judge_answers}, vision_stages=("judge_answers",))


def release(cfg: BuildConfig, ing: IngestResult, results: list[ShardResult], models: dict | None = None) -> dict:
    """Finalize the shards' results and write the release, streamed (with the model stages' summary,
    when they ran); returns the summary. The sorted runs go to a folder of the work folder's own,
    removed when the release is written or has failed."""
    from pipeline.release.writer import write_release

    work = cfg.work_path()
    work.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="release-spill-", dir=work))
    try:
        fin = finalize(results, cfg.seed, cfg.split_ratios, spill / "order")
        stats = write_release(fin.examples(), itertools.chain(ing.rejections, fin.rejections()), fin.candidates, cfg, ing, spill, models)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return {**summary(stats, cfg.out), "records": stats["records"], **({"models": models} if models else {})}
