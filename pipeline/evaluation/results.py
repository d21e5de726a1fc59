"""Results files: one JSON object a line, as the official MM-GCoT runners write them.

Fields read: ``text`` (predicted answer), ``gt_text``, ``coor`` (predicted box text), ``gt_coor``,
``img``; ours add ``type`` (question type), ``cot`` (the predicted chain, GCoT protocol) and
``gt_cot`` (the reference chain) for per-type and step-level scores.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_results(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} not found")
    records = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                raise ValueError(f"{path} line {i}: empty line (the official script fails on it too)")
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {i}: not JSON: {e.msg}") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path} line {i}: a JSON object was expected, got {type(rec).__name__}")
            records.append(rec)
    return records
