"""Prefect's temporary server, tied to the command that needs it, and user errors told in one line.

With no ``PREFECT_API_URL``, Prefect starts a temporary server (uvicorn in a child process) on a flow's first
call and stops it from ``atexit``, which never runs when the command is killed: the server went on answering.
`start_temporary_server` starts that same server first (Prefect's own ``SubprocessASGIServer``, the instance its
client then uses) with a watchdog on its process (`core.lifetime`), so that it stops with the command however
the command ends.

A user error inside a task (a bad record under ``--strict``, an output the guard refuses) is not worth a
retry and not a crash: `no_retry_on_user_errors` keeps Prefect from retrying it, and `quiet_user_errors`
keeps Prefect's loggers from printing its traceback (the command prints the error in one line).
"""

from __future__ import annotations

import logging

from core.config import ConfigError
from core.guard import OutputRefused
from pipeline.detect.detector import DetectorError
from pipeline.longv.video import VideoError
from pipeline.sources.base import SourceError
from training.data import ReleaseError

# What a user can fix and a retry cannot: bad input, a refused output.
USER_ERRORS: tuple[type[BaseException], ...] = (SourceError, VideoError, OutputRefused, DetectorError, ConfigError, ReleaseError, FileNotFoundError)


def start_temporary_server():
    """Start Prefect's temporary server now if no Prefect API is configured, and tie it to this process.

    Prefect stops it at exit (after its log and event workers have sent what they hold, which is why it is
    not stopped here); a watchdog, put on the server's process the moment it is spawned (not once it is
    healthy, seconds later), stops it when this process ends without running its exit handlers (SIGKILL).
    Returns the server, or None where an API is configured."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    from core.lifetime import stop_with_this_process

    if PREFECT_API_URL.value():
        return None

    class TiedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self):  # Prefect's one place that spawns the server (again on a port clash)
            proc = super()._run_uvicorn_command()
            stop_with_this_process(proc.pid)
            return proc

    # SubprocessASGIServer keeps one instance per port in a dict its subclasses share: made here first, this
    # one is what Prefect's client gets from SubprocessASGIServer() and uses.
    server = TiedServer()
    server.start()
    return server


def no_retry_on_user_errors(task, task_run, state) -> bool:
    """A task's ``retry_condition_fn``: retry what may pass next time, not a user error."""
    return not isinstance(getattr(state, "data", None), USER_ERRORS)


class _DropUserTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], USER_ERRORS):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_errors() -> None:
    """Prefect's run loggers report a user error in a line, without the traceback."""
    for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.flow_engine", "prefect.task_engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropUserTracebacks) for f in logger.filters):
            logger.addFilter(_DropUserTracebacks())
