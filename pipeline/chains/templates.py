"""Structured templates: the question, the step lines and the answer, in MM-GCoT's wording.

Released MM-GCoT lines read "Step k: The <phrase> is at [x, y, w, h]"; judge chains may end with a
line without a box ("Step 4: The color of the letter S is white."). Answers are capitalised words
("White", "Yes", "Bowl").
"""

from __future__ import annotations

from collections.abc import Sequence

from core.boxes import format_box
from core.schema import Box


def phrase(name: str | None, attributes: Sequence[str]) -> str:
    """'large red cube'; the noun becomes 'object' when the question asks what the object is."""
    return " ".join([*attributes, name if name is not None else "object"])


def step_sentence(step_phrase: str, relation: str | None, previous_name: str | None, box: Box) -> str:
    ref = f" {relation} the {previous_name}" if relation and previous_name else ""
    return f"The {step_phrase}{ref} is at {format_box(box)}"


def attribute_fact(kind: str, name: str, value: str) -> str:
    return f"The {kind} of the {name} is {value}."


def nested_expression(phrases: Sequence[str], relations: Sequence[str | None]) -> str:
    """Target-first expression: phrases/relations given anchor-first, as the steps run.

    ('table', 'mug' near, 'white object' on) -> 'white object on the mug near the table'.
    """
    parts: list[str] = []
    for i in range(len(phrases) - 1, -1, -1):
        parts.append(phrases[i])
        if i > 0:
            parts.append(f"{relations[i]} the")
    return " ".join(parts)


def attribute_question(kind: str, expression: str) -> str:
    return f"What is the {kind} of the {expression}?"


def judge_question(expression: str, value: str) -> str:
    return f"Is the {expression} {value}?"


def object_question(expression: str) -> str:
    return f"What is the {expression}?"


def answer_word(word: str) -> str:
    return word[:1].upper() + word[1:]
