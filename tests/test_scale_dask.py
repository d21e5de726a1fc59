"""build-gcot on a real Dask cluster of 2 worker processes: the same bytes as the default runner, and a
worker killed in the middle of a run costs only its shard: the rerun completes, nothing lost or doubled."""

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from gcot.flows.build_gcot import build_gcot
from gcot.flows.runners import LOCAL_CLUSTER, RunnerError, make_task_runner
from pipeline.steps import BuildConfig
from tests.digests import file_digests

# 90 images in shards of 15: 6 shard tasks, 3 for each of the 2 workers.
KW = dict(source="synthetic", images=90, seed=5, shard_size=15)
N_SHARDS = 6



@pytest.fixture(scope="module")
def reference(prefect_harness, tmp_path_factory) -> tuple[Path, dict]:
    """The default runner (threads); the release folder is named `rel` everywhere (the card names it)."""
    root = tmp_path_factory.mktemp("threads")
    s = build_gcot(BuildConfig(out=str(root / "rel"), work_dir=str(root / "work"), **KW))
    return root / "rel", s


def test_local_dask_cluster_of_two_processes_writes_the_same_bytes(reference, tmp_path):
    ref, ref_summary = reference
    s = build_gcot(BuildConfig(out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), runner="dask", workers=2, **KW))
    assert s["examples"] == ref_summary["examples"] > 0
    assert file_digests(tmp_path / "rel") == file_digests(ref)
    assert len(list((tmp_path / "work" / "shard_results").glob("*.done.json"))) == N_SHARDS


@pytest.mark.slow  # kept out of the default run's 15 minutes (make test-all runs it)
def test_a_worker_killed_mid_run_costs_only_its_shard(reference, tmp_path):
    ref, ref_summary = reference
    flag = tmp_path / "killed"

    class KillMidShard(WorkerPlugin):
        """Kills a worker process (SIGKILL) in the middle of its 2nd shard: after the shard's examples
        file is written, before its rejections file and done marker. Deterministic: the worker's own
        file-writing call fires it. Once only: the flag file is created exclusively, so the worker
        the nanny restarts, and the other worker, are left alone."""

        name = "gcot-kill-mid-shard"

        def setup(self, worker):
            import signal

            import pipeline.steps as steps

            write, seen = steps.write_text_atomic, []

            def write_or_die(path, text):
                if path.name.endswith(".rejections.jsonl"):
                    seen.append(path)
                    if len(seen) == 2:
                        try:
                            os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
                        except FileExistsError:
                            return write(path, text)
                        os.kill(os.getpid(), signal.SIGKILL)
                return write(path, text)

            steps.write_text_atomic = write_or_die

    results = tmp_path / "work" / "shard_results"
    # allowed-failures 0: the scheduler does not retry a task whose worker died (Dask's default, 3,
    # would absorb the loss within the run); here the run must fail and the rerun must finish it.
    with LocalCluster(n_workers=2, **LOCAL_CLUSTER) as cluster, Client(cluster) as client:
        client.run_on_scheduler(_no_retries)
        client.register_plugin(KillMidShard())
        state = build_gcot(BuildConfig(out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), runner="dask", dask_address=cluster.scheduler_address, **KW), return_state=True)
        assert flag.exists(), "the worker plugin never fired"
        assert state.is_failed(), state
        assert "KilledWorker" in repr(state.result(raise_on_failure=False))
        assert not (tmp_path / "rel").exists()  # no release from a failed run
        # Tasks already on the surviving worker may still be running: let the cluster go idle.
        deadline = time.monotonic() + 60
        while client.run_on_scheduler(_busy) and time.monotonic() < deadline:
            time.sleep(0.2)
        finished = {p.name: p.stat().st_mtime_ns for p in results.glob("*.done.json")}
        assert 0 < len(finished) < N_SHARDS, finished
        # the killed shard left half its output: an examples file with no rejections file, no marker
        half = [p for p in results.glob("*.examples.jsonl") if not p.with_name(p.name.replace(".examples.jsonl", ".done.json")).exists()
                and not p.with_name(p.name.replace(".examples.jsonl", ".rejections.jsonl")).exists()]
        assert len(half) == 1, sorted(p.name for p in results.iterdir())

        s = build_gcot(BuildConfig(out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), runner="dask", dask_address=cluster.scheduler_address, **KW))

    # Finished shards were not redone (their markers untouched); the lost ones were.
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.done.json") if p.name in finished} == finished
    assert len(list(results.glob("*.done.json"))) == N_SHARDS
    assert sorted(p.name for p in results.iterdir() if not p.name.endswith((".done.json", ".examples.jsonl", ".rejections.jsonl"))) == []
    # Nothing lost or doubled: the same bytes as the reference, every example once.
    assert s["examples"] == ref_summary["examples"] and s["candidates"] == s["examples"] + s["rejected"]
    assert file_digests(tmp_path / "rel") == file_digests(ref)
    ids = [json.loads(line)["id"] for p in results.glob("*.examples.jsonl") for line in p.read_text().splitlines()]
    assert len(ids) == len(set(ids)) >= s["examples"]  # released = kept minus cross-split leaks


def _no_retries(dask_scheduler):
    dask_scheduler.allowed_failures = 0


def _busy(dask_scheduler) -> bool:
    return any(ts.state in ("processing", "waiting", "queued", "no-worker") for ts in dask_scheduler.tasks.values())


@pytest.mark.slow
def test_process_pool_writes_the_same_bytes(reference, tmp_path):
    """--runner processes (Prefect's ProcessPoolTaskRunner); about 20 s here, slow-marked to keep the default run within budget."""
    ref, _ = reference
    build_gcot(BuildConfig(out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), runner="processes", workers=2, **KW))
    assert file_digests(tmp_path / "rel") == file_digests(ref)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("prefect_ray") is None, reason="the optional extra 'ray' is not installed (uv sync --extra ray)")
def test_ray_writes_the_same_bytes(reference, tmp_path):
    """Only with the optional extra; about 70 s here, most of it Ray's start."""
    ref, _ = reference
    build_gcot(BuildConfig(out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), runner="ray", workers=2, **KW))
    assert file_digests(tmp_path / "rel") == file_digests(ref)


def test_unreachable_scheduler_and_unknown_runner_are_one_line_errors():
    with pytest.raises(RunnerError, match=r"dask scheduler at tcp://127.0.0.1:9 is unreachable"):
        make_task_runner("dask", "tcp://127.0.0.1:9")
    with pytest.raises(RunnerError, match="unknown runner 'spark'"):
        make_task_runner("spark")
    with pytest.raises(RunnerError, match="only goes with --runner dask or ray"):
        make_task_runner("threads", "tcp://127.0.0.1:8786")


def test_cli_names_an_unreachable_scheduler_in_one_line_before_starting_anything(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pipeline", "build-gcot", "--images", "5", "--out", str(tmp_path / "rel"), "--runner", "dask", "--dask-address", "tcp://127.0.0.1:9"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "error: dask scheduler at tcp://127.0.0.1:9 is unreachable: Connection refused"
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "rel").exists()
    r = subprocess.run([sys.executable, "-m", "pipeline", "build-gcot", "--no-prefect", "--runner", "dask", "--out", str(tmp_path / "rel")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "need the Prefect flow" in r.stderr
