"""The normalise step: one scene graph in, the graph chains are drawn from out, with its records.

1. Names: lower case, singular, the lexicon's spelling (`names.canonical_name`); the first is the one
   the text uses, the others the source gave stay in ``names`` (synsets too).
2. Attributes: typed and canonical (`attributes.canonical`): "Light Blue" -> "blue", "WOODEN" -> "wood";
   repeats dropped.
3. Duplicates merged (`duplicates.merge_duplicates`); relations follow.
4. Predicates: lower case, single spaces (their canonical form is the chains' grammar's business).

An object left without a usable name (only digits or punctuation) is set aside with its relations.
Each merge and each record set aside is a `Rejection` of stage ``normalise``; ``counts`` says what the
step changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from core.schema import Rejection, Relation, SceneGraph, SceneObject
from pipeline.normalise.attributes import canonical
from pipeline.normalise.duplicates import merge_duplicates
from pipeline.normalise.names import canonical_name


@dataclass
class Normalised:
    graph: SceneGraph
    records: list[Rejection] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def _object(o: SceneObject, counts: Counter) -> SceneObject | None:
    names = tuple(dict.fromkeys(n for n in (canonical_name(x) for x in (o.name, *o.names)) if n))
    if not names:
        return None
    if names[0] != o.name:
        counts["names_rewritten"] += 1
    attrs = []
    for a in o.attributes:
        kind, text = canonical(a)
        if text:
            counts[f"attributes_{kind}"] += 1
            if text != a:
                counts["attributes_rewritten"] += 1
            attrs.append(text)
    attrs = tuple(dict.fromkeys(attrs))
    if names[0] == o.name and names[1:] == o.names and attrs == o.attributes:
        return o  # already normal (a rendered scene's objects are): no copy
    return replace(o, name=names[0], names=names[1:], attributes=attrs)


def normalise(graph: SceneGraph) -> Normalised:
    counts: Counter = Counter(objects_in=len(graph.objects), relations_in=len(graph.relations))
    records: list[Rejection] = []
    objects, dropped = [], set()
    for o in graph.objects:
        n = _object(o, counts)
        if n is None:
            dropped.add(o.id)
            records.append(Rejection("normalise", f"{graph.image_id}/{o.id}", "object_without_usable_name",
                                     f"object {o.id}'s names {[o.name, *o.names]} leave no noun", file=graph.image))
        else:
            objects.append(n)
    relations = []
    for r in graph.relations:
        if r.subject_id in dropped or r.object_id in dropped:
            records.append(Rejection("normalise", f"{graph.image_id}/{r.subject_id}-{r.predicate}-{r.object_id}", "relation_unknown_object",
                                     f"'{r.predicate}' names an object set aside", file=graph.image))
            continue
        relations.append(Relation(r.subject_id, " ".join(r.predicate.lower().split()), r.object_id, r.origin))
    merged, merge_records = merge_duplicates(replace(graph, objects=objects, relations=relations))
    records += merge_records
    counts["merged"] = sum(r.rule == "merged_duplicate" for r in merge_records)
    counts["objects_out"] = len(merged.objects)
    counts["relations_out"] = len(merged.relations)
    return Normalised(merged, records, counts)
