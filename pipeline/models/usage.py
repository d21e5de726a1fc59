"""A run's model summary: per stage, the answers it needed, how many came from the cache, the calls,
failures, retries, tokens and time (facts of the run, counted by the client), and what became of the
outputs with the rejections by reason (facts of the data, counted from the records' provenance:
``<stage>.outcome`` and ``<stage>.reason``, so results reused from disk are counted too).

Shards and videos each return theirs (`StageUsage.to_dict` per stage); `merge` adds them up for the
card, ``stats.json`` and the Prefect artifact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

REJECTED = ("template_kept",)  # outcomes of an output the checks turned down (its reason names the rule)


@dataclass
class StageUsage:
    model: str = ""
    reused: int = 0  # records whose results were on disk from an earlier run (nothing asked)
    asked: int = 0  # answers the stage needed
    cached: int = 0  # of them, read from the cache (no call)
    calls: int = 0  # requests sent to the model
    failed: int = 0  # calls that failed after their retries, or were not sent (endpoint down)
    retries: int = 0  # extra attempts the backend made
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0  # the calls' latencies, summed
    seconds: float = 0.0  # wall time of the stage's requests
    outcomes: dict[str, int] = field(default_factory=dict)  # what became of the outputs: used, template_kept, agrees, ...
    rejected: dict[str, int] = field(default_factory=dict)  # outputs the checks rejected, by reason

    def count_outcomes(self, provenances: Iterable[dict[str, str]], stage: str) -> StageUsage:
        """Outcomes and rejections by rule, from the records' ``<stage>.outcome`` / ``<stage>.reason``."""
        for p in provenances:
            outcome = p.get(f"{stage}.outcome")
            if outcome is None:
                continue
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if outcome in REJECTED:
                rule = p.get(f"{stage}.reason", "unknown").split(":", 1)[0]
                self.rejected[rule] = self.rejected.get(rule, 0) + 1
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outcomes"], d["rejected"] = dict(sorted(self.outcomes.items())), dict(sorted(self.rejected.items()))
        d["model_seconds"], d["seconds"] = round(self.model_seconds, 3), round(self.seconds, 3)
        return d


COUNTS = ("reused", "asked", "cached", "calls", "failed", "retries", "prompt_tokens", "completion_tokens")


def merge(parts: Iterable[dict[str, dict]]) -> dict[str, dict]:
    """Per-stage summaries of shards (or videos) added up; stages in the order they first appear."""
    out: dict[str, dict] = {}
    for part in parts:
        for stage, u in (part or {}).items():
            acc = out.setdefault(stage, {"model": u.get("model", ""), **{k: 0 for k in COUNTS}, "model_seconds": 0.0, "seconds": 0.0, "outcomes": Counter(), "rejected": Counter()})
            for k in COUNTS:
                acc[k] += u.get(k, 0)
            acc["model_seconds"] += u.get("model_seconds", 0.0)
            acc["seconds"] += u.get("seconds", 0.0)
            acc["outcomes"].update(u.get("outcomes", {}))
            acc["rejected"].update(u.get("rejected", {}))
    for acc in out.values():
        acc["model_seconds"], acc["seconds"] = round(acc["model_seconds"], 3), round(acc["seconds"], 3)
        acc["outcomes"], acc["rejected"] = dict(sorted(acc["outcomes"].items())), dict(sorted(acc["rejected"].items()))
    return out


def table(summary: dict[str, dict]) -> list[dict]:
    """One row per stage, for a Prefect table artifact or a card."""
    return [
        {
            "stage": stage, "model": u["model"], "reused": u["reused"], "answers": u["asked"], "cached": u["cached"], "calls": u["calls"],
            "failed": u["failed"], "retries": u["retries"], "tokens in/out": f"{u['prompt_tokens']}/{u['completion_tokens']}",
            "seconds": u["seconds"], "outcomes": ", ".join(f"{k} {n}" for k, n in u["outcomes"].items()) or "-",
            "rejected": ", ".join(f"{k} {n}" for k, n in u["rejected"].items()) or "-",
        }
        for stage, u in summary.items()
    ]
