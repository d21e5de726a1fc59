import json

from core.schema import Rejection, Relation, SceneGraph, SceneObject
from pipeline.chains.regions import Phrase, phrase_matches, read_phrase, usable_phrases
from pipeline.chains.relations import build_relation_graph
from pipeline.normalise.graph import normalise
from pipeline.sources.visual_genome import VisualGenomeSource
from tests.real_photos import vg_folder


def _scene(regions):
    from core.schema import Region

    objs = [
        SceneObject("m", "man", (0.10, 0.10, 0.30, 0.80), ("standing",)), SceneObject("w", "man", (0.60, 0.10, 0.30, 0.80)),
        SceneObject("c", "coat", (0.12, 0.30, 0.26, 0.40), ("beige",)), SceneObject("b", "bus", (0.0, 0.0, 1.0, 0.6), ("Blue",)),
    ]
    g = SceneGraph("1", "VG_100K/1.jpg", 100, 100, objs, [Relation("m", "WEARS", "c")], source="vg",
                   regions=[Region(str(k), p, box) for k, (p, box) in enumerate(regions)])
    g = normalise(g).graph
    return g, build_relation_graph(g)


def test_a_phrase_is_read_into_head_attributes_and_backed_relations():
    g, rg = _scene([("A man wearing a beige coat.", (0.1, 0.1, 0.3, 0.8)), ("The bus is blue", (0.0, 0.0, 1.0, 0.6))])
    man, bus = (read_phrase(r, g, rg) for r in g.regions)
    assert isinstance(man, Phrase) and man.object_id == "m" and man.render() == "man wearing the beige coat"
    assert isinstance(bus, Phrase) and bus.render() == "blue bus"
    assert phrase_matches(man, g, rg) == {"m"}  # the other man wears nothing annotated


def test_phrases_that_cannot_be_checked_are_set_aside_with_a_reason():
    g, rg = _scene([
        ("man in a coat", (0.1, 0.1, 0.3, 0.8)),  # "in" is not what the graph says (wearing)
        ("old man", (0.1, 0.1, 0.3, 0.8)),  # "old" is not an attribute the graph holds
        ("man wearing a coat", (0.4, 0.4, 0.1, 0.1)),  # the region frames no man
        ("a man", (0.6, 0.1, 0.3, 0.8)),  # aligned, but "the man" picks out two
        ("a man standing on the corner of the street next to a bus stop", (0.1, 0.1, 0.3, 0.8)),
    ])
    reasons = [read_phrase(r, g, rg) for r in g.regions]
    assert [r[0] for r in reasons[:3]] == ["region_relation_not_backed", "region_unchecked_word", "region_not_aligned"]
    assert isinstance(reasons[3], Phrase) and reasons[4][0] == "region_too_long"
    usable, counts = usable_phrases(g, rg)
    assert usable == {} and counts["region_not_unique"] == 1


def test_regions_are_read_beside_the_scene_graphs_in_any_order(tmp_path):
    root = vg_folder(tmp_path / "vg")
    data = json.loads((root / "region_descriptions.json").read_text())
    data.reverse()  # another order than the scene graphs'
    data[0]["regions"].append({"region_id": 1, "phrase": "", "x": 0, "y": 0, "width": 5, "height": 5})
    data[0]["regions"].append({"region_id": 2, "phrase": "far away", "x": 5000, "y": 0, "width": 5, "height": 5})
    (root / "region_descriptions.json").write_text(json.dumps(data))
    records = list(VisualGenomeSource(root).iter_records())
    graphs = [r for r in records if isinstance(r, SceneGraph)]
    bad = [r for r in records if isinstance(r, Rejection)]
    assert [len(g.regions) for g in graphs] == [14, 11, 9]
    assert sorted(r.rule for r in bad) == ["box_out_of_range", "region_without_phrase"]
    assert all(r.file.endswith("region_descriptions.json") for r in bad)


def test_a_folder_without_region_descriptions_still_reads(tmp_path):
    root = vg_folder(tmp_path / "vg", regions=False)
    graphs = [r for r in VisualGenomeSource(root).iter_records() if isinstance(r, SceneGraph)]
    assert len(graphs) == 3 and all(g.regions == [] for g in graphs)
