"""The grounding model's pretraining curriculum: multi-turn conversations about one synthetic scene.

A pretraining scene is one image of a release built by the project's own pipeline under a seed of its
own (never the demo's), with the synthetic generator's exact objects (`pipeline.sources.synthetic`).
Four kinds of unit teach what the GCoT tasks rest on, and none of them is a chain (no "Step k:" line is
ever a target, so fine-tuning on ``_cot`` rows is what teaches chains):

- **refer**: a referring expression (a verified chain step's phrase, or an object's full description)
  -> its box, with LLaVA-1.5's RefCOCO prompt;
- **region**: a box -> the object there ("small red metal ball");
- **answer-first**: a question -> its answer, then the evaluation's box prompt -> the answer's box;
- **grounding-first**: the box prompt first, then the answer;
- **inventory**: which colours, which shapes are in the image, and how many objects (sets written in
  alphabetical order). These need no binding of words to places: a model that averages the image tokens
  already gets a signal from them, so they break the symmetry in which a model trained from scratch
  learns to ignore the image (measured: with the first four units alone, 3,000 steps gave a model whose
  loss was the same with the right image, another image or none). They dominate the first
  ``warm_share`` of the steps.

One conversation packs several units, so one pass of the vision tower serves several targets; every
assistant turn is a target. Boxes are MM-GCoT's normalized ``[x, y, w, h]``, 3 decimals.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from core.boxes import format_box
from core.schema import Example
from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT

REFER_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {}."
REGION_PROMPT = "What is the object in the region {}?"
BOX_PROMPT = "Please provide the bounding box coordinate of the region for the final answer."  # training/generate.py's, as evaluated
COLORS_PROMPT = "Which colors do the objects in the image have?"
SHAPES_PROMPT = "Which kinds of object are in the image?"
COUNT_PROMPT = "How many objects are in the image?"
UNITS = ("refer", "region", "answer-first", "grounding-first", "inventory")
WEIGHTS = (0.3, 0.15, 0.3, 0.1, 0.15)
WARM_WEIGHTS = (0.1, 0.2, 0.05, 0.0, 0.65)  # the first steps: mostly what needs no binding


@dataclass
class Scene:
    """What pretraining may ask about one image."""

    image: str  # the image's path in the release
    refer: list[tuple[str, str]] = field(default_factory=list)  # (phrase, box literal)
    region: list[tuple[str, str]] = field(default_factory=list)  # (box literal, description)
    qa: list[tuple[str, str, str]] = field(default_factory=list)  # (question, answer, answer box literal)
    inventory: list[tuple[str, str]] = field(default_factory=list)  # (question, answer): colours, shapes, count
    objects: list[tuple[tuple[float, float, float, float], str]] = field(default_factory=list)  # (normalized xywh, description), painted in this order


def patch_labels(scene: Scene, grid: int):
    """Per ViT patch (row-major, ``grid`` x ``grid``), the colour, shape and material index of the object
    seen at the patch's centre (the one painted last there), 0 for background: the vision tower's
    stage-0 targets (`training.pretrain`)."""
    import torch

    from pipeline.sources.synthetic import COLORS, MATERIALS, SHAPES

    out = torch.zeros(3, grid * grid, dtype=torch.long)
    for (x, y, w, h), d in scene.objects:
        _, color, material, shape = d.split()
        for gy in range(grid):
            for gx in range(grid):
                cx, cy = (gx + 0.5) / grid, (gy + 0.5) / grid
                if x <= cx <= x + w and y <= cy <= y + h:
                    out[:, gy * grid + gx] = torch.tensor([1 + list(COLORS).index(color), 1 + SHAPES.index(shape), 1 + MATERIALS.index(material)])
    return out


def phrase_of(step_text: str) -> str | None:
    """A grounded step's referring phrase: "The cylinder on the ball is at [...]" -> "the cylinder on the ball"."""
    head, sep, _ = step_text.partition(" is at [")
    return head[:1].lower() + head[1:] if sep and head else None


def scene_objects(seed: int, image_id: int) -> list[tuple[str, str]]:
    """(box literal, "size color material name") of every object the generator placed in the scene."""
    from pipeline.sources.synthetic import make_scene

    _, record = make_scene(seed, image_id)  # boxes in the scene's pixels (x, y, w, h)
    return [((o["x"], o["y"], o["w"], o["h"]), " ".join([*o["attributes"], o["names"][0]])) for o in record["objects"]]


