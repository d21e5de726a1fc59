"""Quality rules of a chain, each with its reason: the sampler applies them before it keeps a
candidate, verification applies them again to whatever reaches it (`pipeline.verify`).

- ``duplicate_in_chain``: one thing twice in a chain (the same object, or two annotations of it).
- ``relation_not_backed``: a step's relation the graph does not back: an annotated one that is not
  annotated, a geometric one that the boxes do not give, or one the source's policy may not derive
  from boxes (on a photo only left of, right of, above, below, near).
- ``repeated_predicate``: a predicate twice in a chain as the text shows it ("near ... near", so at
  most one near; "behind" written once for behind and once for in front of read backwards).
- ``answer_in_question``: the answer word in the question ("What is the color of the cube near the
  red ball?" -> Red).
- ``question_too_long``: more words than the longest official MM-GCoT test question of the type.
"""

from __future__ import annotations

import re

from core.mmgcot_reference import MAX_QUESTION_WORDS
from core.schema import EXACT_SOURCES, QUALITY_RULES, Example, SceneGraph
from pipeline.chains.grammar import reads_as
from pipeline.chains.regions import reread, tail_objects
from pipeline.chains.relations import RelationGraph
from pipeline.normalise.attributes import canonical as canonical_attribute
from pipeline.normalise.duplicates import are_duplicates
from pipeline.normalise.names import ALIASES, canonical_name

__all__ = ["QUALITY_RULES", "answer_in_question", "quality_failures"]
TWO_WORD_NOUNS = frozenset(v for k, v in ALIASES.items() if " " in k)  # "cell phone" -> phone


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9\-]+", text.lower())


def answer_in_question(ex: Example) -> bool:
    """Does a word (or, for a two-word noun, a two-word span) of the question mean the answer?
    (A two-word colour or material always holds a word that means it alone: "light blue", "cream
    colored", "stainless steel".)"""
    if ex.type == "judge":
        return False
    answer = ex.answer.lower().strip().rstrip(".")
    words = _words(ex.question)
    if ex.type == "attribute":
        value = canonical_attribute(answer)[1]
        return any(canonical_attribute(w)[1] == value for w in words)
    noun = canonical_name(answer)
    spans = words + [f"{a} {b}" for a, b in zip(words, words[1:])] if noun in TWO_WORD_NOUNS or " " in noun else words
    return any(canonical_name(w) == noun for w in spans)


def quality_failures(ex: Example, graph: SceneGraph, relations: RelationGraph) -> list[tuple[str, str]]:
    fails: list[tuple[str, str]] = []
    objs = {o.id: o for o in graph.objects}
    chain = [s for s in ex.steps if s.object_id is not None]
    exact = graph.source in EXACT_SOURCES
    for i, a in enumerate(chain):
        for b in chain[i + 1 :]:
            oa, ob = objs.get(a.object_id), objs.get(b.object_id)
            if a.object_id == b.object_id or (oa and ob and are_duplicates(oa, ob, exact)):
                fails.append(("duplicate_in_chain", f"objects {a.object_id} and {b.object_id} are one thing annotated twice"))
    policy = relations.policy
    for k in range(1, len(chain)):
        s, prev = chain[k], chain[k - 1]
        if s.relation is None:
            continue
        fact = (prev.object_id, s.relation, s.object_id) if s.relation_inverse else (s.object_id, s.relation, prev.object_id)
        origin = relations.facts.get(fact)
        if s.relation_origin == "annotated":
            ok = origin == "annotated" and fact not in relations.unknown
        else:  # from boxes: a predicate the policy derives, that the boxes gave (the graph holds what they gave)
            ok = s.relation_origin == policy.origin == origin and s.relation in policy.geometric and not s.relation_inverse
        if not ok:
            fails.append(("relation_not_backed", f"step {k + 1}: '{s.relation}' ({s.relation_origin}) of {s.object_id} to {prev.object_id} is not in the graph as such"))
    preds = [reads_as(s.relation, s.relation_inverse) for s in chain[1:] if s.relation]  # as the text shows them
    ids = {s.object_id for s in chain}
    for s in chain:  # a region phrase's own relations count too ("the man wearing the coat")
        phrase = reread(s.region, s.object_id, graph, relations) if s.region else None
        if phrase:
            preds += [reads_as(t.predicate, t.inverse) for t in phrase.tails]
            named = tail_objects(phrase, graph, relations) & (ids - {s.object_id})
            if named:
                fails.append(("duplicate_in_chain", f"the region phrase of {s.object_id} names {sorted(named)}, which the chain names again"))
    repeated = sorted({p for p in preds if preds.count(p) > 1})
    if repeated:
        fails.append(("repeated_predicate", f"{', '.join(repeated)} more than once in the chain"))
    if answer_in_question(ex):
        fails.append(("answer_in_question", f"the answer {ex.answer!r} is said in the question {ex.question!r}"))
    limit = MAX_QUESTION_WORDS.get(ex.type)
    if limit is not None and len(ex.question.split()) > limit:
        fails.append(("question_too_long", f"{len(ex.question.split())} words; the longest official {ex.type} test question has {limit}"))
    return fails
