"""The build-longv-eval steps as plain functions; the Prefect flow only wires these.

discover (videos folder, or the synthetic default rendered into the work folder; bad files
recorded) -> process_video (one pass: keyframe clip cutting on every frame, detection + tracking
every `stride`-th frame, camera motion; then caption and prompts; results written to files keyed
by the video's bytes, the parameters and the code) -> model_video (only with a model stage on:
the caption from the keyframes, the prompts from the caption) -> release (atomic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar, Literal

import cv2
from pydantic import Field
from threadpoolctl import threadpool_limits

from core.config import BuildConfigBase, Runner
from core.schema import EDIT_KINDS, LongVItem, Rejection
from core.shards import code_digest
from pipeline.chains.rewriter import get_rewriter
from pipeline.longv import prompts
from pipeline.longv.keyframes import ClipCutter
from pipeline.longv.synthetic import VideoSpec, write_synthetic_videos
from pipeline.longv.tracks import GlobalMotion, SubjectTracker
from pipeline.longv.video import VIDEO_EXTENSIONS, VideoError, frames, probe, read_frames
from pipeline.models import settings as m  # the model fields' types, each with its description
from pipeline.models.settings import ModelSettings
from pipeline.models.usage import StageUsage, merge

log = logging.getLogger(__name__)

# What a video's results depend on (the rewriter and the synthetic renderer are borrowed from GCoT building).
LONGV_CODE = ("core", "pipeline.longv", "pipeline.detect", "pipeline.chains.rewriter", "pipeline.sources.synthetic", "pipeline.wording", "pipeline.evaluation.strict")
MODEL_STAGES = ("caption", "prompts")


def longv_code_digest() -> str:
    return code_digest(*LONGV_CODE)
KEYFRAME_WIDTH = 320  # keyframe JPEGs in the release (for review and the card)


class LongVConfig(BuildConfigBase):
    """build-longv-eval: videos in, keyframes, tracks and three edit prompts a video out, released.

    `gcot build-longv`'s flags, the build-longv-eval flow's one parameter, and the config.yaml a release keeps.
    """

    PROG: ClassVar[str] = "gcot build-longv"
    OUT_PREFIX: ClassVar[str] = "longv"
    KIND: ClassVar[str] = "LongV-EVAL release"

    videos: str = Field("synthetic", description="a folder of videos, or synthetic (the embedded default: rendered one-minute videos)")
    count: int = Field(3, ge=1, description="synthetic: videos to render")
    seconds: float = Field(60.0, gt=0, description="synthetic: length of each video in seconds")
    seed: int = Field(0, description="seed of the synthetic videos and the prompts; same inputs and seed, same bytes")
    out: str | None = Field(None, description="the release folder, replaced atomically; none: releases/<flow run name> (Prefect) or releases/longv-<time>")
    overwrite: bool = Field(False, description="replace the release already at --out (only one this tool wrote: a folder it did not write, or one that is, holds or lies inside an input, is never replaced)")
    work_dir: str | None = Field(None, description="rendered videos and per-video results; none: <out's parent>/.gcot-work")
    stride: int = Field(8, ge=1, description="detect and track on every stride-th frame (keyframe selection sees every frame); 8 is 3 a second at 24 fps")
    detector: str = Field("default", description="'default' (the shipped YOLO11n, synthetic shapes) or a path to Ultralytics detection weights")
    name_map: dict[str, str] = Field(default_factory=dict, description='detector class -> noun, e.g. {"person": "man"}')
    detector_conf: float = Field(0.25, ge=0, le=1, description="detection confidence threshold")
    rewriter: Literal["none"] = Field("none", description="in-process prompt rewriter hook (the build-gcot rewriter interface); none keeps the templates (for a model: --caption-videos, --write-prompts)")
    caption_videos: bool = Field(False, description="--vision-model captions each video in detail from its keyframes (at most 8, evenly spread), as LongV-EVAL's prompts were made; a caption that does not name the main subject keeps the template's")
    write_prompts: bool = Field(False, description="--model writes the three edit prompts from the caption (the edits stay the template's plan: new subject, new background, style); a prompt that breaks the published form (<= 15 words, one line, the subject and style named) keeps its template, the reason counted in the card")
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
    strict: bool = Field(False, description="stop at the first bad video instead of recording it and going on")
    runner: Runner = Field("threads", description="where video tasks run: threads, processes, a Dask cluster or Ray; the bytes do not depend on it")
    dask_address: str | None = Field(None, description="an existing Dask scheduler (tcp://HOST:8786) or Ray cluster; none: a local cluster of `workers` processes")
    workers: int = Field(2, ge=1, description="threads, processes or local cluster workers")

    def results_dir(self) -> Path:
        return self.work_path() / "longv_results"

    def inputs(self) -> list[tuple[str, Path]]:
        """What the build reads, as (role, path): the release may not be, hold or lie inside any of them."""
        found = [] if self.videos == "synthetic" else [("the videos folder", Path(self.videos))]
        return found + ([] if self.detector == "default" else [("the detector weights", Path(self.detector))])

    def model_stages(self) -> tuple[str, ...]:
        """The model stages that are on, in the order they run (none by default: templates only)."""
        return tuple(name for name, on in zip(MODEL_STAGES, (self.caption_videos, self.write_prompts)) if on)

    def model_settings(self) -> ModelSettings:
        return ModelSettings.of(self, self.work_path())

    def check_models(self) -> None:
        """Before any work: the stages that are on have their models (and a server that answers)."""
        self.model_settings().check({"caption_videos": self.caption_videos, "write_prompts": self.write_prompts}, vision_stages=("caption_videos",))

    def weights(self) -> str:
        from pipeline.detect.detector import DEFAULT_WEIGHTS

        return str(DEFAULT_WEIGHTS) if self.detector == "default" else self.detector

    def make_detector(self):
        from pipeline.detect.detector import Detector

        return Detector(self.weights(), name_map=self.name_map, conf=self.detector_conf)

    def params(self) -> dict:
        """What a video's result depends on besides its bytes and the code."""
        from pipeline.detect.detector import file_digest

        w = Path(self.weights())
        return {
            "seed": self.seed, "stride": self.stride, "detector": f"{w.name}@{file_digest(w)}" if w.is_file() else str(w),
            "name_map": dict(sorted(self.name_map.items())), "conf": self.detector_conf, "rewriter": self.rewriter,
        }


