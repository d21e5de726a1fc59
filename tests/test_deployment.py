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


def test_deployment_run_builds_a_release(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false"}
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
             "-p", "config=" + json.dumps({"images": 12, "out": str(out), "work_dir": str(tmp_path / "work")}), "--watch", "--watch-timeout", "300"],
            env=env, capture_output=True, text=True, timeout=400,
        )
        assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "serve.log").read_text()
        assert "Completed" in r.stdout
        assert (out / "README.md").is_file() and list((out / "data").glob("train-*.parquet"))
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
