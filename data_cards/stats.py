"""Numbers the data card shows: counts per type and split, steps per chain, answers, box sizes,
rejections per rule, and the reconciliation candidates = released + rejected."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from core.boxes import area
from core.schema import QUESTION_TYPES, SPLITS, Example, Rejection
from data_cards import quality

BOX_AREA_BINS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0000001)


def compute(examples: Sequence[Example], rejections: Sequence[Rejection], candidates: int) -> dict:
    per_split_type = {s: {t: 0 for t in QUESTION_TYPES} for s in SPLITS}
    for ex in examples:
        per_split_type.setdefault(ex.split, {t: 0 for t in QUESTION_TYPES})[ex.type] += 1
    per_split_type = {s: c for s, c in per_split_type.items() if sum(c.values())}
    steps = {t: Counter() for t in QUESTION_TYPES}
    answers = {t: Counter() for t in QUESTION_TYPES}
    areas = []
    for ex in examples:
        steps[ex.type][len(ex.steps)] += 1
        answers[ex.type][ex.answer] += 1
        areas += [area(s.box) for s in ex.steps if s.box is not None]
    area_hist = [0] * (len(BOX_AREA_BINS) - 1)
    for a in areas:
        for i in range(len(area_hist)):
            if BOX_AREA_BINS[i] <= a < BOX_AREA_BINS[i + 1]:
                area_hist[i] += 1
                break
    example_rejections = [r for r in rejections if r.is_example]
    by_rule = Counter((r.stage, r.rule) for r in rejections)
    return {
        "examples": len(examples),
        "images": len({ex.image_id for ex in examples}),
        "candidates": candidates,
        "rejected": len(example_rejections),
        "reconciles": candidates == len(examples) + len(example_rejections),
        "source_rejections": len(rejections) - len(example_rejections),
        "per_split_type": per_split_type,
        "steps_per_chain": {t: dict(sorted(c.items())) for t, c in steps.items()},
        "answers": {t: dict(c.most_common()) for t, c in answers.items()},
        "judge_yes_no": {"Yes": answers["judge"].get("Yes", 0), "No": answers["judge"].get("No", 0)},
        "box_area_bins": list(BOX_AREA_BINS[:-1]) + [1.0],
        "box_area_hist": area_hist,
        "rejections_by_rule": [{"stage": s, "rule": r, "count": n} for (s, r), n in sorted(by_rule.items())],
        "review": dict(sorted(Counter(ex.review.status for ex in examples).items())),
        "detector": _detector(examples),
        "quality": quality.compute(examples, rejections),
    }


def _detector(examples: Sequence[Example]) -> dict | None:
    checked = [ex.detector for ex in examples if ex.detector]
    if not checked:
        return None
    ious = sorted(d.min_iou for d in checked)
    return {
        "model": checked[0].model,
        "checked": len(checked),
        "flagged": sum(d.flagged for d in checked),
        "drafted": sum(1 for ex in examples if ex.provenance.get("drafted_by")),
        "median_min_iou": ious[len(ious) // 2],
        "mean_step_iou": sum(d.mean_iou for d in checked) / len(checked),
    }
