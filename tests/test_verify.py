import copy
import dataclasses

import pytest

from core.boxes import format_box
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.sampler import ChainConfig, ChainSampler
from pipeline.verify import check_splits, verify_batch, verify_example
from tests.scenes import tabletop


@pytest.fixture()
def setup():
    g = tabletop()
    rg = build_relation_graph(g)
    exs, _ = ChainSampler(ChainConfig(per_type={"attribute": 2, "judge": 2, "object": 2})).sample(g, rg, "vg/VG_100K/42.jpg", 1)
    by_type = {e.type: e for e in exs}
    assert set(by_type) == {"attribute", "judge", "object"}
    return g, rg, by_type


def rule_of(ex, g, rg):
    r = verify_example(ex, g, rg)
    return r.rule if r else None


def test_valid_examples_pass(setup):
    g, rg, exs = setup
    for ex in exs.values():
        assert rule_of(ex, g, rg) is None and ex.verification.passed


def test_box_outside_image(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["attribute"])
    s = ex.steps[0]
    s.box = (0.9, 0.1, 0.3, 0.1)
    s.text = f"The thing is at {format_box(s.box)}"
    assert rule_of(ex, g, rg) == "box_inside_image"
    assert any(f["rule"] == "box_inside_image" for f in ex.verification.failures)


def test_zero_area_box(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["object"])
    ex.steps[0].box = (0.1, 0.1, 0.0, 0.1)
    ex.steps[0].text = f"The thing is at {format_box(ex.steps[0].box)}"
    assert rule_of(ex, g, rg) == "box_nonzero_area"


def test_text_must_carry_the_box(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["object"])
    ex.steps[0].text = "The thing is at [0.999, 0.999, 0.001, 0.001]"
    assert rule_of(ex, g, rg) == "step_text_box"


def test_answer_box_is_last_step_box(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["judge"])
    ex.answer_box = ex.grounded_steps[0].box
    assert rule_of(ex, g, rg) == "answer_box_is_last_step"


def test_wrong_answer(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["attribute"])
    ex.answer = "Purple"
    assert rule_of(ex, g, rg) == "answer_agrees_with_scene_graph"
    ex = copy.deepcopy(exs["judge"])
    ex.answer = "No" if ex.answer == "Yes" else "Yes"
    assert rule_of(ex, g, rg) == "answer_agrees_with_scene_graph"


def test_box_that_disagrees_with_the_scene_graph(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["object"])
    last = ex.grounded_steps[-1]
    last.box = (0.3, 0.3, 0.1, 0.1)
    last.text = f"The planted box is at {format_box(last.box)}"
    ex.answer_box = last.box
    assert rule_of(ex, g, rg) == "box_matches_scene_graph"


def test_ambiguous_expression(setup):
    g, rg, exs = setup
    ex = copy.deepcopy(exs["attribute"])
    first = ex.grounded_steps[0]
    first.name, first.attributes = None, ()  # "the object": every object in the scene matches
    r = verify_example(ex, g, rg)
    assert r.rule == "unique_expression" and "picks out 5 objects" in r.detail


def test_duplicate_question_keeps_the_first(setup):
    g, rg, exs = setup
    a = exs["attribute"]
    b = copy.deepcopy(a)
    b.id = a.id + "-copy"
    kept, rejected = verify_batch([a, b], {g.image_id: g}, {g.image_id: rg})
    assert [e.id for e in kept] == [a.id]
    assert [(r.id, r.rule) for r in rejected] == [(b.id, "no_duplicate_question")]


def test_split_leak(setup):
    _, _, exs = setup
    a, b = exs["attribute"], copy.deepcopy(exs["object"])
    a.split, b.split = "train", "test"
    leaks = check_splits([a, b])
    assert [(r.id, r.rule) for r in leaks] == [(b.id, "split_by_image")]


def failed_rules(ex, g, rg):
    verify_example(ex, g, rg)
    return [f["rule"] for f in ex.verification.failures]


def test_quality_rules_each_with_its_reason(setup):
    g, rg, exs = setup
    ex = exs["attribute"]
    assert failed_rules(ex, g, rg) == []
    assert ex.verification.rules[-5:] == ["duplicate_in_chain", "relation_not_backed", "repeated_predicate", "answer_in_question", "question_too_long"]

    dup = copy.deepcopy(ex)  # one thing twice: the second step's object is the first's, annotated again
    first, second = dup.grounded_steps[0].object_id, dup.grounded_steps[1].object_id
    g2 = copy.deepcopy(g)
    g2.objects = [o if o.id != second else dataclasses.replace(o, merged_from=(first,)) for o in g2.objects]
    assert "duplicate_in_chain" in failed_rules(dup, g2, rg)

    unbacked = copy.deepcopy(ex)  # "on" from boxes on a photo
    unbacked.grounded_steps[1].relation, unbacked.grounded_steps[1].relation_origin = "on", "geometric"
    assert "relation_not_backed" in failed_rules(unbacked, g, rg)

    leaked = copy.deepcopy(ex)
    leaked.question = leaked.question.replace("?", f" near the {leaked.answer.lower()} thing?")
    assert failed_rules(leaked, g, rg) == ["answer_in_question"]

    long = copy.deepcopy(ex)
    long.question = "What is the color of the " + "very " * 25 + "thing?"
    assert "question_too_long" in failed_rules(long, g, rg)


def test_a_repeated_predicate_is_rejected():
    """Also when the text repeats it under two canonical names: 'behind' is in front of read backwards."""
    g = tabletop()
    rg = build_relation_graph(g)
    for seed in range(40):
        exs, _ = ChainSampler(ChainConfig(per_type={"attribute": 3, "object": 3})).sample(g, rg, "vg/VG_100K/42.jpg", seed)
        three = [e for e in exs if len(e.grounded_steps) >= 3]
        if three:
            break
    ex = copy.deepcopy(three[0])
    ex.grounded_steps[2].relation = ex.grounded_steps[1].relation
    ex.grounded_steps[2].relation_inverse = ex.grounded_steps[1].relation_inverse
    assert "repeated_predicate" in failed_rules(ex, g, rg)


def test_a_predicate_repeated_in_the_text_only_is_caught():
    from pipeline.chains.grammar import reads_as

    assert reads_as("in front of", True) == reads_as("behind", False) == "behind"
    assert reads_as("has", True) == reads_as("of", False) == "of"
    assert reads_as("wearing", True) == reads_as("wearing", False)