@dataclass
class Discovered:
    folder: str
    videos: list[str]  # paths that look like videos, in name order
    ids: list[str]
    rejections: list[Rejection]
    truth: str | None = None  # synthetic: the ground-truth folder


@dataclass
class VideoResult:
    """One video's outcome on disk: the item (JSON) and its keyframe JPEGs, or a rejection."""

    key: str
    id: str
    source: str
    item_file: str | None = None
    rejection: dict | None = None


_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def video_id(path: Path) -> str:
    return _SAFE_ID.sub("_", path.stem).strip("_") or hashlib.sha256(path.name.encode()).hexdigest()[:10]


def discover(cfg: LongVConfig) -> Discovered:
    """The videos to process; files that are not videos or whose id repeats are recorded, not fatal."""
    truth = None
    if cfg.videos == "synthetic":
        root = write_synthetic_videos(cfg.work_path() / f"longv-synthetic-s{cfg.seed}-n{cfg.count}-t{cfg.seconds:g}", cfg.count, cfg.seed, VideoSpec(seconds=cfg.seconds))
        folder, truth = root / "videos", str(root / "truth")
    else:
        folder = Path(cfg.videos)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder of videos")
        if not any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir()):
            raise VideoError(folder, "empty_folder", "the folder holds no file: nothing to build a release from (give the folder of your videos)")
    videos, ids, rejections, seen = [], [], [], {}
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            continue
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            r = Rejection("source", path.name, "not_a_video", f"extension {path.suffix or '(none)'!r} is not a video's ({', '.join(VIDEO_EXTENSIONS)})", str(path))
        elif (vid := video_id(path)) in seen:
            r = Rejection("source", path.name, "duplicate_id", f"id {vid!r} is already taken by {seen[vid]}", str(path))
        else:
            seen[vid] = path.name
            videos.append(str(path))
            ids.append(vid)
            continue
        if cfg.strict:
            raise VideoError(path, r.rule, r.detail)
        log.warning("%s: %s (skipped)", path, r.detail)
        rejections.append(r)
    return Discovered(str(folder), videos, ids, rejections, truth)


