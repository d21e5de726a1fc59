"""Duplicate annotations of one thing become one object.

Visual Genome annotates many things twice ("man" and "person" around the same man, "coat" and
"jacket", "Bus" and "bus"). Two objects are duplicates when their names are compatible (same synset,
same name, or one a kind of the other, `names.compatible`) and their boxes overlap with IoU at least
``MERGE_IOU``. Pairs are merged greedily, best IoU first, and a group only grows while every two of
its names stay compatible (a "person" box over a couple does not merge the man with the woman).

The kept object is the one the graph says most about (relations, then attributes), so that its box
and id stay those of an annotation; it takes the most specific name ("man" over "person"), the union
of names, synsets and attributes, and records the ids merged into it. Relations follow the merge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from core.boxes import iou, iou_matrix
from core.schema import EXACT_SOURCES, Rejection, Relation, SceneGraph, SceneObject
from pipeline.normalise.names import compatible, most_specific

# Measured on the real-photo fixture (tests/fixtures/real_photos, each duplicate boxed a second time):
# its 10 duplicate pairs have IoU 0.87-0.98, its 33 compatible pairs that are two things (two men, a
# man and a person, two persons) at most 0.35. 0.5 lies in that gap and is PASCAL VOC's criterion for
# two boxes framing one object. (One annotator's boxes: Visual Genome's duplicates are looser, which a
# real VG sample should re-measure.)
MERGE_IOU = 0.5


def _overlapping(objects: list[SceneObject]) -> list[tuple[float, int, int]]:
    """(IoU, i, j), i < j, of every pair whose boxes overlap at MERGE_IOU or more (all pairs at once)."""
    if len(objects) < 2:
        return []
    m = iou_matrix([o.box for o in objects])
    return [(float(m[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(m >= MERGE_IOU, 1)))]


def duplicate_pairs(objects: list[SceneObject]) -> list[tuple[float, int, int]]:
    """(IoU, i, j) of every compatible pair at or above MERGE_IOU, best first."""
    pairs = [(v, i, j) for v, i, j in _overlapping(objects) if compatible(objects[i], objects[j])]
    return sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))


def duplicate_ids(objects: list[SceneObject], exact: bool = False) -> frozenset[tuple[str, str]]:
    """Every (a, b) id pair, both ways, for which `are_duplicates` holds: computed once for a graph, so
    that a chain walk asks a set instead of comparing boxes (one image asks hundreds of pairs)."""
    out = {(a.id, m) for a in objects for m in a.merged_from} | {(m, a.id) for a in objects for m in a.merged_from}
    if not exact:
        for _, i, j in duplicate_pairs(objects):
            out |= {(objects[i].id, objects[j].id), (objects[j].id, objects[i].id)}
    return frozenset(out)


def merge_duplicates(graph: SceneGraph) -> tuple[SceneGraph, list[Rejection]]:
    """The graph with duplicates merged, and a record of each merge (stage normalise). A rendered
    scene's objects are each one thing, however they overlap: they are left as they are."""
    if graph.source in EXACT_SOURCES:
        return graph, []
    objects = graph.objects
    pairs = duplicate_pairs(objects)
    if not pairs:
        return graph, []
    group = list(range(len(objects)))  # index -> group leader
    members: dict[int, list[int]] = {i: [i] for i in range(len(objects))}
    for _, i, j in pairs:
        gi, gj = group[i], group[j]
        if gi == gj or not all(compatible(objects[a], objects[b]) for a in members[gi] for b in members[gj]):
            continue
        for k in members[gj]:
            group[k] = gi
        members[gi] += members.pop(gj)
    said = Counter()
    for r in graph.relations:
        said[r.subject_id] += 1
        said[r.object_id] += 1
    keep_of: dict[str, str] = {}
    merged: dict[int, SceneObject] = {}
    records: list[Rejection] = []
    for idx in members.values():
        if len(idx) == 1:
            continue
        k_keep = max(sorted(idx), key=lambda k: (said[objects[k].id], len(objects[k].attributes), -k))
        keeper = objects[k_keep]
        others = [objects[k] for k in sorted(idx) if k != k_keep]
        name = most_specific([o.name for o in [keeper, *others]])
        names = dict.fromkeys(n for o in [keeper, *others] for n in (o.name, *o.names) if n and n != name)
        merged[k_keep] = replace(
            keeper,
            name=name,
            names=tuple(names),
            attributes=tuple(dict.fromkeys(a for o in [keeper, *others] for a in o.attributes)),
            synsets=tuple(dict.fromkeys(s for o in [keeper, *others] for s in o.synsets)),
            merged_from=tuple(dict.fromkeys([*keeper.merged_from, *(i for o in others for i in (o.id, *o.merged_from))])),
        )
        for o in others:
            keep_of[o.id] = keeper.id
            records.append(Rejection(
                "normalise", f"{graph.image_id}/{o.id}", "merged_duplicate",
                f"object {o.id} ('{o.name}') is a duplicate of object {keeper.id} ('{keeper.name}'): "
                f"IoU {iou(o.box, keeper.box):.2f}, compatible names; merged into {keeper.id}",
                file=graph.image,
            ))
    new_objects = [merged.get(k, o) for k, o in enumerate(objects) if o.id not in keep_of]
    relations, seen = [], set()
    for r in graph.relations:
        s, o = keep_of.get(r.subject_id, r.subject_id), keep_of.get(r.object_id, r.object_id)
        key = (s, r.predicate, o)
        if s == o:
            records.append(Rejection("normalise", f"{graph.image_id}/{r.subject_id}-{r.predicate}-{r.object_id}", "relation_within_merged_object",
                                     f"'{r.predicate}' relates two halves of one merged object ({s})", file=graph.image))
        elif key in seen:
            records.append(Rejection("normalise", f"{graph.image_id}/{r.subject_id}-{r.predicate}-{r.object_id}", "duplicate_relation",
                                     f"'{r.predicate}' {s} -> {o} is annotated again once duplicates are merged", file=graph.image))
        else:
            seen.add(key)
            relations.append(Relation(s, r.predicate, o, r.origin))
    return replace(graph, objects=new_objects, relations=relations), records


def are_duplicates(a: SceneObject, b: SceneObject, exact: bool = False) -> bool:
    """Two objects of one graph that annotate one thing: merged into one, or, on a photo, still two
    (compatible names, IoU >= MERGE_IOU: the normalise step did not run on this graph)."""
    if a.id in b.merged_from or b.id in a.merged_from:
        return True
    return not exact and iou(a.box, b.box) >= MERGE_IOU and compatible(a, b)
