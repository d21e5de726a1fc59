"""Checks of the wording of what the pipeline writes, by template or by model: article agreement,
doubled words, and which words a text names (with the alias table of accepted synonyms).

Templates and model outputs go through the same checks: `grammar_failures` is a verification rule of
every GCoT question and of every LongV-EVAL prompt; `names` tells whether a text keeps a word of a
template (or one of its aliases), which the model stages ask of every rewrite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.evaluation.strict import singular

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
# "an" before a vowel sound. Spelling decides, except for these starts (a "u" read "you", a silent "h").
_VOWEL_LETTERS = tuple("aeiou")
_CONSONANT_SOUND = ("uni", "use", "usu", "uti", "ura", "ure", "uro", "eu", "ewe", "one", "once", "ubiq", "uk")
_VOWEL_SOUND = ("hour", "honest", "honor", "honour", "heir")
_DETERMINERS = {"a", "an", "the"}

# Accepted synonyms of the words templates write (a relation, an attribute, a question's kind word):
# a rewrite may say "to the left of" for "left of" or "grey" for "gray" and still name the same thing.
ALIASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "on the left of", "left of"),
    "right of": ("to the right of", "on the right of", "right of"),
    "above": ("over", "higher than", "on top of"),
    "below": ("under", "beneath", "underneath", "lower than"),
    "under": ("below", "beneath", "underneath", "underneath of"),
    "in": ("inside", "within", "inside of"),
    "on": ("on top of", "atop", "resting on", "sitting on", "lying on", "upon"),
    "near": ("next to", "close to", "beside", "by", "nearby", "near to", "alongside"),
    "inside": ("in", "within", "inside of"),
    "behind": ("in back of",),
    "in front of": ("before",),
    "holding": ("holds", "held by", "carrying"),
    "wearing": ("wears", "dressed in"),
    "color": ("colour", "coloured", "colored", "hue", "shade"),
    "material": ("made of", "made from", "materials"),
    "gray": ("grey",),
    "large": ("big", "huge", "larger"),
    "small": ("little", "tiny", "smaller"),
    "metal": ("metallic", "steel"),
    "wood": ("wooden",),
    "object": ("thing", "item"),
    "person": ("man", "woman", "boy", "girl", "child", "kid", "people", "player", "lady", "guy"),
    "man": ("person", "guy", "people"),
    "woman": ("person", "lady", "people"),
    "car": ("vehicle", "automobile"),
}


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (hyphenated and apostrophe words kept whole)."""
    return _WORD.findall(text.lower())


def article_for(word: str) -> str:
    """'a' or 'an' for the word that follows it, by its first sound."""
    w = word.lower()
    if w.startswith(_VOWEL_SOUND):
        return "an"
    if w.startswith(_CONSONANT_SOUND):
        return "a"
    return "an" if w.startswith(_VOWEL_LETTERS) else "a"


def with_article(phrase: str, capital: bool = False) -> str:
    """'an orange cube' for 'orange cube'; ``capital`` starts it with 'A'/'An'."""
    art = article_for(phrase.split()[0]) if phrase.split() else "a"
    return f"{art.capitalize() if capital else art} {phrase}"


def grammar_failures(text: str) -> list[tuple[str, str]]:
    """(rule, detail) for each article that disagrees with the next word ("a orange") and each
    doubled word or determiner ("the the", "the a")."""
    out = []
    tokens = words(text)
    for prev, nxt in zip(tokens, tokens[1:]):
        if prev in ("a", "an") and not nxt.isdigit() and article_for(nxt) != prev:
            out.append(("article_agreement", f"'{prev} {nxt}' should read '{article_for(nxt)} {nxt}': {text!r}"))
        elif prev == nxt or (prev in _DETERMINERS and nxt in _DETERMINERS):
            out.append(("doubled_word", f"'{prev} {nxt}' in {text!r}"))
    return out


def _phrase_in(phrase: list[str], tokens: list[str]) -> bool:
    n = len(phrase)
    return any(tokens[i : i + n] == phrase for i in range(len(tokens) - n + 1))


def names(text: str | list[str], term: str, aliases: dict[str, tuple[str, ...]] = ALIASES) -> bool:
    """Whether ``text`` names ``term`` (a word or phrase): itself, one of its aliases, or a noun's
    singular/plural form."""
    tokens = words(text) if isinstance(text, str) else text
    canon = [singular(t) for t in tokens]
    for option in (term, *aliases.get(term.lower(), ())):
        phrase = words(option)
        if phrase and (_phrase_in(phrase, tokens) or _phrase_in([singular(p) for p in phrase], canon)):
            return True
    return False


def count(text: str, term: str) -> int:
    """How many times the word ``term`` (or its singular) appears in ``text``."""
    t = singular(term.lower())
    return sum(1 for w in words(text) if singular(w) == t)


def missing(text: str, terms: Iterable[str]) -> list[str]:
    """The terms ``text`` does not name (`names`), in their order, once each."""
    tokens = words(text)
    seen: list[str] = []
    for term in terms:
        if term and term not in seen and not names(tokens, term):
            seen.append(term)
    return seen
