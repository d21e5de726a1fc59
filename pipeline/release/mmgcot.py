"""The official MM-GCoT JSON, read and written to the letter.

One file per split and type (``GCoT_dataset_<attributes|judge|objects>_<split>.json``), a JSON list
written with a 2-space indent, each record ``{id, img, question, cot, answer, coordinate, qualified}``:
``id`` an int, ``cot`` one string of ``Step k: <text>`` lines, ``coordinate`` the last box of the cot
as a string with 3 decimals, ``qualified`` a bool (human verification).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from core.boxes import find_boxes, format_box, parse_box
from core.schema import MMGCOT_TYPE_NAMES, Example, Rejection, Review, Step
from pipeline.release.jsonlist import JsonListWriter

FIELDS = ("id", "img", "question", "cot", "answer", "coordinate", "qualified")
_STEP_LINE = re.compile(r"^Step (\d+): ?(.*)$", re.DOTALL)
_TYPE_FROM_NAME = {v: k for k, v in MMGCOT_TYPE_NAMES.items()}


def file_name(qtype: str, split: str) -> str:
    return f"GCoT_dataset_{MMGCOT_TYPE_NAMES[qtype]}_{split}.json"


def type_and_split_of(path: str | Path) -> tuple[str | None, str | None]:
    m = re.match(r"GCoT_dataset_(attributes|judge|objects)_(\w+)\.json$", Path(path).name)
    return (_TYPE_FROM_NAME[m.group(1)], m.group(2)) if m else (None, None)


def render_cot(steps: list[Step]) -> str:
    return "\n".join(f"Step {k}: {s.text}" for k, s in enumerate(steps, 1))


def parse_cot(cot: str) -> list[Step]:
    steps = []
    for line in cot.split("\n"):
        m = _STEP_LINE.match(line)
        text = m.group(2) if m else line
        boxes = find_boxes(text)
        steps.append(Step(text=text, box=boxes[-1][0] if boxes else None))
    return steps


def mmgcot_id(ex: Example, fallback: int) -> int:
    raw = ex.provenance.get("mmgcot_id", ex.id)
    return int(raw) if str(raw).lstrip("-").isdigit() else fallback


def to_record(ex: Example, fallback_id: int) -> dict:
    cot = render_cot(ex.steps)
    raw_cot = ex.provenance.get("mmgcot_cot")
    if raw_cot is not None and [s.text for s in parse_cot(raw_cot)] == [s.text for s in ex.steps]:
        cot = raw_cot  # an imported chain whose lines do not follow "Step k: " numbering exactly
    coordinate = format_box(ex.answer_box) if ex.answer_box is not None else ""
    raw_coord = ex.provenance.get("mmgcot_coordinate")
    if raw_coord is not None and _box_or_none(raw_coord) == ex.answer_box:
        coordinate = raw_coord
    return {
        "id": mmgcot_id(ex, fallback_id),
        "img": ex.image,
        "question": ex.question,
        "cot": cot,
        "answer": ex.answer,
        "coordinate": coordinate,
        "qualified": ex.review.status != "rejected",
    }


def _box_or_none(text: str):
    try:
        return parse_box(text)
    except ValueError:
        return None


def from_record(rec: dict, qtype: str, split: str, file: str = "", index: int = 0) -> Example:
    """One official record -> Example; raises ValueError naming the missing or malformed field.

    Official ids repeat within a file (the released test files reuse 94 ids), so our id is the
    file stem and position; the official id travels in provenance["mmgcot_id"].
    """
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise ValueError(f"record {rec.get('id', '?')} lacks {', '.join(missing)}")
    if not isinstance(rec["id"], int) or isinstance(rec["id"], bool):
        raise ValueError(f"record id {rec['id']!r} is not an integer")
    if not isinstance(rec["cot"], str) or not isinstance(rec["coordinate"], str):
        raise ValueError(f"record {rec['id']}: cot and coordinate must be strings")
    steps = parse_cot(rec["cot"])
    answer_box = _box_or_none(rec["coordinate"])
    provenance = {"mmgcot_id": str(rec["id"]), "source_file": Path(file).name}
    if render_cot(steps) != rec["cot"]:
        provenance["mmgcot_cot"] = rec["cot"]
    if answer_box is None or format_box(answer_box) != rec["coordinate"]:
        provenance["mmgcot_coordinate"] = rec["coordinate"]
    return Example(
        id=f"{Path(file).stem or 'mmgcot'}-{index}",
        image_id=Path(rec["img"]).stem,
        image=rec["img"],
        width=0,
        height=0,
        question=rec["question"],
        type=qtype,  # type: ignore[arg-type]
        steps=steps,
        answer=rec["answer"],
        answer_box=answer_box,
        split=split,
        source="mmgcot",
        provenance=provenance,
        review=Review(status="accepted" if rec["qualified"] else "rejected"),
    )


def read_file(path: str | Path, qtype: str | None = None, split: str | None = None, strict: bool = False) -> tuple[list[Example], list[Rejection]]:
    path = Path(path)
    t, s = type_and_split_of(path)
    qtype, split = qtype or t, split or s or "test"
    if qtype is None:
        raise ValueError(f"{path}: cannot tell the question type from the file name; name it GCoT_dataset_<attributes|judge|objects>_<split>.json")
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    out, rejected = [], []
    for i, rec in enumerate(records):
        try:
            out.append(from_record(rec, qtype, split, str(path), i))
        except (ValueError, TypeError, AttributeError) as e:
            if strict:
                raise ValueError(f"{path}: record #{i}: {e}") from e
            rejected.append(Rejection("convert", str(rec.get("id", f"#{i}") if isinstance(rec, dict) else f"#{i}"), "malformed_record", str(e), str(path)))
    return out, rejected


def read_dir(path: str | Path, strict: bool = False) -> tuple[list[Example], list[Rejection]]:
    """Every GCoT_dataset_*.json in a folder (or one file)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("GCoT_dataset_*.json"))
    if not files:
        raise ValueError(f"{path}: no GCoT_dataset_<type>_<split>.json files")
    examples, rejected = [], []
    for f in files:
        e, r = read_file(f, strict=strict)
        examples += e
        rejected += r
    return examples, rejected


def dumps(records: list[dict]) -> str:
    return json.dumps(records, indent=2)  # byte-identical to the published files


class DirWriter:
    """The files of ``write_dir``, written record by record: one open file per (type, split) met."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], JsonListWriter] = {}

    def add(self, ex: Example, fallback_id: int) -> None:
        key = (ex.type, ex.split)
        if key not in self._files:
            self._files[key] = JsonListWriter(self.out / file_name(*key))
        self._files[key].add(to_record(ex, fallback_id))

    def close(self) -> dict[str, int]:
        """Closes every file; returns the record count per file name."""
        counts = {}
        for _, w in sorted(self._files.items(), key=lambda kv: kv[0]):
            w.close()
            counts[w.path.name] = w.count
        return counts


def write_dir(examples: Iterable[Example], out: str | Path) -> dict[str, int]:
    """One file per (type, split) present; returns the record count per file name."""
    w = DirWriter(out)
    for i, ex in enumerate(examples):
        w.add(ex, i)
    return w.close()
