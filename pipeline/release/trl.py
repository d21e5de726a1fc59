"""A release as a TRL dataset: Parquet with ``messages`` (conversational, typed content parts) and
``images``, loadable with ``datasets.load_dataset(OUT)`` and taken by ``trl.SFTTrainer`` as it is.

    OUT/<split>.parquet   id, messages [{role, content: [{type: "image"} | {type: "text", text}]}], images [Image]

The rows are the release's LLaVA conversations (a plain row and a ``_cot`` row per example, boxes in
MM-GCoT's normalized ``xywh``), in release order; the image placeholder of LLaVA's human turn becomes
an ``{"type": "image"}`` part, which TRL's collator (the processor's chat template) expands. Every row
is checked for as many image parts as images (``image_token_count``: a question that writes ``<image>``
itself would be read as a second image by templates that keep the text), and an example whose image
bytes the release does not hold is rejected (``image_missing``). The image bytes are embedded in each
row (``datasets``' Image feature), so the folder stands alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.schema import Example, Rejection
from pipeline.release import llava

IMAGE_TOKEN = "<image>"
PLACEHOLDER = "<image>\n"  # how LLaVA's human turn marks the image


def features():
    from datasets import Features, Image, List, Value

    part = {"type": Value("string"), "text": Value("string")}
    return Features({"id": Value("string"), "messages": List({"role": Value("string"), "content": List(part)}), "images": List(Image())})


def rows(ex: Example, data: bytes) -> list[dict]:
    out = []
    for conv in llava.conversations(ex):
        human, gpt = conv["conversations"][0]["value"], conv["conversations"][1]["value"]
        user = [{"type": "image", "text": None}, {"type": "text", "text": human.removeprefix(PLACEHOLDER)}]
        out.append({"id": conv["id"], "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": [{"type": "text", "text": gpt}]}],
                    "images": [{"bytes": data, "path": Path(ex.image).name}]})
    return out


def check(row: dict) -> str:
    """'' or why a trainer would pair the row's images wrongly: one image part per image, none written as text."""
    parts = [p for m in row["messages"] for p in m["content"]]
    n = sum(p["type"] == "image" for p in parts)
    text = sum((p["text"] or "").count(IMAGE_TOKEN) for p in parts if p["type"] == "text")
    if n != len(row["images"]) or text:
        return f"{n} image parts and {text} {IMAGE_TOKEN} in the text for {len(row['images'])} images"
    return ""


def write_dir(examples: list[Example], out: Path, image_bytes: Callable[[Example], bytes | None]) -> list[Rejection]:
    """Write one Parquet file per split into ``out`` (an empty folder); returns the rejected records."""
    from datasets import Dataset

    rejected: list[Rejection] = []
    by_split: dict[str, list[dict]] = {}
    for ex in examples:
        data = image_bytes(ex)
        if data is None:
            rejected.append(Rejection("convert", ex.id, "image_missing", f"the release holds no bytes of {ex.image}", ex.image))
            continue
        for row in rows(ex, data):
            why = check(row)
            if why:
                rejected.append(Rejection("convert", row["id"], "image_token_count", f"messages: {why}", f"{ex.split}.parquet"))
            else:
                by_split.setdefault(ex.split, []).append(row)
    for split, split_rows in by_split.items():
        ds = Dataset.from_list(split_rows, features=features())
        ds.to_parquet(str(out / f"{split}.parquet"))
    return rejected
