"""Visual Genome and COCO records as pydantic models: the one place where their fields are checked.

A reader validates a record here before it touches a field, so a malformed one is a rejection that names
the file, the record and the field (`check`), never a traceback. The rules, for every source:

- numbers (box coordinates) are finite JSON numbers: NaN, Infinity, booleans and strings are refused;
- sizes are positive integers (``500.0`` is 500; ``500.5``, ``"500"`` and ``true`` are refused);
- ids are integers or non-empty strings, kept as strings;
- names are strings; an attribute list given as one string (``"blue"``) is one attribute, never four
  one-letter ones; a list holding something other than strings is refused.

Unknown keys are ignored (the real files carry many: ``synsets``, ``coco_id``, ``area``, ...).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

M = TypeVar("M", bound=BaseModel)


def _kind(v: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be a number, not {_kind(v)}")
    try:
        f = float(v)
    except OverflowError:
        raise ValueError(f"{v} is too large") from None
    if not math.isfinite(f):
        raise ValueError(f"must be a finite number, not {v}")
    return f


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be a whole number of pixels, not {_kind(v)}")
    if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
        raise ValueError(f"must be a whole number of pixels, not {v}")
    return int(v)


def _ident(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError(f"must be an integer or a string, not {_kind(v)}")
    if isinstance(v, str) and not v.strip():
        raise ValueError("must not be empty")
    return str(v)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {_kind(v)}")
    return v


def _texts(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):  # "blue" is one attribute
        return [v]
    if not isinstance(v, list):
        raise ValueError(f"must be a list of strings or one string, not {_kind(v)}")
    bad = [i for i, x in enumerate(v) if not isinstance(x, str)]
    if bad:
        raise ValueError(f"item {bad[0]} must be a string, not {_kind(v[bad[0]])}")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list):
        raise ValueError(f"must be a list, not {_kind(v)}")
    return v


Number = Annotated[float, BeforeValidator(_number)]
Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]
Id = Annotated[str, BeforeValidator(_ident)]
Text = Annotated[str, BeforeValidator(_text)]
Texts = Annotated[list[str], BeforeValidator(_texts)]
Records = Annotated[list[Any], BeforeValidator(_list)]  # each item validated on its own, so one bad item costs only itself


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# --- Visual Genome ---------------------------------------------------------------------------------


class VGImage(_Record):
    """A record of image_data.json."""

    image_id: Id = Field(validation_alias=AliasChoices("image_id", "id"))
    width: Size
    height: Size
    url: Text | None = None


class VGObject(_Record):
    """An object of a scene graph (scene_graphs.json, objects.json or attributes.json)."""

    object_id: Id = Field(validation_alias=AliasChoices("object_id", "id"))
    x: Number
    y: Number
    w: Number
    h: Number
    names: Texts = []
    name: Text | None = None
    attributes: Texts = []
    synsets: Texts = []  # WordNet synsets VG gives an object ("man.n.01"): the normalise step groups names by them

    @property
    def first_name(self) -> str:
        return next((n.strip() for n in [*self.names, self.name or ""] if n.strip()), "")

    @property
    def other_names(self) -> tuple[str, ...]:
        """The names after the first, lowercased (VG gives a few objects several)."""
        given = [n.strip().lower() for n in (self.names or [self.name or ""]) if n.strip()]
        return tuple(given[1:])


def _ref(v: Any) -> Any:
    return v.get("object_id", v.get("id")) if isinstance(v, dict) else v


class VGRelationship(_Record):
    """A relationship: ``subject_id``/``object_id``, or nested ``subject``/``object`` records (relationships.json)."""

    relationship_id: Id | None = Field(None, validation_alias=AliasChoices("relationship_id", "id"))
    predicate: Text
    subject_id: Id
    object_id: Id

    @model_validator(mode="before")
    @classmethod
    def _nested(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = dict(v)
            for key in ("subject", "object"):
                if f"{key}_id" not in v and key in v:
                    v[f"{key}_id"] = _ref(v[key])
        return v


class VGGraph(_Record):
    """A record of scene_graphs.json (or one rebuilt from objects/attributes + relationships.json)."""

    image_id: Id = Field(validation_alias=AliasChoices("image_id", "id"))
    objects: Records
    relationships: Records = []


class VGObjectAttributes(_Record):
    """An entry of an attributes.json record: the attributes of one object."""

    object_id: Id = Field(validation_alias=AliasChoices("object_id", "id"))
    attributes: Texts = []


class VGAttributesRecord(_Record):
    """A record of attributes.json (objects with attributes) or objects.json."""

    image_id: Id = Field(validation_alias=AliasChoices("image_id", "id"))
    attributes: Records | None = None
    objects: Records | None = None

    @property
    def entries(self) -> list:
        return self.attributes if self.attributes is not None else self.objects or []


class VGRelationshipsRecord(_Record):
    """A record of relationships.json."""

    image_id: Id = Field(validation_alias=AliasChoices("image_id", "id"))
    relationships: Records = []


# --- COCO ------------------------------------------------------------------------------------------


class CocoFile(_Record):
    """The top level of an instances JSON: three lists (``annotations`` may be absent: image info only)."""

    images: Records
    annotations: Records = []
    categories: Records = []


class CocoImage(_Record):
    id: Id
    file_name: Text = Field(min_length=1)
    width: Size
    height: Size


class CocoCategory(_Record):
    id: Id
    name: Text = Field(min_length=1)


class CocoAnnotation(_Record):
    id: Id
    image_id: Id
    category_id: Id
    bbox: Annotated[list[Number], BeforeValidator(_list), Field(min_length=4, max_length=4)]
    iscrowd: Annotated[int, Field(ge=0, le=1)] = 0


# --- checking --------------------------------------------------------------------------------------


def check(model: type[M], value: Any) -> tuple[M | None, str]:
    """(the record, "") or (None, what is wrong: each field and why, with the value it holds)."""
    try:
        return model.model_validate(value), ""
    except ValidationError as e:
        return None, field_errors(e, value)


def field_errors(e: ValidationError, value: Any) -> str:
    out = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            out.append(f"the record is {_kind(value)}, not an object" if not isinstance(value, dict) else msg)
            continue
        got = "" if err["type"] == "missing" else f" (it holds {_short(err['input'])})"
        out.append(f"field {loc}: {msg}{got}")
    return "; ".join(out)


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def record_id(value: Any, index: int, *keys: str) -> str:
    """The record's id for a rejection, even when the record is malformed: its first usable id key,
    else its position in the file (``#12``)."""
    if isinstance(value, dict):
        for k in keys:
            v = value.get(k)
            if isinstance(v, int | str) and not isinstance(v, bool) and str(v).strip():
                return str(v)
    return f"#{index}"
