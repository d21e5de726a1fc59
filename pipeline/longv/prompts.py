"""The caption and the three edit prompts of a video, drafted from its subjects by templates.

LongV-EVAL's prompts came from an LLM rewriting a video-language model's caption; here the caption
is assembled from what the detector and tracker saw (subjects, their colours and motion, the
background's colour, the camera), and each prompt from a template of its kind, chosen by a hash of
the video id and the seed (deterministic, varied across videos). Every prompt is one sentence of at
most `MAX_WORDS` words; the style prompt names one style of the published list. An optional
rewriter (the same interface as build-gcot's, `pipeline.chains.rewriter`) may reword each prompt;
`prompt_failures` re-checks what it returns.
"""

from __future__ import annotations

import hashlib

import numpy as np

from core.schema import EDIT_KINDS, LongVItem, Subject
from pipeline.detect import colors

MAX_WORDS = 15
# The styles the published prompts use (AdaFlow's LongV-EVAL).
STYLES: dict[str, str] = {
    "Van Gogh": "Van Gogh-style {subject} {action} under swirling, starry brushstrokes.",
    "Picasso": "Picasso-style cubist {subject} {action} among fractured geometric planes.",
    "Da Vinci": "Da Vinci-style sketch: a {subject} {action} in sepia Renaissance tones.",
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
        return f"A {bg} scene with no detected objects; the camera {camera.replace('static', 'holds still')}; {clips} clip(s)."
    parts = [f"a {s.label} {action(s)}" for s in subjects[:3]]
    who = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    cam = "holds still" if camera == "static" else camera
    return f"{who[0].upper()}{who[1:]} over a {bg} background; the camera {cam}; {clips} clip(s)."


def draft(video_id: str, seed: int, subjects: list[Subject], bg: str) -> dict[str, str]:
    """foreground, background, style prompts and style_name."""
    subjects = distinct(subjects)
    main = subjects[0] if subjects else None
    second = subjects[1] if len(subjects) > 1 else None
    noun, moving, still = _pick(REPLACEMENTS, video_id, seed, "foreground")
    d = direction(main) if main else None
    fg_action = f"{moving} {d}" if d else still
    fg = _fit([
        f"A {noun} {fg_action} beside a {second.label} on a {bg} backdrop." if second else f"A {noun} {fg_action} on a {bg} backdrop.",
        f"A {noun} {fg_action} on a {bg} backdrop.",
        f"A {noun} {fg_action}.",
    ])
    subject = main.label if main else "scene"
    new_bg = _pick(BACKGROUNDS, video_id, seed, "background")
    bg_prompt = _fit([
        f"A {subject} {action(main)} across {new_bg}." if main else f"The scene is set in {new_bg}.",
        f"A {main.name if main else 'scene'} {action(main)} in {new_bg}.",
    ])
    style_name = _pick(list(STYLES), video_id, seed, "style")
    template = STYLES[style_name]
    st = _fit([
        template.format(subject=subject, action=action(main)),
        template.format(subject=main.name if main else "scene", action=action(main)),
        f"{style_name}-style {main.name if main else 'scene'}.",
    ])
    return {"foreground": fg, "background": bg_prompt, "style": st, "style_name": style_name}


def prompt_failures(item: LongVItem) -> list[tuple[str, str]]:
    """(rule, detail) of every prompt that breaks the published form."""
    out = []
    for kind in EDIT_KINDS:
        p = item.prompt(kind).strip()
        if not p:
            out.append((f"{kind}_empty", f"the {kind} prompt is empty"))
        elif words(p) > MAX_WORDS:
            out.append((f"{kind}_too_long", f"the {kind} prompt has {words(p)} words (at most {MAX_WORDS}): {p!r}"))
        elif "\n" in p or '"' in p:
            out.append((f"{kind}_not_one_line", f"the {kind} prompt must be one unquoted line: {p!r}"))
    if item.style_name not in STYLES:
        out.append(("unknown_style", f"style {item.style_name!r} is not one of {', '.join(STYLES)}"))
    elif item.style_name.lower() not in item.style.lower():
        out.append(("style_not_named", f"the style prompt does not name its style {item.style_name!r}: {item.style!r}"))
    return out
