"""MM-GCoT evaluation. Official mode was compared locally with the official eval.py on thousands of
generated results files (equal to the last bit); here, hand-computed cases pin each quirk."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from pipeline.evaluation import official, report, strict
from tests.conftest import REPO

G = "[0.100, 0.100, 0.500, 0.500]"
CASES = [  # text, gt_text, coor
    ("Blue.", "blue", "[0.1, 0.1, 0.5, 0.5]"),  # periods dropped, case folded: right; IoU 1
    ("Wooden", "Wood", "The box is [0.1, 0.1, 0.5, 0.5]."),  # official: wrong answer; box found inside text
    ("YES", "Yes", "(0.1, 0.1, 0.5, 0.5)"),  # no [..]: first and last character stripped, parses
    ("red", "Red", "[0.1, 0.2]"),  # fewer than 4 numbers: [0, 0, 0, 0]
    ("no", "Yes", "[0.1, 0.1, 0.6, 0.6]"),  # xyxy compared as xywh: IoU 0.25/0.36 = 0.694
    ("cat", "dog", None),  # no box at all
]


def records(cases=CASES, **extra):
    return [{"text": t, "gt_text": g, "coor": c, "gt_coor": G, "img": "x.jpg", **extra} for t, g, c in cases]


def test_official_numbers_by_hand():
    r = official.evaluate(records())
    assert (r["CR"], r["CM"], r["WR"], r["WW"]) == (2, 1, 2, 1)
    assert r["answer_accuracy"] == 3 / 6 * 100
    assert r["grounding_accuracy"] == 4 / 6 * 100
    assert r["consistency"] == 2 / 5 * 100


def test_official_parse_quirks():
    assert official.parse_box("0.1,0.2,0.3,0.4") == [0.1, 0.2, 0.3, 0.0]  # "0.1,...,0.4" minus its ends
    assert official.parse_box("[-0.1, 0.2, 0.3, 0.4]") == [-0.1, 0.2, 0.3, 0.4]  # regex misses '-', fallback parses
    assert official.parse_box("") == [0, 0, 0, 0] and official.parse_box("abc") == [0, 0, 0, 0]
    assert official.parse_box("[0.1, 0.2, 0.3, 0.4, 0.5]") == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert official.iou_xywh([0, 0, 0, 0], [0, 0, 0, 0]) == 0
    assert official.answer_correct(" Blue", "blue") is False  # no stripping of spaces


def test_official_raises_where_the_official_script_crashes():
    with pytest.raises(official.OfficialScriptWouldFail, match="line 2.*four"):
        official.evaluate(records([CASES[0], ("x", "y", "[0.1, 0.2, 0.3, 0.4, 0.5]")]))
    with pytest.raises(official.OfficialScriptWouldFail, match="divides by zero"):
        official.evaluate(records([("cat", "dog", None)]))
    with pytest.raises(official.OfficialScriptWouldFail, match="not a string"):
        official.evaluate([{"text": None, "gt_text": "a", "coor": "", "gt_coor": G}])


def test_official_model_conversions(tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "x.jpg")
    rec = {"text": "a", "gt_text": "a", "coor": "[20, 10, 120, 60]", "gt_coor": G, "img": "x.jpg"}
    # qwen: absolute xyxy / image size -> [0.1, 0.1, 0.5, 0.5]
    assert official.score_sample(rec, "qwen", tmp_path).iou == pytest.approx(1.0)
    rec["coor"] = "[100, 100, 600, 600]"  # internvl: xyxy on 0-1000
    assert official.score_sample(rec, "internvl").iou == pytest.approx(1.0)
    assert official.score_sample(rec, "llava").iou == 0
    # five numbers survive a conversion (it keeps four), as in the official script
    rec["coor"] = "[100, 100, 600, 600, 7]"
    assert official.score_sample(rec, "internvl").iou == pytest.approx(1.0)


def test_strict_fixes_the_traps():
    r = strict.evaluate(records(), bootstrap=0)
    assert (r["CR"], r["CM"], r["WR"], r["WW"]) == (3, 1, 1, 1)  # "Wooden" == "Wood" now
    assert r["consistency"] == pytest.approx(60.0)
    assert r["box_parse_failures"] == {"fewer_than_4_numbers": 1, "missing": 1}
    llava = strict.evaluate(records(), model_format="llava", bootstrap=0)  # xyxy converted: case 5 is right
    assert llava["grounding_accuracy"] == pytest.approx(4 / 6 * 100) and llava["box_format"] == "xyxy-norm"


@pytest.mark.parametrize("text,box", [
    ('{"bbox_2d": [10, 20, 30, 40], "label": "cup"}', [10, 20, 30, 40]),
    ('```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', [1, 2, 3, 4]),
    ("<|box_start|>(12,34),(56,78)<|box_end|>", [12, 34, 56, 78]),
    ("[0.1, 0.2, 0.3, 0.4, 0.9]", [0.1, 0.2, 0.3, 0.4]),
    ("{0.1; 0.2; 0.3; 0.4}", [0.1, 0.2, 0.3, 0.4]),
    ("box: -0.1 0.2 3e-1 0.4", [-0.1, 0.2, 0.3, 0.4]),
])
def test_strict_box_parsing(text, box):
    assert strict.parse_box(text)[0] == pytest.approx(box)


def test_answer_normalization():
    syn = strict.DEFAULT_SYNONYMS
    assert strict.normalize_answer("The Boxes.", syn) == strict.normalize_answer("box", syn)
    assert strict.normalize_answer("Step 1: ...\nFinal Answer: Wooden", syn) == "wood"
    assert strict.normalize_answer("an apple", syn) == "apple" and strict.normalize_answer("glass", syn) == "glass"
    assert strict.normalize_answer("timber", {**syn, "timber": "wood"}) == "wood"


def test_step_level_grounding_and_per_type():
    gt_cot = "Step 1: The table is at [0.000, 0.500, 1.000, 0.500]\nStep 2: The cup on the table is at [0.100, 0.100, 0.500, 0.500]"
    good = "Step 1: The table is at [0.0, 0.5, 1.0, 0.5]\nStep 2: The cup is at [0.1, 0.1, 0.5, 0.5]\nFinal Answer: Blue"
    half = "Step 1: The cup is at [0.1, 0.1, 0.5, 0.5]\nStep 2: Something else is at [0.9, 0.9, 0.05, 0.05]\nFinal Answer: Red"
    recs = [
        {"text": "Blue", "gt_text": "Blue", "coor": G, "gt_coor": G, "type": "attribute", "cot": good, "gt_cot": gt_cot},
        {"text": "Red", "gt_text": "Blue", "coor": G, "gt_coor": G, "type": "object", "cot": half, "gt_cot": gt_cot},
    ]
    r = strict.evaluate(recs, bootstrap=0)
    assert r["steps"]["reference_steps"] == 4 and r["steps"]["predicted_steps"] == 4
    assert r["steps"]["recall"] == 75.0 and r["steps"]["precision"] == 75.0
    assert r["per_type"]["attribute"]["steps"]["mean_iou"] == pytest.approx(1.0)
    assert r["per_type"]["object"]["CR"] == 0 and r["per_type"]["object"]["WR"] == 1


def test_bootstrap_intervals_are_seeded_and_hold_the_estimate():
    recs = records(CASES * 10)
    a = strict.evaluate(recs, bootstrap=300, seed=1)
    b = strict.evaluate(recs, bootstrap=300, seed=1)
    assert a["ci95"] == b["ci95"]
    for k in ("answer_accuracy", "grounding_accuracy", "consistency"):
        lo, hi = a["ci95"][k]
        assert lo <= a[k] <= hi and hi - lo < 60


def test_cli_json_and_reports(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(type="judge")))
    run = lambda *a: subprocess.run([sys.executable, "-m", "pipeline", "eval-gcot", "--results", str(path), *a], capture_output=True, text=True, cwd=REPO)
    out = run("--json")
    r = json.loads(out.stdout)
    assert out.returncode == 0 and r["consistency"] == 2 / 5 * 100 and r["answer_accuracy"] == 50.0
    out = run("--mode", "strict", "--json", "--out", str(tmp_path / "rep"))
    r = json.loads(out.stdout)
    assert r["mode"] == "strict" and r["per_type"]["judge"]["n"] == 6
    assert (tmp_path / "rep" / "report.md").read_text().startswith("### MM-GCoT evaluation, strict mode")
    assert (tmp_path / "rep" / "breakdown.png").stat().st_size > 5000
    path.write_text('{"text": "a"}\nnot json\n')
    out = run("--json")
    assert out.returncode == 2 and "line 2: not JSON" in out.stderr


def test_markdown_table_rows():
    md = report.markdown({"mode": "official", **official.evaluate(records())})
    assert "| all | 6 | 50.0 | 66.7 | 40.0 | 2 | 1 | 2 | 1 |" in md
