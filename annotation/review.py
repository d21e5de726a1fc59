"""Push a release to Label Studio for review, pull the reviews back and re-release.

Push: the release's distinct images are written under the served folder, the project and its
local-file storage are created or reused, and every example not yet in the project becomes a task
whose prediction pre-fills the boxes and texts (model version = pipeline version + detector),
least detector agreement first. Idempotent by example id: pushing twice creates nothing twice, and
a push cut off midway is completed by the next one.

Pull: every task's annotations are read; the latest annotation whose verdict is accept or fixed
wins; failing that, a reject verdict rejects the example; with no verdict the task is still open.
Edits (boxes, step texts, question, answer) are applied, reviewer, time and verdict recorded, the
structural verification re-run on the edited examples, and a new release is written; rejected
examples leave it with the reviewer's reason. Counts reconcile: pushed = accepted + fixed +
rejected + open. Where a task has several annotations, their agreement (box IoU per step, equal
texts) is reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm

from annotation.configs import gcot_review_config
from annotation.tasks import MalformedAnnotation, read_annotation, task_for
from pipeline import __version__
from pipeline.boxes import iou
from pipeline.detect.crosscheck import review_order
from pipeline.release import arrow
from pipeline.release.writer import fill_release, write_atomically
from pipeline.schema import Example, Rejection
from pipeline.verify import example_failures

log = logging.getLogger(__name__)
PUSH_BATCH = 1000  # tasks a request; LS imports a request in one transaction


class PushInterrupted(RuntimeError):
    pass


def project_title(release: Path) -> str:
    return f"GCoT review: {release.resolve().name}"


def _release_examples(release: Path) -> list[Example]:
    files = sorted((release / "data").glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{release}: no Parquet shards under data/ (is it a release folder?)")
    return arrow.read_examples(files)


def _image_bytes(release: Path) -> dict[str, bytes]:
    return arrow.read_images(sorted((release / "data").glob("*.parquet")))


def export_images(release: Path, files_root: Path) -> Path:
    """Distinct images of the release as files under the served folder; returns their folder."""
    folder = served_folder(release, files_root)
    for img, data in _image_bytes(release).items():
        path = folder / img
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return folder


def get_project(client, title: str, create: bool = True, label_config: str | None = None, description: str = "Grounded chain-of-thought review (gcot-forge)"):
    for p in client.projects.list():
        if p.title == title:
            return p
    if not create:
        raise LookupError(f"no Label Studio project titled {title!r}; push the release first")
    return client.projects.create(title=title, label_config=label_config or gcot_review_config(), description=description)


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


def is_longv(release: str | Path) -> bool:
    return (Path(release) / "data" / "longv-eval.parquet").is_file()


def push(release: str | Path, client, files_root: str | Path, title: str | None = None, batch: int = PUSH_BATCH) -> PushSummary:
    release = Path(release)
    if is_longv(release):
        from annotation.longv_review import push as push_longv

        return push_longv(release, client, files_root, title, batch)
    examples = review_order(_release_examples(release))
    folder = export_images(release, Path(files_root))
    project = get_project(client, title or project_title(release))
    ensure_storage(client, project.id, folder)
    done = existing_ids(client, project.id)
    todo = [e for e in examples if e.id not in done]
    detectors = sorted({e.detector.model for e in examples if e.detector})
    version = f"gcot-forge-{__version__}" + (f"+{detectors[0]}" if detectors else "")
    prefix = f"{folder.name}/"
    tasks = [task_for(e, f"/data/local-files/?d={prefix}{e.image}", version) for e in todo]
    pushed = import_in_batches(client, project.id, tasks, batch)
    return PushSummary(project.id, f"{client._client_wrapper.get_base_url()}/projects/{project.id}", len(examples), pushed, len(done))


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

    @property
    def reconciles(self) -> bool:
        return self.pushed == self.accepted + self.fixed + self.rejected + self.open


def _agreement(reviews: list) -> dict:
    """Pairwise agreement of the verdicts' examples of one task: mean box IoU per step, equal texts."""
    ious, equal, pairs = [], 0, 0
    for i in range(len(reviews)):
        for j in range(i + 1, len(reviews)):
            a, b = reviews[i].example, reviews[j].example
            pairs += 1
            ious += [iou(x.box, y.box) for x, y in zip(a.grounded_steps, b.grounded_steps)]
            equal += [s.text for s in a.steps] == [s.text for s in b.steps] and a.answer == b.answer and a.question == b.question
    return {"pairs": pairs, "box_ious": ious, "texts_equal": equal}


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


