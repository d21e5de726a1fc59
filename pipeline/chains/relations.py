"""The relation graph of one image: the scene graph's given relations plus geometric ones.

Geometric predicates, for an ordered pair (a, b) read "a <predicate> b", all on normalized boxes:

- ``inside``: at least 90 % of a's area lies in b and a is less than half b's size.
- ``on``: a's bottom edge sits within 15 % of b's height of b's top edge, they overlap horizontally
  by at least half a's width, and a's centre is above b's.
- ``above`` / ``below``: one lies wholly above the other and they overlap horizontally.
- ``left of`` / ``right of``: one lies wholly left of the other and they overlap vertically.
- ``near``: the gap between the boxes is less than half the smaller box's larger side and neither
  is inside the other.

Thresholds are ours (MM-GCoT builds its graph from Visual Genome's given relations); they are chosen so
that every geometric relation a person would accept at a glance holds, and few more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.boxes import area, intersection_over_first
from core.schema import Box, Relation, SceneGraph

GEOMETRIC_PREDICATES = ("inside", "on", "above", "below", "left of", "right of", "near")


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def geometric_predicates(a: Box, b: Box) -> list[str]:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    out: list[str] = []
    a_inside_b = intersection_over_first(a, b) >= 0.9 and area(a) < 0.5 * area(b)
    b_inside_a = intersection_over_first(b, a) >= 0.9 and area(b) < 0.5 * area(a)
    if a_inside_b:
        out.append("inside")
    h_overlap = _overlap(ax, ax + aw, bx, bx + bw)
    v_overlap = _overlap(ay, ay + ah, by, by + bh)
    if (
        not a_inside_b
        and abs((ay + ah) - by) <= 0.15 * bh
        and h_overlap >= 0.5 * aw
        and ay + ah / 2 < by + bh / 2
    ):
        out.append("on")
    if ay + ah <= by and h_overlap > 0:
        out.append("above")
    if by + bh <= ay and h_overlap > 0:
        out.append("below")
    if ax + aw <= bx and v_overlap > 0:
        out.append("left of")
    if bx + bw <= ax and v_overlap > 0:
        out.append("right of")
    gap_x = max(0.0, max(ax, bx) - min(ax + aw, bx + bw))
    gap_y = max(0.0, max(ay, by) - min(ay + ah, by + bh))
    smaller_side = min(max(aw, ah), max(bw, bh))
    if not (a_inside_b or b_inside_a) and max(gap_x, gap_y) < 0.5 * smaller_side:
        out.append("near")
    return out


@dataclass
class RelationGraph:
    """Directed edges ``subject --predicate--> object`` with fast look-ups both ways."""

    edges: set[tuple[str, str, str]]
    out_edges: dict[str, list[tuple[str, str]]]  # subject -> [(predicate, object)], sorted

    def holds(self, subject_id: str, predicate: str, object_id: str) -> bool:
        return (subject_id, predicate, object_id) in self.edges


def build_relation_graph(graph: SceneGraph, geometric: bool = True) -> RelationGraph:
    edges: set[tuple[str, str, str]] = set()
    ids = {o.id for o in graph.objects}
    for r in graph.relations:
        if r.subject_id in ids and r.object_id in ids and r.subject_id != r.object_id:
            edges.add((r.subject_id, r.predicate.lower().strip(), r.object_id))
    if geometric:
        for a in graph.objects:
            for b in graph.objects:
                if a.id != b.id:
                    for p in geometric_predicates(a.box, b.box):
                        edges.add((a.id, p, b.id))
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s, p, o in sorted(edges):
        out[s].append((p, o))
    return RelationGraph(edges=edges, out_edges=dict(out))


def geometric_relations(graph: SceneGraph) -> list[Relation]:
    """The geometric relations as schema records (for sources that have none, such as COCO)."""
    return [
        Relation(a.id, p, b.id, origin="geometry")
        for a in graph.objects
        for b in graph.objects
        if a.id != b.id
        for p in geometric_predicates(a.box, b.box)
    ]
