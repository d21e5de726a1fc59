from hypothesis import given, settings
from hypothesis import strategies as st

from core.schema import Relation, SceneGraph, SceneObject
from pipeline.chains.relations import (
    EXACT,
    PHOTO,
    PHOTO_PREDICATES,
    build_relation_graph,
    exact_predicates,
    photo_facts,
    photo_predicates,
    policy_for,
)


def test_exact_left_right_above_below():
    a, b = (0.1, 0.4, 0.1, 0.1), (0.5, 0.42, 0.1, 0.1)
    assert "left of" in exact_predicates(a, b)
    assert "right of" in exact_predicates(b, a)
    top, bottom = (0.4, 0.1, 0.1, 0.1), (0.42, 0.6, 0.1, 0.1)
    assert "above" in exact_predicates(top, bottom)
    assert "below" in exact_predicates(bottom, top)
    assert "left of" not in exact_predicates(top, bottom)


def test_exact_on_in_near():
    base, cup = (0.3, 0.5, 0.3, 0.2), (0.4, 0.35, 0.08, 0.15)  # cup's bottom at the base's top
    assert "on" in exact_predicates(cup, base)
    assert "on" not in exact_predicates(base, cup)
    tray, coin = (0.1, 0.1, 0.6, 0.4), (0.2, 0.2, 0.05, 0.05)
    assert exact_predicates(coin, tray)[0] == "in"
    assert "near" not in exact_predicates(coin, tray)
    assert "near" in exact_predicates((0.5, 0.5, 0.1, 0.1), (0.62, 0.5, 0.1, 0.1))
    assert "near" not in exact_predicates((0.1, 0.1, 0.05, 0.05), (0.9, 0.9, 0.05, 0.05))


def test_photo_boxes_never_give_on_in_or_behind():
    sign, man = (0.0, 0.23, 0.04, 0.06), (0.06, 0.37, 0.24, 0.47)  # touching boxes: "on" by the old rule
    shirt, other_man = (0.73, 0.31, 0.07, 0.38), (0.12, 0.28, 0.78, 0.72)  # one box inside the other
    for a, b in ((sign, man), (man, sign), (shirt, other_man), (other_man, shirt)):
        assert set(photo_predicates(a, b)) <= set(PHOTO_PREDICATES)
    assert photo_predicates(shirt, other_man) == []  # inside: nothing two boxes can tell


def test_photo_margins():
    small = 0.1
    a = (0.1, 0.4, small, small)
    # overlapping by a fifth of the smaller box along the axis is still "left of" (box slack) ...
    assert "left of" in photo_predicates(a, (0.1 + small - 0.02, 0.42, 0.2, 0.1))
    # ... by a third it is not
    assert "left of" not in photo_predicates(a, (0.1 + small - 0.034, 0.42, 0.2, 0.1))
    # across the axis they must share a third of the smaller box
    assert "left of" not in photo_predicates(a, (0.4, 0.4 + 0.07, 0.1, 0.1))
    assert "above" in photo_predicates((0.4, 0.1, 0.1, 0.1), (0.42, 0.19, 0.1, 0.1))
    assert "below" in photo_predicates((0.42, 0.19, 0.1, 0.1), (0.4, 0.1, 0.1, 0.1))
    # near: at most a quarter of the smaller box's larger side apart, neither mostly inside the other
    assert "near" in photo_predicates((0.1, 0.1, 0.1, 0.1), (0.22, 0.1, 0.1, 0.1))
    assert "near" not in photo_predicates((0.1, 0.1, 0.1, 0.1), (0.24, 0.1, 0.1, 0.1))
    assert "near" not in photo_predicates((0.2, 0.2, 0.05, 0.05), (0.1, 0.1, 0.6, 0.4))


def test_policy_by_source():
    g = SceneGraph("1", "x.jpg", 100, 100, [], source="synthetic")
    assert policy_for(g) is EXACT
    for source in ("vg", "coco", "images", "test"):
        g.source = source
        assert policy_for(g) is PHOTO


def _graph(relations, source="vg"):
    objs = [SceneObject("a", "man", (0.1, 0.1, 0.2, 0.5)), SceneObject("b", "hat", (0.15, 0.05, 0.1, 0.05)), SceneObject("c", "coat", (0.1, 0.3, 0.2, 0.3))]
    return SceneGraph("1", "x.jpg", 100, 100, objs, relations, source=source)


def test_annotated_predicates_are_canonical_and_read_both_ways():
    g = _graph([Relation("b", "ON", "a"), Relation("a", "WEARS", "c"), Relation("b", "near", "zzz"), Relation("c", "worn by", "a")])
    rg = build_relation_graph(g)
    assert rg.holds("b", "on", "a") and rg.holds("a", "wearing", "c")
    assert rg.facts[("b", "on", "a")] == "annotated"
    assert not any(e.other == "zzz" for e in rg.out_edges["b"])
    # the coat can be named by the man it is worn by: an inverse edge of the annotated fact
    assert any(e.predicate == "wearing" and e.other == "a" and e.inverse and e.origin == "annotated" for e in rg.out_edges["c"])
    # "worn by" is "wearing" read backwards: the same fact, not a second one
    assert [k for k in rg.facts if k[1] == "wearing"] == [("a", "wearing", "c")]


def test_unknown_predicates_stay_marked_and_geometry_never_adds_on():
    g = _graph([Relation("a", "walking past", "c")])
    rg = build_relation_graph(g)
    edge = next(e for e in rg.out_edges["a"] if e.predicate == "walking past")
    assert not edge.known and ("a", "walking past", "c") in rg.unknown
    assert {p for (_, p, _), o in rg.facts.items() if o == "geometric"} <= set(PHOTO_PREDICATES)
    assert not rg.holds("b", "on", "a")  # the hat's box touches the man's: the old rule said "on"


_coord = st.one_of(st.integers(0, 8).map(lambda k: k / 8), st.floats(0, 1))  # a grid hits every rule's equality edge


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, _coord, _coord, st.sampled_from(["a", "b", "c", "d", "e", "f", "a"])), max_size=9))
def test_photo_facts_of_all_pairs_at_once_are_those_of_each_pair(boxes):
    """The vectorised relation pass gives exactly the per-pair rule's facts (ids may repeat: no pair of one id)."""
    objs = [SceneObject(f"{name}{k % 3}", "x", (x * 0.9, y * 0.9, max(0.01, w * (1 - x * 0.9)), max(0.01, h * (1 - y * 0.9))))
            for k, (x, y, w, h, name) in enumerate(boxes)]
    want = {(a.id, p, b.id) for a in objs for b in objs if a.id != b.id for p in photo_predicates(a.box, b.box)}
    assert set(photo_facts(objs)) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, _coord, _coord), max_size=8))
def test_iou_matrix_equals_iou_of_each_pair_to_the_bit(boxes):
    from core.boxes import iou, iou_matrix

    m = iou_matrix(boxes)
    assert [[float(v) for v in row] for row in m] == [[iou(a, b) for b in boxes] for a in boxes]
