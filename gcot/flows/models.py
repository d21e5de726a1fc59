"""What the build flows share for their model stages: a Prefect concurrency limit on the endpoint,
the task body that holds it, and the stages' summary as an artifact.

The limit (a Prefect global concurrency limit, one per endpoint or local model, of
``model_concurrency`` slots) caps the requests in flight over the whole run, wherever its tasks run
(threads, processes, a Dask cluster): a GCoT shard task holds every slot while its client keeps that
many requests in flight; a LongV-EVAL video task asks one thing at a time and holds one slot.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from pipeline.models.usage import merge, table

__all__ = ["merge", "model_limit", "publish_models", "run_model_task"]


def model_limit(settings) -> str:
    """Create (or resize) the run's concurrency limit; returns its name."""
    name = settings.limit_name()
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, settings.model_concurrency)
    return name


def run_model_task(limit: str, slots: int, fn: Callable, *args):
    """``fn(*args)`` while holding ``slots`` of the limit (waits for them)."""
    with concurrency(limit, occupy=slots, strict=True):
        return fn(*args)


def publish_models(key: str, models: dict) -> None:
    create_table_artifact(
        key=key, table=table(models),
        description="Model stages of this run: answers needed, cache hits, calls, failures, retries, tokens, seconds; outcomes and rejections by rule",
    )
