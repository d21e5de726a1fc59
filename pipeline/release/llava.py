"""LLaVA training conversations, in pairs as MM-GCoT publishes them.

For each example: a plain row (the bare answer) and a chain row with id suffix ``_cot`` whose target
is the step lines followed by ``Final Answer: <answer>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from core.schema import Example
from pipeline.release.jsonlist import JsonListWriter
from pipeline.release.mmgcot import render_cot

PLAIN_PROMPT = "Answer the question using a single word or phrase."
COT_PROMPT = "Answer the question step by step, ultimately using a single word or phrase as the answer."
FINAL_ANSWER = "Final Answer: "


def conversations(ex: Example) -> list[dict]:
    plain = {
        "id": ex.id,
        "image": ex.image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{ex.question}\n{PLAIN_PROMPT}"},
            {"from": "gpt", "value": ex.answer},
        ],
    }
    cot = {
        "id": f"{ex.id}_cot",
        "image": ex.image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{ex.question}\n{COT_PROMPT}"},
            {"from": "gpt", "value": f"{render_cot(ex.steps)}\n{FINAL_ANSWER}{ex.answer}"},
        ],
    }
    return [plain, cot]


def write_split(examples: Iterable[Example], path: str | Path) -> int:
    """``llava/<split>.json``, written row by row; returns the row count."""
    with JsonListWriter(path) as w:
        for ex in examples:
            for row in conversations(ex):
                w.add(row)
    return w.count


def read_rows(path: str | Path) -> list[dict]:
    return json.loads(Path(path).read_text())
