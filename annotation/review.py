"""Review in Label Studio: push a release, pull the reviews back into a new release.

One entry for both kinds of release: a LongV-EVAL release (``data/longv-eval.parquet``) goes to
`annotation.longv_review`, a GCoT release to `annotation.gcot_review`; the Label Studio plumbing they
share is `annotation.project`.
"""

from __future__ import annotations

from pathlib import Path

from annotation import gcot_review, longv_review
from annotation.gcot_review import project_title
from annotation.project import PUSH_BATCH, PullSummary, PushInterrupted, PushSummary, existing_ids
from core.guard import OutputGuard

__all__ = ["PullSummary", "PushInterrupted", "PushSummary", "existing_ids", "is_longv", "project_title", "pull", "pull_guard", "push"]


def is_longv(release: str | Path) -> bool:
    return (Path(release) / "data" / "longv-eval.parquet").is_file()


def push(release: str | Path, client, files_root: str | Path, title: str | None = None, batch: int = PUSH_BATCH) -> PushSummary:
    release = Path(release)
    return (longv_review if is_longv(release) else gcot_review).push(release, client, files_root, title, batch)


def pull_guard(release: str | Path, out: str | Path, overwrite: bool = False, inputs: tuple[tuple[str, str | Path], ...] = ()) -> OutputGuard:
    """Where the reviewed release may go (`core.guard`): never the release being pulled, nor over a folder the
    tool did not write."""
    kind = "reviewed LongV-EVAL release" if is_longv(release) else "reviewed GCoT release"
    return OutputGuard(out, kind, [("the release being pulled", release), *inputs], overwrite=overwrite)


def pull(release: str | Path, client, out: str | Path, title: str | None = None, guard: OutputGuard | None = None) -> PullSummary:
    """Pull the reviews of ``release`` into a new release at ``out`` (``guard``: default `pull_guard`, checked
    before Label Studio is asked anything)."""
    release = Path(release)
    guard = guard or pull_guard(release, out)
    guard.check()
    return (longv_review if is_longv(release) else gcot_review).pull(release, client, Path(out), title, guard)