def pull(release: str | Path, client, out: str | Path, title: str | None = None) -> PullSummary:
    release, out = Path(release), Path(out)
    if is_longv(release):
        from annotation.longv_review import pull as pull_longv

        return pull_longv(release, client, out, title)
    examples = _release_examples(release)
    project = get_project(client, title or project_title(release), create=False)
    users = {u.id: u.email or u.username for u in client.users.list()}
    tasks = {t["data"].get("example_id"): t for t in export_tasks(client, project.id) if t.get("data")}
    summary = PullSummary(str(out), pushed=sum(1 for e in examples if e.id in tasks))
    kept, new_rejections, agree = [], [], {"tasks": 0, "pairs": 0, "box_ious": [], "texts_equal": 0}
    for ex in examples:
        task = tasks.get(ex.id)
        if task is None:
            kept.append(ex)  # never pushed: stays as it was
            continue
        reviews = read_reviews(task, users, lambda ann, ex=ex: read_annotation(ex, ann), MalformedAnnotation, summary)
        if len(reviews) > 1:
            a = _agreement(reviews)
            agree["tasks"] += 1
            agree["pairs"] += a["pairs"]
            agree["box_ious"] += a["box_ious"]
            agree["texts_equal"] += a["texts_equal"]
        accepted = [r for r in reviews if r.verdict in ("accept", "fixed")]
        if accepted:
            r = accepted[-1]  # the latest accepted annotation wins
            new = r.example
            new.review.status = "fixed" if (r.verdict == "fixed" or r.changed) else "accepted"
            new.review.reviewer, new.review.reviewed_at, new.review.comment = r.reviewer, r.reviewed_at, r.comment
            if r.changed:
                new.provenance["review_changes"] = ", ".join(r.changed)
                fails = example_failures(new, None, None)
                new.verification.failures = [{"rule": f, "detail": d} for f, d in fails]
                new.verification.passed = not fails
                if fails:
                    new_rejections.append(Rejection("review", ex.id, fails[0][0], f"after review edits: {fails[0][1]}"))
                    summary.rejected += 1
                    continue
            if new.review.status == "fixed":
                summary.fixed += 1
            else:
                summary.accepted += 1
            kept.append(new)
        elif reviews:
            r = reviews[-1]
            new_rejections.append(Rejection("review", ex.id, "rejected_by_reviewer", f"{r.reviewer or 'a reviewer'}: {r.comment or 'no reason given'}"))
            summary.rejected += 1
        else:
            summary.open += 1
            kept.append(ex)
    ious = agree.pop("box_ious")
    summary.agreement = {**agree, "mean_box_iou": sum(ious) / len(ious) if ious else None, "steps_compared": len(ious)}
    _write(release, out, kept, new_rejections, summary)
    return summary


def _write(release: Path, out: Path, examples: list[Example], new_rejections: list[Rejection], summary: PullSummary) -> None:
    old_stats = json.loads((release / "stats.json").read_text())
    old_rej = [Rejection(**json.loads(line)) for line in (release / "rejections.jsonl").read_text().splitlines() if line]
    images = _image_bytes(release)

    def load_image(ex: Example) -> bytes | None:
        return images.get(ex.image)

    def image_size(ex: Example) -> int:
        return len(images.get(ex.image) or b"")

    counts = Counter(e.review.status for e in examples)
    meta = {
        "name": f"GCoT release ({release.name}, reviewed: {counts['accepted']} accepted, {counts['fixed']} fixed, {summary.rejected} rejected)",
        "source": f"review of {release.name}",
        "seed": old_stats.get("seed", "-"),
        "command": f"python -m annotation pull --release {release.name} --out {out.name}",
    }

    def fill(tmp: Path) -> None:
        fill_release(tmp, out.resolve(), examples, old_rej + new_rejections, old_stats["candidates"], meta, load_image, image_size)
        report = {k: v for k, v in summary.__dict__.items()}
        report["reconciles"] = summary.reconciles
        (tmp / "review_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))

    write_atomically(out, fill)
