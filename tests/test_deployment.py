"""`prefect deployment run build-gcot/local` against a real Prefect server and a served deployment,
as the README shows it."""

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from gcot.flows.serve import start_server
from tests.conftest import REPO
from tests.ports import free_port

pytestmark = pytest.mark.server


def check_run_form(schema: dict) -> None:
    """The run form Prefect draws from the deployment's parameter schema: one parameter, the build's
    config, with a description for it and for every field, and the runner as a choice (an enum)."""
    assert list(schema["properties"]) == ["config"]
    assert "never over an existing one" in schema["properties"]["config"]["description"]
    definitions = schema.get("definitions") or schema.get("$defs")
    fields = definitions["BuildConfig"]["properties"]
    assert len(fields) >= 15
    undescribed = [name for name, f in fields.items() if not f.get("description")]
    assert not undescribed, f"fields without a description in the run form: {undescribed}"
    assert fields["runner"]["enum"] == ["threads", "processes", "dask", "ray"]
    assert fields["out"]["default"] is None  # a quick run never writes over releases/demo


def check_run_page(api: str, run_id: str, out) -> None:
    """What the run's page shows, read back through the API as the UI reads it: the flow run's logs
    (ingest, each shard, the release, its path and counts last), task runs named for their shard, the
    progress artifact at 100 % and the summary artifact with each rejection rule and an example."""
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}).json()
    flow_lines = [line["message"] for line in logs if line["task_run_id"] is None]
    assert any(m.startswith("ingest: 12 images in 3 shards") for m in flow_lines), flow_lines
    assert sorted(m.split(" done: ")[0] for m in flow_lines if m.startswith("shard ")) == [f"shard {i} of 3" for i in (1, 2, 3)], flow_lines
    assert any(m.startswith("release: writing") for m in flow_lines)
    assert f"release {out}: " in flow_lines[-1] and " examples (" in flow_lines[-1], flow_lines[-1]  # the final line: path and counts
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
    assert sorted(t["name"] for t in tasks if t["name"].startswith("build-shard-")) == [f"build-shard-{i}-of-3" for i in (1, 2, 3)]
    artifacts = {a["key"]: a for a in httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()}
    assert artifacts["build-gcot-progress"]["type"] == "progress" and float(artifacts["build-gcot-progress"]["data"]) == 100.0
    summary = artifacts["build-gcot-summary"]["data"]
    rejected = [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]
    assert rejected, "the run is meant to reject something, to show the reasons"
    assert str(out) in summary and all(f"`{r['rule']}`" in summary for r in rejected) and rejected[0]["id"] in summary


def test_deployment_run_builds_a_release(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # PYTHONPATH: the served flow runs import this checkout's code, whatever the venv was installed from
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false", "PYTHONPATH": str(REPO)}
    os.makedirs(env["PREFECT_HOME"])
    old = dict(os.environ)
    os.environ.update(env)
    server = start_server("127.0.0.1", port, log_file=tmp_path / "server.log")
    serve = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--no-server"], cwd=tmp_path, env=env, stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = httpx.get(f"{api}/deployments/name/build-gcot/local")
            if r.status_code == 200:
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        else:
            pytest.fail("deployment never registered:\n" + (tmp_path / "serve.log").read_text())
        check_run_form(r.json()["parameter_openapi_schema"])
        out = tmp_path / "release"
        r = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "prefect"), "deployment", "run", "build-gcot/local",
             "-p", "config=" + json.dumps({"images": 12, "seed": 5, "shard_size": 5, "out": str(out), "work_dir": str(tmp_path / "work")}), "--watch", "--watch-timeout", "300"],
            env={**env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=400,  # rich wraps at the terminal's width
        )
        assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "serve.log").read_text()
        assert "Completed" in r.stdout
        assert (out / "README.md").is_file() and list((out / "data").glob("train-*.parquet"))
        (run,) = httpx.post(f"{api}/flow_runs/filter", json={}).json()
        check_run_page(api, run["id"], out)
        assert f"release {out}: " in r.stdout, r.stdout  # --watch shows where the release went and its counts
        # without `out`: a new folder named after the flow run, beside the server's working folder
        r = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "prefect"), "deployment", "run", "build-gcot/local",
             "-p", "config=" + json.dumps({"images": 6, "work_dir": str(tmp_path / "work")}), "--watch", "--watch-timeout", "300"],
            env=env, capture_output=True, text=True, timeout=400,
        )
        assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "serve.log").read_text()
        made = [p for p in (tmp_path / "releases").iterdir() if (p / "config.yaml").is_file()]
        assert len(made) == 1 and made[0].name in r.stdout  # the flow run's name, e.g. "crimson-okapi"
    finally:
        serve.terminate()
        serve.wait(30)
        server.terminate()
        server.wait(30)
        os.environ.clear()
        os.environ.update(old)
