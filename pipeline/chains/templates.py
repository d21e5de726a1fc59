"""Structured templates: the question, the step lines and the answer, in MM-GCoT's wording.

Released MM-GCoT lines read "Step k: The <phrase> is at [x, y, w, h]"; judge chains may end with a
line without a box ("Step 4: The color of the letter S is white."). Answers are capitalised words
("White", "Yes", "Bowl"). Relations are written by the predicate grammar (`grammar.phrase`), never
pasted: "the coat the man is wearing", "the face of the woman".
"""

from __future__ import annotations

from collections.abc import Sequence

from core.boxes import format_box
from core.schema import Box
from pipeline.chains.grammar import phrase as relation_phrase
from pipeline.normalise.names import is_plural


def phrase(name: str | None, attributes: Sequence[str]) -> str:
    """'large red cube'; the noun becomes 'object' when the question asks what the object is."""
    return " ".join([*attributes, name if name is not None else "object"])


def named_by(head: str, relation: str | None, inverse: bool, other: str | None) -> str:
    """'hat', ('on', forward), 'man' -> 'hat on the man'; without a relation, the head alone."""
    if not relation or other is None:
        return head
    return relation_phrase(relation, inverse, head, f"the {other}")


def _be(head_noun: str | None) -> str:
    return "are" if head_noun and is_plural(head_noun) else "is"


def step_sentence(noun_phrase: str, head_noun: str | None, box: Box) -> str:
    return f"The {noun_phrase} {_be(head_noun)} at {format_box(box)}"


def attribute_fact(kind: str, name: str, value: str) -> str:
    return f"The {kind} of the {name} is {value}."


def attribute_question(kind: str, expression: str) -> str:
    return f"What is the {kind} of the {expression}?"


def judge_question(expression: str, value: str, head_noun: str | None = None) -> str:
    return f"{_be(head_noun).capitalize()} the {expression} {value}?"


def object_question(expression: str) -> str:
    return f"What is the {expression}?"
