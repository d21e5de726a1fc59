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

__all__ = ["PullSummary", "PushInterrupted", "PushSummary", "existing_ids", "is_longv", "project_title", "pull", "push"]


def is_longv(release: str | Path) -> bool:
    return (Path(release) / "data" / "longv-eval.parquet").is_file()


def push(release: str | Path, client, files_root: str | Path, title: str | None = None, batch: int = PUSH_BATCH) -> PushSummary:
    release = Path(release)
    return (longv_review if is_longv(release) else gcot_review).push(release, client, files_root, title, batch)


def pull(release: str | Path, client, out: str | Path, title: str | None = None) -> PullSummary:
    release = Path(release)
    return (longv_review if is_longv(release) else gcot_review).pull(release, client, Path(out), title)
