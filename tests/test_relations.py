from core.schema import Relation, SceneGraph, SceneObject
from pipeline.chains.relations import build_relation_graph, geometric_predicates


def test_left_right_above_below():
    a, b = (0.1, 0.4, 0.1, 0.1), (0.5, 0.42, 0.1, 0.1)
    assert "left of" in geometric_predicates(a, b)
    assert "right of" in geometric_predicates(b, a)
    top, bottom = (0.4, 0.1, 0.1, 0.1), (0.42, 0.6, 0.1, 0.1)
    assert "above" in geometric_predicates(top, bottom)
    assert "below" in geometric_predicates(bottom, top)
    assert "left of" not in geometric_predicates(top, bottom)


def test_on_inside_near():
    base, cup = (0.3, 0.5, 0.3, 0.2), (0.4, 0.35, 0.08, 0.15)  # cup's bottom at the base's top
    assert "on" in geometric_predicates(cup, base)
    assert "on" not in geometric_predicates(base, cup)
    tray, coin = (0.1, 0.1, 0.6, 0.4), (0.2, 0.2, 0.05, 0.05)
    assert geometric_predicates(coin, tray)[0] == "inside"
    assert "near" not in geometric_predicates(coin, tray)
    far = (0.9, 0.9, 0.05, 0.05)
    assert "near" in geometric_predicates((0.5, 0.5, 0.1, 0.1), (0.62, 0.5, 0.1, 0.1))
    assert "near" not in geometric_predicates((0.1, 0.1, 0.05, 0.05), far)


def test_graph_keeps_given_relations_and_drops_unknown_objects():
    g = SceneGraph("1", "x.jpg", 100, 100, [SceneObject("a", "man", (0.1, 0.1, 0.2, 0.5)), SceneObject("b", "hat", (0.15, 0.05, 0.1, 0.05))],
                   [Relation("b", "ON", "a"), Relation("b", "near", "zzz")])
    rg = build_relation_graph(g)
    assert rg.holds("b", "on", "a")
    assert not any(o == "zzz" for _, o in rg.out_edges["b"])