def scenes(examples: list[Example], seed: int) -> list[Scene]:
    """The examples of a synthetic release grouped by image, with the generator's objects (``seed``: the
    release's scene seed), in release order."""
    by_image: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_image[ex.image].append(ex)
    out = []
    for image, exs in by_image.items():
        s = Scene(image)
        first = exs[0]
        seen: set[str] = set()
        for ex in exs:
            for st in ex.steps:
                p = phrase_of(st.text)
                if st.box is not None and p and p not in seen:
                    seen.add(p)
                    s.refer.append((p, format_box(st.box)))
            if ex.answer_box is not None:
                s.qa.append((ex.question, ex.answer, format_box(ex.answer_box)))
        objects = scene_objects(seed, int(first.image_id))
        from pipeline.sources.synthetic import COLORS, SHAPES

        words = [d.split() for _, d in objects]
        s.inventory = [
            (COLORS_PROMPT, ", ".join(sorted({w for ws in words for w in ws if w in COLORS})).capitalize()),
            (SHAPES_PROMPT, ", ".join(sorted({ws[-1] for ws in words if ws[-1] in SHAPES})).capitalize()),
            (COUNT_PROMPT, str(len(objects))),
        ]
        counts: dict[str, int] = defaultdict(int)
        for _, d in objects:
            counts[d] += 1
        painted = sorted(range(len(objects)), key=lambda k: (objects[k][1].split()[-1] != "tray", objects[k][0][1] + objects[k][0][3], k))  # the generator's painter's order
        s.objects = [(tuple(v / s_ for v, s_ in zip(objects[k][0], (first.width, first.height) * 2)), objects[k][1]) for k in painted]
        for (x, y, w, h), d in objects:
            box = format_box((x / first.width, y / first.height, w / first.width, h / first.height))
            s.region.append((box, d))
            if counts[d] == 1 and f"the {d}" not in seen:
                s.refer.append((f"the {d}", box))
        out.append(s)
    return out


def conversation(scene: Scene, rng: random.Random, units: int, warm: bool = False) -> list[tuple[str, str]]:
    """``units`` units drawn from the scene as (user, assistant) turns (``warm``: the first steps' mix);
    the image goes with the first."""
    turns: list[tuple[str, str]] = []
    for _ in range(units):
        kind = rng.choices(UNITS, WARM_WEIGHTS if warm else WEIGHTS)[0]
        if kind in ("answer-first", "grounding-first") and not scene.qa or kind == "refer" and not scene.refer or kind == "inventory" and not scene.inventory:
            kind = "region"
        if kind == "inventory":
            turns.append(rng.choice(scene.inventory))
            continue
        if kind == "refer":
            p, box = rng.choice(scene.refer)
            turns.append((REFER_PROMPT.format(p), box))
        elif kind == "region":
            box, d = rng.choice(scene.region)
            turns.append((REGION_PROMPT.format(box), d[:1].upper() + d[1:]))
        else:
            q, a, box = rng.choice(scene.qa)
            if kind == "answer-first":
                turns += [(f"{q}\n{PLAIN_PROMPT}", a), (BOX_PROMPT, box)]
            else:
                turns += [(f"{q}\n{BOX_PROMPT}", box), (PLAIN_PROMPT, a)]
    return turns


def texts(scene_list: list[Scene]) -> list[str]:
    """The tokenizer's training text: every prompt and target the curriculum can write, and the words of
    the chain format fine-tuning will teach (its prompt, "Step k:", "Final Answer:"; no chain's content)."""
    out = [PLAIN_PROMPT, BOX_PROMPT, COT_PROMPT, REFER_PROMPT.format(""), REGION_PROMPT.format(""), COLORS_PROMPT, SHAPES_PROMPT, COUNT_PROMPT]
    out += [f"Step {k}: The is at\nFinal Answer:" for k in range(1, 7)]
    for s in scene_list:
        out += [p for p, _ in s.refer] + [d for _, d in s.region] + [t for q, a, _ in s.qa for t in (q, a)]
    return out
