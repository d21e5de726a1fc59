"""Object names as the text uses them: lower case, singular, one spelling per thing.

The lexicon the project ships (``lexicon.json``, its source and licence inside) holds the aliases
("guy" -> "man", "cell phone" -> "phone") and which names are kinds of which ("man" is a "person",
"jacket" is a "coat"). Singular forms come from `inflect`, except for the words that are plural in
form and one thing ("jeans", "glasses"). Visual Genome's WordNet synsets, where the file has them,
add their lemma as a further key ("man.n.01" -> "man").

Two names are *compatible* when they may name the same thing: equal, or one a kind of the other. A
referring expression with the noun N can pick out every object compatible with N (a "person" in
the graph may be the man the text means), which is what uniqueness must count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import inflect

from core.schema import SceneObject

LEXICON_FILE = Path(__file__).with_name("lexicon.json")
LEXICON = json.loads(LEXICON_FILE.read_text())
ALIASES: dict[str, str] = LEXICON["aliases"]
PLURAL_FORMS_KEPT = frozenset(LEXICON["plural_forms_kept"])
_PARENTS: dict[str, set[str]] = {}
for _general, _kinds in LEXICON["hypernyms"].items():
    for _kind in _kinds:
        _PARENTS.setdefault(_kind, set()).add(_general)

_DETERMINERS = frozenset("a an the this that these those some his her their its my your our one two three".split())
_SINGULAR_ENDINGS = ("ss", "us", "is", "ous")  # bus, glass, tennis: inflect would cut their s
_ENGINE = inflect.engine()


def _singular(word: str) -> str:
    if word in PLURAL_FORMS_KEPT or word in ALIASES or len(word) <= 3 or word.endswith(_SINGULAR_ENDINGS):
        return word
    return _ENGINE.singular_noun(word) or word


@lru_cache(maxsize=65536)
def canonical_name(raw: str) -> str:
    """'The Cell Phones' -> 'phone'; 'man's shirt' -> 'shirt'; '' when nothing is left."""
    text = raw.lower().replace("_", " ")
    text = text.rsplit("'s ", 1)[-1]  # a possessive names the thing after it
    words = re.sub(r"[^a-z0-9 \-]+", " ", text).split()
    while words and words[0] in _DETERMINERS:
        words = words[1:]
    if not words:
        return ""
    whole = " ".join(words)
    if whole in ALIASES:
        return ALIASES[whole]
    words[-1] = _singular(words[-1])  # the head noun is the last word: "name tags" -> "name tag"
    whole = " ".join(words)
    return ALIASES.get(whole, whole)


def synset_lemma(synset: str) -> str:
    """'man.n.01' -> 'man'; 't_shirt.n.01' -> 't-shirt' (through the aliases)."""
    return canonical_name(synset.split(".", 1)[0])


@lru_cache(maxsize=65536)
def ancestors(name: str) -> frozenset[str]:
    """Every name ``name`` is a kind of, transitively ('man' -> {'person'})."""
    out: set[str] = set()
    todo = list(_PARENTS.get(name, ()))
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += _PARENTS.get(n, ())
    return frozenset(out)


def is_kind_of(name: str, general: str) -> bool:
    return general in ancestors(name)


def is_plural(noun: str) -> bool:
    """Nouns kept plural ('jeans', 'glasses') take 'are'."""
    return noun.split(" ")[-1] in PLURAL_FORMS_KEPT


@lru_cache(maxsize=65536)
def _keys(name: str, names: tuple[str, ...], synsets: tuple[str, ...]) -> frozenset[str]:
    keys = {canonical_name(n) for n in (name, *names)} | {synset_lemma(s) for s in synsets}
    return frozenset(k for k in keys if k)


def name_keys(obj: SceneObject) -> frozenset[str]:
    """Every canonical name an object goes by (its names, and its synsets' lemmas)."""
    return _keys(obj.name, obj.names, obj.synsets)


def keys_compatible(a: Iterable[str], b: Iterable[str]) -> bool:
    b = tuple(b)
    return any(x == y or is_kind_of(x, y) or is_kind_of(y, x) for x in a for y in b)


def compatible(a: SceneObject, b: SceneObject) -> bool:
    """May the two objects be the same thing by their names (same synset, same or kindred name)?"""
    return bool(set(a.synsets) & set(b.synsets)) or keys_compatible(name_keys(a), name_keys(b))


def may_be(obj: SceneObject, noun: str) -> bool:
    """May ``obj`` be what 'the <noun>' means? (uniqueness counts every such object)"""
    return noun == obj.name or _may_be(name_keys(obj), noun)


@lru_cache(maxsize=65536)
def _may_be(keys: frozenset[str], noun: str) -> bool:  # cached: uniqueness asks it of every object, many times
    return keys_compatible(keys, (canonical_name(noun),))


def most_specific(names: Iterable[str]) -> str:
    """The name of a group that is a kind of the most others ('man' over 'person'); first on ties."""
    names = list(dict.fromkeys(names))
    return max(names, key=lambda n: sum(is_kind_of(n, m) for m in names))
