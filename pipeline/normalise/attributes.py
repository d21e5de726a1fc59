"""Typed attributes and canonical answer words.

Visual Genome attributes are free text in any case ("Blue", " light blue", "WOODEN", "gray haired").
Each is typed as one of ``KINDS``; colours and materials are rewritten to one canonical word each
(``CANONICAL``: "grey" -> "gray", "wooden" -> "wood", "light blue" -> "blue"), which is also the
answer ("Gray", "Wood"). Referring expressions and questions use only the kinds a viewer can check in
the picture (``VISIBLE``); "other" (old, american, nice, ...) stays in the graph unused.

A compound is typed by what it describes: "gray haired" is about the hair, not the man's colour
("other"); "black and white" names two colours and is not one answer ("other").
"""

from __future__ import annotations

import re
from functools import lru_cache

KINDS = ("color", "material", "size", "shape", "state", "other")
VISIBLE = frozenset({"color", "material", "size", "shape", "state"})

COLORS = frozenset(
    "red orange yellow green blue purple pink brown black white gray beige tan gold silver cyan maroon navy teal".split()
)
MATERIALS = frozenset(
    "metal wood plastic glass rubber leather fabric stone concrete brick ceramic paper cardboard marble wicker denim straw".split()
)
SIZES = frozenset("small large big tiny little huge tall short long wide thin thick giant medium".split())
SHAPES = frozenset("round square rectangular circular oval triangular curved flat pointy pointed rounded cylindrical".split())
STATES = frozenset(
    "standing sitting walking running parked open closed smiling shouting yelling pointing bald lit empty full wet dry"
    " sleeping eating laughing looking talking playing moving folded stacked hanging leaning flying floating bearded"
    " curly wrinkled broken sliced cooked shiny dirty clean glowing crouching bending kneeling lying jumping"
    " riding skiing surfing rolled turned illuminated".split()
)
# Spellings of one colour or material -> its canonical word (shown in the card beside the answers).
CANONICAL = {
    "grey": "gray", "golden": "gold", "silvery": "silver", "violet": "purple", "crimson": "red", "scarlet": "red",
    "khaki": "tan", "cream": "beige", "ivory": "white", "aqua": "cyan", "turquoise": "teal", "navy blue": "navy",
    "wooden": "wood", "metallic": "metal", "steel": "metal", "iron": "metal", "aluminum": "metal", "aluminium": "metal",
    "chrome": "metal", "stainless steel": "metal", "brass": "metal", "cloth": "fabric", "cotton": "fabric",
    "wool": "fabric", "woolen": "fabric", "woollen": "fabric", "knit": "fabric", "silk": "fabric", "linen": "fabric",
    "porcelain": "ceramic", "rock": "stone", "bricks": "brick", "glassy": "glass", "plastics": "plastic",
    "leathery": "leather",
}
_COLOR_MODIFIERS = frozenset("light dark bright pale deep pastel neon dull royal sky baby lime forest olive hot off".split())
_COLOR_SUFFIXES = ("ish",)  # bluish, reddish
_COLORED = frozenset({"colored", "coloured", "color", "colour", "toned", "tinted"})


def _clean(attribute: str) -> str:
    return " ".join(re.sub(r"[^a-z \-]+", " ", attribute.lower().replace("-", " ")).split())


@lru_cache(maxsize=65536)
def canonical(attribute: str) -> tuple[str, str]:
    """(kind, canonical text) of one attribute: ('color', 'blue') for ' Light Blue'."""
    text = _clean(attribute)
    if not text:
        return "other", ""
    word = CANONICAL.get(text, text)
    for kind, vocab in (("color", COLORS), ("material", MATERIALS), ("size", SIZES), ("shape", SHAPES), ("state", STATES)):
        if word in vocab:
            return kind, word
    words = text.split()
    if len(words) == 2:
        first, last = words
        last_c, first_c = CANONICAL.get(last, last), CANONICAL.get(first, first)
        if first in _COLOR_MODIFIERS and last_c in COLORS:  # light blue, navy blue, off white
            return "color", last_c
        if last in _COLORED and first_c in COLORS:  # cream colored, blue-toned
            return "color", first_c
    if len(words) == 1 and text.endswith(_COLOR_SUFFIXES):
        stem = text[: -len("ish")]
        for cand in (stem, stem[:-1], stem + "e"):  # bluish, reddish, whitish
            if cand in COLORS:
                return "color", cand
    return "other", text


def kind_of(attribute: str) -> str:
    return canonical(attribute)[0]


def answer_word(word: str) -> str:
    """The released form of an answer: the canonical word, capitalised ("Wood", "Gray", "Bus")."""
    return word[:1].upper() + word[1:]


def same_value(a: str, b: str) -> bool:
    """'Wooden' and 'wood' are the same attribute value."""
    return canonical(a.strip().rstrip("."))[1] == canonical(b.strip().rstrip("."))[1]
