"""The card's quality section: where the step relations come from, which predicates the chains use,
what the normalise step merged, what the quality rules rejected, sample questions of each type, and
this release's question length and chain length beside MM-GCoT's released test files.

`compute` works on the release's examples and rejections; `QualityStats` gives the same numbers one
example and one rejection at a time, for a writer that streams.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.mmgcot_reference import QUESTION_WORDS, SOURCE, STEPS_PER_CHAIN  # noqa: E402
from core.schema import QUALITY_RULES, QUESTION_TYPES, RELATION_ORIGINS, Example, Rejection  # noqa: E402
from pipeline.normalise.attributes import CANONICAL  # noqa: E402
from pipeline.normalise.names import LEXICON  # noqa: E402

SAMPLES_PER_TYPE = 12
_PREDICATE = re.compile(r"predicate '([^']+)'")
_META = {"Software": None}  # PNG bytes free of version strings


class QualityStats:
    def __init__(self) -> None:
        self.origins: Counter = Counter()
        self.predicates: dict[str, Counter] = {}
        self.region_steps = 0
        self.words: dict[str, Counter] = {t: Counter() for t in QUESTION_TYPES}
        self.steps: dict[str, Counter] = {t: Counter() for t in QUESTION_TYPES}
        self.questions: dict[str, Thinned] = {t: Thinned(SAMPLES_PER_TYPE) for t in QUESTION_TYPES}
        self.rules: Counter = Counter()
        self.unknown: Counter = Counter()
        self.normalise: Counter = Counter()
        self.merges: list[str] = []

    def add_example(self, ex: Example) -> None:
        for s in ex.steps:
            if s.relation:
                self.origins[s.relation_origin or "unknown"] += 1
                self.predicates.setdefault(s.relation, Counter())[s.relation_origin or "unknown"] += 1
            self.region_steps += s.region is not None
        self.words.setdefault(ex.type, Counter())[len(ex.question.split())] += 1
        self.steps.setdefault(ex.type, Counter())[len(ex.steps)] += 1
        self.questions.setdefault(ex.type, Thinned(SAMPLES_PER_TYPE)).add(f"{ex.question} → {ex.answer}")

    def add_rejection(self, r: Rejection) -> None:
        if r.stage == "normalise":
            self.normalise[r.rule] += 1
            if r.rule == "merged_duplicate" and len(self.merges) < 5:
                self.merges.append(r.detail)
        elif r.is_example:
            self.rules[r.rule] += 1
            m = _PREDICATE.search(r.detail) if r.rule == "unknown_predicate" else None
            if m:
                self.unknown[m.group(1)] += 1

    def result(self) -> dict:
        relations = sum(self.origins.values())
        predicates = sorted(self.predicates.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        return {
            "relations": relations,
            "relation_origin": {o: self.origins.get(o, 0) for o in (*RELATION_ORIGINS, *sorted(set(self.origins) - set(RELATION_ORIGINS)))},
            "predicates": [{"predicate": p, "count": sum(c.values()), **{o: c.get(o, 0) for o in RELATION_ORIGINS}} for p, c in predicates],
            "region_steps": self.region_steps,
            "merges": self.normalise.get("merged_duplicate", 0),
            "merge_examples": self.merges,
            "normalise_records": dict(sorted(self.normalise.items())),
            "quality_rejections": {rule: self.rules.get(rule, 0) for rule in QUALITY_RULES},
            "other_chain_rejections": {k: v for k, v in sorted(self.rules.items()) if k not in QUALITY_RULES},
            "unknown_predicates": dict(sorted(self.unknown.items(), key=lambda kv: (-kv[1], kv[0]))),
            "question_words": {t: dict(sorted(c.items())) for t, c in self.words.items()},
            "steps_per_chain": {t: dict(sorted(c.items())) for t, c in self.steps.items()},
            "samples": {t: q.sample() for t, q in self.questions.items()},
            "canonical_words": dict(sorted(CANONICAL.items())),
            "lexicon": {"source": LEXICON["source"], "licence": LEXICON["licence"], "aliases": len(LEXICON["aliases"]),
                        "hypernym_groups": len(LEXICON["hypernyms"])},
            "official": {"source": SOURCE},
        }


def _spread(items: list[str], n: int) -> list[str]:
    """n items evenly spread over the list (all of them when there are fewer): the same every build."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


class Thinned:
    """Every ``stride``-th item of a stream of unknown length, at most ``4 * n`` of them: the stride
    doubles (dropping every other kept item) when more would be kept. Memory stays O(n) however long the
    release, and `sample` spreads n over what is kept, so samples still span the whole stream."""

    def __init__(self, n: int):
        self.n, self.stride, self.seen, self.kept = n, 1, 0, []

    def add(self, item: str) -> None:
        if self.seen % self.stride == 0:
            self.kept.append(item)
            if len(self.kept) > 4 * self.n:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.seen += 1

    def sample(self) -> list[str]:
        return _spread(self.kept, self.n)


def compute(examples: Iterable[Example], rejections: Iterable[Rejection]) -> dict:
    q = QualityStats()
    for ex in examples:
        q.add_example(ex)
    for r in rejections:
        q.add_rejection(r)
    return q.result()


def _shares(hist: dict) -> dict[int, float]:
    total = sum(hist.values())
    return {int(k): v / total for k, v in hist.items()} if total else {}


def _merge(hists: Iterable[dict]) -> dict[int, int]:
    out: Counter = Counter()
    for h in hists:
        out.update({int(k): v for k, v in h.items()})
    return dict(out)


def render_plot(quality: dict, out: Path) -> str:
    """Question length and steps per chain, this release beside the official test files (shares)."""
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    pairs = (
        ("question length (words)", _merge(quality["question_words"].values()), _merge(QUESTION_WORDS.values())),
        ("steps per chain", _merge(quality["steps_per_chain"].values()), _merge(STEPS_PER_CHAIN.values())),
    )
    for ax, (label, ours, official) in zip(axes, pairs):
        ours_s, off_s = _shares(ours), _shares(official)
        xs = sorted(set(ours_s) | set(off_s))
        ax.bar([x - 0.2 for x in xs], [off_s.get(x, 0) for x in xs], 0.4, label=f"MM-GCoT test ({sum(official.values())})", color="#8C8C8C")
        ax.bar([x + 0.2 for x in xs], [ours_s.get(x, 0) for x in xs], 0.4, label=f"this release ({sum(ours.values())})", color="#4C72B0")
        ax.set_xlabel(label)
        ax.set_ylabel("share of questions")
        ax.legend(fontsize=8)
    fig.suptitle("This release beside MM-GCoT's released test files")
    fig.tight_layout()
    path = out / "quality_vs_mmgcot.png"
    fig.savefig(path, dpi=100, metadata=_META)
    plt.close(fig)
    return path.name
