"""The build-longv-eval flow: discover videos -> one task per video -> release, with artifacts.

Only wiring: the steps are plain functions in `pipeline.longv.steps`. A video is the unit of work (a
minute of video is seconds of CPU, far more than a shard of scene graphs); each task writes its
result to a file keyed by the video's bytes, the parameters and the code, so a rerun redoes only
videos that changed or whose results are gone. Each worker thread keeps one detector: Ultralytics'
predictor is not safe to share between threads.

The run page, as build-gcot's: logs of discovery, each video as it finishes and the release (the
last line gives its path and counts), the `build-longv-eval-progress` artifact, and the summary with
the rejections by rule, an example of each.

With a model stage on (``caption_videos``, ``write_prompts``), each video then goes through a model
task (`gcot.flows.models`: its own retries, one slot of the endpoint's Prefect concurrency limit), and
the stages' summary is published as the ``build-longv-eval-models`` artifact.
"""

from __future__ import annotations

import threading

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from gcot.flows.ephemeral import no_retry_on_user_errors
from gcot.flows.models import merge, model_limit, publish_models, run_model_task
from gcot.flows.progress import RunProgress
from gcot.flows.reports import rejection_table, rejections_by_rule
from gcot.flows.runners import shard_runner
from pipeline.longv import steps
from pipeline.longv.release import write_release

_local = threading.local()


def _detector(cfg: steps.LongVConfig):
    key = (cfg.weights(), tuple(sorted(cfg.name_map.items())), cfg.detector_conf)
    cache = getattr(_local, "detectors", None)
    if cache is None:
        cache = _local.detectors = {}
    if key not in cache:
        cache[key] = cfg.make_detector()
    return cache[key]


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def discover_videos(cfg: steps.LongVConfig) -> steps.Discovered:
    return steps.discover(cfg)


@task(retries=1, retry_delay_seconds=[5], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE, task_run_name="video-{vid}")
def process_video(path: str, vid: str, cfg: steps.LongVConfig, out_dir: str, code: str) -> steps.VideoResult:
    return steps.process_video(path, vid, cfg, out_dir, code, lambda: _detector(cfg))


@task(retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE, task_run_name="models-{r.id}")
def model_video(r: steps.VideoResult, cfg: steps.LongVConfig, out_dir: str, limit: str) -> tuple:
    return run_model_task(limit, 1, steps.model_video, r, cfg, out_dir)  # one request at a time: one slot


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def release(cfg: steps.LongVConfig, found: steps.Discovered, results: list[steps.VideoResult], models: dict | None = None) -> dict:
    return write_release(cfg, found, results, models)


@flow(name="build-longv-eval", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)  # for discover and release
def build_longv_eval(config: steps.LongVConfig | None = None) -> dict:
    """Build a LongV-EVAL release from a folder of videos (or the synthetic default).

    Args:
        config: what to build and where (every field is described in the form); without `out` the
            release goes to a new folder named after this flow run, never over an existing one.
    """
    from prefect.runtime import flow_run

    cfg = (config or steps.LongVConfig()).with_out(flow_run.get_name())
    cfg.check_output()  # before any work: where the release goes must not destroy or mix with anything
    cfg.check_models()  # a stage with no model, or an endpoint where nothing answers: before any work
    log = get_run_logger()
    progress = RunProgress("build-longv-eval-progress", f"build-longv-eval into {cfg.out}: discover, videos, release", {"discover": 10.0, "videos": 95.0, "release": 100.0})
    with shard_runner(cfg.runner, cfg.dask_address, cfg.workers) as tr:  # first: a bad runner or address fails before any work
        log.info("discover: looking for videos in %s", cfg.videos)
        with progress.relay_bars("discover"):  # the synthetic default renders its videos here
            found = discover_videos(cfg)
        n = len(found.videos)
        log.info("discover: %d videos, %d files rejected", n, len(found.rejections))
        out_dir = cfg.results_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        code = steps.longv_code_digest()
        futures = [tr.submit(process_video, dict(path=p, vid=v, cfg=cfg, out_dir=str(out_dir), code=code)) for p, v in zip(found.videos, found.ids)]
        results = progress.collect(futures, "videos", lambda i, r: f"video {i} of {n} done: {r.id} " + ("released" if r.item_file else f"rejected ({(r.rejection or {}).get('rule')})"))
        models = None
        if cfg.model_stages():
            limit = model_limit(cfg.model_settings())
            done = [f.result() for f in [tr.submit(model_video, dict(r=r, cfg=cfg, out_dir=str(out_dir), limit=limit)) for r in results]]
            results, models = [r for r, _ in done], merge([u for _, u in done])
    log.info("release: writing %s", cfg.out)
    s = release(cfg, found, results, models)
    progress.update("release", 1.0)
    _publish(s)
    if models:
        publish_models("build-longv-eval-models", models)
    log.info(closing_line(s))
    # the run's final state carries the same line: Prefect logs it last ("Finished in state Completed('release ...')")
    return Completed(message=closing_line(s), data=s)


def closing_line(s: dict) -> str:
    """The run's last log line, where `prefect deployment run --watch` ends: where the release went and what it holds."""
    return (f"release {s['release']}: {s['videos']} videos ({s['hours'] * 60:.1f} min, {s['clips']} clips, {s['prompts']} prompts); "
            f"{s['rejected']} of {s['candidates']} videos rejected")


def _publish(s: dict) -> None:
    from pipeline.longv.release import read_items

    items = read_items(s["release"])
    create_table_artifact(
        key="build-longv-eval-videos",
        table=[{"id": i.id, "seconds": i.duration, "clips": len(i.clips), "main subject": i.subjects[0].label if i.subjects else "-",
                "foreground": i.foreground, "background": i.background, "style": i.style} for i in items],
        description="Released videos, their adaptive clips and their three edit prompts",
    )
    create_markdown_artifact(
        key="build-longv-eval-summary",
        markdown=(
            f"# build-longv-eval\n\nRelease: `{s['release']}`\n\n| | |\n|---|---|\n| videos | {s['videos']} |\n"
            f"| rejected | {s['rejected']} |\n| clips | {s['clips']} |\n| prompts | {s['prompts']} |\n"
            f"| reconciles | {s['candidates'] == s['videos'] + s['rejected']} |\n\n"
            f"## Rejections by rule\n\n{rejection_table(rejections_by_rule(s['release']))}"
        ),
        description=f"build-longv-eval summary: release {s['release']}, counts, rejections by rule with an example each",
    )
