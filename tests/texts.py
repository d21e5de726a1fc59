"""Records for the tests of written text: the tabletop scene's verified examples, a LongV-EVAL item."""

from __future__ import annotations

from core.schema import Clip, LongVItem, Subject, TrackPoint
from pipeline.chains.relations import build_relation_graph
from pipeline.chains.sampler import ChainSampler
from pipeline.verify import verify_batch
from tests.scenes import tabletop


def verified_tabletop():
    """(graph, relation graph, {(type, question): example}) of the tabletop scene's verified examples."""
    g = tabletop()
    rg = build_relation_graph(g)
    exs, _ = ChainSampler().sample(g, rg, "vg/VG_100K/42.jpg", 0)
    kept, _ = verify_batch(exs, {g.image_id: g}, {g.image_id: rg})
    return g, rg, {(e.type, e.question): e for e in kept}


def tracked(name: str = "cube", color: str = "red") -> Subject:
    """A subject that moves left across the frame."""
    return Subject(1, name, color, 0.9, [TrackPoint(0, (0.7, 0.5, 0.1, 0.1)), TrackPoint(40, (0.1, 0.5, 0.1, 0.1))])


def longv_item(subjects: list[Subject], **prompt: str) -> LongVItem:
    d = dict(foreground="A white wolf runs left.", background="A red cube slides left across a misty pine forest.", style="Comic-style red cube slides left in a vivid world.")
    d.update(prompt)
    return LongVItem("v", "videos/v.mp4", "v.mp4", 10.0, 24.0, 240, 64, 36, [Clip(0, 239, 5)], subjects, "static", "A red cube.", style_name="comic", **d)
