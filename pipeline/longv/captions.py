"""The LongV-EVAL model stages, as AdaFlow built its prompts: an image-text model captions the video
in detail from its keyframes, then a text model writes the three edit prompts from that caption.

The edits themselves stay the templates' plan (`prompts.plan`: which new subject, which new
background, which style), so what a model writes can be checked against what was asked: the caption
must name the main subject; each prompt must pass the published form's checks (`prompts.kind_failures`:
at most 15 words, one line, the main subject named by the background and style prompts, articles
that agree), the style prompt must name its style and the foreground prompt the new subject. What
fails keeps its template (each prompt on its own), with the reason in the item's provenance
(``caption.outcome``, ``foreground.outcome`` ... and ``.reason``) and counted in the card.
"""

from __future__ import annotations

import copy

from core.schema import EDIT_KINDS, LongVItem
from pipeline.longv import prompts
from pipeline.models.client import ModelClient, ModelError, Request, parse_json
from pipeline.models.settings import ModelSettings
from pipeline.wording import names

CAPTION = "caption"
PROMPTS = "prompts"
MAX_FRAMES = 8  # keyframes shown to the captioner, evenly spread over the video
CAPTION_PROMPT = (
    "These {n} images are keyframes of one {seconds:.0f}-second video, in order. Describe the video in detail in one paragraph: "
    "the main subject and what it does, the other objects, the background, and how the camera moves."
)
PROMPTS_PROMPT = """A video, described in detail:
{caption}

Write the captions of three edited versions of this video, one sentence of at most 15 words each:
- foreground: the {subject} is replaced by {new_subject}, which {new_action}; name the {new_noun}.
- background: the {subject} stays and the scene becomes {new_background}; name the {noun}.
- style: the whole video in {style} style; name the {noun} and the style ("{style}").
Reply with JSON only: {{"foreground": "...", "background": "...", "style": "..."}}"""
PROMPTS_SCHEMA = {"type": "object", "properties": {k: {"type": "string"} for k in EDIT_KINDS}, "required": list(EDIT_KINDS)}


def spread(keyframes: dict[int, bytes], n: int = MAX_FRAMES) -> list[bytes]:
    """At most ``n`` keyframes, evenly spread, in frame order."""
    frames = [keyframes[k] for k in sorted(keyframes)]
    if len(frames) <= n:
        return frames
    return [frames[round(i * (len(frames) - 1) / (n - 1))] for i in range(n)]


def caption_request(item: LongVItem, keyframes: dict[int, bytes], s: ModelSettings) -> Request:
    images = tuple(spread(keyframes))
    return Request(CAPTION_PROMPT.format(n=len(images), seconds=item.duration), images=images, max_tokens=s.model_max_tokens, temperature=s.model_temperature, seed=s.seed)


def prompts_request(item: LongVItem, plan: prompts.EditPlan, s: ModelSettings) -> Request:
    text = PROMPTS_PROMPT.format(
        caption=item.caption, subject=plan.subject, new_subject=plan.new_subject, new_action=plan.new_action, new_noun=plan.new_subject.split()[-1],
        new_background=plan.new_background, noun=plan.noun or "scene", style=plan.style_name,
    )
    return Request(text, schema=PROMPTS_SCHEMA, max_tokens=s.model_max_tokens, temperature=s.model_temperature, seed=s.seed)


def edit_failures(item: LongVItem, kind: str, text: str, plan: prompts.EditPlan) -> list[tuple[str, str]]:
    """The checks a model's ``kind`` prompt must pass: the published form's, and what was asked."""
    trial = copy.copy(item)
    setattr(trial, kind, text.strip())
    fails = prompts.kind_failures(trial, kind)
    if not fails and kind == "foreground" and not names(text, plan.new_subject.split()[-1]):
        fails = [("foreground_new_subject_not_named", f"does not name the new subject ({plan.new_subject!r}): {text!r}")]
    if not fails and kind == "style" and plan.style_name.lower() not in text.lower():
        fails = [("style_not_named", f"does not name its style {plan.style_name!r}: {text!r}")]
    return fails


def write_caption(item: LongVItem, keyframes: dict[int, bytes], client: ModelClient, s: ModelSettings) -> None:
    (reply,) = client.map([caption_request(item, keyframes, s)], CAPTION)
    if isinstance(reply, ModelError):
        item.provenance.update({f"{CAPTION}.outcome": "failed", f"{CAPTION}.reason": str(reply)})
        return
    item.provenance.update(reply.provenance(CAPTION))
    text = " ".join(reply.text.split())
    fails = prompts.caption_failures(text, item)
    if fails:
        item.provenance.update({f"{CAPTION}.outcome": "template_kept", f"{CAPTION}.reason": f"{fails[0][0]}: {fails[0][1]}"})
        return
    item.provenance.update({f"{CAPTION}.outcome": "used", "template_caption": item.caption})
    item.caption = text


def write_prompts(item: LongVItem, plan: prompts.EditPlan, client: ModelClient, s: ModelSettings) -> None:
    (reply,) = client.map([prompts_request(item, plan, s)], PROMPTS)
    if isinstance(reply, ModelError):
        for kind in EDIT_KINDS:
            item.provenance.update({f"{kind}.outcome": "failed", f"{kind}.reason": str(reply)})
        return
    item.provenance.update(reply.provenance(PROMPTS))
    answer = parse_json(reply.text) or {}
    for kind in EDIT_KINDS:
        text = answer.get(kind)
        if isinstance(text, str):
            text = text.strip()
            if len(text) > 1 and text[0] == text[-1] == '"':  # the release quotes prompts itself
                text = text[1:-1].strip()
        if not isinstance(text, str) or not text:
            fails = [(f"{kind}_missing", f"the reply has no {kind} prompt (JSON field {kind!r})")]
        else:
            fails = edit_failures(item, kind, text, plan)
        if fails:
            item.provenance.update({f"{kind}.outcome": "template_kept", f"{kind}.reason": f"{fails[0][0]}: {fails[0][1]}"})
            continue
        item.provenance.update({f"{kind}.outcome": "used", f"template_{kind}": item.prompt(kind)})
        setattr(item, kind, text)
