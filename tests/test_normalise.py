import pytest

from core.schema import Relation, SceneGraph, SceneObject
from pipeline.normalise.attributes import answer_word, canonical, same_value
from pipeline.normalise.duplicates import MERGE_IOU, are_duplicates
from pipeline.normalise.graph import normalise
from pipeline.normalise.names import canonical_name, may_be


@pytest.mark.parametrize(
    "raw, name",
    [("Shoes", "shoe"), ("The Cell Phones", "phone"), ("guy", "man"), ("people", "person"), ("men", "man"), ("jeans", "jeans"),
     ("glasses", "glasses"), ("bus", "bus"), ("buses", "bus"), ("name tags", "name tag"), ("necktie", "tie"), ("WINDOW", "window"),
     ("man's shirt", "shirt"), ("leaves", "leaf"), ("t_shirt", "t-shirt"), ("balconies", "balcony"), ("  ", "")],
)
def test_names(raw, name):
    assert canonical_name(raw) == name


def test_a_noun_may_be_its_kinds_and_their_kinds():
    man = SceneObject("1", "man", (0, 0, 1, 1))
    person = SceneObject("2", "person", (0, 0, 1, 1))
    assert may_be(man, "person") and may_be(person, "man") and may_be(man, "guy")
    assert not may_be(man, "woman") and not may_be(SceneObject("3", "coat", (0, 0, 1, 1)), "shirt")
    assert may_be(SceneObject("4", "gentleman", (0, 0, 1, 1), synsets=("man.n.01",)), "man")


@pytest.mark.parametrize(
    "raw, kind, text",
    [("Blue", "color", "blue"), (" light blue", "color", "blue"), ("WOODEN", "material", "wood"), ("Grey", "color", "gray"),
     ("cream colored", "color", "beige"), ("DARK BLUE", "color", "blue"), ("bluish", "color", "blue"), ("standing", "state", "standing"),
     ("round", "shape", "round"), ("tall", "size", "tall"), ("gray haired", "other", "gray haired"), ("black and white", "other", "black and white"),
     ("old", "other", "old"), ("metallic", "material", "metal")],
)
def test_attributes_typed_and_canonical(raw, kind, text):
    assert canonical(raw) == (kind, text)


def test_canonical_answers():
    assert answer_word(canonical("wooden")[1]) == "Wood" and answer_word(canonical("grey")[1]) == "Gray"
    assert same_value("Wooden", "wood") and not same_value("wood", "metal")


def _graph(objects, relations=(), source="vg"):
    return SceneGraph("7", "VG_100K/7.jpg", 100, 100, list(objects), list(relations), source=source)


def test_duplicates_become_one_object_with_a_record():
    g = _graph(
        [SceneObject("1", "man", (0.10, 0.10, 0.30, 0.80), ("standing",)), SceneObject("2", "person", (0.11, 0.09, 0.30, 0.82), ("Smiling",)),
         SceneObject("3", "hat", (0.15, 0.05, 0.1, 0.08), ("Black",)), SceneObject("4", "man", (0.60, 0.10, 0.30, 0.80))],
        [Relation("2", "wearing", "3"), Relation("1", "wearing", "3"), Relation("1", "next to", "2")],
    )
    n = normalise(g)
    assert [o.id for o in n.graph.objects] == ["1", "3", "4"]
    man = n.graph.objects[0]
    assert man.name == "man" and man.names == ("person",) and man.attributes == ("standing", "smiling") and man.merged_from == ("2",)
    assert n.graph.objects[1].attributes == ("black",)
    assert [(r.subject_id, r.predicate, r.object_id) for r in n.graph.relations] == [("1", "wearing", "3")]
    rules = sorted((r.stage, r.rule, r.id) for r in n.records)
    assert rules == [("normalise", "duplicate_relation", "7/1-wearing-3"), ("normalise", "merged_duplicate", "7/2"), ("normalise", "relation_within_merged_object", "7/1-next to-2")]
    assert n.counts["merged"] == 1 and n.counts["objects_out"] == 3


def test_no_merge_across_incompatible_names_or_below_the_iou():
    person = SceneObject("p", "person", (0.10, 0.10, 0.50, 0.80))
    man = SceneObject("m", "man", (0.10, 0.10, 0.45, 0.80))
    woman = SceneObject("w", "woman", (0.15, 0.10, 0.45, 0.80))
    n = normalise(_graph([person, man, woman]))
    # the person merges with one of them; the man and the woman never become one thing
    assert len(n.graph.objects) == 2 and {o.name for o in n.graph.objects} == {"man", "woman"}
    far = SceneObject("f", "man", (0.10, 0.10, 0.20, 0.40))
    assert not are_duplicates(man, far) and MERGE_IOU == 0.5
    shirt = SceneObject("s", "shirt", (0.10, 0.10, 0.45, 0.80))
    assert len(normalise(_graph([man, shirt])).graph.objects) == 2


def test_rendered_scenes_are_not_merged():
    a, b = SceneObject("1", "ball", (0.1, 0.1, 0.2, 0.2)), SceneObject("2", "ball", (0.11, 0.1, 0.2, 0.2))
    assert len(normalise(_graph([a, b], source="synthetic")).graph.objects) == 2
    assert len(normalise(_graph([a, b])).graph.objects) == 1


def test_an_object_without_a_noun_is_set_aside_with_its_relations():
    g = _graph([SceneObject("1", "...", (0.1, 0.1, 0.2, 0.2)), SceneObject("2", "cup", (0.5, 0.5, 0.1, 0.1))], [Relation("2", "on", "1")])
    n = normalise(g)
    assert [o.id for o in n.graph.objects] == ["2"] and n.graph.relations == []
    assert sorted(r.rule for r in n.records) == ["object_without_usable_name", "relation_unknown_object"]