def result_key(path: str | Path, params: dict, code: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(code.encode())
    return h.hexdigest()[:24]


def analyse(path: str | Path, vid: str, cfg: LongVConfig, detector) -> tuple[LongVItem, dict[int, bytes]]:
    """One decoding pass over the video; returns the item and its keyframes as JPEG bytes."""
    info = probe(path)
    cutter = ClipCutter(info.width, info.height)
    tracker, motion = SubjectTracker(detector), GlobalMotion()
    batch: list = []
    n = 0
    # numpy's BLAS on one thread: a 576 x 48 matmul a frame gains nothing from threads and they
    # contend with the detector's (torch keeps its own pool)
    with threadpool_limits(1, "blas"):
        for i, bgr in frames(path):
            cutter.push(i, bgr)
            n = i + 1
            if i % cfg.stride == 0:
                motion.feed(i, bgr)
                batch.append((i, bgr))
                if len(batch) >= detector.batch:
                    tracker.feed(batch)
                    batch = []
        tracker.feed(batch)
    if n == 0:
        raise VideoError(path, "no_frames", "no frame decodes (zero frames)")
    clips = cutter.clips()
    subjects = tracker.subjects()
    camera = motion.camera(clips, n)
    keyframes = read_frames(path, [c.keyframe for c in clips])
    bg = prompts.background_colour([keyframes[c.keyframe][..., ::-1] for c in clips if c.keyframe in keyframes], [c.end - c.start + 1 for c in clips if c.keyframe in keyframes])
    drafted = prompts.draft(vid, cfg.seed, subjects, bg)
    item = LongVItem(
        id=vid, video=f"videos/{vid}.mp4", source_file=Path(path).name, duration=round(n / info.fps, 3), fps=round(info.fps, 3),
        frames=n, width=info.width, height=info.height, clips=clips, subjects=subjects, camera=camera,
        caption=prompts.caption(subjects, bg, camera, len(clips)), **drafted,
        provenance={"drafted_by": detector.version, "stride": str(cfg.stride), "keyframes": "adaflow-greedy-cut/patch-colour-48"},
    )
    if not subjects:
        item.provenance["note"] = "no subject detected: generic prompts, review first"
    rewriter = get_rewriter(cfg.rewriter)
    if rewriter.name != "none":
        for kind in EDIT_KINDS:
            setattr(item, kind, rewriter.rewrite(item.prompt(kind), item).strip())
        item.provenance["rewriter"] = rewriter.name
    jpegs = {}
    for k, bgr in keyframes.items():
        h, w = bgr.shape[:2]
        small = cv2.resize(bgr, (KEYFRAME_WIDTH, max(1, round(KEYFRAME_WIDTH * h / w))), interpolation=cv2.INTER_AREA)
        jpegs[k] = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()
    return item, jpegs


def process_video(path: str, vid: str, cfg: LongVConfig, out_dir: str, code: str, get_detector: Callable | None = None) -> VideoResult:
    """Analyse one video into ``out_dir/<key>.json`` (+ ``<key>/<frame>.jpg``); a bad video gives a
    rejection (or raises, when strict). A finished key is read, not redone, and then no detector is
    asked of ``get_detector`` (default: a new one from the config)."""
    key = result_key(path, cfg.params(), code)
    out = Path(out_dir)
    item_file = out / f"{key}.json"
    if item_file.is_file():
        return VideoResult(key, vid, path, item_file=str(item_file))
    try:
        item, jpegs = analyse(path, vid, cfg, (get_detector or cfg.make_detector)())
    except (VideoError, cv2.error) as e:
        rule, detail = (e.rule, e.detail) if isinstance(e, VideoError) else ("unreadable_video", f"OpenCV: {e}")
        if cfg.strict:
            raise
        log.warning("%s: %s (skipped)", path, detail)
        return VideoResult(key, vid, path, rejection=Rejection("source", Path(path).name, rule, detail, path).to_dict())
    failures = prompts.prompt_failures(item)
    if failures:
        return VideoResult(key, vid, path, rejection=Rejection("verify", vid, failures[0][0], failures[0][1], path).to_dict())
    kdir = out / key
    kdir.mkdir(parents=True, exist_ok=True)
    for k, data in jpegs.items():
        (kdir / f"{k:06d}.jpg").write_bytes(data)
    tmp = item_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(item.to_dict(), sort_keys=True))
    tmp.rename(item_file)  # the marker: a result exists only once it is whole
    return VideoResult(key, vid, path, item_file=str(item_file))


