"""The one schema: every stage passes these records on, nothing else.

Boxes inside the project are normalized ``(x, y, w, h)`` tuples (top-left corner, width, height as
fractions of the image size), as MM-GCoT publishes them. Conversions live at the borders only
(`core.boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Box = tuple[float, float, float, float]


def _plain(value: Any) -> Any:
    """What `dataclasses.asdict` gives (new containers at every level) without deep-copying the leaves,
    which are immutable: the build writes every example and rejection through it, and asdict's copies
    were a third of a shard's time (0.8 of 2.7 s for 500 synthetic images)."""
    names = getattr(value, "__dataclass_fields__", None)  # the records here have no ClassVar / InitVar fields
    if names is not None:
        return {k: _plain(getattr(value, k)) for k in names}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float)) or v is None for v in value):
            return value if isinstance(value, tuple) else list(value)  # boxes, attribute lists
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

QuestionType = Literal["attribute", "judge", "object"]
QUESTION_TYPES: tuple[QuestionType, ...] = ("attribute", "judge", "object")
# File-name spelling of the types in the official release (GCoT_dataset_<name>_test.json).
MMGCOT_TYPE_NAMES: dict[str, str] = {"attribute": "attributes", "judge": "judge", "object": "objects"}

# Sources whose scene graphs are exact: rendered scenes, where every box is the object's and nothing
# is annotated twice. Every other source (Visual Genome, COCO, detector drafts) is read as photos.
EXACT_SOURCES = frozenset({"synthetic"})

