"""Run a Hugging Face image-text-to-text model on a release split and write an MM-GCoT results file.

The split's examples come from the release's Parquet shards through `training.data`, the reader
fine-tuning uses, in release order.

Three protocols, with the official MM-GCoT prompts (``test_llava.py``, ``test_llava_GCoT.py``):

- ``answer-first``: the answer, then the box in a second turn;
- ``grounding-first``: the box, then the answer;
- ``gcot``: the step-by-step chain; the answer is the text after the last ``Final Answer: `` (the
  whole reply when there is none, as the official script does), then the box in a second turn.

Each line holds the official fields (``text``, ``coor``, ``gt_text``, ``gt_coor``, ``img``) plus ours
(``type``, ``gt_cot``, and for ``gcot`` the chain as ``cot``), so both evaluation modes can read it, and
``box_format`` (with ``box_size`` for a format in pixels): how the model writes boxes, which strict
evaluation reads them back by. The model's family (`training.families`) makes its inputs.
Generation is greedy and batched (left padding); a progress bar shows samples per second.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field
from tqdm import tqdm

from core.boxes import format_box
from core.cli import CommandFailed, ConfigCommand
from core.config import Config
from core.guard import check_output_file
from core.schema import Example
from pipeline.evaluation import box_formats
from pipeline.evaluation.box_formats import NAMES as BOX_FORMATS
from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT
from pipeline.release.mmgcot import render_cot
from training.data import decode_image, read_split
from training.families.base import assistant_turn, user_turn

log = logging.getLogger(__name__)

BOX_PROMPT = "Please provide the bounding box coordinate of the region for the final answer."
PROTOCOLS = ("answer-first", "grounding-first", "gcot")
FINAL_ANSWER = "Final Answer: "


class RunConfig(Config):
    """A model over a release split, in one MM-GCoT protocol, to a results file."""

    release: str = Field(description="release folder (gcot build, or gcot convert --to arrow with --images)")
    model: str = Field(description="model folder (AutoModelForImageTextToText + AutoProcessor of a known family, training/families; nothing is downloaded)")
    out: str = Field(description="results file to write (JSON lines); an existing file only with --overwrite")
    overwrite: bool = Field(False, description="replace the results file already at --out")
    protocol: Literal[PROTOCOLS] = Field("answer-first", description="answer-first (answer, then box), grounding-first (box, then answer) or gcot (the chain, then the box)")
    split: str = Field("test", description="release split")
    batch_size: int = Field(8, ge=1, description="samples a generate call")
    limit: int | None = Field(None, ge=1, description="only the first N samples")
    max_new_tokens: int = Field(64, ge=1, description="new tokens for answers and boxes")
    max_new_tokens_chain: int = Field(256, ge=1, description="new tokens for a gcot chain")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    box_format: Literal[("family", *BOX_FORMATS)] = Field("family", description="how the model writes boxes: family (what fine-tuning recorded in the checkpoint, else the family's own convention) or a box format by name; recorded on each line for gcot eval --mode strict")


class RunCommand(RunConfig, ConfigCommand):
    """Generate answers and boxes with a Hugging Face image-text-to-text model on a release split, in one of
    the MM-GCoT protocols, and write a results file for `gcot eval`.

    Example:
      gcot tiny-model --release releases/demo --out models/tiny
      gcot run-model --release releases/demo --model models/tiny --protocol gcot --out results/tiny-gcot.jsonl
    """

    CONFIG = RunConfig

    def run(self) -> int:
        try:
            out = run(self.resolve())
        except (ValueError, FileNotFoundError, OSError) as e:
            raise CommandFailed(str(e)) from None
        print(f"results written to {out}\nevaluate: gcot eval --results {out} [--mode strict]", file=sys.stderr)
        return 0


class Generator:
    """Greedy batched generation with a model's own processor and chat template, through its family
    (`training.families`): every tensor the processor makes, the images of a batch nested per sample."""

    def __init__(self, model_path: str, device: str = "auto", box_format: str = "family"):
        import torch

        from training import families

        self.torch = torch
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model, self.processor, self.family = families.load(model_path, dtype=dtype)
        self.model = model.to(self.device).eval()
        self.model_id = Path(model_path).name
        # what fine-tuning wrote its targets in (finetune.py records it in the merged checkpoint), else the family's own
        self.box_format = (getattr(model.config, "gcot_box_format", None) or self.family.box_format) if box_format == "family" else box_format
        box_formats.get(self.box_format)  # a clear error for an unknown name, before any generation

    @classmethod
    def of(cls, model, processor, device: str = "cpu") -> Generator:
        """Generation with a model already in memory (pretraining's held-out scoring), in its family's
        own box convention."""
        import torch

        from training import families

        gen = cls.__new__(cls)
        gen.torch, gen.device, gen.model, gen.processor = torch, device, model.eval(), processor
        gen.family = families.family_of(model.config)
        gen.model_id = type(model).__name__
        gen.box_format = getattr(model.config, "gcot_box_format", None) or gen.family.box_format
        return gen

    def __call__(self, conversations: list[list[dict]], images: list, max_new_tokens: int) -> list[str]:
        enc = {k: v.to(self.device) for k, v in self.family.generation_inputs(self.processor, conversations, images).items()}
        with self.torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        return [t.strip() for t in self.processor.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]

    def box_size(self, image) -> list[int] | None:
        """The pixel frame the box format refers to, for the results line (None: a relative format)."""
        size = self.family.box_size(self.processor, *image.size, self.box_format)
        return None if size is None else list(size)


def _batches(examples: list[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(examples), size):
        yield examples[start : start + size]


def run_batch(gen: Generator, rows: list[Example], image_bytes: dict[str, bytes], cfg: RunConfig) -> list[dict]:
    images = [decode_image(image_bytes[r.image]) for r in rows]
    first_prompt = {"answer-first": PLAIN_PROMPT, "grounding-first": BOX_PROMPT, "gcot": COT_PROMPT}[cfg.protocol]
    second_prompt = PLAIN_PROMPT if cfg.protocol == "grounding-first" else BOX_PROMPT
    turn1 = [[user_turn(f"{r.question}\n{first_prompt}")] for r in rows]
    first = gen(turn1, images, cfg.max_new_tokens_chain if cfg.protocol == "gcot" else cfg.max_new_tokens)
    turn2 = [conv + [assistant_turn(reply), user_turn(second_prompt, with_image=False)] for conv, reply in zip(turn1, first)]
    second = gen(turn2, images, cfg.max_new_tokens)
    out = []
    for r, image, a, b in zip(rows, images, first, second):
        rec = {  # the shards' mmgcot_id column reads back as provenance["mmgcot_id"] (arrow.from_row)
            "question_id": int(r.provenance["mmgcot_id"]), "id": r.id, "type": r.type, "img": r.image,
            "protocol": cfg.protocol, "model_id": gen.model_id, "prompt": f"{r.question}\n{first_prompt}",
        }
        if cfg.protocol == "answer-first":
            rec.update(text=a, coor=b)
        elif cfg.protocol == "grounding-first":
            rec.update(text=b, coor=a)
        else:
            rec.update(ori_text=a, cot=a, text=a.split(FINAL_ANSWER)[-1].strip(), coor=b)
        rec.update(gt_text=r.answer, gt_coor=format_box(r.answer_box), gt_cot=render_cot(r.steps), box_format=gen.box_format)
        size = gen.box_size(image)
        if size is not None:
            rec["box_size"] = size
        out.append(rec)
    return out


def run(cfg: RunConfig) -> Path:
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; choose from {', '.join(PROTOCOLS)}")
    out = check_output_file(cfg.out, "results file", [("the release", cfg.release), ("the model", cfg.model)], cfg.overwrite)  # before any loading
    examples, image_bytes = read_split(cfg.release, cfg.split)
    if cfg.limit:
        examples = examples[: cfg.limit]
    if examples and examples[0].image not in image_bytes:
        raise ValueError(f"{cfg.release}: the {cfg.split} split carries no images (converted without --images)")
    gen = Generator(cfg.model, cfg.device, cfg.box_format)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")  # ours alone: never a user's file of that name
    try:
        with open(tmp, "w") as f, tqdm(total=len(examples), desc=f"{cfg.protocol} on {cfg.split}", unit="sample") as bar:
            for rows in _batches(examples, cfg.batch_size):
                for rec in run_batch(gen, rows, image_bytes, cfg):
                    f.write(json.dumps(rec) + "\n")
                bar.update(len(rows))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # a run cut short leaves no partial file
    return out
