"""Quality rules of a chain, each with its reason: the sampler applies them before it keeps a
candidate, verification applies them again to whatever reaches it (`pipeline.verify`).

- ``duplicate_in_chain``: one thing twice in a chain (the same object, or two annotations of it).
- ``relation_not_backed``: a step's relation the graph does not back: an annotated one that is not
  annotated, a geometric one that the boxes do not give, or one the source's policy may not derive
  from boxes (on a photo only left of, right of, above, below, near).
- ``repeated_predicate``: a predicate twice in a chain ("near ... near"; so at most one near).
- ``answer_in_question``: the answer word in the question ("What is the color of the cube near the
  red ball?" -> Red).
- ``question_too_long``: more words than the longest official MM-GCoT test question of the type.
"""

from __future__ import annotations

import re

from core.mmgcot_reference import MAX_QUESTION_WORDS
from core.schema import EXACT_SOURCES, QUALITY_RULES, Example, SceneGraph
from pipeline.chains.relations import RelationGraph
from pipeline.normalise.attributes import canonical as canonical_attribute
from pipeline.normalise.duplicates import are_duplicates
from pipeline.normalise.names import canonical_name

__all__ = ["QUALITY_RULES", "answer_in_question", "quality_failures"]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9\-]+", text.lower())


def answer_in_question(ex: Example) -> bool:
    """Does a word (or two-word span) of the question mean the answer?"""
    if ex.type == "judge":
        return False
    answer = ex.answer.lower().strip().rstrip(".")
    words = _words(ex.question)
    spans = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    if ex.type == "attribute":
        value = canonical_attribute(answer)[1]
        return any(canonical_attribute(w)[1] == value for w in spans)
    noun = canonical_name(answer)
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
        this, other = objs.get(s.object_id), objs.get(prev.object_id)
        if s.relation_origin == "annotated":
            ok = relations.facts.get(fact) == "annotated" and fact not in relations.unknown
        elif s.relation_origin == policy.origin and this and other and not s.relation_inverse:
            ok = s.relation in policy.geometric and s.relation in policy.predicates(this.box, other.box)
        else:
            ok = False
        if not ok:
            fails.append(("relation_not_backed", f"step {k + 1}: '{s.relation}' ({s.relation_origin}) of {s.object_id} to {prev.object_id} is not in the graph as such"))
    preds = [s.relation for s in chain[1:] if s.relation]
    repeated = sorted({p for p in preds if preds.count(p) > 1})
    if repeated:
        fails.append(("repeated_predicate", f"{', '.join(repeated)} more than once in the chain"))
    if answer_in_question(ex):
        fails.append(("answer_in_question", f"the answer {ex.answer!r} is said in the question {ex.question!r}"))
    limit = MAX_QUESTION_WORDS.get(ex.type)
    if limit is not None and len(ex.question.split()) > limit:
        fails.append(("question_too_long", f"{len(ex.question.split())} words; the longest official {ex.type} test question has {limit}"))
    return fails
