"""The relation graph of one image: the annotated relations, in their canonical predicates, and the
relations two boxes can tell.

Annotated relations come first: their predicates go through the grammar (`grammar.canonical`:
"WEARS" -> wearing, "worn by" -> wearing with subject and object swapped); a spelling the grammar
does not know stays in the graph under its own text and marked unknown, so that a chain that takes it
is rejected with the reason instead of pasting it. Every annotated relation can be read both ways
("the man wearing the coat", "the coat the man is wearing").

From boxes alone, on a photo (``PHOTO``), only what two boxes can tell: left of, right of, above,
below and near. Boxes cannot tell on from in, behind or wearing: in MM-GCoT's released test chains
the box of "a on b" lies inside b's box for the median pair (share of a inside b 0.996 over 609 "on"
steps), and the old box rule for "on" (bottom edge at b's top edge) held for 17 of those 609, "inside"
for 230 of them, and "inside" also for 54 of 126 "in" steps and 7 of 118 "behind" steps
(`benchmarks/measure_official_relations.py`). A rendered scene (``EXACT``, the synthetic source)
keeps its exact layout relations, on and in included, and marks them ``exact``.

Photo margins, measured on the spatial steps of MM-GCoT's released test chains (people wrote and
checked them; `benchmarks/measure_official_relations.py` prints these): "a above b" is said of boxes
that overlap along the axis by up to a quarter of the smaller box (9 of 13 "above" steps within that;
the rest are skies overlapping what is under them) and share at least a third of the narrower width
across it (all 13 share >= 0.87; the 4 left/right steps >= 0.38; left/right use the same margins by
symmetry, 4 steps being too few to measure them apart); "near" is said of boxes at most a quarter of
the smaller box's larger side apart (90 % of the 214 "near" steps). Boxes one mostly inside the other
(intersection >= half the smaller) get no near: there near cannot be told from on, in or part of, so
the rule holds on 105 of those 214 steps and errs on the side of saying nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core.boxes import area, intersection, intersection_over_first
from core.schema import EXACT_SOURCES, Box, Relation, SceneGraph
from pipeline.chains.grammar import canonical, is_symmetric
from pipeline.normalise.duplicates import duplicate_ids
from pipeline.normalise.names import may_be

EXACT_PREDICATES = ("in", "on", "above", "below", "left of", "right of", "near")
PHOTO_PREDICATES = ("left of", "right of", "above", "below", "near")
ALONG_TOLERANCE = 0.25  # overlap allowed along the relation's axis, in sides of the smaller box
CROSS_MIN = 1 / 3  # shared extent across the axis, in sides of the smaller box
NEAR_GAP = 0.25  # largest gap for near, in the smaller box's larger side
NEAR_MAX_INSIDE = 0.5  # intersection over the smaller box above which near is not said


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def exact_predicates(a: Box, b: Box) -> list[str]:
    """Predicates that hold for "a <predicate> b" on the exact boxes of a rendered scene:

    - ``in``: at least 90 % of a's area lies in b and a is less than half b's size.
    - ``on``: a's bottom edge sits within 15 % of b's height of b's top edge, they overlap horizontally
      by at least half a's width, and a's centre is above b's.
    - ``above`` / ``below``: one lies wholly above the other and they overlap horizontally.
    - ``left of`` / ``right of``: one lies wholly left of the other and they overlap vertically.
    - ``near``: the gap between the boxes is less than half the smaller box's larger side and neither
      is inside the other.
    """
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    out: list[str] = []
    a_in_b = intersection_over_first(a, b) >= 0.9 and area(a) < 0.5 * area(b)
    b_in_a = intersection_over_first(b, a) >= 0.9 and area(b) < 0.5 * area(a)
    if a_in_b:
        out.append("in")
    h_overlap = _overlap(ax, ax + aw, bx, bx + bw)
    v_overlap = _overlap(ay, ay + ah, by, by + bh)
    if not a_in_b and abs((ay + ah) - by) <= 0.15 * bh and h_overlap >= 0.5 * aw and ay + ah / 2 < by + bh / 2:
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
    if not (a_in_b or b_in_a) and max(gap_x, gap_y) < 0.5 * smaller_side:
        out.append("near")
    return out


def photo_predicates(a: Box, b: Box) -> list[str]:
    """What two annotated photo boxes can tell of "a <predicate> b" (margins in the module doc)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    out: list[str] = []
    min_w, min_h = min(aw, bw), min(ah, bh)
    h_overlap = _overlap(ax, ax + aw, bx, bx + bw)
    v_overlap = _overlap(ay, ay + ah, by, by + bh)
    if v_overlap >= CROSS_MIN * min_h:
        if ax + aw <= bx + ALONG_TOLERANCE * min_w:
            out.append("left of")
        if bx + bw <= ax + ALONG_TOLERANCE * min_w:
            out.append("right of")
    if h_overlap >= CROSS_MIN * min_w:
        if ay + ah <= by + ALONG_TOLERANCE * min_h:
            out.append("above")
        if by + bh <= ay + ALONG_TOLERANCE * min_h:
            out.append("below")
    gap = max(max(0.0, max(ax, bx) - min(ax + aw, bx + bw)), max(0.0, max(ay, by) - min(ay + ah, by + bh)))
    smaller = min(area(a), area(b))
    if gap <= NEAR_GAP * min(max(aw, ah), max(bw, bh)) and intersection(a, b) < NEAR_MAX_INSIDE * smaller:
        out.append("near")
    return out


