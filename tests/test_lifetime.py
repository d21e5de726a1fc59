"""Servers a command starts stop with the command (core/lifetime.py): on SIGTERM and SIGINT through its own
``finally``, and when it is killed outright through the watchdog. Real processes and real signals; the slow
ones start the real servers (Prefect's temporary server, Label Studio)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from annotation.server import LS_VENV
from tests.conftest import REPO
from tests.ports import free_port


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, ValueError):
                pass
    return found


# A command in miniature: it starts a "server" child, ties it to itself, and waits in try/finally.
COMMAND = textwrap.dedent(f"""
    import subprocess, sys, time
    sys.path.insert(0, {str(REPO)!r})
    from core.lifetime import exit_on_signals, stop_with_this_process
    with exit_on_signals():
        server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        watchdog = stop_with_this_process(server.pid, grace=5)
        print(server.pid, flush=True)
        try:
            time.sleep(600)
        finally:
            server.terminate()
            server.wait()
            watchdog.release()
""")


def test_the_signal_handlers_come_back_after_the_command():
    from core.lifetime import exit_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with exit_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_a_commands_server_stops_with_the_command(sig):
    cmd = subprocess.Popen([sys.executable, "-c", COMMAND], stdout=subprocess.PIPE, text=True)
    server = int(cmd.stdout.readline())
    assert alive(server)
    cmd.send_signal(sig)
    code = cmd.wait(30)
    assert gone(server, 15), f"the server outlived the command ({sig.name})"
    assert code == {signal.SIGKILL: -9, signal.SIGINT: -2}.get(sig, 128 + sig)  # an uncaught KeyboardInterrupt ends Python by SIGINT


def test_a_released_watchdog_leaves_and_kills_nothing():
    from core.lifetime import stop_with_this_process

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        watchdog = stop_with_this_process(server.pid)
        watchdog.release()  # the command stopped its server another way... or keeps it on purpose
        assert watchdog.proc.poll() is not None and alive(server.pid)
    finally:
        server.kill()
        server.wait()


def wait_for_child(pid: int, needle: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c, line in children(pid) if needle in line]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no child process of {pid} running {needle!r} after {timeout:.0f} s")


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_the_temporary_prefect_server_stops_with_a_build_that_is_stopped(tmp_path, sig):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = subprocess.Popen([sys.executable, "-m", "gcot", "build", "--images", "40", "--out", str(tmp_path / "rel"), "--work-dir", str(tmp_path / "w")],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = wait_for_child(cmd.pid, "prefect.server.api.server:create_app", 240)
        time.sleep(1.0)
        cmd.send_signal(sig)
        cmd.wait(60)
        assert gone(server, 30), f"Prefect's temporary server outlived the command ({sig.name})"
    finally:
        cmd.kill()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.skipif(not (LS_VENV / "bin" / "label-studio").exists(), reason="Label Studio not installed: make labelstudio")
def test_label_studio_stops_with_review_serve_on_sigterm_and_on_sigkill(tmp_path):
    from annotation.server import LabelStudioServer

    port = free_port()
    probe = LabelStudioServer(tmp_path / "ls", tmp_path / "ls" / "files", port=port)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        cmd = subprocess.Popen([sys.executable, "-m", "annotation", "serve", "--port", str(port), "--data-dir", str(tmp_path / "ls")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in cmd.stdout:
                if "Ctrl-C stops the server" in line:
                    break
            assert probe.healthy(), "Label Studio did not come up"
            cmd.send_signal(sig)
            cmd.wait(60)
            deadline = time.monotonic() + 45
            while probe.healthy(timeout=1) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not probe.healthy(timeout=1), f"Label Studio still answers on port {port} after {sig.name} to serve"
        finally:
            cmd.kill()
