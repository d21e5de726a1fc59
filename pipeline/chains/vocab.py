"""Attribute vocabularies: which attribute words are colors, materials or sizes.

Visual Genome attributes are free text; the question templates only ask about the kinds below.
"""

from __future__ import annotations

COLORS = frozenset(
    "red green blue yellow purple orange white black gray grey brown pink cyan beige gold silver tan"
    " maroon navy teal".split()
)
MATERIALS = frozenset(
    "metal metallic wood wooden rubber glass plastic fabric cloth leather stone concrete brick ceramic"
    " paper cardboard steel".split()
)
SIZES = frozenset("small large big tiny little huge tall short".split())


def kind_of(attribute: str) -> str | None:
    a = attribute.lower()
    if a in COLORS:
        return "color"
    if a in MATERIALS:
        return "material"
    if a in SIZES:
        return "size"
    return None


def values_of(kind: str) -> frozenset[str]:
    return {"color": COLORS, "material": MATERIALS, "size": SIZES}[kind]
