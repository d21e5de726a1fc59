"""Where a flow's shard tasks run: the one place that turns a runner choice into a Prefect task runner.

    threads    ThreadPoolTaskRunner(workers) in the flow's process (the default)
    processes  ProcessPoolTaskRunner(workers): separate processes on this machine
    dask       prefect-dask: a local cluster of `workers` processes (one thread each), or the
               cluster whose scheduler answers at `address` (tcp://host:8786) across machines
    ray        prefect-ray (`uv sync --extra ray`): a local Ray, or the one at `address` (ray://host:10001)

A flow keeps its decorated runner for its own small tasks (ingest, release) and submits the shard
tasks through ``shard_runner(...)``, so the choice is an ordinary flow parameter: it works from the
CLI (``--runner dask``), from ``prefect deployment run ... -p runner=dask`` and through a work pool's
worker, where ``flow.with_options(task_runner=...)`` would be lost (a worker re-imports the flow as
decorated). Shards are the unit of distribution: every worker must see the work folder (one machine,
or a shared file system) and the Prefect API.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args
from urllib.parse import urlparse

from core.config import Runner

if TYPE_CHECKING:  # the CLI imports this module for its flags; Prefect loads only when a runner is made
    from prefect.task_runners import TaskRunner

log = logging.getLogger(__name__)

KINDS = get_args(Runner)

# A local Dask cluster: one thread per worker process (shards are CPU-bound Python; threads would
# share one GIL). The scheduler's HTTP server always starts: on a free port, without the dashboard,
# so two clusters on one machine do not fight over 8787.
LOCAL_CLUSTER = {"processes": True, "threads_per_worker": 1, "dashboard_address": ":0", "scheduler_kwargs": {"dashboard": False}}


class RunnerError(ValueError):
    """A runner choice that cannot work (unknown kind, unreachable scheduler, missing package)."""


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error naming the address instead of a long connect retry loop and traceback."""
    u = urlparse(address if "://" in address else f"tcp://{address}")
    if not u.hostname or not u.port:
        raise RunnerError(f"dask scheduler address {address!r} is not tcp://HOST:PORT")
    try:
        socket.create_connection((u.hostname, u.port), timeout=timeout).close()
    except OSError as e:
        raise RunnerError(f"dask scheduler at {address} is unreachable: {e.strerror or e}") from None


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int = 2) -> TaskRunner:
    """A Prefect task runner for ``kind`` (see the module docstring); not started yet."""
    if kind not in KINDS:
        raise RunnerError(f"unknown runner {kind!r}; choose one of {', '.join(KINDS)}")
    if workers < 1:
        raise RunnerError(f"workers must be >= 1, got {workers}")
    if address and kind not in ("dask", "ray"):
        raise RunnerError(f"an address only goes with --runner dask or ray, not {kind}")
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if not log.isEnabledFor(logging.DEBUG):  # distributed logs every worker start and stop at INFO
            logging.getLogger("distributed").setLevel(logging.WARNING)

        if address:
            _check_reachable(address)
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, **LOCAL_CLUSTER})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise RunnerError("--runner ray needs prefect-ray: uv sync --extra ray") from None
    return RayTaskRunner(address=address, init_kwargs={} if address else {"num_cpus": workers, "include_dashboard": False})


@contextlib.contextmanager
def shard_runner(kind: str = "threads", address: str | None = None, workers: int = 2) -> Iterator[TaskRunner]:
    """A started task runner to submit shard tasks to (``runner.submit(task, parameters)``) from
    inside a flow; shut down (a local cluster torn down) on leaving."""
    runner = make_task_runner(kind, address, workers)
    log.info("shard tasks on %s%s", kind, f" at {address}" if address else f" ({workers} workers)")
    with runner:
        yield runner


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The same three flags on every command that runs a flow of shards (build-gcot, build-longv-eval)."""
    p.add_argument("--runner", choices=KINDS, default="threads", help="where shard tasks run: threads or processes on this machine, a Dask cluster (local processes, or --dask-address), Ray (uv sync --extra ray) [default: %(default)s]")
    p.add_argument("--dask-address", default=None, metavar="ADDRESS", help="an existing Dask scheduler (tcp://HOST:8786) or Ray cluster (ray://HOST:10001); without it a local cluster of --workers processes starts")
    p.add_argument("--workers", type=int, default=2, help="threads, processes or local cluster workers [default: %(default)s]")


def from_arguments(a: argparse.Namespace) -> dict:
    """The flow parameters from those flags, checked now: a bad choice or an unreachable scheduler is a
    one-line error (RunnerError) before any server or cluster starts."""
    make_task_runner(a.runner, a.dask_address, a.workers)
    return {"runner": a.runner, "dask_address": a.dask_address, "workers": a.workers}
