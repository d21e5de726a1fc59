"""The build-gcot flow: ingest -> one task per shard -> release, with artifacts.

Only wiring: every step is a plain function in `pipeline.steps`. Shards write their results to files
and hand on a small summary, so Prefect never walks tens of thousands of records between tasks. A
shard is cached by its inputs (shard digest, parameters, pipeline code digest); a shard whose result
files are gone is run again with a refreshed cache, so a rerun redoes only what changed or was lost.

Shard tasks run where ``runner`` says (`gcot.flows.runners`): threads (default), processes, a
Dask cluster (local processes or ``dask_address``) or Ray. A worker lost mid-run costs only the
shards it had not finished: finished ones are on disk with their marker and come back from the cache.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.task_runners import ThreadPoolTaskRunner

from gcot.flows.ephemeral import no_retry_on_user_errors
from gcot.flows.runners import shard_runner
from pipeline import steps


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def ingest_source(cfg: steps.BuildConfig) -> steps.IngestResult:
    return steps.ingest(cfg)


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def detect_shard(shard: str, digest: str, source_root: str, weights: str, name_map: dict, conf: float, out_dir: str) -> str:
    from pipeline.detect.detections import detect_shard as detect

    return detect(shard, digest, source_root, weights, name_map, conf, out_dir)


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def build_shard(
    shard: str, digest: str, release_prefix: str, seed: int, per_type: dict, rewriter: str, out_dir: str, code: str, detections: str | None
) -> steps.ShardResult:
    return steps.build_shard(shard, digest, release_prefix, seed, per_type, rewriter, out_dir, code, detections)


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def write_release(cfg: steps.BuildConfig, ingest: steps.IngestResult, results: list[steps.ShardResult]) -> dict:
    return steps.release(cfg, ingest, results)


@flow(name="build-gcot", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def build_gcot(config: steps.BuildConfig | None = None) -> dict:
    """Build a GCoT release from scene graphs (synthetic, vg:PATH, coco:PATH or images:PATH).

    Args:
        config: what to build and where (every field is described in the form); without `out` the
            release goes to a new folder named after this flow run, never over an existing one.
    """
    from prefect.runtime import flow_run

    cfg = (config or steps.BuildConfig()).with_out(flow_run.get_name())
    cfg.check_output()  # before any work: where the release goes must not destroy or mix with anything
    seed, rewriter = cfg.seed, cfg.rewriter
    with shard_runner(cfg.runner, cfg.dask_address, cfg.workers) as tr:  # first: a bad runner or address fails before any work
        ing = ingest_source(cfg)
        code, out_dir = steps.gcot_code_digest(), str(cfg.results_dir())
        weights = cfg.detector_weights()
        refresh = build_shard.with_options(refresh_cache=True)  # for shards whose result files are gone

        def done(d: str, dets: str | None) -> bool:
            return steps.shard_done(out_dir, steps.shard_key(d, ing.release_prefix, seed, cfg.per_type, rewriter, code, dets))

        detections = [None] * len(ing.shards)
        if weights:
            detections = [f.result() for f in [
                tr.submit(detect_shard, dict(shard=shard, digest=d, source_root=ing.source_root, weights=weights, name_map=cfg.name_map, conf=cfg.detector_conf, out_dir=out_dir))
                for shard, d in zip(ing.shards, ing.digests)
            ]]
        futures = [
            tr.submit(build_shard if done(d, dets) else refresh,
                      dict(shard=shard, digest=d, release_prefix=ing.release_prefix, seed=seed, per_type=cfg.per_type, rewriter=rewriter, out_dir=out_dir, code=code, detections=dets))
            for shard, d, dets in zip(ing.shards, ing.digests, detections)
        ]
        results = [f.result() for f in futures]
    s = write_release(cfg, ing, results)
    _publish(s)
    return s


def _publish(s: dict) -> None:
    create_table_artifact(
        key="build-gcot-counts",
        table=[{"split": sp, "type": t, "examples": n} for sp, per in s["per_split_type"].items() for t, n in per.items()],
        description="Released examples per split and question type",
    )
    create_markdown_artifact(
        key="build-gcot-summary",
        markdown=(
            f"# build-gcot\n\nRelease: `{s['release']}`\n\n| | |\n|---|---|\n"
            f"| examples | {s['examples']} |\n| images | {s['images']} |\n| candidates | {s['candidates']} |\n"
            f"| rejected | {s['rejected']} |\n| source records rejected | {s['source_rejections']} |\n"
            f"| reconciles | {s['candidates'] == s['examples'] + s['rejected']} |\n"
        ),
        description="build-gcot counts",
    )
