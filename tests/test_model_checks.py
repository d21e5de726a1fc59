"""What a model writes is checked before it is used: a rewrite keeps the template's terms (or their
aliases), hides the answer and verifies again; an edit prompt names what it was asked to; the judge's
disagreements lead the review queue. Checked on texts, no model needed."""

from __future__ import annotations

import copy

import pytest

from core.schema import DetectorCheck
from pipeline.detect.crosscheck import review_order
from pipeline.longv import captions, prompts
from pipeline.models.questions import rewrite_failures
from pipeline.verify import example_failures
from tests.texts import longv_item, tracked, verified_tabletop


@pytest.fixture(scope="module")
def table():
    return verified_tabletop()


def test_a_good_rewrite_passes_and_reverifies(table):
    g, rg, exs = table
    ex = exs[("attribute", "What is the color of the cube under the blue ball?")]
    good = "Which colour is the cube underneath that blue ball?"
    assert rewrite_failures(ex, good) == []
    trial = copy.deepcopy(ex)
    trial.question = good
    assert example_failures(trial, g, rg) == []


@pytest.mark.parametrize("question, rule", [
    ("Which colour is the cube near that blue ball?", "drops_template_term"),  # relation changed: under -> near
    ("What color is the cube under the ball?", "drops_template_term"),  # attribute dropped: the blue ball
    ("What color is the red cube under the blue ball?", "reveals_answer"),  # the answer is red
    ("The cube under the blue ball, what color", "not_one_question"),
    ("What is the color of a orange cube under the blue ball?", "article_agreement"),
    ("What is the color of the cube under the blue ball? Tell me what color it is and why, in a long and detailed explanation of the scene please?", "not_one_question"),
])
def test_a_bad_rewrite_is_turned_down_with_its_reason(table, question, rule):
    _, _, exs = table
    ex = exs[("attribute", "What is the color of the cube under the blue ball?")]
    assert rule in [r for r, _ in rewrite_failures(ex, question)]


def test_judge_and_object_rewrites_keep_what_is_asked_and_hide_the_answer(table):
    _, _, exs = table
    judge = exs[("judge", "Is the cube under the blue ball metal?")]  # answer Yes: its last step says "The material of the cube is metal."
    assert rewrite_failures(judge, "Is the cube beneath the blue ball made of metal?") == []
    assert "drops_template_term" in [r for r, _ in rewrite_failures(judge, "Is the cube beneath the blue ball made of rubber?")]
    assert "reveals_answer" in [r for r, _ in rewrite_failures(judge, "Is the metal cube beneath the blue ball metal?")]
    no = exs[("judge", "Is the ball right of the cube under the blue ball brown?")]  # answer No: the ball is green
    assert "reveals_answer" in [r for r, _ in rewrite_failures(no, "Is the green ball right of the cube under the blue ball brown?")]
    obj = exs[("object", "What is the object right of the green ball?")]  # answer Cube
    assert rewrite_failures(obj, "What is the thing to the right of the green ball?") == []
    assert "reveals_answer" in [r for r, _ in rewrite_failures(obj, "Which cube is to the right of the green ball?")]


def test_an_edit_prompt_names_what_was_asked():
    plan = prompts.plan("v", 0, [tracked()])
    assert captions.edit_failures(longv_item([tracked()]), "foreground", f"A {plan.new_subject} runs left.", plan) == []
    assert captions.edit_failures(longv_item([tracked()]), "foreground", "A black cat runs left.", plan)[0][0] == "foreground_new_subject_not_named"
    assert captions.edit_failures(longv_item([tracked()]), "style", "Watercolor red cube slides left.", plan)[0][0] == "style_not_named"
    assert captions.edit_failures(longv_item([tracked()]), "background", "A dog sits in a misty pine forest.", plan)[0][0] == "background_subject_not_named"


def test_review_queue_puts_the_judges_disagreements_first(table):
    _, _, exs = table
    a, b, c, d = (copy.deepcopy(e) for e in list(exs.values())[:4])
    a.detector, b.detector = DetectorCheck("m", [0.9], [None], 0.9, 0.9, False), DetectorCheck("m", [0.1], [None], 0.1, 0.1, True)
    c.provenance["judge.outcome"], d.provenance["judge.outcome"] = "disagrees", "agrees"
    a.provenance["judge.outcome"] = "disagrees"
    assert [e.id for e in review_order([a, b, c, d])] == [a.id, c.id, b.id, d.id]  # disagreements first, each group in its own order
