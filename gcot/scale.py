"""The scale-out profile: PostgreSQL (Debian's packages), a Prefect server on it, a process work pool
with workers, the build-gcot deployment from this checkout, and Label Studio on PostgreSQL.

    python -m gcot.scale postgres-up                 # initdb once under .postgres/, start on 127.0.0.1:5433
    python -m gcot.scale prefect-server              # Prefect API + UI on PostgreSQL at :4200 (foreground)
    python -m gcot.scale deploy                      # build-gcot/local into the process pool `gcot`
    python -m gcot.scale worker                      # a worker of that pool (as many as you like)
    python -m gcot.scale labelstudio-pg              # Label Studio on PostgreSQL at :8080 (foreground)
    python -m gcot.scale postgres-down

PostgreSQL refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` user that
Debian's package creates (``runuser``), in a folder handed to it. The database superuser is ``gcot``
with a random password kept in ``<dir>/password`` (mode 600; ``GCOT_PG_PASSWORD`` overrides), never
printed; connections need it (scram-sha-256), over TCP on 127.0.0.1 and a socket in the folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import CliSubCommand

from core import env
from core.cli import Command, CommandFailed, Group, single

env.apply()

REPO = env.REPO
OWNER = "postgres"  # the unprivileged user Debian's postgresql package creates


class PostgresError(RuntimeError):
    pass


def pg_bindir() -> Path | None:
    """Debian's /usr/lib/postgresql/<version>/bin (newest), else initdb on PATH; GCOT_PG_BIN overrides."""
    if os.environ.get("GCOT_PG_BIN"):
        return Path(os.environ["GCOT_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


@dataclass
class Postgres:
    """A PostgreSQL cluster of our own in ``root`` (data/, socket, server.log, password)."""

    root: Path
    port: int = 5433
    host: str = "127.0.0.1"
    user: str = "gcot"

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        bindir = pg_bindir()
        if bindir is None:
            raise PostgresError("no PostgreSQL binaries found (initdb): `make postgres` installs Debian's postgresql, or set GCOT_PG_BIN")
        self.bin = bindir

    @property
    def data(self) -> Path:
        return self.root / "data"

    def password(self) -> str:
        if os.environ.get("GCOT_PG_PASSWORD"):
            return os.environ["GCOT_PG_PASSWORD"]
        return (self.root / "password").read_text().strip()

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}:{quote(self.password(), safe='')}@{self.host}:{self.port}/{database}"

    def _owned(self, cmd: list[str]) -> list[str]:
        """As root, run as the unprivileged owner (PostgreSQL refuses root)."""
        if os.geteuid() != 0:
            return cmd
        if shutil.which("runuser") is None:
            raise PostgresError("running as root needs `runuser` (util-linux) to start PostgreSQL as the postgres user")
        return ["runuser", "-u", OWNER, "--", *cmd]

    def _run(self, cmd: list[str], owned: bool = True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(self._owned(cmd) if owned else cmd, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise PostgresError(f"{Path(cmd[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
        return r

    def init(self) -> Postgres:
        """initdb once (a folder that already holds a cluster is kept)."""
        if (self.data / "PG_VERSION").is_file():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        pw = self.root / "password"
        if not pw.is_file():
            pw.touch(mode=0o600)
            pw.write_text(os.environ.get("GCOT_PG_PASSWORD") or secrets.token_urlsafe(18))
        pwfile = self.root / ".initdb-pw"  # readable by the owner for initdb only
        pwfile.write_text(self.password() + "\n")
        if os.geteuid() == 0:
            for parent in self.root.parents:  # the owner must reach its folder
                if not parent.stat().st_mode & 0o001:
                    raise PostgresError(f"{parent} is closed to other users (mode {parent.stat().st_mode & 0o777:o}): the {OWNER} user cannot reach {self.root}; choose a folder under an open one (e.g. /tmp or the repo)")
            shutil.chown(self.root, OWNER, OWNER)
            shutil.chown(pwfile, OWNER, OWNER)
            self.root.chmod(0o700)
        try:
            self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"])
        finally:
            pwfile.unlink(missing_ok=True)
        return self

    def running(self) -> bool:
        r = subprocess.run(self._owned([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]), capture_output=True, text=True)
        return r.returncode == 0

    def start(self, wait_s: int = 60) -> Postgres:
        self.init()
        if not self.running():
            opts = f"-p {self.port} -k {self.root} -c listen_addresses={self.host}"
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", opts, "-w", "-t", str(wait_s), "start"])
        return self

    def stop(self) -> None:
        if self.data.is_dir() and self.running():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password(), "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}

    def create_database(self, name: str) -> None:
        """Create ``name`` unless it exists."""
        exists = self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'", "postgres")
        if not exists:
            self._run([str(self.bin / "createdb"), name], owned=False, env=self._client_env())

    def sql(self, query: str, database: str) -> str:
        """One query through psql; its rows, one a line, fields separated by |."""
        return self._run([str(self.bin / "psql"), "-X", "-At", "-d", database, "-c", query], owned=False, env=self._client_env()).stdout.strip()


# ---------------------------------------------------------------- Prefect on PostgreSQL, pool, worker


def prefect_server_env(pg: Postgres, host: str, port: int) -> dict[str, str]:
    """The server's environment: its database is PostgreSQL (``prefect`` database of the cluster)."""
    return {**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": pg.url("prefect"), "PREFECT_API_URL": f"http://{host}:{port}/api"}


def ensure_pool(pool: str) -> None:
    """A work pool of type ``process`` (flow runs as subprocesses of the worker), as
    `prefect work-pool create NAME --type process` makes it, unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as c:
        try:
            c.read_work_pool(pool)
        except ObjectNotFound:
            try:
                c.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            except ObjectAlreadyExists:  # a worker or a deploy beside us made it first
                pass


def deploy(pool: str, name: str = "local", source: Path = REPO) -> str:
    """build-gcot/<name> from this checkout into ``pool``; workers load the flow from ``source``
    (one machine, or the same path on a shared file system)."""
    from prefect import flow as _flow

    ensure_pool(pool)
    f = _flow.from_source(source=str(source), entrypoint="gcot/flows/build_gcot.py:build_gcot")
    f.deploy(name=name, work_pool_name=pool, build=False, push=False, print_next_steps=False, ignore_warnings=True)
    return f"{f.name}/{name}"


def worker_command(pool: str, limit: int | None = None) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
    return cmd + (["--limit", str(limit)] if limit else [])


# ---------------------------------------------------------------- command line


class PgOptions(Command):
    pg_dir: Path = Field(REPO / ".postgres", description="the PostgreSQL cluster's folder")
    pg_port: int = Field(5433, description="PostgreSQL's port on 127.0.0.1")

    def postgres(self) -> Postgres:
        return Postgres(Path(self.pg_dir), self.pg_port)


class PostgresUp(PgOptions):
    """initdb (once) and start PostgreSQL; create the prefect and labelstudio databases."""

    def run(self) -> int:
        pg = self.postgres()
        try:
            pg.start()
            for db in ("prefect", "labelstudio"):
                pg.create_database(db)
        except (PostgresError, RuntimeError) as e:
            raise CommandFailed(str(e)) from None
        print(f"PostgreSQL on {pg.host}:{pg.port} (folder {pg.root}, user {pg.user}, password in {pg.root / 'password'}); databases prefect, labelstudio")
        return 0


class PostgresDown(PgOptions):
    """Stop PostgreSQL."""

    def run(self) -> int:
        self.postgres().stop()
        return 0


class PrefectServer(PgOptions):
    """A Prefect server on that PostgreSQL (foreground)."""

    host: str = Field("127.0.0.1", description="the server's host")
    port: int = Field(4200, description="the server's port")

    def run(self) -> int:
        from gcot.flows.serve import start_server

        home = Path(os.environ["PREFECT_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        try:
            proc = start_server(self.host, self.port, log_file=home / "server-pg.log", env=prefect_server_env(self.postgres(), self.host, self.port))
        except (PostgresError, RuntimeError) as e:
            raise CommandFailed(str(e)) from None
        print(f"Prefect server on PostgreSQL: http://{self.host}:{self.port} (log {home / 'server-pg.log'})\n"
              f"  export PREFECT_API_URL=http://{self.host}:{self.port}/api", flush=True)
        return _wait(proc)


def _api_url() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise CommandFailed("set PREFECT_API_URL to the server first (e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api)")


class Deploy(Command):
    """The build-gcot deployment from this checkout into a process work pool (PREFECT_API_URL set)."""

    pool: str = Field("gcot", description="the work pool")
    name: str = Field("local", description="the deployment's name")

    def run(self) -> int:
        _api_url()
        print(f"deployment {deploy(self.pool, self.name)} in work pool {self.pool}; start workers: gcot scale worker --pool {self.pool}")
        return 0


class Worker(Command):
    """A process worker of the pool (foreground; start several; PREFECT_API_URL set)."""

    pool: str = Field("gcot", description="the work pool")
    limit: int | None = Field(None, description="flow runs at a time")

    def run(self) -> int:
        _api_url()
        ensure_pool(self.pool)
        os.execv(worker_command(self.pool, self.limit)[0], worker_command(self.pool, self.limit))
        return 0


class LabelStudioPg(PgOptions):
    """Label Studio on that PostgreSQL (foreground)."""

    host: str = Field("127.0.0.1", description="Label Studio's host")
    port: int = Field(8080, description="Label Studio's port")
    data_dir: Path = Field(REPO / ".labelstudio-pg", description="Label Studio's data folder (credentials, served files)")

    def run(self) -> int:
        from annotation.server import LabelStudioServer

        pg = self.postgres()
        server = LabelStudioServer(self.data_dir, Path(self.data_dir) / "files", self.host, self.port, database_url=pg.url("labelstudio", "postgresql"))
        try:
            server.start()
        except (PostgresError, RuntimeError) as e:
            raise CommandFailed(str(e)) from None
        print(f"Label Studio on PostgreSQL: {server.url} (login {server.credentials.username}; password in {server.data_dir / 'credentials.json'})", flush=True)
        return _wait(server.proc)


class Scale(Group):
    """The scale-out profile: each command runs one piece (see the README's "Scale out")."""

    postgres_up: CliSubCommand[PostgresUp] = Field(description="initdb (once) and start PostgreSQL; create the prefect and labelstudio databases")
    postgres_down: CliSubCommand[PostgresDown] = Field(description="stop PostgreSQL")
    prefect_server: CliSubCommand[PrefectServer] = Field(description="Prefect server on PostgreSQL (foreground)")
    deploy: CliSubCommand[Deploy] = Field(description="the build-gcot deployment from this checkout into a process work pool")
    worker: CliSubCommand[Worker] = Field(description="a process worker of the pool (foreground; start several)")
    labelstudio_pg: CliSubCommand[LabelStudioPg] = Field(description="Label Studio on PostgreSQL (foreground)")


def main(argv: list[str] | None = None) -> int:
    return single(Scale, "python -m gcot.scale", argv)


def _wait(proc: subprocess.Popen) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(30)
        return 0


if __name__ == "__main__":
    sys.exit(main())
