from pipeline.chains.expressions import chain_matches
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.sampler import ChainConfig, ChainSampler
from pipeline.verify import verify_batch
from tests.scenes import tabletop


def sample(seed, per_type=None):
    g = tabletop()
    rg = build_relation_graph(g)
    cfg = ChainConfig(per_type=per_type or {"attribute": 3, "judge": 4, "object": 3})
    exs, rej = ChainSampler(cfg).sample(g, rg, "vg/VG_100K/42.jpg", seed)
    return g, rg, exs, rej


def test_every_candidate_is_unique_grounded_and_verifies():
    for seed in range(15):
        g, rg, exs, rej = sample(seed)
        kept, rejected = verify_batch(exs, {g.image_id: g}, {g.image_id: rg})
        assert rejected == [], rejected
        for ex in exs:
            grounded = ex.grounded_steps
            assert 2 <= len(grounded) <= 4
            assert ex.answer_box == grounded[-1].box
            for s, m in zip(grounded, chain_matches(g, rg, ex.steps)):
                assert m == {s.object_id}
            # the twins A and D can never anchor a chain: nothing tells them apart without a relation
            assert grounded[0].object_id not in ("A", "D")
            assert ex.steps[0].text.startswith("The ") and " is at [" in ex.steps[0].text


def test_twins_are_rejected_as_ambiguous_with_the_reason():
    rules = set()
    for seed in range(15):
        _, _, _, rej = sample(seed)
        rules |= {r.rule for r in rej}
        for r in rej:
            assert r.stage == "chains" and "does not pick out" in r.detail
    assert rules == {"ambiguous_expression"}


def test_answers_follow_the_scene_graph():
    by_id = {o.id: o for o in tabletop().objects}
    for seed in range(10):
        _, _, exs, _ = sample(seed)
        for ex in exs:
            target = by_id[ex.grounded_steps[-1].object_id]
            if ex.type == "attribute":
                assert ex.answer.lower() in target.attributes
                assert ex.query.kind in ("color", "material")
                assert ex.answer.lower() not in ex.question.lower().split()  # the asked value is not given away
            elif ex.type == "object":
                assert ex.answer.lower() == target.name
                assert ex.grounded_steps[-1].name is None and " object" in ex.grounded_steps[-1].text
            else:
                assert ex.answer == ("Yes" if ex.query.value in target.attributes else "No")
                assert ex.steps[-1].box is None and ex.steps[-1].text.startswith(f"The {ex.query.kind} of the")


def test_judge_answers_are_balanced():
    answers = []
    for seed in range(40):
        _, _, exs, _ = sample(seed, {"judge": 2})
        answers += [e.answer for e in exs]
    assert abs(answers.count("Yes") - answers.count("No")) <= 0.2 * len(answers)


def test_same_seed_same_chains():
    a = [e.to_dict() for e in sample(3)[2]]
    b = [e.to_dict() for e in sample(3)[2]]
    assert a == b and a != [e.to_dict() for e in sample(4)[2]]
