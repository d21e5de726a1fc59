"""The grounding model's pretraining curriculum: multi-turn conversations about one synthetic scene.

A pretraining scene is one image of a release built by the project's own pipeline under a seed of its
own (never the demo's), with the synthetic generator's exact objects (`pipeline.sources.synthetic`).
Six kinds of unit teach what the GCoT tasks rest on, and none of them is a chain (no "Step k:" line is
ever a target, so fine-tuning on ``_cot`` rows is what teaches chains):

- **refer**: a referring expression (a verified chain step's phrase, or an object's full description)
  -> its box, with LLaVA-1.5's RefCOCO prompt;
- **region**: a box -> the object there ("small red metal ball");
- **answer-first**: a question -> its answer, then the evaluation's box prompt -> the answer's box;
- **grounding-first**: the box prompt first, then the answer;
- **name**: a phrase of one word that picks one object in the scene ("the cube" where there is one
  cube, "the pink object") -> its box: the simplest binding, a word to the tokens showing it, and the
  first steps' main unit;
- **inventory**: which colours, which shapes are in the image, and how many objects (sets written in
  alphabetical order). These need no binding of words to places: a model that averages the image tokens
  already gets a signal from them, so they break the symmetry in which a model trained from scratch
  learns to ignore the image (measured: with the first four units alone, 3,000 steps gave a model whose
  loss was the same with the right image, another image or none). They were the first
  steps' main unit before name units and stage 0's box digits.

One conversation packs several units, so one pass of the vision tower serves several targets; every
assistant turn is a target. Boxes are MM-GCoT's normalized ``[x, y, w, h]``, 3 decimals.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from core.boxes import DECIMALS, format_box
from core.schema import Example
from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT

REFER_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {}."
REGION_PROMPT = "What is the object in the region {}?"
BOX_PROMPT = "Please provide the bounding box coordinate of the region for the final answer."  # training/generate.py's, as evaluated
COLORS_PROMPT = "Which colors do the objects in the image have?"
SHAPES_PROMPT = "Which kinds of object are in the image?"
COUNT_PROMPT = "How many objects are in the image?"
UNITS = ("refer", "region", "answer-first", "grounding-first", "inventory", "name")
WEIGHTS = (0.3, 0.1, 0.3, 0.1, 0.05, 0.15)
WARM_WEIGHTS = (0.1, 0.05, 0.05, 0.0, 0.1, 0.7)  # the first steps: mostly one-word references


@dataclass
class Scene:
    """What pretraining may ask about one image."""

    image: str  # the image's path in the release
    refer: list[tuple[str, str]] = field(default_factory=list)  # (phrase, box literal)
    region: list[tuple[str, str]] = field(default_factory=list)  # (box literal, description)
    qa: list[tuple[str, str, str]] = field(default_factory=list)  # (question, answer, answer box literal)
    inventory: list[tuple[str, str]] = field(default_factory=list)  # (question, answer): colours, shapes, count
    names: list[tuple[str, str]] = field(default_factory=list)  # (phrase of one word that picks one object, box literal): "the cube", "the pink object"
    objects: list[tuple[tuple[float, float, float, float], str]] = field(default_factory=list)  # (normalized xywh, description), painted in this order


BOX_DIGITS = 8  # stage-0 box targets a patch: the first two decimals of x, y, w, h as written ("0.466" -> 4, 6)


def _digits(v: float) -> tuple[int, int]:
    s = f"{min(v, 0.999):.{DECIMALS}f}"  # as format_box writes it
    return int(s[2]), int(s[3])


def owners(scene: Scene, grid: int):
    """Per ViT patch (row-major, ``grid`` x ``grid``), the index in ``scene.objects`` of the object seen
    there (the one painted last over the patch's centre; an object too small to cover a patch centre
    still owns the patch holding its own centre), -1 for background."""
    import torch

    out = torch.full((grid * grid,), -1, dtype=torch.long)

    def covers(box, gx: int, gy: int) -> bool:  # the box holds the patch's centre
        x, y, w, h = box
        return x <= (gx + 0.5) / grid <= x + w and y <= (gy + 0.5) / grid <= y + h

    for k, (box, _) in enumerate(scene.objects):
        for gy in range(grid):
            for gx in range(grid):
                if covers(box, gx, gy):
                    out[gy * grid + gx] = k
    for k, (box, _) in enumerate(scene.objects):
        x, y, w, h = box
        gx, gy = min(grid - 1, int((x + w / 2) * grid)), min(grid - 1, int((y + h / 2) * grid))
        if not covers(box, gx, gy):
            out[gy * grid + gx] = k
    return out


def patch_labels(scene: Scene, grid: int):
    """Per ViT patch (`owners`), the targets of the vision tower's stage 0 (`training.pretrain`), from
    the object seen there:

    - rows 0-2: its colour, shape and material index, 0 for background;
    - rows 3-10: the first two decimals of its box's x, y, w, h as the decoder will write them, -100
      (ignored) for background. A token that already says where its object's box is leaves the decoder
      only to find the token a phrase describes and copy the box out, instead of computing a box from
      token positions (measured: 0 % refer accuracy).
    """
    import torch

    from pipeline.sources.synthetic import COLORS, MATERIALS, SHAPES

    out = torch.zeros(3 + BOX_DIGITS, grid * grid, dtype=torch.long)
    out[3:] = -100
    rows = []
    for box, d in scene.objects:
        _, color, material, shape = d.split()
        rows.append(torch.tensor([1 + list(COLORS).index(color), 1 + SHAPES.index(shape), 1 + MATERIALS.index(material), *(q for v in box for q in _digits(v))]))
    own = owners(scene, grid)
    for k in own.unique().tolist():
        if k >= 0:
            out[:, own == k] = rows[k][:, None]
    return out


def focus_conversation(scene: Scene, rng: random.Random, units: int) -> tuple[list[tuple[str, str]], set[int]]:
    """``units`` name units (distinct phrases where the scene has enough) and the indices in
    ``scene.objects`` of the objects they name: the focus curriculum's conversations (`training.pretrain`
    hides the other objects' tokens at first, so that reading a box out of the one object left is learnt
    before finding it among others)."""
    literal = [format_box(b) for b, _ in scene.objects]
    pool = [(p, box) for p, box in scene.names if box in literal]
    picks = rng.sample(pool, min(units, len(pool)))
    return [(REFER_PROMPT.format(p), box) for p, box in picks], {literal.index(box) for _, box in picks}


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
        s.names = names(s.region)
        out.append(s)
    return out


def names(region: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(phrase, box literal) for every shape and every colour only one object of the scene has:
    "the cube", "the pink object" (``region``: (box literal, "size color material shape"))."""
    shapes = defaultdict(int)
    colors = defaultdict(int)
    for _, d in region:
        shapes[d.split()[-1]] += 1
        colors[d.split()[1]] += 1
    out = []
    for box, d in region:
        color, shape = d.split()[1], d.split()[-1]
        out += [(f"the {shape}", box)] * (shapes[shape] == 1) + [(f"the {color} object", box)] * (colors[color] == 1)
    return out


def conversation(scene: Scene, rng: random.Random, units: int, warm: bool = False) -> list[tuple[str, str]]:
    """``units`` units drawn from the scene as (user, assistant) turns (``warm``: the first steps' mix);
    the image goes with the first."""
    turns: list[tuple[str, str]] = []
    for _ in range(units):
        kind = rng.choices(UNITS, WARM_WEIGHTS if warm else WEIGHTS)[0]
        pools = {"refer": scene.refer, "region": scene.region, "answer-first": scene.qa, "grounding-first": scene.qa, "inventory": scene.inventory, "name": scene.names}
        if not pools[kind]:
            kind = "region"
        if kind == "inventory":
            turns.append(rng.choice(scene.inventory))
            continue
        if kind in ("refer", "name"):
            p, box = rng.choice(pools[kind])
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
