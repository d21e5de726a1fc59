"""Numbers the data card shows: counts per type and split, steps per chain, answers, box sizes,
rejections per rule, the quality section (`data_cards.quality`), and the reconciliation
candidates = released + rejected.

``CardStats`` takes the examples and rejections one at a time, in one pass, so a release of any size
is counted while it is written; what it keeps grows with the vocabulary (answers, rules), not with
the examples, except the distinct image ids and, on a detector-checked build, two floats per checked
example (the median needs them all).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable

from core.boxes import area
from core.schema import QUESTION_TYPES, SPLITS, Example, Rejection
from data_cards import quality

BOX_AREA_BINS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0000001)


class CardStats:
    """``add`` every released example in release order (answer ties keep it), ``add_rejection`` every
    rejection, then ``result(candidates)``."""

    def __init__(self) -> None:
        self.examples = 0
        self.per_split_type = {s: {t: 0 for t in QUESTION_TYPES} for s in SPLITS}
        self.steps = {t: Counter() for t in QUESTION_TYPES}
        self.answers = {t: Counter() for t in QUESTION_TYPES}
        self.area_hist = [0] * (len(BOX_AREA_BINS) - 1)
        self.image_ids: set[str] = set()
        self.review: Counter = Counter()
        self.rejections = self.example_rejections = 0
        self.by_rule: Counter = Counter()
        self.detector_model: str | None = None
        self.min_ious, self.mean_ious = array("d"), array("d")
        self.flagged = self.drafted = 0
        self.quality = quality.QualityStats()

    def add(self, ex: Example) -> None:
        self.examples += 1
        self.quality.add_example(ex)
        self.per_split_type.setdefault(ex.split, {t: 0 for t in QUESTION_TYPES})[ex.type] += 1
        self.steps[ex.type][len(ex.steps)] += 1
        self.answers[ex.type][ex.answer] += 1
        for s in ex.steps:
            if s.box is not None:
                a = area(s.box)
                for i in range(len(self.area_hist)):
                    if BOX_AREA_BINS[i] <= a < BOX_AREA_BINS[i + 1]:
                        self.area_hist[i] += 1
                        break
        self.image_ids.add(ex.image_id)
        self.review[ex.review.status] += 1
        if ex.provenance.get("drafted_by"):
            self.drafted += 1
        if ex.detector:
            if self.detector_model is None:
                self.detector_model = ex.detector.model
            self.min_ious.append(ex.detector.min_iou)
            self.mean_ious.append(ex.detector.mean_iou)
            self.flagged += bool(ex.detector.flagged)

    def add_rejection(self, r: Rejection) -> None:
        self.rejections += 1
        self.example_rejections += r.is_example
        self.by_rule[(r.stage, r.rule)] += 1
        self.quality.add_rejection(r)

    def result(self, candidates: int) -> dict:
        return {
            "examples": self.examples,
            "images": len(self.image_ids),
            "candidates": candidates,
            "rejected": self.example_rejections,
            "reconciles": candidates == self.examples + self.example_rejections,
            "source_rejections": self.rejections - self.example_rejections,
            "per_split_type": {s: c for s, c in self.per_split_type.items() if sum(c.values())},
            "steps_per_chain": {t: dict(sorted(c.items())) for t, c in self.steps.items()},
            "answers": {t: dict(c.most_common()) for t, c in self.answers.items()},
            "judge_yes_no": {"Yes": self.answers["judge"].get("Yes", 0), "No": self.answers["judge"].get("No", 0)},
            "box_area_bins": list(BOX_AREA_BINS[:-1]) + [1.0],
            "box_area_hist": list(self.area_hist),
            "rejections_by_rule": [{"stage": s, "rule": r, "count": n} for (s, r), n in sorted(self.by_rule.items())],
            "review": dict(sorted(self.review.items())),
            "detector": self._detector(),
            "quality": self.quality.result(),
        }

    def _detector(self) -> dict | None:
        if not self.min_ious:
            return None
        ious = sorted(self.min_ious)
        return {
            "model": self.detector_model,
            "checked": len(self.min_ious),
            "flagged": self.flagged,
            "drafted": self.drafted,
            "median_min_iou": ious[len(ious) // 2],
            "mean_step_iou": sum(self.mean_ious) / len(self.mean_ious),
        }


def compute(examples: Iterable[Example], rejections: Iterable[Rejection], candidates: int) -> dict:
    """The card's numbers of examples and rejections held in memory."""
    stats = CardStats()
    for ex in examples:
        stats.add(ex)
    for r in rejections:
        stats.add_rejection(r)
    return stats.result(candidates)
