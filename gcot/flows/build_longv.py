"""The build-longv-eval flow: discover videos -> one task per video -> release, with artifacts.

Only wiring: the steps are plain functions in `pipeline.longv.steps`. A video is the unit of work (a
minute of video is seconds of CPU, far more than a shard of scene graphs); each task writes its
result to a file keyed by the video's bytes, the parameters and the code, so a rerun redoes only
videos that changed or whose results are gone. Each worker thread keeps one detector: Ultralytics'
predictor is not safe to share between threads.
"""

from __future__ import annotations

import threading

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from gcot.flows.ephemeral import no_retry_on_user_errors
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


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def release(cfg: steps.LongVConfig, found: steps.Discovered, results: list[steps.VideoResult]) -> dict:
    return write_release(cfg, found, results)


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
    with shard_runner(cfg.runner, cfg.dask_address, cfg.workers) as tr:  # first: a bad runner or address fails before any work
        found = discover_videos(cfg)
        out_dir = cfg.results_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        code = steps.longv_code_digest()
        futures = [tr.submit(process_video, dict(path=p, vid=v, cfg=cfg, out_dir=str(out_dir), code=code)) for p, v in zip(found.videos, found.ids)]
        results = [f.result() for f in futures]
    s = release(cfg, found, results)
    _publish(s)
    return s


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
            f"| reconciles | {s['candidates'] == s['videos'] + s['rejected']} |\n"
        ),
        description="build-longv-eval counts",
    )
