"""Strict mode: the official metrics without the official traps, plus step-level grounding.

Differences from official mode (README lists them with an example each):
1. Boxes parse from any bracket style, JSON (``{"bbox_2d": [...]}``, ``[{"bbox_2d": ...}]``), Qwen's
   ``(x1,y1),(x2,y2)`` and negative or exponent numbers; five or more numbers keep the first four
   instead of crashing; an unreadable box is a miss with its reason counted, not ``[0, 0, 0, 0]``.
2. The box format is explicit per model (``--model-format`` preset or ``--box-format``, else each line's
   own ``box_format``, which the runner writes for the model's family; `box_formats` holds them all):
   LLaVA's usual normalized ``xyxy`` is converted, not compared to ``xywh`` as it is; PaliGemma's
   ``<loc>`` tokens and Qwen2.5-VL's pixels of its resized image are read as the model writes them.
3. Answers are normalized: case, punctuation, articles, simple plurals and a synonym list
   ("Wooden." == "wood"); the text after the last "Final Answer:" is taken.
4. Every step box of a predicted chain is matched one-to-one (Hungarian, by IoU) to the reference
   steps: mean IoU, step recall and precision at IoU > 0.5.
5. Scores per question type and 95 % bootstrap confidence intervals.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from core.boxes import iou
from pipeline.evaluation import box_formats

BOX_FORMATS = box_formats.NAMES
MODEL_BOX_FORMATS = {"llava": "xyxy-norm", "qwen": "xyxy-abs", "internvl": "xyxy-1000"}
DEFAULT_BOX_FORMAT = "xywh-norm"  # MM-GCoT's own convention, which models trained on it output
DEFAULT_SYNONYMS = {"wooden": "wood", "metallic": "metal", "grey": "gray", "golden": "gold"}
IOU_THRESHOLD = 0.5  # the paper's: a box is right when IoU > 0.5

_FINAL = re.compile(r"final answer\s*:", re.IGNORECASE)
_ARTICLES = {"a", "an", "the"}
parse_box = box_formats.numbers  # (four numbers or None, reason when None)


def to_xywh_norm(value, box_format: str, size: Callable[[], tuple[int, int]]) -> tuple[list[float] | None, str]:
    """A predicted box (text, or its numbers) read in ``box_format`` -> (normalized xywh, "") or (None, reason)."""
    fmt = box_formats.get(box_format)
    box, why = fmt.parse(value, size() if fmt.needs_size else None)
    return (list(box), "") if box is not None else (None, why)


def singular(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalize_answer(text: str, synonyms: dict[str, str]) -> str:
    parts = _FINAL.split(text)
    s = re.sub(r"[^\w\s]", " ", parts[-1].lower())
    words = [singular(w) for w in s.split() if w not in _ARTICLES]
    s = " ".join(synonyms.get(w, w) for w in words)
    return synonyms.get(s, s)


def chain_boxes(chain: str | None, box_format: str = DEFAULT_BOX_FORMAT, size: Callable[[], tuple[int, int]] | None = None) -> list[list[float]]:
    """The box of each line of a chain that has one (steps without a box are skipped), read in ``box_format``."""
    if not chain:
        return []
    text = _FINAL.split(chain)[0]
    out = []
    for line in text.split("\n"):
        if not re.search(r"\d", line):
            continue
        box, _ = to_xywh_norm(line, box_format, size or (lambda: (1, 1)))
        if box is not None:
            out.append(box)
    return out


@dataclass
class StepMatch:
    ious: list[float] = field(default_factory=list)  # per reference step, 0 when unmatched
    n_pred: int = 0


def match_steps(pred: list[list[float]], ref: list[list[float]]) -> StepMatch:
    """One-to-one matching maximizing total IoU (Hungarian)."""
    if not ref:
        return StepMatch([], len(pred))
    if not pred:
        return StepMatch([0.0] * len(ref), 0)
    m = np.array([[iou(tuple(r), tuple(p)) for p in pred] for r in ref])
    rows, cols = linear_sum_assignment(-m)
    ious = [0.0] * len(ref)
    for r, c in zip(rows, cols):
        ious[r] = float(m[r, c])
    return StepMatch(ious, len(pred))


@dataclass
class Scored:
    type: str
    answer_correct: bool
    iou: float
    box_failure: str  # "" or why the predicted box could not be read
    steps: StepMatch | None

    @property
    def grounded(self) -> bool:
        return self.iou > IOU_THRESHOLD


def score(rec: dict, box_format: str | None, synonyms: dict[str, str], image_root: str | Path | None) -> Scored:
    """One results line. The predicted boxes are read in ``box_format``, else in the line's own ``box_format``
    (what `training/generate.py` records for the model's family), else MM-GCoT's normalized xywh. An absolute
    format takes its pixel frame from the line's ``box_size`` or else the image under ``image_root``."""
    fmt = box_format or rec.get("box_format") or DEFAULT_BOX_FORMAT

    def size() -> tuple[int, int]:
        if rec.get("box_size"):
            w, h = rec["box_size"]
            return int(w), int(h)
        if image_root is None:
            raise ValueError(f"box format {fmt} is in pixels: --image-root is needed to read image sizes (or a box_size field)")
        with Image.open(Path(image_root) / rec["img"]) as im:
            return im.size

    pred_text = rec.get("text")
    correct = isinstance(pred_text, str) and bool(pred_text.strip()) and normalize_answer(pred_text, synonyms) == normalize_answer(str(rec.get("gt_text", "")), synonyms)
    box, why = to_xywh_norm(rec.get("coor"), fmt, size)
    gt, gt_why = parse_box(rec.get("gt_coor"))
    if gt is None:
        raise ValueError(f"ground-truth box {rec.get('gt_coor')!r} unreadable ({gt_why})")
    value = iou(tuple(box), tuple(gt)) if box is not None else 0.0
    steps = None
    if rec.get("gt_cot"):
        pred_steps = chain_boxes(rec.get("cot") or rec.get("ori_text"), fmt, size)
        steps = match_steps(pred_steps, chain_boxes(rec["gt_cot"]))
    return Scored(str(rec.get("type") or "all"), correct, value, why, steps)


def metrics(correct: np.ndarray, grounded: np.ndarray) -> dict:
    n = len(correct)
    cr = int(np.sum(correct & grounded))
    cm = int(np.sum(correct & ~grounded))
    wr = int(np.sum(~correct & grounded))
    return {
        "n": n,
        "answer_accuracy": float(correct.mean() * 100) if n else float("nan"),
        "grounding_accuracy": float(grounded.mean() * 100) if n else float("nan"),
        "consistency": cr / (cr + cm + wr) * 100 if cr + cm + wr else float("nan"),
        "CR": cr,
        "CM": cm,
        "WR": wr,
        "WW": n - cr - cm - wr,
    }


def resampled(correct: np.ndarray, grounded: np.ndarray, samples: int, seed: int) -> dict[str, np.ndarray]:
    """Answer accuracy, grounding accuracy and consistency (NaN where no sample counts) of ``samples``
    resamplings with replacement. The draw depends on the seed and the sample count only, so two result
    sets over the same questions resampled with one seed are resampled alike (a paired bootstrap)."""
    n = len(correct)
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    c, g = correct[idx], grounded[idx]
    cr, cm, wr = (c & g).sum(1), (c & ~g).sum(1), (~c & g).sum(1)
    denom = cr + cm + wr
    cons = np.where(denom > 0, cr / np.maximum(denom, 1) * 100, np.nan)
    return {"answer_accuracy": c.mean(1) * 100, "grounding_accuracy": g.mean(1) * 100, "consistency": cons}


def percentile_ci(values: np.ndarray) -> list[float] | None:
    """The 95 % percentile interval of the values that are not NaN (None if there are none)."""
    v = values[~np.isnan(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else None


def bootstrap_ci(correct: np.ndarray, grounded: np.ndarray, samples: int, seed: int) -> dict:
    """95 % percentile intervals from resampling the samples with replacement."""
    if len(correct) == 0 or samples <= 0:
        return {}
    return {name: percentile_ci(values) for name, values in resampled(correct, grounded, samples, seed).items()}


def _step_summary(scored: Sequence[Scored]) -> dict | None:
    matches = [s.steps for s in scored if s.steps is not None]
    if not matches:
        return None
    ious = [x for m in matches for x in m.ious]
    hits = sum(1 for x in ious if x > IOU_THRESHOLD)
    n_pred = sum(m.n_pred for m in matches)
    return {
        "samples": len(matches),
        "reference_steps": len(ious),
        "predicted_steps": n_pred,
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "recall": hits / len(ious) * 100 if ious else float("nan"),
        "precision": hits / n_pred * 100 if n_pred else float("nan"),
    }


def evaluate(
    records: Sequence[dict],
    model_format: str | None = None,
    box_format: str | None = None,
    image_root: str | Path | None = None,
    synonyms: dict[str, str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    fmt = box_format or (MODEL_BOX_FORMATS[model_format] if model_format else None)  # None: each line's own, else MM-GCoT's
    syn = {**DEFAULT_SYNONYMS, **(synonyms or {})}
    scored = []
    for i, rec in enumerate(records):
        try:
            scored.append(score(rec, fmt, syn, image_root))
        except (ValueError, OSError, KeyError) as e:
            raise ValueError(f"line {i + 1}: {e}") from None
    if not scored:
        raise ValueError("no results")
    correct = np.array([s.answer_correct for s in scored], dtype=bool)
    grounded = np.array([s.grounded for s in scored], dtype=bool)
    used = fmt or "/".join(sorted({str(r.get("box_format") or DEFAULT_BOX_FORMAT) for r in records}))
    report = {"mode": "strict", "box_format": used, **metrics(correct, grounded)}
    report["ci95"] = bootstrap_ci(correct, grounded, bootstrap, seed)
    report["mean_iou"] = float(np.mean([s.iou for s in scored]))
    failures: dict[str, int] = {}
    for s in scored:
        if s.box_failure:
            failures[s.box_failure] = failures.get(s.box_failure, 0) + 1
    report["box_parse_failures"] = failures
    report["steps"] = _step_summary(scored)
    types = sorted({s.type for s in scored})
    report["per_type"] = {}
    if types != ["all"]:
        for t in types:
            sel = np.array([s.type == t for s in scored])
            report["per_type"][t] = {
                **metrics(correct[sel], grounded[sel]),
                "ci95": bootstrap_ci(correct[sel], grounded[sel], bootstrap, seed),
                "steps": _step_summary([s for s in scored if s.type == t]),
            }
    return report
