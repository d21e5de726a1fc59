"""Referring expressions: which objects of a scene graph a chain of steps picks out.

A chain is read anchor-first, as the steps are: step 1 names an object by its noun and attributes;
step k names one by noun and attributes *and* its relation to the object of step k-1 ("the hat on
the man"). An expression is unique when every step picks out exactly one object, so the question,
which nests the same phrases, picks out exactly the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.schema import SceneGraph, SceneObject
from pipeline.chains.relations import RelationGraph

ATTRIBUTE_ORDER = {"size": 0, "color": 1, "material": 2}


def _norm(word: str) -> str:
    return word.lower().strip()


def candidates_for(
    graph: SceneGraph,
    relations: RelationGraph,
    name: str | None,
    attributes: Iterable[str],
    relation: str | None,
    previous: set[str] | None,
) -> set[str]:
    """Ids of the objects matching one step given the matches of the previous step."""
    wanted = {_norm(a) for a in attributes}
    out = set()
    for o in graph.objects:
        if name is not None and _norm(o.name) != _norm(name):
            continue
        if not wanted <= {_norm(a) for a in o.attributes}:
            continue
        if relation is not None:
            if not previous or not any(relations.holds(o.id, relation, p) for p in previous):
                continue
        out.add(o.id)
    return out


def chain_matches(graph: SceneGraph, relations: RelationGraph, steps: Sequence) -> list[set[str]]:
    """Matches of each grounded step of an example (steps without an object are skipped)."""
    result: list[set[str]] = []
    previous: set[str] | None = None
    for s in steps:
        if s.object_id is None:
            continue
        m = candidates_for(graph, relations, s.name, s.attributes, s.relation if previous is not None else None, previous)
        result.append(m)
        previous = m
    return result


def minimal_attributes(
    graph: SceneGraph,
    relations: RelationGraph,
    obj: SceneObject,
    allowed: Sequence[str],
    show_name: bool,
    relation: str | None,
    previous_id: str | None,
    kinds: dict[str, str | None],
) -> tuple[str, ...] | None:
    """The shortest attribute list (at most two) that makes the step pick out ``obj`` alone."""
    ordered = sorted(dict.fromkeys(allowed), key=lambda a: (ATTRIBUTE_ORDER.get(kinds.get(a) or "", 3), a))
    subsets: list[tuple[str, ...]] = [()]
    subsets += [(a,) for a in ordered]
    subsets += [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    previous = {previous_id} if previous_id is not None else None
    for attrs in subsets:
        m = candidates_for(graph, relations, obj.name if show_name else None, attrs, relation, previous)
        if m == {obj.id}:
            return attrs
    return None
