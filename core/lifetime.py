"""Servers a command starts stop with the command: on SIGTERM, SIGINT or SIGHUP, and when it dies outright.

- `exit_on_signals` turns SIGTERM and SIGHUP into ``SystemExit`` (as Python turns SIGINT into
  ``KeyboardInterrupt``), so that ``finally`` blocks and ``atexit`` handlers run: those stop the servers.
- `stop_with_this_process` covers what no handler can: SIGKILL, or a crash of the interpreter. It starts a
  watchdog process that waits on a pipe whose writing end only this process holds. When this process ends,
  however it ends, the kernel closes that end, the watchdog's read returns empty, and it terminates the
  server (SIGTERM, then SIGKILL after a grace period); `Watchdog.release` writes a word first, and the
  watchdog leaves the server alone. A pipe rather than Linux's ``PR_SET_PDEATHSIG``: it works for
  a server another library started (Prefect's temporary server), and on systems without prctl.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

RELEASE = b"r"  # what the command writes to let its watchdog go; the pipe closing without it means the command died


def _alive(pid: int, start: str) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` (and not a zombie)."""
    if start == "-":  # no /proc: trust the pid
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start  # a reused pid names another process


def _watch(fd: int, pid: int, start: str, group: bool, grace: float) -> None:
    """The watchdog: wait for the pipe to close, then terminate the server (SIGKILL after ``grace`` s)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            said = os.read(fd, 1)
        except InterruptedError:
            continue
        if said == RELEASE:  # the command let its server go (stopped it itself): nothing to do
            return
        if not said:  # the command ended, with no word: its server goes too
            break
    if not _alive(pid, start):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            (os.killpg if group else os.kill)(pid, sig)
        except OSError:
            return
        deadline = time.monotonic() + grace
        while _alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid, start):
            return


_held: dict[int, int] = {}  # watchdog pid -> the pipe's writing end this process keeps open


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, it names
    one process; "-" where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return "-"


class Watchdog:
    """A running watchdog of ``pid``; `release` ends it (the server was stopped another way)."""

    def __init__(self, proc: subprocess.Popen, write_fd: int):
        self.proc, self._fd = proc, write_fd

    def release(self, timeout: float = 10.0) -> None:
        """End the watchdog without touching the server (stopped, or kept on purpose)."""
        if _held.pop(self.proc.pid, None) is not None:
            os.write(self._fd, RELEASE)
            os.close(self._fd)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def stop_with_this_process(pid: int, group: bool = False, grace: float = 10.0) -> Watchdog:
    """Terminate process ``pid`` (its process group with ``group``) when this process ends, however it
    ends; ``grace`` seconds after SIGTERM, SIGKILL."""
    read_fd, write_fd = os.pipe()  # neither end is inherited by other children (PEP 446)
    try:
        # this file as a script, isolated (-I: the standard library only), so that it starts in ~20 ms
        proc = subprocess.Popen([sys.executable, "-I", __file__, str(read_fd), str(pid), start_time(pid), "1" if group else "0", str(grace)],
                                pass_fds=(read_fd,), start_new_session=True,  # its own session: a Ctrl-C at the terminal does not reach it
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.close(read_fd)
    _held[proc.pid] = write_fd
    return Watchdog(proc, write_fd)


def _exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def exit_on_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)):
    """Inside the block, SIGTERM and SIGHUP end the command as an exception would (exit code 128 + the
    signal), running its ``finally`` blocks and ``atexit`` handlers; the previous handlers come back after.
    Outside the main thread (where no handler can be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _exit) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

if __name__ == "__main__":  # the watchdog (stop_with_this_process)
    _watch(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", float(sys.argv[5]))
