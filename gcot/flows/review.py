"""Prefect flows push-review and pull-review: the review steps of `annotation.review`, with artifacts.

Both talk to a Label Studio server that is already running (``make annotate``, or
``python -m annotation serve``); its data folder holds the API token.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from annotation import review
from annotation.server import LabelStudioServer
from core.env import REPO
from gcot.flows.ephemeral import no_retry_on_user_errors


def _server(data_dir: str | None, port: int) -> LabelStudioServer:
    root = Path(data_dir) if data_dir else REPO / ".labelstudio"
    srv = LabelStudioServer(root, root / "files", port=port)
    if not srv.healthy():
        raise RuntimeError(f"no Label Studio at {srv.url}; start it with `make annotate`")
    return srv


@task(retries=2, retry_delay_seconds=[5, 15], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def push_task(release: str, data_dir: str | None, port: int) -> dict:
    srv = _server(data_dir, port)
    return review.push(release, srv.client(), srv.files_root).__dict__


@task(retries=2, retry_delay_seconds=[5, 15], retry_condition_fn=no_retry_on_user_errors, cache_policy=NO_CACHE)
def pull_task(release: str, out: str, data_dir: str | None, port: int, overwrite: bool = False) -> dict:
    srv = _server(data_dir, port)
    s = review.pull(release, srv.client(), out, guard=review.pull_guard(release, out, overwrite, (("Label Studio's data folder", srv.data_dir),)))
    return {**s.__dict__, "reconciles": s.reconciles}


@flow(name="push-review", log_prints=True)
def push_review(release: str = "releases/demo", data_dir: str | None = None, port: int = 8080) -> dict:
    """Push a release's examples to Label Studio as pre-annotated review tasks (idempotent)."""
    s = push_task(release, data_dir, port)
    create_markdown_artifact(
        key="push-review",
        markdown=f"# push-review\n\nProject: {s['url']}\n\n| examples | new tasks | already there |\n|---|---|---|\n| {s['examples']} | {s['pushed']} | {s['already']} |\n",
    )
    return s


@flow(name="pull-review", log_prints=True)
def pull_review(release: str = "releases/demo", out: str = "releases/demo-reviewed", data_dir: str | None = None, port: int = 8080, overwrite: bool = False) -> dict:
    """Pull reviews from Label Studio, merge them and write the reviewed release (``overwrite``: replace a
    reviewed release this tool wrote at ``out``)."""
    s = pull_task(release, out, data_dir, port, overwrite)
    create_table_artifact(
        key="pull-review-counts",
        table=[{"pushed": s["pushed"], "accepted": s["accepted"], "fixed": s["fixed"], "rejected": s["rejected"], "open": s["open"], "malformed": len(s["malformed"]), "reconciles": s["reconciles"]}],
        description="pushed = accepted + fixed + rejected + open",
    )
    return s
