"""GCoT review: push a release's chains to Label Studio, pull the reviews back and re-release.

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
texts) is reported. ``review_report.json`` keeps a changelog of every reviewed task (reviewer, time,
verdict, outcome, what changed: a box moved by IoU x, a text before and after), lists apart the
accepts with edits (they count as fixed) and the drafts Label Studio saved that nobody submitted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from functools import partial
from pathlib import Path

from annotation.configs import gcot_instructions, gcot_review_config
from annotation.project import (
    PUSH_BATCH,
    PullSummary,
    PushSummary,
    open_tasks,
    push_tasks,
    read_drafts,
    read_reviews,
    served_folder,
    settle,
)
from annotation.tasks import MalformedAnnotation, Review, read_annotation, task_for
from core.boxes import iou
from core.guard import OutputGuard
from core.schema import Example, Rejection
from core.shards import write_atomically
from pipeline.detect.crosscheck import review_order
from pipeline.release import arrow
from pipeline.release.writer import fill_release
from pipeline.verify import example_failures

log = logging.getLogger(__name__)


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


def push(release: Path, client, files_root: str | Path, title: str | None = None, batch: int = PUSH_BATCH) -> PushSummary:
    examples = review_order(_release_examples(release))
    folder = export_images(release, Path(files_root))
    detectors = sorted({e.detector.model for e in examples if e.detector})
    return push_tasks(client, examples, folder, lambda e: e.image, task_for, title=title or project_title(release), label_config=gcot_review_config(),
                      description="Grounded chain-of-thought review (gcot-forge)", batch=batch, detector=detectors[0] if detectors else None,
                      instructions=gcot_instructions())


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


def _describe(r: Review) -> list[str]:
    return [c.describe() for c in r.changes]


def _reviewed(r: Review) -> Example:
    """The example as the annotator left it, with the reviewer, time and comment."""
    ex = r.example
    ex.review.reviewer, ex.review.reviewed_at, ex.review.comment = r.reviewer, r.reviewed_at, r.comment
    return ex


def _reverify(ex: Example) -> list[tuple[str, str]]:
    """The structural verification of an edited example, recorded on it."""
    fails = example_failures(ex, None, None)
    ex.verification.failures = [{"rule": f, "detail": d} for f, d in fails]
    ex.verification.passed = not fails
    return fails


def pull(release: Path, client, out: Path, title: str | None = None, guard: OutputGuard | None = None) -> PullSummary:
    examples = _release_examples(release)
    users, tasks, pushed = open_tasks(client, title or project_title(release), {e.id for e in examples})
    summary = PullSummary(str(out), pushed=pushed)
    kept, new_rejections, agree = [], [], {"tasks": 0, "pairs": 0, "box_ious": [], "texts_equal": 0}
    for ex in examples:
        task = tasks.get(ex.id)
        if task is None:
            kept.append(ex)  # never pushed: stays as it was
            continue
        read = partial(read_annotation, ex)
        reviews = read_reviews(task, users, read, MalformedAnnotation, summary)
        read_drafts(task, users, read, MalformedAnnotation, summary, _describe)
        if len(reviews) > 1:
            a = _agreement(reviews)
            agree["tasks"] += 1
            agree["pairs"] += a["pairs"]
            agree["box_ious"] += a["box_ious"]
            agree["texts_equal"] += a["texts_equal"]
        new, rejection = settle(ex, reviews, summary, _reviewed, _reverify, task=task["id"], describe=_describe)
        if new is not None:
            kept.append(new)
        if rejection is not None:
            new_rejections.append(rejection)
    ious = agree.pop("box_ious")
    summary.agreement = {**agree, "mean_box_iou": sum(ious) / len(ious) if ious else None, "steps_compared": len(ious)}
    _write(release, out, kept, new_rejections, summary, guard)
    return summary


def _write(release: Path, out: Path, examples: list[Example], new_rejections: list[Rejection], summary: PullSummary, guard: OutputGuard | None = None) -> None:
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
        (tmp / "review_report.json").write_text(json.dumps(summary.report(), indent=2, sort_keys=True))

    write_atomically(out, fill, guard)
