"""LongV-EVAL review in Label Studio: push a release's videos with their drafted prompts, pull the
reviewed prompts back into a new release.

The same rules as GCoT review (`annotation.project.settle`): push is idempotent by video id and pre-fills
the three prompts as a prediction; on pull the latest accept/fixed annotation wins, otherwise a
reject rejects the video with the reviewer's reason, otherwise the video is still open. Edited
prompts are re-checked (one line, at most 15 words, the style named); counts reconcile:
pushed = accepted + fixed + rejected + open.
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from annotation.configs import longv_review_config
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
from annotation.tasks import MalformedAnnotation, result_of, texts_of, verdict_of
from core.guard import OutputGuard
from core.schema import EDIT_KINDS, LongVItem, Rejection
from core.shards import write_atomically
from pipeline.longv import prompts
from pipeline.longv.release import fill, read_items
from pipeline.longv.video import BROWSER_CODECS, codec, frames, probe, write_video

log = logging.getLogger(__name__)


def project_title(release: Path) -> str:
    return f"LongV-EVAL review: {release.resolve().name}"


def review_order(items: list[LongVItem]) -> list[LongVItem]:
    """Videos with no detected subject first (generic prompts), then the least confident tracks."""
    return sorted(items, key=lambda i: (bool(i.subjects), i.subjects[0].confidence if i.subjects else 0.0, i.id))


def serve_playable(src: Path, dst: Path) -> None:
    """Copy the video where Label Studio serves it; one a browser cannot decode (e.g. MPEG-4 Part 2)
    is served as an H.264 copy instead (the release keeps its own bytes)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tag = codec(src)
    if tag in BROWSER_CODECS:
        shutil.copyfile(src, dst)
        return
    info = probe(src)
    log.info("%s: codec %s does not play in a browser; serving an H.264 copy", src, tag)
    tmp = dst.with_name(dst.name + ".partial.mp4")
    write_video(tmp, (f for _, f in frames(src)), info.fps, (info.width, info.height))
    tmp.rename(dst)


def task_for(item: LongVItem, video_url: str, model_version: str) -> dict:
    result = [
        {"id": kind, "from_name": kind, "to_name": "video", "type": "textarea", "value": {"text": [item.prompt(kind)]}}
        for kind in EDIT_KINDS
    ]
    data = {"video": video_url, "example_id": item.id, "caption": item.caption, "style_name": item.style_name, "camera": item.camera}
    return {"data": data, "predictions": [{"model_version": model_version, "result": result}]}


def push(release: Path, client, files_root: str | Path, title: str | None = None, batch: int = PUSH_BATCH) -> PushSummary:
    items = review_order(read_items(release))
    folder = served_folder(release, Path(files_root))
    for item in items:
        dst = folder / item.video
        if not dst.is_file():
            serve_playable(release / item.video, dst)
    return push_tasks(client, items, folder, lambda i: i.video, task_for, title=title or project_title(release), label_config=longv_review_config(),
                      description="LongV-EVAL edit-prompt review (gcot-forge)", batch=batch)


@dataclass
class LongVReview:
    verdict: str | None
    item: LongVItem  # as the annotator left it (prompts, reviewer, time, comment)
    changed: list[str]  # the prompts that differ from the pushed ones


def read_review(item: LongVItem, annotation: dict) -> LongVReview:
    result = result_of(annotation)
    new = copy.deepcopy(item)
    changed = []
    for kind in EDIT_KINDS:
        texts = [t.strip().strip('"').strip() for t in texts_of(result, kind)]
        if texts and texts[-1] and texts[-1] != item.prompt(kind):
            setattr(new, kind, texts[-1])
            changed.append(kind)
    v = verdict_of(annotation)
    new.review.reviewer, new.review.reviewed_at, new.review.comment = v.reviewer, v.reviewed_at, v.comment
    return LongVReview(v.verdict, new, changed)


def pull(release: Path, client, out: Path, title: str | None = None, guard: OutputGuard | None = None) -> PullSummary:
    items = read_items(release)
    users, tasks, pushed = open_tasks(client, title or project_title(release), {i.id for i in items})
    summary = PullSummary(str(out), pushed=pushed)
    kept, new_rejections = [], []
    for item in items:
        task = tasks.get(item.id)
        if task is None:
            kept.append(item)
            continue
        read = partial(read_review, item)
        reviews = read_reviews(task, users, read, MalformedAnnotation, summary)
        read_drafts(task, users, read, MalformedAnnotation, summary)
        new, rejection = settle(item, reviews, summary, lambda r: r.item, prompts.prompt_failures, task=task["id"])
        if new is not None:
            kept.append(new)
        if rejection is not None:
            new_rejections.append(rejection)
    _write(release, out, kept, new_rejections, summary, guard)
    return summary


def _write(release: Path, out: Path, items: list[LongVItem], new_rejections: list[Rejection], summary: PullSummary, guard: OutputGuard | None = None) -> None:
    import json

    old = [Rejection(**json.loads(line)) for line in (release / "rejections.jsonl").read_text().splitlines() if line]
    sources = {i.id: release / i.video for i in items}
    keyframes = {i.id: {int(p.stem): p.read_bytes() for p in sorted((release / "keyframes" / i.id).glob("*.jpg"))} for i in items}
    meta = {
        "name": f"LongV-EVAL release ({release.name}, reviewed: {summary.accepted} accepted, {summary.fixed} fixed, {summary.rejected} rejected)",
        "source": f"review of {release.name}",
        "seed": "-",
        "command": f"python -m annotation pull --release {release.name} --out {out.name}",
    }

    def _fill(tmp: Path) -> None:
        fill(tmp, items, sources, keyframes, old + new_rejections, meta)
        (tmp / "review_report.json").write_text(json.dumps(summary.report(), indent=2, sort_keys=True))

    write_atomically(out, _fill, guard)
