"""The caption and the three edit prompts of a video, drafted from its subjects by templates.

LongV-EVAL's prompts came from an LLM rewriting a video-language model's caption; here the caption
is assembled from what the detector and tracker saw (subjects, their colours and motion, the
background's colour, the camera), and each prompt from a template of its kind, chosen by a hash of
the video id and the seed (deterministic, varied across videos). Every prompt is one sentence of at
most `MAX_WORDS` words; the style prompt names one style of the published list. An optional
rewriter (the same interface as build-gcot's, `pipeline.chains.rewriter`) may reword each prompt,
and the model stages (`pipeline.longv.captions`) may write the caption and the prompts; the same
checks (`prompt_failures`, `caption_failures`) hold for templates, rewrites, models and reviewers:
at most 15 words on one line, the style named, the main subject named by the background and style
prompts, articles that agree ("an orange backdrop") and no doubled word.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from core.schema import EDIT_KINDS, LongVItem, Subject
from pipeline.detect import colors
from pipeline.wording import grammar_failures, names, with_article

MAX_WORDS = 15
# The styles the published prompts use (AdaFlow's LongV-EVAL).
STYLES: dict[str, str] = {
    "Van Gogh": "Van Gogh-style {subject} {action} under swirling, starry brushstrokes.",
    "Picasso": "Picasso-style cubist {subject} {action} among fractured geometric planes.",
    "Da Vinci": "Da Vinci-style sketch: {a_subject} {action} in sepia Renaissance tones.",
    "Mondrian": "Mondrian-style {subject} {action} across bold primary-colour grid blocks.",
    "watercolor": "Watercolor {subject} {action} through soft, bleeding washes of colour.",
    "comic": "Comic-style {subject} {action} in a vivid, inked, sketch-like world.",
    "drawing": "Pencil-drawing {subject} {action} across a hatched, monochrome paper world.",
}
# Foreground replacements: (noun, verb when moving, verb when still).
REPLACEMENTS = (
    ("white wolf", "runs", "sits"), ("golden retriever", "runs", "sits"), ("red fox", "trots", "rests"),
    ("paper boat", "drifts", "floats"), ("glass swan", "glides", "rests"), ("bronze robot", "walks", "stands"),
    ("hot-air balloon", "floats", "hovers"), ("yellow taxi", "drives", "waits"),
)
BACKGROUNDS = (
    "a snowy mountain meadow", "a sunlit sandy beach", "a neon-lit city street at night", "a misty pine forest",
    "the cratered surface of the moon", "a coral reef under water", "a desert of red dunes", "a rainy cobblestone square",
)
VERBS = {"ball": "rolls", "ring": "rolls"}  # other shapes slide; unknown nouns move
STILL = 0.05  # a subject whose centre moves less than this (fraction of the frame) is still
CAPTION_WORDS = 150  # a model's detailed caption: one paragraph


def _pick(options, video_id: str, seed: int, kind: str):
    h = int(hashlib.sha256(f"{seed}:{video_id}:{kind}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def direction(s: Subject) -> str | None:
    """'left' or 'right' when the track's net motion is mostly sideways, 'around' when it moves
    otherwise (up, down, bouncing), None when it stays (first and last boxes' centres)."""
    (x0, y0, w0, h0), (x1, y1, w1, h1) = s.points[0].box, s.points[-1].box
    dx, dy = (x1 + w1 / 2) - (x0 + w0 / 2), (y1 + h1 / 2) - (y0 + h0 / 2)
    if max(abs(dx), abs(dy)) < STILL:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "around"


def action(s: Subject | None) -> str:
    if s is None:
        return "appears"
    d = direction(s)
    return f"{VERBS.get(s.name, 'slides')} {d}" if d else "rests"


def background_colour(frames_rgb: list[np.ndarray], weights: list[float] | None = None) -> str:
    """The dominant background colour: each keyframe's median pixel named (objects are a small part
    of a frame), the name with the most weight (clip length) wins."""
    if not frames_rgb:
        return "plain"
    votes: dict[str, float] = {}
    for f, w in zip(frames_rgb, weights or [1.0] * len(frames_rgb)):
        name = colors.name_rgb(*(float(v) for v in np.median(f[::8, ::8].reshape(-1, 3), axis=0)))
        votes[name] = votes.get(name, 0.0) + w
    return max(sorted(votes), key=lambda n: votes[n])


def words(text: str) -> int:
    return len(text.split())


def _fit(candidates: list[str]) -> str:
    """The first candidate of at most MAX_WORDS words (the last one is always short enough)."""
    for c in candidates:
        if words(c) <= MAX_WORDS:
            return c
    return candidates[-1]


def distinct(subjects: list[Subject]) -> list[Subject]:
    """The most present track of each label: one object seen in several shots is one subject."""
    seen: dict[str, Subject] = {}
    for s in subjects:
        seen.setdefault(s.label, s)
    return list(seen.values())


def caption(subjects: list[Subject], bg: str, camera: str, clips: int) -> str:
    subjects = distinct(subjects)
    if not subjects:
        return f"{with_article(f'{bg} scene', capital=True)} with no detected objects; the camera {camera.replace('static', 'holds still')}; {clips} clip(s)."
    parts = [f"{with_article(s.label)} {action(s)}" for s in subjects[:3]]
    who = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    cam = "holds still" if camera == "static" else camera
    return f"{who[0].upper()}{who[1:]} over {with_article(f'{bg} background')}; the camera {cam}; {clips} clip(s)."


@dataclass(frozen=True)
class EditPlan:
    """What the three edits of a video are, before anyone words them (templates or a model)."""

    subject: str  # the main subject's label ("red cube"), or "scene" when none was detected
    noun: str | None  # its noun, which the background and style prompts name; None: no subject
    action: str  # what it does ("slides right")
    new_subject: str  # foreground: what replaces it ("white wolf"), which the foreground prompt names
    new_action: str  # and what that does
    new_background: str  # background: where the subject goes
    style_name: str  # one of STYLES


def plan(video_id: str, seed: int, subjects: list[Subject]) -> EditPlan:
    """The edits of one video, chosen by a hash of the id and the seed (deterministic, varied)."""
    subjects = distinct(subjects)
    main = subjects[0] if subjects else None
    noun, moving, still = _pick(REPLACEMENTS, video_id, seed, "foreground")
    d = direction(main) if main else None
    return EditPlan(
        subject=main.label if main else "scene", noun=main.name if main else None, action=action(main),
        new_subject=noun, new_action=f"{moving} {d}" if d else still,
        new_background=_pick(BACKGROUNDS, video_id, seed, "background"), style_name=_pick(list(STYLES), video_id, seed, "style"),
    )


def draft(video_id: str, seed: int, subjects: list[Subject], bg: str) -> dict[str, str]:
    """foreground, background, style prompts and style_name."""
    p = plan(video_id, seed, subjects)
    subjects = distinct(subjects)
    second = subjects[1] if len(subjects) > 1 else None
    new, backdrop = with_article(p.new_subject, capital=True), with_article(f"{bg} backdrop")
    fg = _fit([
        f"{new} {p.new_action} beside {with_article(second.label)} on {backdrop}." if second else f"{new} {p.new_action} on {backdrop}.",
        f"{new} {p.new_action} on {backdrop}.",
        f"{new} {p.new_action}.",
    ])
    bg_prompt = _fit([
        f"{with_article(p.subject, capital=True)} {p.action} across {p.new_background}." if p.noun else f"The scene is set in {p.new_background}.",
        f"{with_article(p.noun or 'scene', capital=True)} {p.action} in {p.new_background}.",
    ])
    template = STYLES[p.style_name]
    short = p.noun or "scene"
    st = _fit([
        template.format(subject=p.subject, a_subject=with_article(p.subject), action=p.action),
        template.format(subject=short, a_subject=with_article(short), action=p.action),
        f"{p.style_name}-style {short}.",
    ])
    return {"foreground": fg, "background": bg_prompt, "style": st, "style_name": p.style_name}


def main_noun(item: LongVItem) -> str | None:
    """The noun of the video's main subject (the most present track), None without one."""
    return item.subjects[0].name if item.subjects else None


def kind_failures(item: LongVItem, kind: str) -> list[tuple[str, str]]:
    """The first rule the ``kind`` prompt breaks, as [(rule, detail)], or []."""
    p = item.prompt(kind).strip()
    noun = main_noun(item)
    if not p:
        return [(f"{kind}_empty", f"the {kind} prompt is empty")]
    if words(p) > MAX_WORDS:
        return [(f"{kind}_too_long", f"the {kind} prompt has {words(p)} words (at most {MAX_WORDS}): {p!r}")]
    if "\n" in p or '"' in p:
        return [(f"{kind}_not_one_line", f"the {kind} prompt must be one unquoted line: {p!r}")]
    if kind != "foreground" and noun and not names(p, noun):
        return [(f"{kind}_subject_not_named", f"the {kind} prompt does not name the main subject ({noun!r}): {p!r}")]
    grammar = grammar_failures(p)
    if grammar:
        return [(f"{kind}_{grammar[0][0]}", grammar[0][1])]
    return []


def caption_failures(text: str, item: LongVItem) -> list[tuple[str, str]]:
    """The rules a (model's) caption breaks: empty, longer than a paragraph, not naming the main subject."""
    noun = main_noun(item)
    if not text.strip():
        return [("caption_empty", "the caption is empty")]
    if words(text) > CAPTION_WORDS:
        return [("caption_too_long", f"{words(text)} words (at most {CAPTION_WORDS})")]
    if noun and not names(text, noun):
        return [("caption_subject_not_named", f"does not name the main subject ({noun!r}): {text[:200]!r}")]
    return [(f"caption_{r}", d) for r, d in grammar_failures(text)[:1]]


def prompt_failures(item: LongVItem) -> list[tuple[str, str]]:
    """(rule, detail) of every prompt that breaks the published form (the first rule of each)."""
    out = [f for kind in EDIT_KINDS for f in kind_failures(item, kind)]
    if item.style_name not in STYLES:
        out.append(("unknown_style", f"style {item.style_name!r} is not one of {', '.join(STYLES)}"))
    elif item.style_name.lower() not in item.style.lower():
        out.append(("style_not_named", f"the style prompt does not name its style {item.style_name!r}: {item.style!r}"))
    return out