ReviewStatus = Literal["pending", "accepted", "fixed", "rejected"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class SceneObject:
    id: str
    name: str  # the noun the text uses (after normalisation: lower case, singular, the alias table's)
    box: Box
    attributes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # the other names the source gave (VG "names" after the first), and a merged duplicate's
    synsets: tuple[str, ...] = ()  # WordNet synsets where the source has them (VG: "man.n.01")
    merged_from: tuple[str, ...] = ()  # ids of the duplicate annotations merged into this object


@dataclass(frozen=True)
class Region:
    """A region description (Visual Genome region_descriptions.json): a phrase a person wrote for a box."""

    id: str
    phrase: str
    box: Box


@dataclass(frozen=True)
class Relation:
    subject_id: str
    predicate: str  # lower-case phrase as it reads in a sentence: "on", "left of", "holding"
    object_id: str
    origin: Literal["given", "geometry"] = "given"


@dataclass
class SceneGraph:
    image_id: str
    image: str  # path of the image relative to the source root, e.g. "VG_100K/1.jpg"
    width: int
    height: int
    objects: list[SceneObject]
    relations: list[Relation] = field(default_factory=list)
    source: str = ""  # "vg", "coco", "synthetic", ...
    transposed: str = ""  # how ingest turned the image upright (its EXIF orientation); "" when it was
    regions: list[Region] = field(default_factory=list)

    def object(self, object_id: str) -> SceneObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(object_id)

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        if not d["transposed"]:  # most images: shard files stay as they were
            del d["transposed"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneGraph:
        return cls(
            image_id=str(d["image_id"]),
            image=d["image"],
            width=int(d["width"]),
            height=int(d["height"]),
            objects=[
                SceneObject(
                    o["id"], o["name"], tuple(o["box"]), tuple(o.get("attributes", ())),
                    tuple(o.get("names", ())), tuple(o.get("synsets", ())), tuple(o.get("merged_from", ())),
                )
                for o in d["objects"]
            ],
            relations=[
                Relation(r["subject_id"], r["predicate"], r["object_id"], r.get("origin", "given"))
                for r in d.get("relations", ())
            ],
            source=d.get("source", ""),
            transposed=d.get("transposed", ""),
            regions=[Region(str(r["id"]), r["phrase"], tuple(r["box"])) for r in d.get("regions", ())],
        )


# Where a step's relation comes from: the source's annotation, two photo boxes (only what boxes can
# tell: left of, right of, above, below, near), or a rendered scene's exact layout (synthetic).
RelationOrigin = Literal["annotated", "geometric", "exact"]
RELATION_ORIGINS: tuple[str, ...] = ("annotated", "geometric", "exact")


@dataclass
class Step:
    """One line of a chain: ``text`` is the sentence as the model should say it (MM-GCoT writes the
    box literal into it: "The hat on the man is at [0.210, 0.058, 0.435, 0.150]"); ``box`` is that
    box parsed, or None for a step without one. The rest describes the referring expression so that
    verification can re-check it against the scene graph."""

    text: str
    box: Box | None = None
    object_id: str | None = None
    name: str | None = None  # the noun used in the phrase; None when the phrase hides it ("object")
    attributes: tuple[str, ...] = ()  # attributes used in the phrase
    relation: str | None = None  # canonical predicate linking this object to the previous step's object
    relation_origin: RelationOrigin | None = None  # None for the first step
    relation_inverse: bool = False  # the relation reads previous -> this ("the coat the man is wearing")
    region: str | None = None  # the region description this step's expression was made from, as written


@dataclass
class Query:
    """What the question asks of the target (the last grounded step's object)."""

    kind: Literal["color", "material", "name"]
    value: str | None = None  # judge questions: the value asked about


@dataclass
class Verification:
    passed: bool = False
    rules: list[str] = field(default_factory=list)  # rules checked, in order
    failures: list[dict[str, str]] = field(default_factory=list)  # [{rule, detail}]


@dataclass
class DetectorCheck:
    """How well a detector supports each grounded step's box (compatible class, best IoU)."""

    model: str  # weights name@digest
    step_iou: list[float] = field(default_factory=list)  # per grounded step; 0 when nothing compatible
    step_class: list[str | None] = field(default_factory=list)  # the matched detection's class
    min_iou: float = 0.0  # the weakest step: the review queue sorts on it
    mean_iou: float = 0.0
    flagged: bool = False  # some step is not supported (IoU <= 0.5)


@dataclass
class Review:
    status: ReviewStatus = "pending"
    reviewer: str | None = None
    reviewed_at: str | None = None
    comment: str | None = None


@dataclass
class Example:
    id: str
    image_id: str
    image: str  # image path as released (MM-GCoT "img", e.g. "vg/VG_100K/2361224.jpg")
    width: int
    height: int
    question: str
    type: QuestionType
    steps: list[Step]
    answer: str
    answer_box: Box | None
    split: str = "train"
    source: str = ""
    query: Query | None = None
    provenance: dict[str, str] = field(default_factory=dict)
    verification: Verification = field(default_factory=Verification)
    review: Review = field(default_factory=Review)
    detector: DetectorCheck | None = None

    @property
    def grounded_steps(self) -> list[Step]:
        return [s for s in self.steps if s.box is not None]

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        steps = [
            Step(
                text=s["text"],
                box=tuple(s["box"]) if s.get("box") is not None else None,
                object_id=s.get("object_id"),
                name=s.get("name"),
                attributes=tuple(s.get("attributes") or ()),
                relation=s.get("relation"),
                relation_origin=s.get("relation_origin"),
                relation_inverse=bool(s.get("relation_inverse")),
                region=s.get("region"),
            )
            for s in d["steps"]
        ]
        q = d.get("query")
        v = d.get("verification") or {}
        r = d.get("review") or {}
        det = d.get("detector")
        return cls(
            id=d["id"],
            image_id=str(d["image_id"]),
            image=d["image"],
            width=int(d["width"]),
            height=int(d["height"]),
            question=d["question"],
            type=d["type"],
            steps=steps,
            answer=d["answer"],
            answer_box=tuple(d["answer_box"]) if d.get("answer_box") is not None else None,
            split=d.get("split", "train"),
            source=d.get("source", ""),
            query=Query(**q) if q else None,
            provenance=dict(d.get("provenance") or {}),
            verification=Verification(**v),
            review=Review(**r),
            detector=DetectorCheck(**det) if det else None,
        )


# Stages whose rejections are example candidates (candidates = released + these); the others
# ("source": bad input records, "normalise": duplicates merged and records the normalisation set aside,
# "scene": images that gave no candidate) are records, not examples.
EXAMPLE_STAGES = frozenset({"chains", "verify", "split", "review"})


# The quality rules of a chain (their checks: pipeline/chains/quality.py), by reason.
QUALITY_RULES: tuple[str, ...] = ("duplicate_in_chain", "relation_not_backed", "repeated_predicate", "answer_in_question", "question_too_long")


@dataclass(frozen=True)
class Rejection:
    """A record that did not pass a stage, with a snake_case rule and a human-readable detail."""

    stage: str  # "source", "normalise", "scene", "chains", "verify", "split", "review", "convert"
    id: str  # example id, or "<image_id>" / "<image_id>/<object_id>" for source records
    rule: str
    detail: str
    file: str = ""

    def to_dict(self) -> dict[str, str]:
        return _plain(self)

    @property
    def is_example(self) -> bool:
        return self.stage in EXAMPLE_STAGES


# --- LongV-EVAL: one record per video -------------------------------------------------------------

EDIT_KINDS: tuple[str, ...] = ("foreground", "background", "style")


@dataclass
class Clip:
    """A run of frames that AdaFlow's clip cutting keeps together, and its representative keyframe."""

    start: int  # first frame (inclusive)
    end: int  # last frame (inclusive)
    keyframe: int


@dataclass
class TrackPoint:
    frame: int
    box: Box


@dataclass
class Subject:
    """One tracked object: the detector's noun, its colour measured from pixels, where it went."""

    track_id: int
    name: str
    color: str | None
    confidence: float  # mean detection confidence over the track
    points: list[TrackPoint] = field(default_factory=list)  # sampled frames only (the detection stride)

    @property
    def first(self) -> int:
        return self.points[0].frame

    @property
    def last(self) -> int:
        return self.points[-1].frame

    @property
    def label(self) -> str:
        return f"{self.color} {self.name}" if self.color else self.name


@dataclass
class LongVItem:
    """A LongV-EVAL video: probe facts, clips and keyframes, tracks, caption and the three prompts."""

    id: str  # file stem as released: videos/<id>.mp4
    video: str  # path inside the release
    source_file: str  # the input file it came from
    duration: float  # seconds
    fps: float
    frames: int
    width: int
    height: int
    clips: list[Clip]
    subjects: list[Subject]
    camera: str  # "static", "pans left", "pans right" (from global motion)
    caption: str
    foreground: str
    background: str
    style: str
    style_name: str  # one of the published style list
    provenance: dict[str, str] = field(default_factory=dict)
    review: Review = field(default_factory=Review)

    @property
    def keyframes(self) -> list[int]:
        return [c.keyframe for c in self.clips]

    def prompt(self, kind: str) -> str:
        if kind not in EDIT_KINDS:
            raise ValueError(f"unknown edit kind {kind!r}; one of {EDIT_KINDS}")
        return getattr(self, kind)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LongVItem:
        subjects = [
            Subject(s["track_id"], s["name"], s.get("color"), float(s["confidence"]), [TrackPoint(int(p["frame"]), tuple(p["box"])) for p in s["points"]])
            for s in d["subjects"]
        ]
        fields = {k: d[k] for k in ("id", "video", "source_file", "frames", "width", "height", "camera", "caption", "style_name") if k in d}
        return cls(
            **fields,
            duration=float(d["duration"]),
            fps=float(d["fps"]),
            clips=[Clip(**c) for c in d["clips"]],
            subjects=subjects,
            foreground=d["foreground"],
            background=d["background"],
            style=d["style"],
            provenance=dict(d.get("provenance") or {}),
            review=Review(**(d.get("review") or {})),
        )
