"""What a build's flow run says at its end: the summary artifact's rejection table (by rule, with
an example of each) read from the release's own ``rejections.jsonl``, and the closing log line."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE_CHARS = 160  # an example's detail is cut here in the table


def rejections_by_rule(release: str | Path) -> list[dict]:
    """Per (stage, rule) of the release's rejections.jsonl: the count and the first rejection as an
    example, most frequent first. Streamed: a release may hold millions of rejections."""
    rules: dict[tuple[str, str], dict] = {}
    path = Path(release) / "rejections.jsonl"
    if not path.is_file():
        return []
    with path.open() as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            entry = rules.setdefault((r.get("stage", ""), r.get("rule", "")), {"stage": r.get("stage", ""), "rule": r.get("rule", ""), "count": 0, "example": r})
            entry["count"] += 1
    return sorted(rules.values(), key=lambda e: (-e["count"], e["stage"], e["rule"]))


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def rejection_table(rules: list[dict]) -> str:
    """Markdown: one row per rule with its count and an example (id, file, detail)."""
    if not rules:
        return "No rejections.\n"
    rows = ["| stage | rule | count | example |", "|---|---|---|---|"]
    for e in rules:
        ex = e["example"]
        where = f"`{_cell(ex.get('id', ''))}`" + (f" ({_cell(ex['file'])})" if ex.get("file") else "")
        rows.append(f"| {e['stage']} | `{e['rule']}` | {e['count']} | {where}: {_cell(ex.get('detail', ''))} |")
    return "\n".join(rows) + "\n"
