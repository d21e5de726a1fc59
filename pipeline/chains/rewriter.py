"""The hook for an LLM that rewrites templated questions into natural ones (MM-GCoT's rewrite step).

A rewriter sees the templated question and the whole example (steps, answer, query) and returns the
new question text. It must not change what the question asks; verification re-checks everything but
the wording. Its name is recorded in each example's provenance.
"""

from __future__ import annotations

from typing import Protocol

from core.schema import Example


class QuestionRewriter(Protocol):
    name: str

    def rewrite(self, question: str, example: Example) -> str: ...


class NoOpRewriter:
    """The default: the templated question as it is."""

    name = "none"

    def rewrite(self, question: str, example: Example) -> str:
        return question


REWRITERS: dict[str, type] = {"none": NoOpRewriter}


def get_rewriter(name: str) -> QuestionRewriter:
    try:
        return REWRITERS[name]()
    except KeyError:
        raise ValueError(f"unknown rewriter {name!r}; known: {', '.join(sorted(REWRITERS))}") from None
