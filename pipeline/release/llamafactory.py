"""A release as a LLaMA-Factory dataset: ShareGPT ``messages`` with ``images`` lists, and the
``dataset_info.json`` entries that register each split.

    OUT/dataset_info.json     {"gcot_train": {"file_name": "train.json", "formatting": "sharegpt", ...}, ...}
    OUT/<split>.json          [{"id": ..., "messages": [{"role": "user", "content": "<image>..."}, {"role": "assistant", ...}],
                                "images": ["images/<img>"]}, ...]
    OUT/images/<img>          each image once, as the release stores it

The rows are the release's LLaVA conversations (a plain row and a ``_cot`` row per example, boxes in
MM-GCoT's normalized ``xywh``), in release order. LLaMA-Factory reads ``<image>`` placeholders in the
user turn and one image per placeholder (its multimodal plugin raises otherwise), so every row is
checked for exactly as many ``<image>`` tokens as images; a row that is not (a question that itself
writes ``<image>``) is rejected with the reason ``image_token_count``, as is an example whose image
bytes the release does not hold (``image_missing``). Train with ``dataset_dir: OUT`` and
``dataset: gcot_train``; image paths are relative to the dataset folder (LLaMA-Factory's default
``media_dir``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core.schema import Example, Rejection
from pipeline.release import llava

IMAGE_TOKEN = "<image>"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def dataset_info(name: str, splits: list[str]) -> dict:
    """The ``dataset_info.json`` entries, one per split (``<name>_<split>``)."""
    return {f"{name}_{s}": {"file_name": f"{s}.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": TAGS}
            for s in splits}


def rows(ex: Example) -> list[dict]:
    """The example's conversations as ShareGPT rows (images not yet checked)."""
    out = []
    for conv in llava.conversations(ex):
        human, gpt = conv["conversations"][0]["value"], conv["conversations"][1]["value"]
        out.append({"id": conv["id"], "messages": [{"role": "user", "content": human}, {"role": "assistant", "content": gpt}],
                    "images": [f"images/{ex.image}"]})  # LLaVA's human turn already opens with "<image>\n"
    return out


def check(row: dict) -> str:
    """'' or why LLaMA-Factory would refuse the row: as many ``<image>`` tokens as images, in user turns only."""
    n = sum(m["content"].count(IMAGE_TOKEN) for m in row["messages"])
    if n != len(row["images"]) or any(IMAGE_TOKEN in m["content"] for m in row["messages"] if m["role"] != "user"):
        return f"{n} {IMAGE_TOKEN} tokens for {len(row['images'])} images"
    return ""


def write_dir(examples: list[Example], out: Path, image_bytes: Callable[[Example], bytes | None], name: str = "gcot") -> list[Rejection]:
    """Write the dataset into ``out`` (an empty folder); returns the rejected records."""
    rejected: list[Rejection] = []
    by_split: dict[str, list[dict]] = {}
    written: set[str] = set()
    for ex in examples:
        data = image_bytes(ex)
        if data is None:
            rejected.append(Rejection("convert", ex.id, "image_missing", f"the release holds no bytes of {ex.image}", ex.image))
            continue
        keep = []
        for row in rows(ex):
            why = check(row)
            if why:
                rejected.append(Rejection("convert", row["id"], "image_token_count", f"messages: {why}", f"{ex.split}.json"))
            else:
                keep.append(row)
        if not keep:
            continue
        if ex.image not in written:
            f = out / "images" / ex.image
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
            written.add(ex.image)
        by_split.setdefault(ex.split, []).extend(keep)
    for split, split_rows in by_split.items():
        (out / f"{split}.json").write_text(json.dumps(split_rows, indent=2, ensure_ascii=False) + "\n")
    (out / "dataset_info.json").write_text(json.dumps(dataset_info(name, list(by_split)), indent=2) + "\n")
    return rejected
