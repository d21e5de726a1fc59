"""The predicate grammar: every canonical predicate, the spellings that mean it, and its noun-phrase
forms in both directions.

A relation ``subject --predicate--> object`` can name either end by the other:

- forward, the subject by the object: "the man wearing the coat", "the cup on the table";
- inverse, the object by the subject: "the coat the man is wearing", "the table under the cup".

A form is a pattern over ``{head}`` (the phrase of the object being named) and ``{other}`` (the noun
phrase of the object it is named by, with its article). No predicate is ever pasted into a phrase as
it was annotated: a spelling the grammar does not know (`canonical` returns None) rejects the
candidate that would need it.

The table covers the 50 predicates of the VG150 split (Xu et al., "Scene Graph Generation by
Iterative Message Passing", 2017) and their frequent spellings in Visual Genome ("wears", "has on",
"on top of", "sitting on", "ON", "wearing a"), passives ("worn by" is "wearing" read backwards), and the
geometric predicates the relation graph derives from boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# VG150's predicates, as listed in the split's dictionary (tests check that each is known).
VG150_PREDICATES = (
    "above", "across", "against", "along", "and", "at", "attached to", "behind", "belonging to", "between",
    "carrying", "covered in", "covering", "eating", "flying in", "for", "from", "growing on", "hanging from", "has",
    "holding", "in", "in front of", "laying on", "looking at", "lying on", "made of", "mounted on", "near", "of", "on",
    "on back of", "over", "painted on", "parked on", "part of", "playing", "riding", "says", "sitting on",
    "standing on", "to", "under", "using", "walking in", "walking on", "watching", "wearing", "wears", "with",
)


@dataclass(frozen=True)
class Predicate:
    name: str  # canonical, as the card counts it
    forward: str  # names the subject: "{head} wearing {other}"
    inverse: str  # names the object: "{head} {other} is wearing"
    spellings: tuple[str, ...] = ()  # other spellings meaning the same, subject -> object
    passives: tuple[str, ...] = ()  # spellings meaning the same, object -> subject ("worn by")
    symmetric: bool = False


def _verb(name: str, spellings: tuple[str, ...] = (), passives: tuple[str, ...] = ()) -> Predicate:
    """A transitive verb in -ing form: 'the man holding the cup' / 'the cup the man is holding'."""
    return Predicate(name, f"{{head}} {name} {{other}}", f"{{head}} {{other}} is {name}", spellings, passives)


def _prep(name: str, inverse_prep: str | None, spellings: tuple[str, ...] = (), passives: tuple[str, ...] = ()) -> Predicate:
    """A preposition: 'the cup on the table' / 'the table under the cup' (or 'the table the cup is on')."""
    inverse = f"{{head}} {inverse_prep} {{other}}" if inverse_prep else f"{{head}} {{other}} is {name}"
    return Predicate(name, f"{{head}} {name} {{other}}", inverse, spellings, passives, symmetric=inverse_prep == name)


PREDICATES: tuple[Predicate, ...] = (
    _prep("on", "under", (
        "on top of", "sitting on", "standing on", "lying on", "laying on", "resting on", "placed on", "parked on",
        "growing on", "mounted on", "painted on", "printed on", "on back of", "on front of", "on side of", "on the side of",
        "on the back of", "on the front of", "on top", "sitting on top of", "standing on top of", "walking on", "sits on",
        "stands on", "rests on", "lays on", "lies on", "perched on", "displayed on", "written on", "drawn on", "upon", "onto",
        "hanging on", "leaning on", "riding on",
    )),
    _prep("in", None, (
        "inside", "inside of", "within", "walking in", "flying in", "sitting in", "standing in", "swimming in", "growing in",
        "lying in", "laying in", "parked in", "floating in", "in middle of", "in the middle of", "contained in",
    ), ("contains", "containing", "filled with", "full of")),
    _prep("under", "over", ("beneath", "underneath", "sitting under", "standing under", "lying under")),
    _prep("above", "below", ("over", "flying over", "hanging over", "hanging above", "high above")),
    _prep("below", "above", ("hanging below",)),
    _prep("behind", "in front of", ("in back of", "standing behind", "sitting behind", "parked behind", "back of")),
    _prep("in front of", "behind", ("front of", "standing in front of", "sitting in front of", "parked in front of", "in the front of")),
    _prep("near", "near", (
        "next to", "beside", "by", "close to", "standing next to", "sitting next to", "standing by", "sitting by", "adjacent to",
        "alongside", "parked next to", "parked near", "standing near", "sitting near", "near to", "beside of", "between",
        "and", "around", "surrounding", "nearby", "among",
    )),
    _prep("left of", "right of", ("to the left of", "on the left of", "on left of", "on left side of", "left")),
    _prep("right of", "left of", ("to the right of", "on the right of", "on right of", "on right side of", "right")),
    Predicate("wearing", "{head} wearing {other}", "{head} {other} is wearing",
              ("wears", "wear", "has on", "have on", "dressed in"), ("worn by",)),
    Predicate("has", "{head} with {other}", "{head} of {other}",
              ("have", "with", "having"), ("belongs to",)),
    Predicate("of", "{head} of {other}", "{head} with {other}", ("part of", "belonging to", "to", "part")),
    _verb("holding", ("holds", "hold", "holding up", "grabbing", "holding onto"), ("held by", "held in")),
    _verb("carrying", ("carries", "carry"), ("carried by",)),
    _verb("riding", ("rides", "ride"), ("ridden by",)),
    _verb("driving", ("drives", "drive"), ("driven by",)),
    _verb("eating", ("eats", "eat", "biting", "chewing"), ("eaten by",)),
    _verb("using", ("uses", "use", "talking on", "typing on"), ("used by",)),
    _verb("watching", ("watches", "watch", "viewing"), ("watched by",)),
    _verb("looking at", ("looks at", "look at", "staring at", "facing", "looking toward", "looking towards"), ()),
    _verb("playing", ("plays", "play", "playing with"), ()),
    _verb("covering", ("covers", "cover"), ("covered by",)),
    _verb("pulling", ("pulls", "pull", "towing"), ("pulled by", "towed by")),
    _verb("throwing", ("throws", "throw"), ("thrown by",)),
    _verb("swinging", ("swings", "swing"), ("swung by",)),
    Predicate("covered in", "{head} covered in {other}", "{head} covering {other}", ("covered with", "topped with")),
    Predicate("says", "{head} that says {other}", "{head} written on {other}", ("say", "saying")),
    Predicate("made of", "{head} made of {other}", "{head} {other} is made of", ("made from", "made out of")),
    _prep("attached to", None, ("connected to", "tied to", "hooked to", "fixed to", "pinned to", "clipped to", "stuck to", "bolted to")),
    _prep("hanging from", None, ("hangs from", "hanging off", "dangling from", "suspended from")),
    _prep("across", None, ("across from", "crossing")),
    _prep("against", None, ("leaning against", "propped against", "pressed against")),
    _prep("along", None, ("lining", "along side", "running along")),
    _prep("at", None, ("sitting at", "standing at")),
    _prep("for", None, ()),
    _prep("from", None, ("coming from", "coming out of", "out of")),
)

BY_NAME = {p.name: p for p in PREDICATES}
_LEAD = re.compile(r"^(?:is|are|was|were|be|being|it is|they are)\s+")
_TRAIL = re.compile(r"\s+(?:a|an|the|his|her|its|their|some)$")


def _clean(raw: str) -> str:
    text = " ".join(re.sub(r"[^a-z' ]+", " ", raw.lower()).split())
    text = _LEAD.sub("", text)
    while _TRAIL.search(text):
        text = _TRAIL.sub("", text)
    return text


def _index() -> dict[str, tuple[str, bool]]:
    out: dict[str, tuple[str, bool]] = {}
    for p in PREDICATES:
        out.setdefault(p.name, (p.name, False))
        for s in p.spellings:
            out.setdefault(_clean(s), (p.name, False))
        for s in p.passives:
            out.setdefault(_clean(s), (p.name, True))
    return out


SPELLINGS = _index()


@lru_cache(maxsize=65536)
def canonical(raw: str) -> tuple[str, bool] | None:
    """(canonical predicate, swapped) for an annotated spelling: 'WEARS' -> ('wearing', False),
    'worn by' -> ('wearing', True) (the subject and object trade places); None if unknown."""
    return SPELLINGS.get(_clean(raw))


def form(predicate: str, inverse: bool) -> str:
    p = BY_NAME[predicate]
    return p.inverse if inverse else p.forward


def phrase(predicate: str, inverse: bool, head: str, other: str) -> str:
    """'coat', 'the man' with ('wearing', inverse) -> 'coat the man is wearing'."""
    return form(predicate, inverse).format(head=head, other=other)


@lru_cache(maxsize=4096)
def reads_as(predicate: str, inverse: bool) -> str:
    """The words a phrase shows for the relation: 'in front of' read inverse shows 'behind', 'wearing'
    inverse 'wearing' ('the coat the man is wearing'). Two steps that show the same words repeat a
    predicate to a reader, whatever their canonical names."""
    if predicate not in BY_NAME:
        return predicate
    words = form(predicate, inverse).replace("{head}", " ").replace("{other}", " ").split()
    return " ".join(w for w in words if w not in ("is", "that"))


def is_symmetric(predicate: str) -> bool:
    return BY_NAME[predicate].symmetric