def model_video(r: VideoResult, cfg: LongVConfig, out_dir: str) -> tuple[VideoResult, dict]:
    """The model stages on one analysed video (`pipeline.longv.captions`): its caption from the
    keyframes, then its prompts from the caption. Returns the result with the model's outputs and the
    run's summary of its stages.

    The result is ``out_dir/<key>.json`` (+ its keyframes) when every call had an answer; when one
    failed it is ``<key>.unfinished.json``, which a rerun does not trust: it asks again what failed
    (the answers it had come from the cache)."""
    from pipeline.longv import captions
    from pipeline.longv.release import load_result

    stages = cfg.model_stages()
    if r.rejection or not stages:
        return r, {}
    settings = cfg.model_settings()
    key = hashlib.sha256(f"{r.key}:{settings.key(stages, longv_code_digest())}".encode()).hexdigest()[:24]
    out = Path(out_dir)
    done = out / f"{key}.json"
    if done.is_file():
        item = LongVItem.from_dict(json.loads(done.read_text()))
        names = {"caption": settings.vision, "prompts": settings.model}
        return VideoResult(key, r.id, r.source, item_file=str(done)), {st: _outcomes(StageUsage(model=names[st] or "", reused=1), item, st).to_dict() for st in stages}
    item, _, jpegs = load_result(r)
    clients: dict = {}
    if "caption" in stages:
        captions.write_caption(item, jpegs, settings.client(vision=True, clients=clients), settings)
    if "prompts" in stages:
        captions.write_prompts(item, prompts.plan(item.id, cfg.seed, item.subjects), settings.client(clients=clients), settings)
    usage = {st: _outcomes(c.usage[st], item, st).to_dict() for c in clients.values() for st in stages if st in c.usage}
    item_file = done if not any(u["failed"] for u in usage.values()) else out / f"{key}.unfinished.json"
    kdir = item_file.with_suffix("")
    kdir.mkdir(parents=True, exist_ok=True)
    for k, data in jpegs.items():
        (kdir / f"{k:06d}.jpg").write_bytes(data)
    tmp = item_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(item.to_dict(), sort_keys=True))
    tmp.rename(item_file)
    if item_file == done:  # an earlier run's unfinished result is now superseded
        stale = out / f"{key}.unfinished.json"
        stale.unlink(missing_ok=True)
        shutil.rmtree(stale.with_suffix(""), ignore_errors=True)
    return VideoResult(key, r.id, r.source, item_file=str(item_file)), usage


def _outcomes(u: StageUsage, item: LongVItem, stage: str) -> StageUsage:
    """A stage's outcomes from the item's provenance (the prompts stage: one per edit kind)."""
    for name in (EDIT_KINDS if stage == "prompts" else (stage,)):
        u.count_outcomes([item.provenance], name)
    return u


def run_plain(cfg: LongVConfig) -> dict:
    """The whole build without Prefect (tests, benchmarks, `--no-prefect`)."""
    from pipeline.longv.release import write_release

    cfg = cfg.with_out()
    cfg.check_output()
    cfg.check_models()
    found = discover(cfg)
    out_dir = str(cfg.results_dir())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    detector = cache(cfg.make_detector)  # one detector for all videos, made only if one needs analysing
    results = [process_video(p, v, cfg, out_dir, longv_code_digest(), detector) for p, v in zip(found.videos, found.ids)]
    models = None
    if cfg.model_stages():
        done = [model_video(r, cfg, out_dir) for r in results]
        results, models = [r for r, _ in done], merge([u for _, u in done])
    return write_release(cfg, found, results, models)
