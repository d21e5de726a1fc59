"""The Prefect flow on a real (test-harness) Prefect server: same release as the plain steps,
artifacts published, shards cached across runs and redone when their results are lost."""

import json
import shutil

from prefect.artifacts import Artifact

from gcot.flows.build_gcot import build_gcot
from pipeline.steps import BuildConfig, run_plain
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
    names = [r.state.name for r in runs if r.name.startswith("build_shard")]
    assert names.count("Cached") == 3 and names.count("Completed") == 3

    # Results lost (worker's disk wiped): the cache key no longer holds and the shards are rebuilt.
    shutil.rmtree(tmp_path / "w2" / "shard_results")
    again = build_gcot(BuildConfig(out=str(tmp_path / "flow" / "rel"), work_dir=str(tmp_path / "w2"), overwrite=True, **kw))
    assert again["examples"] == s["examples"]
    assert file_digests(tmp_path / "plain" / "rel") == file_digests(tmp_path / "flow" / "rel")


