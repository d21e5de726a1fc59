import pytest

from core.schema import Relation, SceneGraph, SceneObject
from pipeline.chains.grammar import PREDICATES, VG150_PREDICATES, canonical, phrase
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.sampler import ChainConfig, ChainSampler


def test_every_vg150_predicate_is_known():
    assert len(set(VG150_PREDICATES)) == 50
    assert [p for p in VG150_PREDICATES if canonical(p) is None] == []


@pytest.mark.parametrize(
    "raw, expected",
    [("WEARS", ("wearing", False)), ("wearing a", ("wearing", False)), ("has on", ("wearing", False)), ("ON", ("on", False)),
     ("on top of", ("on", False)), ("sitting on", ("on", False)), ("is sitting on the", ("on", False)), ("worn by", ("wearing", True)),
     ("held by", ("holding", True)), ("next to", ("near", False)), ("to the left of", ("left of", False)), ("part of", ("of", False)),
     ("in front of", ("in front of", False)), ("contains", ("in", True)), ("walking past", None), ("", None)],
)
def test_spellings(raw, expected):
    assert canonical(raw) == expected


def test_every_spelling_means_its_own_predicate():
    for p in PREDICATES:
        assert canonical(p.name) == (p.name, False)
        for s in p.spellings:
            assert canonical(s) == (p.name, False), s
        for s in p.passives:
            assert canonical(s) == (p.name, True), s


@pytest.mark.parametrize(
    "predicate, inverse, head, other, text",
    [("wearing", False, "man", "the coat", "man wearing the coat"), ("wearing", True, "coat", "the man", "coat the man is wearing"),
     ("has", False, "woman", "the face", "woman with the face"), ("has", True, "face", "the woman", "face of the woman"),
     ("on", False, "cup", "the table", "cup on the table"), ("on", True, "table", "the cup", "table under the cup"),
     ("in", True, "room", "the man", "room the man is in"), ("holding", True, "cup", "the man", "cup the man is holding"),
     ("left of", True, "cup", "the man", "cup right of the man")],
)
def test_noun_phrases_both_ways(predicate, inverse, head, other, text):
    assert phrase(predicate, inverse, head, other) == text


def test_no_form_is_a_finite_verb_after_a_noun():
    """'the woman has the face' is what pasting did; every form reads as a noun phrase."""
    finite = ("has", "have", "wears", "holds", "carries", "eats", "rides", "says", "uses", "watches")
    for p in PREDICATES:
        for form in (p.forward, p.inverse):
            words = form.format(head="X", other="the Y").split()
            for i, w in enumerate(words):
                assert w not in finite or words[i - 1] in ("that", "who"), form


def test_an_unknown_predicate_rejects_the_candidate_with_its_name():
    objs = [SceneObject("a", "man", (0.1, 0.1, 0.2, 0.6), ("tall",)), SceneObject("b", "bus", (0.5, 0.1, 0.4, 0.5), ("blue",))]
    g = SceneGraph("9", "VG_100K/9.jpg", 100, 100, objs, [Relation("a", "walking past", "b"), Relation("b", "walking past", "a")], source="vg")
    rg = build_relation_graph(g, geometric=False)
    exs, rej = ChainSampler(ChainConfig(per_type={"object": 2})).sample(g, rg, "vg/VG_100K/9.jpg", 0)
    assert exs == [] and rej and {r.rule for r in rej} == {"unknown_predicate"}
    assert all("predicate 'walking past'" in r.detail for r in rej)
