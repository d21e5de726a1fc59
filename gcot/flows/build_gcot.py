"""The build-gcot flow: ingest -> one task per shard -> release, with artifacts.

Only wiring: every step is a plain function in `pipeline.steps`. Shards write their results to files
and hand on a small summary, so Prefect never walks tens of thousands of records between tasks. A
shard is cached by its inputs (shard digest, parameters, pipeline code digest); a shard whose result
files are gone is run again with a refreshed cache, so a rerun redoes only what changed or was lost.

Shard tasks run where ``runner`` says (`gcot.flows.runners`): threads (default), processes, a
Dask cluster (local processes or ``dask_address``) or Ray. A worker lost mid-run costs only the
shards it had not finished: finished ones are on disk with their marker and come back from the cache.

The run page: the Logs tab follows ingest (the steps' own progress bars, relayed), each shard as it
finishes and the release, and ends with the release's path and counts (the last thing `prefect
deployment run --watch` prints); task runs are named for their shard (`build-shard-3-of-21`); the
`build-gcot-progress` artifact moves through ingest, the shards and the release; `build-gcot-summary`
lists the counts and the rejections by rule, an example of each.

With a model stage on (``rewrite_questions``, ``judge_answers``), each shard then goes through a
model task (`gcot.flows.models`: its own retries, and a Prefect concurrency limit on the endpoint),
and the stages' summary is published as the ``build-gcot-models`` artifact.
"""

from __future__ import annotations

from collections import Counter

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from gcot.flows.ephemeral import no_retry_on_user_errors
from gcot.flows.models import merge, model_limit, publish_models, run_model_task
from gcot.flows.progress import RunProgress
from gcot.flows.reports import rejection_table, rejections_by_rule
from gcot.flows.runners import shard_runner
from pipeline import steps


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE, task_run_name="ingest")
def ingest_source(cfg: steps.BuildConfig) -> steps.IngestResult:
    return steps.ingest(cfg)


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def detect_shard(shard: str, digest: str, source_root: str, weights: str, name_map: dict, conf: float, out_dir: str) -> str:
    from pipeline.detect.detections import detect_shard as detect

    return detect(shard, digest, source_root, weights, name_map, conf, out_dir)


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)  # run as build-shard-3-of-21 (named where submitted)
def build_shard(
    shard: str, digest: str, release_prefix: str, seed: int, per_type: dict, rewriter: str, out_dir: str, code: str, detections: str | None
) -> steps.ShardResult:
    return steps.build_shard(shard, digest, release_prefix, seed, per_type, rewriter, out_dir, code, detections)


@task(retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE, task_run_name="models-{r.key}")
def model_shard(r: steps.ShardResult, shard: str, source_root: str, release_prefix: str, settings, stages: tuple, out_dir: str, detections: str | None, limit: str) -> tuple:
    # One shard at a time holds the endpoint, with model_concurrency requests in flight.
    return run_model_task(limit, settings.model_concurrency, steps.model_shard, r, shard, source_root, release_prefix, settings, stages, out_dir, detections)


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def write_release(cfg: steps.BuildConfig, ingest: steps.IngestResult, results: list[steps.ShardResult], models: dict | None = None) -> dict:
    return steps.release(cfg, ingest, results, models)


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
    steps.check_models(cfg)  # a stage with no model, or an endpoint where nothing answers: before any work
    weights = cfg.detector_weights()
    log = get_run_logger()
    phases = {"ingest": 30.0, **({"detect": 50.0} if weights else {}), "shards": 95.0, "release": 100.0}
    progress = RunProgress("build-gcot-progress", f"build-gcot into {cfg.out}: {', '.join(phases)}", phases)
    with shard_runner(cfg.runner, cfg.dask_address, cfg.workers) as tr:  # first: a bad runner or address fails before any work
        log.info("ingest: reading %s into shards of %d images", cfg.source, cfg.shard_size)
        with progress.relay_bars("ingest"):
            ing = ingest_source(cfg)
        n = len(ing.shards)
        log.info("ingest: %d images in %d shards, %d source records rejected%s", ing.images, n, len(ing.rejections), _rules(ing.rejections))
        code, out_dir = steps.gcot_code_digest(), str(cfg.results_dir())
        refresh = build_shard.with_options(refresh_cache=True)  # for shards whose result files are gone

        def done(d: str, dets: str | None) -> bool:
            return steps.shard_done(out_dir, steps.shard_key(d, ing.release_prefix, seed, cfg.per_type, rewriter, code, dets))

        detections = [None] * n
        if weights:
            detections = progress.collect([
                tr.submit(detect_shard.with_options(task_run_name=f"detect-shard-{i}-of-{n}"),
                          dict(shard=shard, digest=d, source_root=ing.source_root, weights=weights, name_map=cfg.name_map, conf=cfg.detector_conf, out_dir=out_dir))
                for i, (shard, d) in enumerate(zip(ing.shards, ing.digests), 1)
            ], "detect", lambda i, _: f"detection of shard {i} of {n} done")
        futures = [
            tr.submit((build_shard if done(d, dets) else refresh).with_options(task_run_name=f"build-shard-{i}-of-{n}"),
                      dict(shard=shard, digest=d, release_prefix=ing.release_prefix, seed=seed, per_type=cfg.per_type, rewriter=rewriter, out_dir=out_dir, code=code, detections=dets))
            for i, (shard, d, dets) in enumerate(zip(ing.shards, ing.digests, detections), 1)
        ]
        results = progress.collect(futures, "shards", lambda i, r: f"shard {i} of {n} done: {r.examples} examples of {r.candidates} candidates, {r.rejected} rejected")
        models = None
        if cfg.model_stages():
            settings, stages = cfg.model_settings(), cfg.model_stages()
            limit = model_limit(settings)
            done = [f.result() for f in [
                tr.submit(model_shard, dict(r=r, shard=shard, source_root=ing.source_root, release_prefix=ing.release_prefix, settings=settings,
                                            stages=stages, out_dir=out_dir, detections=dets, limit=limit))
                for r, shard, dets in zip(results, ing.shards, detections)
            ]]
            results, models = [r for r, _ in done], merge([u for _, u in done])
    log.info("release: writing %s", cfg.out)
    s = write_release(cfg, ing, results, models)
    progress.update("release", 1.0)
    _publish(s)
    if models:
        publish_models("build-gcot-models", models)
    log.info(closing_line(s))
    # the run's final state carries the same line: Prefect logs it last ("Finished in state Completed('release ...')")
    return Completed(message=closing_line(s), data=s)


def _rules(rejections) -> str:
    counts = Counter(r.rule for r in rejections)
    return f" ({', '.join(f'{rule} {c}' for rule, c in counts.most_common())})" if counts else ""


def closing_line(s: dict) -> str:
    """The run's last log line, where `prefect deployment run --watch` ends: where the release went and what it holds."""
    splits = ", ".join(f"{sp} {c}" for sp, c in s["per_split"].items())
    return (f"release {s['release']}: {s['examples']} examples ({splits}) from {s['images']} images; "
            f"{s['rejected']} of {s['candidates']} candidates rejected, {s['source_rejections']} source records rejected")


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
            f"| reconciles | {s['candidates'] == s['examples'] + s['rejected']} |\n\n"
            f"## Rejections by rule\n\n{rejection_table(rejections_by_rule(s['release']))}"
        ),
        description=f"build-gcot summary: release {s['release']}, counts, rejections by rule with an example each",
    )
