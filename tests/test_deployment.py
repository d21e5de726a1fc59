"""`prefect deployment run build-gcot/local` against a real Prefect server and a served deployment,
as the README shows it."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from gcot.flows.serve import start_server
from tests.ports import free_port

pytestmark = pytest.mark.server


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
        out = tmp_path / "release"
        r = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "prefect"), "deployment", "run", "build-gcot/local",
             "-p", "images=12", "-p", f"out={out}", "-p", f"work_dir={tmp_path / 'work'}", "--watch", "--watch-timeout", "300"],
            env=env, capture_output=True, text=True, timeout=400,
        )
        assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "serve.log").read_text()
        assert "Completed" in r.stdout
        assert (out / "README.md").is_file() and list((out / "data").glob("train-*.parquet"))
    finally:
        serve.terminate()
        serve.wait(30)
        server.terminate()
        server.wait(30)
        os.environ.clear()
        os.environ.update(old)
