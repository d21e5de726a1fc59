"""Compare `eval-gcot --mode official` with the official MM-GCoT eval.py on generated results files.

The official script is not part of this repository: fetch ``eval.py`` from DoubtedSteam/MM-GCoT and
pass its path. It is run in a temporary copy with its unused imports (torch, shortuuid) dropped and
its hard-coded image prefix pointed at generated images. Each trial writes a results file mixing
right, wrong, case and period variants, jittered, malformed and missing boxes for one model format,
runs both, and asserts equal numbers (repr of the floats) or that both fail.

    .venv/bin/python benchmarks/compare_official_eval.py --official /path/to/eval.py --trials 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from pipeline.evaluation import official  # noqa: E402

GT_ANSWERS = ["Blue", "Wood", "Yes", "No", "Stop sign", "White"]


def fmt(b) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in b) + "]"


def coor_variant(rng, gt, mode, size):
    x, y, w, h = gt
    if mode == "qwen" and rng.random() < 0.7:
        W, H = size
        return "[" + ", ".join(str(int(v)) for v in [(x + rng.uniform(-0.05, 0.05)) * W, (y + rng.uniform(-0.05, 0.05)) * H, (x + w) * W, (y + h) * H]) + "]"
    if mode == "internvl" and rng.random() < 0.7:
        return "[" + ", ".join(str(int(v * 1000)) for v in [x, y, x + w, y + h]) + "]"
    return rng.choice([
        lambda: fmt(gt), lambda: fmt([v + rng.uniform(-0.1, 0.1) for v in gt]), lambda: fmt([x, y, x + w, y + h]),
        lambda: "", lambda: None, lambda: "[0.1, 0.2]", lambda: "(%.2f, %.2f, %.2f, %.2f)" % tuple(gt),
        lambda: "%.2f,%.2f,%.2f,%.2f" % tuple(gt), lambda: "[-0.1, 0.2, 0.3, 0.4]", lambda: f"The box is {fmt(gt)}.",
        lambda: "[.5, .5, .2, .2]", lambda: "abc", lambda: "[]", lambda: "[1, 2, 3, 4]", lambda: "[0.1 0.2 0.3 0.4]",
        lambda: "[0.0, 0.0, 0.0, 0.0]", lambda: '{"bbox_2d": [1, 2, 3, 4]}', lambda: f" {fmt(gt)} and [0.1, 0.2, 0.3, 0.4]",
        lambda: "[1e-1, 0.2, 0.3, 0.4]", lambda: "[0.5, 0.5, -0.1, 0.2]",
        lambda: "[0.1, 0.2, 0.3, 0.4, 0.5]" if rng.random() < 0.2 else fmt(gt),
    ])()


def text_variant(rng, gt):
    return rng.choice([gt, gt, gt.lower() + ".", gt.upper(), " " + gt, gt + "s", "The answer is " + gt, "...", rng.choice(GT_ANSWERS)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="path to the official eval.py")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gcot-official-"))
    src = Path(a.official).read_text()
    src = re.sub(r"^import (torch|shortuuid)$", "", src, flags=re.M).replace('"/data/qiong_code/data/"', 'os.environ["IMG_ROOT"] + "/"')
    (work / "official_eval.py").write_text(src)
    (work / "img").mkdir()
    sizes = {}
    for i in range(5):
        sizes[f"{i}.jpg"] = (300 + 37 * i, 200 + 53 * i)
        Image.new("RGB", sizes[f"{i}.jpg"]).save(work / "img" / f"{i}.jpg")
    rng = random.Random(a.seed)
    equal = failed_both = 0
    for trial in range(a.trials):
        mode = rng.choice(["llava", "qwen", "internvl"])
        recs = []
        for _ in range(rng.randint(1, 40)):
            img = f"{rng.randrange(5)}.jpg"
            gt = [round(rng.uniform(0, 0.5), 3), round(rng.uniform(0, 0.5), 3), round(rng.uniform(0.05, 0.5), 3), round(rng.uniform(0.05, 0.5), 3)]
            g = rng.choice(GT_ANSWERS)
            recs.append({"text": text_variant(rng, g), "gt_text": g, "coor": coor_variant(rng, gt, mode, sizes[img]), "gt_coor": fmt(gt), "img": img})
        path = work / f"r{trial}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        flags = {"llava": [], "qwen": ["--qwen", "True"], "internvl": ["--internvl", "True"]}[mode]
        p = subprocess.run([sys.executable, str(work / "official_eval.py"), "--result-file", str(path), *flags],
                           capture_output=True, text=True, env={**os.environ, "IMG_ROOT": str(work / "img")})
        try:
            ours = official.evaluate(recs, mode, work / "img")
        except official.OfficialScriptWouldFail:
            ours = None
        if p.returncode != 0:
            assert ours is None, f"{path}: the official script failed, ours gave {ours}"
            failed_both += 1
            continue
        lines = p.stdout.strip().split("\n")
        theirs = [float(lines[-5]), float(lines[-3]), float(lines[-1])]
        mine = [ours["answer_accuracy"], ours["grounding_accuracy"], ours["consistency"]]
        assert [repr(v) for v in theirs] == [repr(v) for v in mine], f"{path}: official {theirs} != ours {mine}"
        equal += 1
    print(f"{a.trials} results files: {equal} with equal numbers, {failed_both} on which both fail, 0 differences")


if __name__ == "__main__":
    main()
