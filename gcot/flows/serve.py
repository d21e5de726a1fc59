"""A local Prefect server plus served build-gcot and build-longv-eval deployments, for `prefect deployment run`.

Ephemeral servers cannot take deployment runs (a run stays Scheduled), so this starts a real
`prefect server start` (SQLite under PREFECT_HOME), waits for /api/health, then serves the flow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.lifetime import stop_with_this_process


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


# The server streams run logs to `prefect deployment run --watch` only with these on (Prefect 3.8: off by default).
LOG_STREAM = {"PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true", "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true"}


def start_server(host: str, port: int, wait_s: float = 120.0, log_file: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `prefect server start` and return once it answers /api/health (``env``: the server's
    environment, e.g. PREFECT_API_DATABASE_CONNECTION_URL for PostgreSQL; default this process's).
    Run logs are streamed out, so that `--watch` prints them; the UI is told its API's port (it
    would assume 4200)."""
    api = f"http://{host}:{port}/api"
    exe = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen([exe, "server", "start", "--host", host, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env={"PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": api, **LOG_STREAM, **(env if env is not None else os.environ)})
    proc.watchdog = stop_with_this_process(proc.pid)  # a server in the foreground of a command stops with it, even a killed one
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.watchdog.release()
            raise RuntimeError(f"prefect server exited with code {proc.returncode}" + (f"; see {log_file}" if log_file else ""))
        if healthy(api):
            return proc
        time.sleep(0.5)
    proc.terminate()
    raise TimeoutError(f"prefect server at {api} not healthy after {wait_s:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server from `start_server`, once this process's run logs have reached it (Prefect sends
    them in batches; a server gone first makes the last batch an "Error logging to API" at exit)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    proc.terminate()
    proc.wait(timeout=30)
    proc.watchdog.release()  # stopped here: the watchdog has nothing left to do


def serve_local(host: str, port: int, name: str, start_server_too: bool = True, start_server: bool | None = None) -> int:
    start = start_server_too if start_server is None else start_server
    api = os.environ.get("PREFECT_API_URL") if not start else f"http://{host}:{port}/api"
    if not api:
        print("error: --no-server needs PREFECT_API_URL", file=sys.stderr)
        return 2
    os.environ["PREFECT_API_URL"] = api
    proc = None
    if start and not healthy(api):
        home = Path(os.environ["PREFECT_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        print(f"starting Prefect server at {api} (log: {home / 'server.log'}) ...", flush=True)
        proc = globals()["start_server"](host, port, log_file=home / "server.log")
    print(f"Prefect UI: http://{host}:{port}\nIn another shell:\n"
          f"  PREFECT_API_URL={api} .venv/bin/prefect deployment run build-gcot/{name} -p config='{{\"images\": 50}}' --watch   (out: releases/<flow run name>)\n"
          f"  PREFECT_API_URL={api} .venv/bin/prefect deployment run build-longv-eval/{name} -p config='{{\"count\": 1}}' --watch\n", flush=True)
    from prefect import serve
    from prefect.deployments.runner import EntrypointType

    from gcot.flows.build_gcot import build_gcot
    from gcot.flows.build_longv import build_longv_eval

    try:
        serve(*(f.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH) for f in (build_gcot, build_longv_eval)))
    finally:
        if proc is not None:
            stop_server(proc)
    return 0
