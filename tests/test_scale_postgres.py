"""The scale-out profile on a PostgreSQL this module starts (Debian's binaries, a throwaway cluster):
a Prefect server on it, a process work pool whose worker runs `prefect deployment run build-gcot/local`,
and Label Studio on it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gcot import scale
from gcot.flows.serve import start_server
from tests.ports import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]  # slow: two servers on Postgres, over two minutes (make test-all)
PREFECT = str(Path(sys.executable).parent / "prefect")


def _install_postgres() -> str | None:
    """Debian's postgresql when it is missing (as `make postgres` does); the reason when that cannot be."""
    if scale.pg_bindir() is not None:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "no PostgreSQL binaries and no way to install them here (not root, or no apt-get): run `make postgres` as root"
    r = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql", shell=True, capture_output=True, text=True, timeout=900)
    return None if r.returncode == 0 and scale.pg_bindir() else f"apt-get install postgresql failed: {r.stderr[-300:]}"


@pytest.fixture(scope="module")
def pg():
    reason = _install_postgres()
    if reason:
        pytest.skip(reason)
    # Directly under /tmp: the postgres user must reach it (pytest's own tmp folders are root's, mode 700).
    root = Path(tempfile.mkdtemp(prefix="gcot-pg-"))
    cluster = scale.Postgres(root, port=free_port()).start()
    try:
        for db in ("prefect", "labelstudio"):
            cluster.create_database(db)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # a worker shuts down cleanly on SIGINT
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_deployment_runs_through_a_process_worker_on_a_prefect_server_on_postgres(pg, tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false"}
    os.makedirs(env["PREFECT_HOME"])
    server = start_server("127.0.0.1", port, log_file=tmp_path / "server.log", env={**env, **scale.prefect_server_env(pg, "127.0.0.1", port), "PREFECT_UI_ENABLED": "false"})
    worker = None
    try:
        assert pg.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'flow_run'", "prefect") == "1"  # Prefect migrated PostgreSQL
        # the worker starts while the deployment is made (either one creates the pool)
        worker = subprocess.Popen([sys.executable, "-m", "gcot.scale", "worker", "--pool", "gcot-test"], env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}, cwd=tmp_path,
                                  stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT)
        r = subprocess.run([sys.executable, "-m", "gcot.scale", "deploy", "--pool", "gcot-test", "--name", "local"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert pg.sql("SELECT type FROM work_pool WHERE name = 'gcot-test'", "prefect") == "process"
        out = tmp_path / "release"
        # runner=dask: the runner choice is a flow parameter, so it reaches the flow run the worker starts
        r = subprocess.run(
            [PREFECT, "deployment", "run", "build-gcot/local", "-p", "config=" + json.dumps({"images": 12, "out": str(out), "work_dir": str(tmp_path / "work"), "runner": "dask"}), "--watch", "--watch-timeout", "300"],
            env=env, capture_output=True, text=True, timeout=400,
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:] + (tmp_path / "worker.log").read_text()[-3000:]
        assert "Completed" in r.stdout
        assert (out / "README.md").is_file() and list((out / "data").glob("train-*.parquet"))
        # the run, its worker and its shard tasks are rows in PostgreSQL
        rows = pg.sql("SELECT f.name, r.state_type, r.parameters->'config'->>'runner', w.name FROM flow_run r JOIN flow f ON f.id = r.flow_id"
                      " JOIN work_queue q ON q.id = r.work_queue_id JOIN work_pool w ON w.id = q.work_pool_id", "prefect")
        assert rows == "build-gcot|COMPLETED|dask|gcot-test"
        assert pg.sql("SELECT count(*) FROM task_run WHERE name LIKE 'build-shard-%' AND state_type = 'COMPLETED'", "prefect") == "1"
    finally:
        if worker is not None:
            _stop(worker)
        server.terminate()
        server.wait(30)


def test_label_studio_migrates_and_keeps_a_project_in_postgres(pg, tmp_path):
    from annotation.server import LabelStudioServer, ReviewServerError

    with pytest.raises(ReviewServerError, match="not a PostgreSQL URL"):
        LabelStudioServer(tmp_path / "x", tmp_path / "x" / "files", database_url="mysql://u:p@h/db")
    ls = LabelStudioServer(tmp_path / "ls", tmp_path / "ls" / "files", port=free_port(), database_url=pg.url("labelstudio", "postgresql"))
    with ls:
        c = ls.client()
        p = c.projects.create(title="gcot on postgres", label_config='<View><Text name="t" value="$text"/><Choices name="v" toName="t"><Choice value="accept"/></Choices></View>')
        c.projects.import_tasks(id=p.id, request=[{"text": "step 1"}, {"text": "step 2"}])
        assert [t.data["text"] for t in c.tasks.list(project=p.id)] == ["step 1", "step 2"]
    # the rows live in PostgreSQL, not in a SQLite file under the data folder
    assert pg.sql("SELECT title FROM project", "labelstudio") == "gcot on postgres"
    assert pg.sql(f"SELECT count(*) FROM task WHERE project_id = {p.id}", "labelstudio") == "2"
    assert not list((tmp_path / "ls").glob("*.sqlite3"))
