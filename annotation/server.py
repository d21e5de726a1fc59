"""Start, check and stop the Label Studio server that the project runs (SQLite under a data folder,
or PostgreSQL given a ``database_url``).

Label Studio lives in its own virtual environment, ``.venv-labelstudio`` (``make labelstudio``):
it pins Django and many packages that clash with the project's. The admin account and API token
come from the environment (``GCOT_LS_USERNAME``, ``GCOT_LS_PASSWORD``, ``GCOT_LS_TOKEN``) or from
``<data dir>/credentials.json``, created with random secrets (mode 600) on first start; they are
never printed or logged. Local-file serving is confined to one folder: the review images.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from core.env import REPO
from core.lifetime import Watchdog, stop_with_this_process

LS_VENV = REPO / ".venv-labelstudio"


class ReviewServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    token: str

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(username={self.username!r}, password=***, token=***)"


def load_credentials(data_dir: str | Path) -> Credentials:
    env = {k: os.environ.get(f"GCOT_LS_{k.upper()}") for k in ("username", "password", "token")}
    if all(env.values()):
        return Credentials(**env)  # type: ignore[arg-type]
    path = Path(data_dir) / "credentials.json"
    if path.is_file():
        return Credentials(**json.loads(path.read_text()))
    creds = Credentials("admin@gcot.local", secrets.token_urlsafe(12), secrets.token_hex(20))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(creds)))
    return creds


def postgres_environment(database_url: str) -> dict[str, str]:
    """Label Studio's settings for PostgreSQL from ``postgresql://user:password@host:port/name``."""
    from urllib.parse import unquote, urlparse

    u = urlparse(database_url)
    if not u.scheme.startswith("postgres") or not u.path.strip("/"):
        raise ReviewServerError(f"not a PostgreSQL URL (postgresql://user:password@host:port/database): {u.scheme}://{u.hostname}:{u.port}{u.path}")
    return {
        "DJANGO_DB": "default",  # Label Studio's name for its PostgreSQL settings
        "POSTGRE_NAME": u.path.strip("/"),
        "POSTGRE_USER": unquote(u.username or "postgres"),
        "POSTGRE_PASSWORD": unquote(u.password or ""),
        "POSTGRE_HOST": u.hostname or "localhost",
        "POSTGRE_PORT": str(u.port or 5432),
    }


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the server's process group (it leads its own session): whatever it started goes too."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class LabelStudioServer:
    """``database_url``: ``postgresql://...`` for PostgreSQL (the scale-out profile); none: SQLite under data_dir."""

    def __init__(self, data_dir: str | Path, files_root: str | Path, host: str = "127.0.0.1", port: int = 8080, database_url: str | None = None):
        self.database = postgres_environment(database_url) if database_url else {}
        self.data_dir = Path(data_dir).resolve()
        self.files_root = Path(files_root).resolve()
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.credentials = load_credentials(self.data_dir)
        self.proc: subprocess.Popen | None = None
        self._watchdog: Watchdog | None = None

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as r:
                return r.status == 200
        except OSError:
            return False

    def environment(self) -> dict[str, str]:
        c = self.credentials
        return {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_USERNAME": c.username,
            "LABEL_STUDIO_PASSWORD": c.password,
            "LABEL_STUDIO_USER_TOKEN": c.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # the preset token only works with it
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            **self.database,
        }

    def start(self, wait_s: float = 240.0) -> LabelStudioServer:
        exe = LS_VENV / "bin" / "label-studio"
        if not exe.exists():
            raise ReviewServerError(f"Label Studio is not installed ({exe} missing): run `make labelstudio`")
        if self.healthy():
            raise ReviewServerError(f"something already answers at {self.url}; choose another --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.files_root.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--host", self.host, "--port", str(self.port)],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir, start_new_session=True,
        )
        self._watchdog = stop_with_this_process(self.proc.pid, group=True)  # its own session: stopped as a group
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ReviewServerError(f"Label Studio exited with code {code}; see {self.data_dir / 'server.log'}")
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise ReviewServerError(f"Label Studio not healthy at {self.url} after {wait_s:.0f} s; see {self.data_dir / 'server.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(10)
        if self._watchdog is not None:
            self._watchdog.release()
        self.proc, self._watchdog = None, None

    def client(self):
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.credentials.token, timeout=120)

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
