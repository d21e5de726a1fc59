"""What the boxes of MM-GCoT's released test chains say about spatial predicates: the measurements
behind the photo margins of `pipeline/chains/relations.py` and the question-length limit.

Each chain's step k names its object by its relation to step k-1's ("the hat on the man"); people
wrote and checked them. For the steps whose text holds a spatial predicate, the script measures the
two boxes (step k's and step k-1's): gaps along the predicate's axis and shared extent across it (in
sides of the smaller box), how often the old box rules for "on" / "inside" hold, and how often the
photo rules (`photo_predicates`) hold. It also prints question length and steps per chain per type
(`core/mmgcot_reference.py` keeps them).

    .venv/bin/python benchmarks/measure_official_relations.py PATH   # a folder with GCoT_dataset_*_test.json

The official files are not in this repository: they come with the MM-GCoT code
(github.com/DoubtedSteam/MM-GCoT, dataset/).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.boxes import find_boxes, intersection  # noqa: E402
from pipeline.chains.relations import ALONG_TOLERANCE, CROSS_MIN, NEAR_GAP, exact_predicates, photo_predicates  # noqa: E402

# Spellings of each predicate in the official step texts (first match wins, in this order).
SPATIAL = {
    "left of": r"\b(?:to the left of|left of|on the left of)\b", "right of": r"\b(?:to the right of|right of|on the right of)\b",
    "above": r"\babove\b", "under": r"\b(?:below|beneath|underneath|under)\b", "on": r"\b(?:on top of|on|sitting on|resting on|placed on)\b",
    "near": r"\b(?:near|next to|beside|by)\b", "behind": r"\bbehind\b", "in front of": r"\bin front of\b", "in": r"\b(?:in|inside)\b",
}


def pairs(folder: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {k: [] for k in SPATIAL}
    for f in sorted(folder.glob("GCoT_dataset_*_test.json")):
        for r in json.loads(f.read_text()):
            lines = [line for line in r["cot"].split("\n") if line.strip()]
            boxes = [(found[-1][0] if (found := find_boxes(line)) else None) for line in lines]
            for k in range(1, len(lines)):
                if boxes[k] is None or boxes[k - 1] is None:
                    continue
                text = re.split(r" (?:is|are) at ", lines[k].lower())[0]
                for name, pattern in SPATIAL.items():
                    if re.search(pattern, text):
                        out[name].append((boxes[k], boxes[k - 1]))
                        break
    return out


def _along(name: str, a, b) -> float:
    """Gap along the predicate's axis in sides of the smaller box (negative: the boxes overlap)."""
    if name == "left of":
        return (b[0] - (a[0] + a[2])) / min(a[2], b[2])
    if name == "right of":
        return (a[0] - (b[0] + b[2])) / min(a[2], b[2])
    if name == "above":
        return (b[1] - (a[1] + a[3])) / min(a[3], b[3])
    return (a[1] - (b[1] + b[3])) / min(a[3], b[3])


def _across(name: str, a, b) -> float:
    if name in ("left of", "right of"):
        return max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])) / min(a[3], b[3])
    return max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])) / min(a[2], b[2])


def _gap(a, b) -> float:
    gx = max(0.0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    gy = max(0.0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return max(gx, gy) / min(max(a[2], a[3]), max(b[2], b[3]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="folder holding GCoT_dataset_{attributes,judge,objects}_test.json")
    folder = ap.parse_args().folder
    p = pairs(folder)
    print("steps by spatial predicate:", {k: len(v) for k, v in p.items()})
    print("\nold box rules (exact_predicates) on the steps people wrote:")
    for name in ("on", "in", "behind", "in front of", "under", "near"):
        c = Counter(q for a, b in p[name] for q in set(exact_predicates(a, b)) & {"on", "in"})
        print(f"  {name:12s} {len(p[name]):4d} steps: box 'on' holds {c['on']:4d}, box 'in' (inside) holds {c['in']:4d}")
    inside = sorted(intersection(a, b) / (a[2] * a[3]) for a, b in p["on"])
    print(f"  share of a's box inside b's for 'on', median: {inside[len(inside) // 2]:.3f}")
    print(f"\nphoto margins (along-axis tolerance {ALONG_TOLERANCE}, cross-axis minimum {CROSS_MIN:.2f}, near gap {NEAR_GAP}):")
    for name in ("above", "left of", "right of"):
        if p[name]:
            along = sorted(_along(name, a, b) for a, b in p[name])
            across = sorted(_across(name, a, b) for a, b in p[name])
            within = sum(v >= -ALONG_TOLERANCE for v in along)
            print(f"  {name:9s} {len(along):3d} steps: {within} within the along-axis tolerance; cross-axis share min {across[0]:.2f}")
    gaps = sorted(_gap(a, b) for a, b in p["near"])
    print(f"  near      {len(gaps):3d} steps: gap <= {NEAR_GAP} for {sum(g <= NEAR_GAP for g in gaps) / len(gaps):.0%}")
    held = {name: sum(name in photo_predicates(a, b) for a, b in p[name]) for name in ("above", "left of", "right of", "near")}
    print("  the photo rule holds on the steps that say it:", {k: f"{held[k]}/{len(p[k])}" for k in held})
    print("\nquestion words and steps per chain, per file:")
    for f in sorted(folder.glob("GCoT_dataset_*_test.json")):
        rows = json.loads(f.read_text())
        words = Counter(len(r["question"].split()) for r in rows)
        steps = Counter(len([line for line in r["cot"].split("\n") if line.strip()]) for r in rows)
        print(f"  {f.name}: {len(rows)} rows, longest question {max(words)} words; words {dict(sorted(words.items()))}; steps {dict(sorted(steps.items()))}")


if __name__ == "__main__":
    main()
