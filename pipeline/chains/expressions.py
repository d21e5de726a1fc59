"""Referring expressions: which objects of a scene graph a chain of steps picks out.

A chain is read anchor-first, as the steps are: step 1 names an object by its noun and attributes (or
by a region description, `regions`); step k names one by noun and attributes *and* its relation to the
object of step k-1, read forward ("the hat on the man") or inverse ("the coat the man is wearing"). An
expression is unique when every step picks out exactly one object, so the question, which nests the
same phrases, picks out exactly the target.

A noun picks out every object that may be what it names (`names.may_be`: "the person" counts the men,
"the man" counts an object annotated only as "person"), so a second annotation of the same thing, or a
kindred name, makes an expression ambiguous rather than letting it through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from core.schema import SceneGraph, SceneObject, Step
from pipeline.chains.relations import RelationGraph

ATTRIBUTE_ORDER = {"size": 0, "color": 1, "material": 2, "shape": 3, "state": 4}


def _norm(word: str) -> str:
    return word.lower().strip()


def candidates_for(
    graph: SceneGraph,
    relations: RelationGraph,
    name: str | None,
    attributes: Iterable[str],
    relation: str | None,
    previous: set[str] | None,
    inverse: bool = False,
) -> set[str]:
    """Ids of the objects matching one step given the matches of the previous step."""
    wanted = {_norm(a) for a in attributes}
    named = relations.may_name(graph, name) if name is not None else None
    out = set()
    for o in graph.objects:
        if named is not None and o.id not in named:
            continue
        if wanted and not wanted <= relations.attributes_of(o):
            continue
        if relation is not None:
            if not previous or not any(relations.names(o.id, relation, p, inverse) for p in previous):
                continue
        out.add(o.id)
    return out


def chain_matches(
    graph: SceneGraph, relations: RelationGraph, steps: Sequence[Step], phrase_matches: Callable[[Step], set[str] | None] | None = None
) -> list[set[str]]:
    """Matches of each grounded step of an example (steps without an object are skipped). A step made
    from a region description is matched by ``phrase_matches`` (the phrase re-read against the graph)."""
    result: list[set[str]] = []
    previous: set[str] | None = None
    for s in steps:
        if s.object_id is None:
            continue
        m = phrase_matches(s) if (phrase_matches and s.region) else None
        if m is None:
            rel = s.relation if previous is not None else None
            m = candidates_for(graph, relations, s.name, s.attributes, rel, previous, s.relation_inverse)
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
    inverse: bool = False,
) -> tuple[str, ...] | None:
    """The shortest attribute list (at most two) that makes the step pick out ``obj`` alone."""
    ordered = sorted(dict.fromkeys(allowed), key=lambda a: (ATTRIBUTE_ORDER.get(kinds.get(a) or "", 9), a))
    subsets: list[tuple[str, ...]] = [()]
    subsets += [(a,) for a in ordered]
    subsets += [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    previous = {previous_id} if previous_id is not None else None
    for attrs in subsets:
        m = candidates_for(graph, relations, obj.name if show_name else None, attrs, relation, previous, inverse)
        if m == {obj.id}:
            return attrs
    return None
