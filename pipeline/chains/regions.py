"""Region phrases (MM-GCoT's first stage): Visual Genome's region descriptions aligned to objects, read
back against the scene graph, and offered as the first step's referring expression.

A phrase such as "a man wearing a beige coat" or "The bus is blue." is read as a head noun phrase
(attributes + noun) and tails (a predicate the grammar knows + a noun phrase): ``man`` + wearing
``beige coat``. It is *aligned* to the object whose names are compatible with its head noun and whose
box overlaps the region's best, with IoU at least ``ALIGN_IOU``. It passes when every word is
accounted for: determiners, the head noun, visible attributes the object has, and tails the relation
graph backs (the object has that relation to an object of that noun and those attributes). Anything
else (an unknown word, an attribute the graph does not hold, a relation it does not back, more than
``MAX_WORDS`` words) sets the phrase aside with a reason (``REASONS``). A passing phrase is rendered
through the grammar ("man wearing the beige coat") and used only when it picks out its object alone;
verification re-reads it from the step (`Step.region`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.boxes import iou
from core.schema import Region, SceneGraph, SceneObject
from pipeline.chains.expressions import candidates_for
from pipeline.chains.grammar import canonical as canonical_predicate
from pipeline.chains.grammar import phrase as relation_phrase
from pipeline.chains.relations import RelationGraph
from pipeline.normalise.attributes import VISIBLE
from pipeline.normalise.attributes import canonical as canonical_attribute
from pipeline.normalise.names import canonical_name, may_be

# Measured on the real-photo fixture (tests/fixtures/real_photos): the 33 descriptions whose head noun
# names an object overlap that object's box with IoU 0.82-1.0; the next compatible object overlaps at
# most 0.35. 0.5 is PASCAL VOC's criterion for two boxes framing one thing. (One annotator's boxes:
# Visual Genome's own are looser, which a real VG sample should re-measure.)
ALIGN_IOU = 0.5
MAX_WORDS = 10  # longer descriptions read as sentences, not referring expressions
REASONS = ("region_not_aligned", "region_unchecked_word", "region_relation_not_backed", "region_too_long", "region_not_unique")

_DETERMINERS = frozenset("a an the this that some his her its their".split())
_COPULAS = frozenset({"is", "are"})
# Spellings the grammar knows that are too common as other words in a description to split on
# ("black and white", "left hand", "part").
_NOT_SPLIT = frozenset({"and", "left", "right", "part", "to", "for", "from"})


@dataclass(frozen=True)
class Tail:
    predicate: str
    inverse: bool
    noun: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class Phrase:
    region_id: str
    text: str  # as written
    object_id: str
    head: str  # canonical noun
    attributes: tuple[str, ...]  # canonical, visible
    tails: tuple[Tail, ...]

    def render(self) -> str:
        """The phrase as steps and questions write it: 'man wearing the beige coat'."""
        out = " ".join([*self.attributes, self.head])
        for t in self.tails:
            out = relation_phrase(t.predicate, t.inverse, out, "the " + " ".join([*t.attributes, t.noun]))
        return out


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9\-]+", text.lower().replace("'s", " 's"))


def _split(tokens: list[str]) -> tuple[list[str], list[tuple[tuple[str, bool], list[str]]]] | None:
    """Head tokens and [(predicate, tail tokens)]; None when the phrase has no head."""
    parts: list[tuple[tuple[str, bool] | None, list[str]]] = [(None, [])]
    i = 0
    while i < len(tokens):
        found = None
        if parts[-1][1]:  # a predicate needs a noun phrase before it
            for n in (4, 3, 2, 1):
                span = " ".join(tokens[i : i + n])
                if len(tokens[i : i + n]) == n and span not in _NOT_SPLIT:
                    c = canonical_predicate(span)
                    if c is not None:
                        found = (c, n)
                        break
        if found:
            parts.append((found[0], []))
            i += found[1]
        else:
            parts[-1][1].append(tokens[i])
            i += 1
    head = parts[0][1]
    if not head:
        return None
    return head, [(p, toks) for p, toks in parts[1:] if p is not None]


def _noun_phrase(tokens: list[str], objects: list[SceneObject]) -> tuple[str, list[str]] | None:
    """(canonical noun, modifier words) where the noun names some of ``objects``: the last noun of the
    phrase, the words before it and after it ("bald man shouting") its modifiers."""
    toks = [t for t in tokens if t not in _DETERMINERS]
    for end in range(len(toks), 0, -1):
        for n in (3, 2, 1):
            if end - n >= 0:
                noun = canonical_name(" ".join(toks[end - n : end]))
                if noun and any(may_be(o, noun) for o in objects):
                    return noun, toks[: end - n] + toks[end:]
    return None


def _attributes(words: list[str], obj: SceneObject) -> tuple[tuple[str, ...], str | None]:
    """Canonical visible attributes of ``obj`` the words name, or the first word that is not one."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in (2, 1):
            span = " ".join(words[i : i + n])
            kind, text = canonical_attribute(span) if len(words[i : i + n]) == n else ("other", "")
            if kind in VISIBLE and text in obj.attributes:
                out.append(text)
                i += n
                break
        else:
            return tuple(out), words[i]
    return tuple(dict.fromkeys(out)), None


