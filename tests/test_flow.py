"""The Prefect flow on a real (test-harness) Prefect server: same release as the plain steps,
artifacts published, shards cached across runs and redone when their results are lost."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from prefect.artifacts import Artifact

from gcot.flows.build_gcot import build_gcot
from pipeline.sources.base import SourceError
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import REPO
from tests.digests import file_digests


def test_flow_equals_plain_steps_and_caches_shards(prefect_harness, tmp_path):
    kw = dict(source="synthetic", images=40, seed=3, shard_size=15)
    plain = run_plain(BuildConfig(out=str(tmp_path / "plain" / "rel"), work_dir=str(tmp_path / "w1"), **kw))
    state = build_gcot(BuildConfig(out=str(tmp_path / "flow" / "rel"), work_dir=str(tmp_path / "w2"), **kw), return_state=True)
    s = state.result()
    assert s["examples"] == plain["examples"] > 0 and s["candidates"] == s["examples"] + s["rejected"]
    assert file_digests(tmp_path / "plain" / "rel") == file_digests(tmp_path / "flow" / "rel")

    table = Artifact.get("build-gcot-counts")
    rows = json.loads(table.data)
    assert table.type == "table" and sum(r["examples"] for r in rows if r["type"] == "judge") == s["per_type"]["judge"]
    assert "reconciles | True" in Artifact.get("build-gcot-summary").data

    # Second run: every shard comes from the cache.
    from prefect.client.orchestration import get_client

    build_gcot(BuildConfig(out=str(tmp_path / "flow" / "rel"), work_dir=str(tmp_path / "w2"), overwrite=True, **kw))  # replacing a release: --overwrite
    with get_client(sync_client=True) as c:
        runs = c.read_task_runs()
    names = [r.state.name for r in runs if r.name.startswith("build-shard-")]
    assert names.count("Cached") == 3 and names.count("Completed") == 3

    # Results lost (worker's disk wiped): the cache key no longer holds and the shards are rebuilt.
    shutil.rmtree(tmp_path / "w2" / "shard_results")
    again = build_gcot(BuildConfig(out=str(tmp_path / "flow" / "rel"), work_dir=str(tmp_path / "w2"), overwrite=True, **kw))
    assert again["examples"] == s["examples"]
    assert file_digests(tmp_path / "plain" / "rel") == file_digests(tmp_path / "flow" / "rel")


def test_a_long_steps_bars_reach_the_run_log_and_its_progress(prefect_harness, monkeypatch):
    """While a step runs in the flow, its tqdm bars are logged through the run logger and move the
    progress artifact (a bar without a total is logged only); collected futures log as they finish."""
    import time

    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker
    from tqdm import tqdm

    from gcot.flows import progress

    monkeypatch.setattr(progress, "RELAY_SECONDS", 0.2)  # the relay's period, shortened for the test
    seen = []

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def long_step() -> list:
        p = progress.RunProgress("relay-check", "relay check", {"render": 50.0, "work": 100.0})
        with p.relay_bars("render"):
            for _ in tqdm(range(8), desc="render things", unit="thing"):
                time.sleep(0.15)
                seen.append(p.percent)
            for _ in tqdm(iter(range(3)), desc="read things", unit="rec"):
                time.sleep(0.3)
        out = p.collect([double.submit(i) for i in range(3)], "work", lambda i, r: f"item {i} of 3 done: {r}")
        return [out, p.percent]

    state = long_step(return_state=True)
    out, percent = state.result()
    APILogWorker.drain_all(timeout=10)  # the run's logs reach the API in batches
    with get_client(sync_client=True) as c:
        logs = [line.message for line in c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))]
    assert out == [0, 2, 4] and percent == 100.0
    assert any(m.startswith("render things: ") and m.endswith(" of 8 thing") for m in logs), logs
    assert any(m.startswith("read things: ") and m.endswith(" rec") for m in logs), logs  # no total: logged as a count
    assert sorted(m for m in logs if m.startswith("item ")) == [f"item {i} of 3 done: {2 * (i - 1)}" for i in (1, 2, 3)]
    assert 0 < max(seen) <= 50.0  # the render phase moved while it ran, within its share


def broken_vg(tmp_path):
    vg = write_synthetic_vg(tmp_path / "vg", images=4, seed=3, workers=1)
    (vg / "VG_100K" / "3.jpg").write_bytes(b"not a jpeg")
    return vg


def test_strict_through_the_flow_stops_once_at_the_record(prefect_harness, tmp_path):
    """A bad record under --strict is a user error: the task fails once (a retry cannot mend it) and the
    flow raises it, naming the file and the record."""
    from prefect.client.orchestration import get_client

    vg = broken_vg(tmp_path)
    with pytest.raises(SourceError, match=r"VG_100K/3.jpg: record 3: image_corrupt"):
        build_gcot(BuildConfig(source=f"vg:{vg}", strict=True, out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    with get_client(sync_client=True) as c:
        (run,) = [r for r in c.read_task_runs() if r.name == "ingest" and r.state.is_failed() and str(vg) in str(r.state.message)]
    assert run.run_count == 1 and not (tmp_path / "rel").exists()


@pytest.mark.slow
def test_strict_through_the_flow_on_the_command_line_is_one_line(tmp_path):
    vg = broken_vg(tmp_path)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    r = subprocess.run([sys.executable, "-m", "gcot", "build", "--source", f"vg:{vg}", "--strict", "--out", str(tmp_path / "rel"),
                        "--work-dir", str(tmp_path / "w")], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    assert f"\nerror: {vg / 'VG_100K' / '3.jpg'}: record 3: image_corrupt: " in r.stderr
    assert "Traceback" not in r.stderr and "Retries are exhausted" not in r.stderr, r.stderr  # once, and no traceback
