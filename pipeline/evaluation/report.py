"""Evaluation reports: JSON, a Markdown table and a PNG of the CR/CM/WR/WW breakdown per type."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BREAKDOWN = (("CR", "right answer, right box", "#55A868"), ("CM", "right answer, wrong box", "#DD8452"),
             ("WR", "wrong answer, right box", "#4C72B0"), ("WW", "wrong on both", "#C44E52"))


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def _ci(ci: dict | None, key: str) -> str:
    v = (ci or {}).get(key)
    return f" [{v[0]:.1f}, {v[1]:.1f}]" if v else ""


def rows(report: dict) -> list[tuple[str, dict]]:
    return [(t, r) for t, r in (report.get("per_type") or {}).items()] + [("all", report)]


def markdown(report: dict) -> str:
    head = f"MM-GCoT evaluation, {report['mode']} mode" + (f" (boxes as {report['box_format']})" if report.get("box_format") else "")
    lines = [f"### {head}", "", "| type | n | answer acc. | grounding acc. | consistency | CR | CM | WR | WW |", "|---|---|---|---|---|---|---|---|---|"]
    for t, r in rows(report):
        ci = r.get("ci95")
        lines.append(
            f"| {t} | {r['n']} | {_pct(r['answer_accuracy'])}{_ci(ci, 'answer_accuracy')} | {_pct(r['grounding_accuracy'])}{_ci(ci, 'grounding_accuracy')} "
            f"| {_pct(r['consistency'])}{_ci(ci, 'consistency')} | {r['CR']} | {r['CM']} | {r['WR']} | {r['WW']} |"
        )
    if report.get("steps"):
        lines += ["", "| steps | samples | reference steps | predicted steps | mean IoU | recall@0.5 | precision@0.5 |", "|---|---|---|---|---|---|---|"]
        for t, r in rows(report):
            s = r.get("steps")
            if s:
                lines.append(f"| {t} | {s['samples']} | {s['reference_steps']} | {s['predicted_steps']} | {s['mean_iou']:.3f} | {_pct(s['recall'])} | {_pct(s['precision'])} |")
    if report.get("box_parse_failures"):
        lines += ["", "Unreadable predicted boxes: " + ", ".join(f"{k} {v}" for k, v in sorted(report["box_parse_failures"].items()))]
    if report.get("ci95"):
        lines += ["", "Brackets: 95 % bootstrap confidence intervals."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path:
    data = rows(report)
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(data) + 1.4))
    for i, (_, r) in enumerate(data):
        left = 0.0
        for key, label, color in BREAKDOWN:
            share = r[key] / r["n"] * 100 if r["n"] else 0
            ax.barh(i, share, left=left, color=color, label=label if i == 0 else None)
            if share >= 6:
                ax.text(left + share / 2, i, f"{share:.0f}%", ha="center", va="center", color="white", fontsize=8)
            left += share
    ax.set_yticks(range(len(data)), [f"{t} (n={r['n']})" for t, r in data])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of samples")
    ax.set_title("Answer-grounding breakdown (box right = IoU > 0.5)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(data) > 1 else -0.45), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


NAMES = {"json": "report.json", "markdown": "report.md", "plot": "breakdown.png"}


def write(report: dict, out: str | Path) -> dict[str, Path]:
    """report.json, report.md and breakdown.png into ``out`` (a folder the caller may write: a run's own
    eval/ folder, or one `gcot eval --out` guarded and fills aside)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / name for k, name in NAMES.items()}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=True))
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["plot"])
    return paths