def read_phrase(region: Region, graph: SceneGraph, relations: RelationGraph) -> Phrase | tuple[str, str]:
    """The region's phrase read against the graph, or (reason, detail) when it cannot be used."""
    tokens = _tokens(region.phrase)
    if len(tokens) > MAX_WORDS:
        return "region_too_long", f"{len(tokens)} words (at most {MAX_WORDS})"
    split = _split(tokens)
    if split is None:
        return "region_unchecked_word", "no noun phrase before the first predicate"
    head_toks, tails_raw = split
    if head_toks and any(t in _COPULAS for t in head_toks):  # "the bus is blue": a sentence
        k = next(i for i, t in enumerate(head_toks) if t in _COPULAS)
        head_toks, predicate_words = head_toks[:k], head_toks[k + 1 :]
    else:
        predicate_words = []
    np_ = _noun_phrase(head_toks, graph.objects)
    if np_ is None:
        return "region_not_aligned", f"no object of the graph is named by {' '.join(head_toks)!r}"
    head, mods = np_
    aligned = [(iou(o.box, region.box), o) for o in graph.objects if may_be(o, head)]
    best_iou, obj = max(aligned, key=lambda p: (p[0], p[1].id)) if aligned else (0.0, None)
    if obj is None or best_iou < ALIGN_IOU:
        return "region_not_aligned", f"no '{head}' overlaps the region with IoU >= {ALIGN_IOU} (best {best_iou:.2f})"
    attrs, bad = _attributes(mods + predicate_words, obj)
    if bad is not None:
        return "region_unchecked_word", f"'{bad}' is neither a visible attribute of object {obj.id} nor a relation the grammar knows"
    tails: list[Tail] = []
    others = [o for o in graph.objects if o.id != obj.id]
    for (pred, swapped), toks in tails_raw:
        tnp = _noun_phrase(toks, others)
        if tnp is None:
            return "region_unchecked_word", f"{' '.join(toks)!r} names no other object of the graph"
        tnoun, tmods = tnp
        backed = [x for x in others if may_be(x, tnoun) and relations.names(obj.id, pred, x.id, swapped)]
        backed = [x for x in backed if _attributes(tmods, x)[1] is None]
        if not backed:
            return "region_relation_not_backed", f"object {obj.id} ('{obj.name}') has no '{pred}' relation to a '{' '.join([*tmods, tnoun])}'"
        tails.append(Tail(pred, swapped, tnoun, _attributes(tmods, backed[0])[0]))
    return Phrase(region.id, region.phrase, obj.id, head, attrs, tuple(tails))


def phrase_matches(phrase: Phrase, graph: SceneGraph, relations: RelationGraph) -> set[str]:
    """The objects the phrase can pick out: its head and attributes, and every tail satisfied."""
    out = set()
    for oid in candidates_for(graph, relations, phrase.head, phrase.attributes, None, None):
        if all(_tail_holds(oid, t, graph, relations) for t in phrase.tails):
            out.add(oid)
    return out


def tail_objects(phrase: Phrase, graph: SceneGraph, relations: RelationGraph) -> set[str]:
    """Every object a tail of the phrase may mean (a chain must not name them again)."""
    return {x.id for t in phrase.tails for x in graph.objects if _tail_target(phrase.object_id, x, t, relations)}


def _tail_target(oid: str, x: SceneObject, t: Tail, relations: RelationGraph) -> bool:
    return x.id != oid and may_be(x, t.noun) and set(t.attributes) <= set(x.attributes) and relations.names(oid, t.predicate, x.id, t.inverse)


def _tail_holds(oid: str, t: Tail, graph: SceneGraph, relations: RelationGraph) -> bool:
    return any(_tail_target(oid, x, t, relations) for x in graph.objects)


def usable_phrases(graph: SceneGraph, relations: RelationGraph) -> tuple[dict[str, list[Phrase]], dict[str, int]]:
    """Object id -> its phrases that pass and pick it out alone; and the count of each outcome."""
    out: dict[str, list[Phrase]] = {}
    counts: dict[str, int] = {}
    for region in graph.regions:
        p = read_phrase(region, graph, relations)
        if isinstance(p, Phrase) and phrase_matches(p, graph, relations) != {p.object_id}:
            p = ("region_not_unique", "")
        key = p[0] if isinstance(p, tuple) else "region_usable"
        counts[key] = counts.get(key, 0) + 1
        if isinstance(p, Phrase):
            out.setdefault(p.object_id, []).append(p)
    return out, counts


def reread(step_region: str, object_id: str, graph: SceneGraph, relations: RelationGraph) -> Phrase | None:
    """A step's region phrase read again (verification): the Phrase when it passes for that object."""
    for region in graph.regions:
        if region.phrase == step_region:
            p = read_phrase(region, graph, relations)
            if isinstance(p, Phrase) and p.object_id == object_id:
                return p
    return None