def photo_facts(objects) -> Iterator[tuple[str, str, str]]:
    """(a, predicate, b) for every ordered pair of ``objects`` and each of `photo_predicates`' answers,
    computed for all pairs at once: the same float operations in the same order, so the same facts, at a
    tenth of the time of calling it on each pair (a Visual Genome image has ~35 objects: ~1,200 pairs)."""
    n = len(objects)
    if n < 2:
        return
    box = np.array([o.box for o in objects], dtype=np.float64)
    x, y, w, h = (box[:, k] for k in range(4))
    ax, ay, aw, ah = x[:, None], y[:, None], w[:, None], h[:, None]  # a: rows, b: columns
    bx, by, bw, bh = x[None, :], y[None, :], w[None, :], h[None, :]
    ax1, ay1, bx1, by1 = ax + aw, ay + ah, bx + bw, by + bh
    min_w, min_h = np.minimum(aw, bw), np.minimum(ah, bh)
    h_overlap = np.maximum(0.0, np.minimum(ax1, bx1) - np.maximum(ax, bx))
    v_overlap = np.maximum(0.0, np.minimum(ay1, by1) - np.maximum(ay, by))
    across_v, across_h = v_overlap >= CROSS_MIN * min_h, h_overlap >= CROSS_MIN * min_w
    gap = np.maximum(np.maximum(0.0, np.maximum(ax, bx) - np.minimum(ax1, bx1)), np.maximum(0.0, np.maximum(ay, by) - np.minimum(ay1, by1)))
    areas = np.maximum(0.0, w) * np.maximum(0.0, h)
    smaller = np.minimum(areas[:, None], areas[None, :])
    side = np.maximum(w, h)
    ids = [o.id for o in objects]
    same = np.array(ids, dtype=object)[:, None] == np.array(ids, dtype=object)[None, :]
    masks = {
        "left of": across_v & (ax1 <= bx + ALONG_TOLERANCE * min_w),
        "right of": across_v & (bx1 <= ax + ALONG_TOLERANCE * min_w),
        "above": across_h & (ay1 <= by + ALONG_TOLERANCE * min_h),
        "below": across_h & (by1 <= ay + ALONG_TOLERANCE * min_h),
        "near": (gap <= NEAR_GAP * np.minimum(side[:, None], side[None, :])) & (h_overlap * v_overlap < NEAR_MAX_INSIDE * smaller),
    }
    for p, mask in masks.items():
        for i, j in zip(*np.nonzero(mask & ~same)):
            yield ids[i], p, ids[j]


@dataclass(frozen=True)
class Policy:
    """Which relations boxes may give, and how a chain may use them."""

    name: str
    geometric: tuple[str, ...]
    origin: str  # the origin geometric relations are marked with

    def predicates(self, a: Box, b: Box) -> list[str]:
        return exact_predicates(a, b) if self.name == "exact" else photo_predicates(a, b)


EXACT = Policy("exact", EXACT_PREDICATES, "exact")
PHOTO = Policy("photo", PHOTO_PREDICATES, "geometric")


def policy_for(graph: SceneGraph) -> Policy:
    """Rendered scenes (the synthetic source) have exact boxes; everything else is a photo."""
    return EXACT if graph.source in EXACT_SOURCES else PHOTO


class Edge(NamedTuple):  # a tuple: a graph holds ~n^2 of them, and a frozen dataclass costs 3x to build
    """One way to name an object by another: ``predicate`` read forward (this --p--> other) or inverse
    (other --p--> this), with the origin of the fact behind it; ``known`` is False for a predicate the
    grammar does not know (``predicate`` is then the annotated text)."""

    predicate: str
    other: str
    inverse: bool
    origin: str
    known: bool = True


