"""The one reader of a release for training: examples and images from its Parquet shards, the LLaVA
conversations made from them in memory, and how a conversation becomes model inputs.

A release folder (`pipeline/release/writer.py`) holds each split's examples in
``data/<split>-0000k-of-0000n.parquet`` and, derived from the same examples in the same order,
``llava/<split>.json``. Training reads the shards only: `read_split` gives a split's examples in
release order and each distinct image's bytes once; `Conversations` makes the LLaVA rows with the
release's own converter (`pipeline.release.llava.conversations`: per example a plain row, then its
``_cot`` row), so they are the rows ``llava/<split>.json`` holds (tested). Fine-tuning
(`training/finetune.py`), model runs over a split (`training/generate.py`), the tiny model's tokenizer
(`training/tiny_llava.py`, train split only) and the efficiency stages all read through here.

`encode` turns a list of conversations into one batch through the model's family (`training.families`):
its processor and chat template, every tensor the model needs, labels on the answer tokens only, the
answers' boxes in the family's convention (or MM-GCoT's, ``box_format="normalized"``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.schema import Example
from pipeline.evaluation import box_formats
from pipeline.release import llava
from pipeline.release.arrow import read_examples, read_images

IMAGE_PLACEHOLDER = "<image>\n"  # LLaVA JSON's mark of the image in the human turn; chat templates place the image instead


def split_files(release: str | Path, split: str) -> list[Path]:
    """The split's Parquet shards, in order."""
    files = sorted((Path(release) / "data").glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{release}: no {split} split (no data/{split}-*.parquet)")
    return files


class ReleaseError(ValueError):
    """A release that lacks what a command needs of it (a split, or the release itself)."""


def split_rows(release: str | Path, split: str) -> int:
    """How many examples the split holds (0 where it has no shard), from the shards' footers."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted((Path(release) / "data").glob(f"{split}-*.parquet")))


def check_splits(release: str | Path, needed: dict[str, str]) -> dict[str, int]:
    """Before a run starts: each split of ``needed`` (split -> what needs it) holds examples, else a
    `ReleaseError` naming the release, the split and what is there instead; returns the row counts."""
    data = Path(release) / "data"
    shards = sorted(data.glob("*.parquet"))
    if not shards:
        raise ReleaseError(f"{release}: not a release folder (no data/*.parquet); build one with `gcot build` (make demo)")
    present = sorted({f.name.split("-")[0] for f in shards})
    rows = {s: split_rows(release, s) for s in dict.fromkeys([*present, *needed])}
    for split, why in needed.items():
        if not rows[split]:
            have = ", ".join(f"{s} {n}" for s, n in rows.items() if n) or "no examples at all"
            raise ReleaseError(f"{release}: the {split} split is empty (no rows in data/{split}-*.parquet), and {why} needs it; the release holds {have}")
    return rows


def split_examples(release: str | Path, split: str) -> list[Example]:
    """The split's examples in release order (images not read)."""
    return read_examples(split_files(release, split))


def read_split(release: str | Path, split: str) -> tuple[list[Example], dict[str, bytes]]:
    """The split's examples in release order, and img path -> image bytes (once per distinct image;
    empty for a release converted without images)."""
    files = split_files(release, split)
    return read_examples(files), read_images(files)


def decode_image(data: bytes):
    """An image's bytes as an RGB PIL image, pixels as stored (no EXIF rotation: the release's sizes
    and boxes are measured on the stored pixels)."""
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def llava_rows(examples: Iterable[Example]) -> list[dict]:
    """The LLaVA rows of the examples, as the release writes them to ``llava/<split>.json``."""
    return [row for ex in examples for row in llava.conversations(ex)]


@dataclass(frozen=True)
class Conversation:
    id: str  # the example's id, with ``_cot`` for the chain row
    image: str  # the image's path in the release (the key of its bytes)
    user: str  # the question and its prompt: the human turn without the image placeholder
    answer: str  # the bare answer, or the step lines then "Final Answer: <answer>"

    @classmethod
    def from_llava(cls, row: dict) -> Conversation:
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        return cls(row["id"], row["image"], human.removeprefix(IMAGE_PLACEHOLDER), gpt)


ROWS = ("both", "plain", "cot")  # which of an example's two rows: MM-GCoT's pairs, or one kind alone (the paper's comparison)


class Conversations:
    """A split's LLaVA conversations (plain and ``_cot``, or only one kind: ``rows``), with the images
    from its Parquet shards."""

    def __init__(self, release: str | Path, split: str, rows: str = "both"):
        if rows not in ROWS:
            raise ValueError(f"rows {rows!r}: choose from {', '.join(ROWS)}")
        examples, self.images = read_split(release, split)
        self.rows = [c for c in (Conversation.from_llava(row) for row in llava_rows(examples)) if rows == "both" or c.id.endswith("_cot") == (rows == "cot")]

    def __len__(self) -> int:
        return len(self.rows)

    def item(self, i: int):
        """(RGB image, user text, answer) of conversation ``i``."""
        c = self.rows[i]
        return decode_image(self.images[c.image]), c.user, c.answer


def target_format(family, box_format: str) -> str:
    """The box format of training targets: ``family`` (the family's own convention), ``normalized``
    (MM-GCoT's ``xywh``, as the release writes it) or a `pipeline.evaluation.box_formats` name."""
    if box_format == "family":
        return family.box_format
    return "xywh-norm" if box_format == "normalized" else box_formats.get(box_format).name


def encode(family, processor, items: list[tuple], max_length: int, box_format: str = "family") -> dict:
    """A training batch of (image, user text, answer) items through the model's family (`training.families`):
    every tensor its processor makes, images nested per sample, right padding, labels on the answer tokens
    only; the answers' boxes rewritten in ``box_format`` (see `target_format`)."""
    fmt = box_formats.get(target_format(family, box_format))
    images = [im for im, _, _ in items]
    answers = [box_formats.rewrite(a, fmt, family.box_size(processor, *im.size, fmt.name)) for im, _, a in items]
    return family.encode(processor, images, [u for _, u, _ in items], answers, max_length)
