"""The review task and its reading back, without a server: why a task is flagged, the chain's own
labels, the prediction's score, and what a reviewer changed (a box by IoU, a text before and after)."""

import copy
import xml.etree.ElementTree as ET

import pytest

from annotation.configs import VERDICT_KEYS, VERDICTS, gcot_instructions, gcot_review_config
from annotation.tasks import Change, flag_reason, read_annotation, step_name, task_for, text_with_placeholder
from core.schema import DetectorCheck
from pipeline.release.arrow import read_examples
from pipeline.steps import BuildConfig, run_plain


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "rel"
    run_plain(BuildConfig(images=4, seed=5, out=str(out), work_dir=str(out.parent / "work")))
    return read_examples(sorted((out / "data").glob("*.parquet")))


def checked(ex, ious, classes):
    ex = copy.deepcopy(ex)
    ex.detector = DetectorCheck("gcot-yolo11n@abc", list(ious), list(classes), min(ious), sum(ious) / len(ious), min(ious) <= 0.5)
    return ex


def two_step(examples):
    return next(e for e in examples if len(e.grounded_steps) >= 2)


def test_flag_reason_names_the_disagreeing_step(examples):
    ex = two_step(examples)
    k = len(ex.grounded_steps)
    assert flag_reason(ex) == "Not cross-checked by a detector: check every step's box and text"
    flagged = checked(ex, [0.0] + [0.959] * (k - 1), [None] + ["thing"] * (k - 1))
    assert flag_reason(flagged) == f"Flagged: Step 1: detector IoU 0.00 — no {step_name(ex, 0).lower()} found"
    off = checked(ex, [0.96] * (k - 1) + [0.31], ["thing"] * (k - 1) + ["ring"])
    assert flag_reason(off) == f"Flagged: Step {k}: detector IoU 0.31 — the box does not match the detected ring"
    assert flag_reason(checked(ex, [0.97] * (k - 1) + [0.96], ["thing"] * k)) == "Detector agrees with every step (lowest IoU 0.96)"


def test_task_has_the_chains_labels_only_and_the_lowest_iou_as_score(examples):
    ex = two_step(examples)
    k = len(ex.grounded_steps)
    ious = [0.0] + [0.9] * (k - 1)
    task = task_for(checked(ex, ious, [None] * k), "/data/local-files/?d=x/1.jpg", "gcot-forge-test")
    assert [s["value"] for s in task["data"]["steps"]] == [f"Step {i}" for i in range(1, k + 1)]  # no Step k+1 ... 8
    assert len({s["background"] for s in task["data"]["steps"]}) == k
    (pred,) = task["predictions"]
    assert pred["score"] == 0.0 and task["data"]["reason"].startswith("Flagged: Step 1: detector IoU 0.00")
    boxes = [r for r in pred["result"] if r["from_name"] == "box"]
    assert [r["value"]["rectanglelabels"] for r in boxes] == [[f"Step {i}"] for i in range(1, k + 1)]
    for s in ex.grounded_steps:  # every step's text is listed beside the image, [box] for its box
        assert text_with_placeholder(s.text).replace("'", "&#x27;") in task["data"]["chain"]
    assert "score" not in task_for(ex, "/x.jpg", "v")["predictions"][0]  # never cross-checked: nothing to sort by


def test_the_config_takes_its_labels_from_the_task_and_binds_free_keys():
    root = ET.fromstring(gcot_review_config())
    (rect,) = root.iter("RectangleLabels")
    assert rect.get("value") == "$steps" and rect.get("maxUsages") == "1" and rect.get("canRotate") == "false" and not list(rect)
    choices = {c.get("value"): c.get("hotkey") for c in root.iter("Choice")}
    assert choices == VERDICT_KEYS and list(choices) == list(VERDICTS) and len(set(choices.values())) == 3
    assert all(not k.isdigit() for k in choices.values())  # digits go to the step labels
    text = gcot_instructions()
    assert all(w in text for w in ("[box]", "accept", "fixed", "reject", "counts as fixed"))


def read(ex, result, verdict="accept"):
    return read_annotation(ex, {"result": result + [{"from_name": "verdict", "type": "choices", "value": {"choices": [verdict]}}], "completed_by": "r@x", "updated_at": "2026-12-01T10:00:00Z"})


def test_changes_say_what_moved_and_what_was_rewritten(examples):
    ex = two_step(examples)
    pushed = task_for(ex, "/x.jpg", "v")["predictions"][0]["result"]
    assert read(ex, copy.deepcopy(pushed)).changes == []  # accepted as pushed

    moved = copy.deepcopy(pushed)
    box = next(r for r in moved if r["from_name"] == "box")
    box["value"] = {**box["value"], "x": box["value"]["x"] + box["value"]["width"] / 2}
    (change,) = read(ex, moved).changes  # the text follows the box: not a text change
    assert change.what == "box" and change.step == 1 and change.iou == pytest.approx(1 / 3, abs=0.02)
    assert change.describe().startswith("step 1 box moved (IoU 0.3") and change.label == "step 1 box"

    edited = copy.deepcopy(pushed)
    last = [r for r in edited if r["from_name"] == "step_text"][-1]
    last["value"] = {**last["value"], "text": ["The gadget is at [box]"]}
    answer = next(r for r in edited if r["from_name"] == "answer")
    answer["value"] = {"text": ["Plum"]}
    r = read(ex, edited, "fixed")
    n = ex.steps.index(ex.grounded_steps[-1]) + 1
    assert r.changes == [Change("text", n, before=text_with_placeholder(ex.grounded_steps[-1].text), after="The gadget is at [box]"),
                         Change("answer", before=ex.answer, after="Plum")]
    assert r.changed == [f"step {n} text", "answer"]


def test_the_pull_command_prints_counts_and_the_report_keeps_the_lists():
    from annotation.project import PullSummary

    s = PullSummary("out", pushed=2, accepted=1, open=1, changelog=[{"example": "a"}], accepted_with_edits=[], drafts=[{"example": "b"}, {"example": "c"}])
    assert s.report()["changelog"] == [{"example": "a"}] and s.report()["reconciles"]
    assert {k: s.counts()[k] for k in ("changelog", "accepted_with_edits", "drafts", "accepted", "reconciles")} == {
        "changelog": 1, "accepted_with_edits": 0, "drafts": 2, "accepted": 1, "reconciles": True}