@dataclass
class RelationGraph:
    facts: dict[tuple[str, str, str], str]  # (subject, predicate, object) -> origin; annotated wins
    out_edges: dict[str, list[Edge]]  # object -> the edges that name it by another, sorted
    policy: Policy = PHOTO
    unknown: frozenset[tuple[str, str, str]] = frozenset()  # facts whose predicate the grammar does not know

    def __post_init__(self) -> None:
        self._nouns: dict[str, frozenset[str]] = {}  # noun -> ids of the objects it may name
        self._attributes: dict[str, frozenset[str]] = {}  # object id -> its attributes, lower case
        self._duplicates: frozenset[tuple[str, str]] | None = None

    def attributes_of(self, obj) -> frozenset[str]:
        attrs = self._attributes.get(obj.id)
        if attrs is None:
            attrs = self._attributes[obj.id] = frozenset(a.lower().strip() for a in obj.attributes)
        return attrs

    def duplicates(self, graph: SceneGraph, exact: bool) -> frozenset[tuple[str, str]]:
        """(a, b) id pairs of ``graph`` (the graph this was built from) that annotate one thing
        (`normalise.duplicates.are_duplicates`), computed once."""
        if self._duplicates is None:
            self._duplicates = duplicate_ids(graph.objects, exact)
        return self._duplicates

    def may_name(self, graph: SceneGraph, noun: str) -> frozenset[str]:
        """Ids of the objects of ``graph`` (the graph this was built from) that 'the <noun>' may mean."""
        ids = self._nouns.get(noun)
        if ids is None:
            ids = self._nouns[noun] = frozenset(o.id for o in graph.objects if may_be(o, noun))
        return ids

    def holds(self, subject_id: str, predicate: str, object_id: str) -> bool:
        return (subject_id, predicate, object_id) in self.facts

    def names(self, this: str, predicate: str, other: str, inverse: bool) -> bool:
        """Does "this <predicate> other" (forward) or "other <predicate> this" (inverse) hold?"""
        return self.holds(other, predicate, this) if inverse else self.holds(this, predicate, other)

    def origin(self, this: str, predicate: str, other: str, inverse: bool) -> str | None:
        return self.facts.get((other, predicate, this) if inverse else (this, predicate, other))

    @property
    def edges(self) -> set[tuple[str, str, str]]:
        return set(self.facts)


def annotated_facts(graph: SceneGraph) -> tuple[dict[tuple[str, str, str], str], set[tuple[str, str, str]]]:
    """Canonical annotated facts (symmetric predicates both ways) and those the grammar does not know."""
    ids = {o.id for o in graph.objects}
    facts: dict[tuple[str, str, str], str] = {}
    unknown: set[tuple[str, str, str]] = set()
    for r in graph.relations:
        if r.subject_id not in ids or r.object_id not in ids or r.subject_id == r.object_id:
            continue
        c = canonical(r.predicate)
        if c is None:
            text = " ".join(r.predicate.lower().split())
            facts.setdefault((r.subject_id, text, r.object_id), "annotated")
            unknown.add((r.subject_id, text, r.object_id))
            continue
        pred, swapped = c
        s, o = (r.object_id, r.subject_id) if swapped else (r.subject_id, r.object_id)
        facts[(s, pred, o)] = "annotated"
        if is_symmetric(pred):
            facts[(o, pred, s)] = "annotated"
    return facts, unknown


def build_relation_graph(graph: SceneGraph, geometric: bool = True, policy: Policy | None = None) -> RelationGraph:
    policy = policy or policy_for(graph)
    facts, unknown = annotated_facts(graph)
    if geometric and policy.name == "exact":
        for a in graph.objects:
            for b in graph.objects:
                if a.id != b.id:
                    for p in exact_predicates(a.box, b.box):
                        facts.setdefault((a.id, p, b.id), policy.origin)
    elif geometric:
        for fact in photo_facts(graph.objects):
            facts.setdefault(fact, policy.origin)
    out: dict[str, list[Edge]] = defaultdict(list)
    for (s, p, o), origin in sorted(facts.items()):
        known = (s, p, o) not in unknown
        out[s].append(Edge(p, o, False, origin, known))
        if origin == "annotated" and not (known and is_symmetric(p)):
            out[o].append(Edge(p, s, True, origin, known))  # "the coat the man is wearing"
    return RelationGraph(facts, {k: sorted(v) for k, v in out.items()}, policy, frozenset(unknown))


def geometric_relations(graph: SceneGraph) -> list[Relation]:
    """The geometric relations as schema records (for sources that have none, such as COCO)."""
    policy = policy_for(graph)
    return [
        Relation(a.id, p, b.id, origin="geometry")
        for a in graph.objects
        for b in graph.objects
        if a.id != b.id
        for p in policy.predicates(a.box, b.box)
    ]
