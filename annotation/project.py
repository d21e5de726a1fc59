"""The Label Studio project plumbing both reviews share (GCoT chains, LongV-EVAL prompts).

A project is found by title or created; the release's media are served from a folder of their own
under Label Studio's local-files root; tasks are imported in batches, idempotent by example id; a
pull reads every task raw from the export endpoint and each annotation with a verdict, oldest first,
and settles each item by one rule (`settle`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from core import __version__
from core.schema import Rejection

log = logging.getLogger(__name__)
PUSH_BATCH = 1000  # tasks a request; LS imports a request in one transaction


class PushInterrupted(RuntimeError):
    pass


def get_project(client, title: str, create: bool = True, label_config: str | None = None, description: str = "", instructions: str | None = None):
    """The project titled ``title``, created with the labeling config and ``instructions`` (Label
    Studio's expert instructions, shown when a reviewer opens the labeling stream) if there is none.
    An existing project keeps its labeling config (its annotations were made with it) and gets the
    current instructions."""
    for p in client.projects.list():
        if p.title == title:
            if instructions is not None and (p.expert_instruction != instructions or not p.show_instruction):
                p = client.projects.update(id=p.id, expert_instruction=instructions, show_instruction=True)
            return p
    if not create:
        raise LookupError(f"no Label Studio project titled {title!r}; push the release first")
    extra = {"expert_instruction": instructions, "show_instruction": True} if instructions is not None else {}
    return client.projects.create(title=title, label_config=label_config, description=description, **extra)


def served_folder(release: Path, files_root: Path) -> Path:
    """Where a release's media live under the served folder: its name plus a digest of where it
    lives, so two releases called "demo" do not collide."""
    return files_root / f"{release.resolve().name}-{hashlib.sha256(str(release.resolve()).encode()).hexdigest()[:8]}"


def ensure_storage(client, project_id: int, folder: Path) -> None:
    if not any(Path(s.path).resolve() == folder.resolve() for s in client.import_storage.local.list(project=project_id)):
        client.import_storage.local.create(project=project_id, path=str(folder), use_blob_urls=True, title=folder.name)


def export_tasks(client, project_id: int) -> list[dict]:
    """Every task of the project with its annotations, as plain JSON.

    Label Studio's export endpoint, read raw: the SDK's paged task list validates each of 10,000
    tasks into pydantic models, which took most of a pull's time."""
    w = client._client_wrapper
    r = httpx.get(
        f"{w.get_base_url()}/api/projects/{project_id}/export",
        params={"exportType": "JSON", "download_all_tasks": "true"},
        headers=w.get_headers(),
        timeout=300,
    )
    r.raise_for_status()
    return r.json()


def existing_ids(client, project_id: int) -> dict[str, int]:
    """example id -> task id of the tasks already in the project."""
    return {t["data"]["example_id"]: t["id"] for t in export_tasks(client, project_id) if "example_id" in (t.get("data") or {})}


def import_in_batches(client, project_id: int, tasks: list[dict], batch: int = PUSH_BATCH) -> int:
    """Import tasks ``batch`` a request; a server that stops answering gives `PushInterrupted`
    saying how far it got (the tasks of finished requests stay: the next push adds the rest)."""
    pushed = 0
    with tqdm(total=len(tasks), desc="push tasks", unit="task") as bar:
        for start in range(0, len(tasks), batch):
            chunk = tasks[start : start + batch]
            try:
                client.projects.import_tasks(id=project_id, request=chunk, commit_to_project=True)
            except (httpx.TransportError, OSError) as e:
                raise PushInterrupted(
                    f"Label Studio stopped answering after {pushed} of {len(tasks)} new tasks ({type(e).__name__}); "
                    "push again to add the rest: tasks already there are not pushed twice"
                ) from e
            pushed += len(chunk)
            bar.update(len(chunk))
    return pushed


@dataclass
class PushSummary:
    project_id: int
    url: str
    examples: int
    pushed: int  # new tasks this time
    already: int  # tasks that were there before


def push_tasks(client, items: Sequence, folder: Path, media: Callable[[Any], str], task_of: Callable[[Any, str, str], dict], *, title: str,
               label_config: str, description: str, batch: int = PUSH_BATCH, detector: str | None = None, instructions: str | None = None) -> PushSummary:
    """The push both reviews share: the project (created with ``label_config`` if new) and its storage
    of ``folder``, then a task ``task_of(item, url, model_version)`` for every item whose id is not in
    the project yet, imported in batches. ``media(item)`` is the item's file under ``folder``, where
    the caller has already put it."""
    project = get_project(client, title, label_config=label_config, description=description, instructions=instructions)
    ensure_storage(client, project.id, folder)
    done = existing_ids(client, project.id)
    version = f"gcot-forge-{__version__}" + (f"+{detector}" if detector else "")
    tasks = [task_of(i, f"/data/local-files/?d={folder.name}/{media(i)}", version) for i in items if i.id not in done]
    pushed = import_in_batches(client, project.id, tasks, batch)
    return PushSummary(project.id, f"{client._client_wrapper.get_base_url()}/projects/{project.id}", len(items), pushed, len(done))


@dataclass
class PullSummary:
    out: str
    pushed: int
    accepted: int = 0
    fixed: int = 0
    rejected: int = 0
    open: int = 0
    malformed: list[dict] = field(default_factory=list)  # task id, example id, reason
    agreement: dict = field(default_factory=dict)
    changelog: list[dict] = field(default_factory=list)  # per reviewed task: who, when, verdict, outcome, what changed
    accepted_with_edits: list[dict] = field(default_factory=list)  # changelog entries whose "accept" counted as fixed
    drafts: list[dict] = field(default_factory=list)  # drafts Label Studio saved that were never submitted, with what they change

    @property
    def reconciles(self) -> bool:
        return self.pushed == self.accepted + self.fixed + self.rejected + self.open

    def report(self) -> dict:
        """The pull's report (review_report.json): the counts and whether they reconcile, the per-task
        changelog, accepts that counted as fixed, and drafts never submitted."""
        return {**self.__dict__, "reconciles": self.reconciles}

    def counts(self) -> dict:
        """What the pull command prints: the report without its per-task lists, with their lengths."""
        lists = ("changelog", "accepted_with_edits", "drafts")
        return {**{k: v for k, v in self.report().items() if k not in lists}, **{k: len(getattr(self, k)) for k in lists}}


def open_tasks(client, title: str, ids: set[str]) -> tuple[dict, dict[str, dict], int]:
    """For a pull: the user names by id, the project's tasks by example id, and how many of ``ids``
    were pushed."""
    project = get_project(client, title, create=False)
    users = {u.id: u.email or u.username for u in client.users.list()}
    tasks = {t["data"].get("example_id"): t for t in export_tasks(client, project.id) if t.get("data")}
    return users, tasks, sum(1 for i in ids if i in tasks)


def annotations_in_order(task: dict, users: dict) -> Iterator[dict]:
    """A task's annotations oldest first, cancelled ones skipped, ``completed_by`` as the user's email."""
    for ann in sorted(task.get("annotations") or [], key=lambda a: (a.get("updated_at") or "", a.get("id") or 0)):
        if not ann.get("was_cancelled"):
            yield {**ann, "completed_by": users.get(ann.get("completed_by"), ann.get("completed_by"))}


def read_reviews(task: dict, users: dict, read, errors, summary: PullSummary) -> list:
    """``read(annotation)`` of each annotation of the task that carries a verdict, oldest first; one
    that ``read`` rejects (raising ``errors``) is reported in ``summary.malformed``, not fatal."""
    out = []
    for ann in annotations_in_order(task, users):
        try:
            r = read(ann)
        except errors as e:
            summary.malformed.append({"task": task["id"], "example": task["data"].get("example_id"), "annotation": ann.get("id"), "reason": str(e)})
            continue
        if r.verdict:
            out.append(r)
    return out


def _describe_changed(review) -> list[str]:
    return list(review.changed)


def settle(item, reviews: list, summary: PullSummary, reviewed: Callable[[Any], Any],
           recheck: Callable[[Any], list[tuple[str, str]]], task: int | None = None,
           describe: Callable[[Any], list[str]] = _describe_changed) -> tuple[Any | None, Rejection | None]:
    """The pull rule both reviews share, for one pushed item and its ``reviews`` (verdicts, oldest first):
    the latest accept or fixed wins (``reviewed(review)``: the item as the annotator left it, with
    reviewer, time and comment); edits make it fixed and must pass ``recheck`` (rule, detail pairs),
    else it is rejected with the first failure. Failing that, a reject verdict rejects the item with the
    reviewer's reason; with no verdict the item stays open, as it was. Counts go to ``summary``, and
    the deciding review to its changelog (``describe(review)``: what it changed, in words; an accept
    with edits, which counts as fixed, is listed apart too). Returns the item to keep, or the rejection."""
    accepted = [r for r in reviews if r.verdict in ("accept", "fixed")]
    if accepted:
        r = accepted[-1]  # the latest accepted annotation wins
        new = reviewed(r)
        new.review.status = "fixed" if (r.verdict == "fixed" or r.changed) else "accepted"
        entry = _log(summary, item.id, task, r.verdict, new.review, len(reviews), describe(r))
        if r.changed:
            new.provenance["review_changes"] = ", ".join(r.changed)
            if r.verdict == "accept":
                summary.accepted_with_edits.append(entry)
            fails = recheck(new)
            if fails:
                summary.rejected += 1
                entry["outcome"] = f"rejected: {fails[0][0]} after the edits"
                return None, Rejection("review", item.id, fails[0][0], f"after review edits: {fails[0][1]}")
        entry["outcome"] = new.review.status
        if new.review.status == "fixed":
            summary.fixed += 1
        else:
            summary.accepted += 1
        return new, None
    if reviews:
        last = reviewed(reviews[-1])
        summary.rejected += 1
        _log(summary, item.id, task, reviews[-1].verdict, last.review, len(reviews), describe(reviews[-1]))["outcome"] = "rejected"
        return None, Rejection("review", item.id, "rejected_by_reviewer", f"{last.review.reviewer or 'a reviewer'}: {last.review.comment or 'no reason given'}")
    summary.open += 1
    return item, None


def _log(summary: PullSummary, item_id: str, task: int | None, verdict: str, review, annotations: int, changes: list[str]) -> dict:
    """The changelog entry of a task's deciding review (``review``: the item's review record, who and
    when; its outcome is filled in by `settle`)."""
    entry = {"example": item_id, "task": task, "reviewer": review.reviewer, "reviewed_at": review.reviewed_at, "verdict": verdict,
             "changes": changes, "comment": review.comment, "annotations": annotations}
    summary.changelog.append(entry)
    return entry


def read_drafts(task: dict, users: dict, read, errors, summary: PullSummary, describe: Callable[[Any], list[str]] = _describe_changed) -> None:
    """Drafts Label Studio saved for the task and nobody submitted (it keeps a draft until its
    annotation is submitted): listed in ``summary.drafts`` with what each would change, never applied."""
    for d in task.get("drafts") or []:
        if not isinstance(d, dict):
            continue
        entry = {"example": task["data"].get("example_id"), "task": task["id"], "draft": d.get("id"), "user": users.get(d.get("user"), d.get("user")),
                 "updated_at": d.get("updated_at") or d.get("created_at"), "of_annotation": d.get("annotation")}
        try:
            r = read({**d, "completed_by": entry["user"]})
        except errors as e:
            summary.drafts.append({**entry, "verdict": None, "changes": [], "unreadable": str(e)})
            continue
        summary.drafts.append({**entry, "verdict": r.verdict, "changes": describe(r)})
