"""The model and the batches the efficiency stages work on.

A run folder of `training/finetune.py` holds ``merged/`` (base + LoRA merged, written by its evaluation)
or ``base/`` + ``adapter/``; either way the stages get one plain model with the LoRA merged in, since
pruning and routing act on the decoder's own modules. Batches are the release's LLaVA conversations
(`training.data`, the reader fine-tuning uses), encoded as fine-tuning encodes them: prompt + answer with
labels on the answer tokens, so next-token agreement can be measured on the answer by teacher forcing.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch


def load_model(path: str | Path, device: str = "cpu"):
    """(model, processor) from a fine-tuning run folder or a plain checkpoint, eval mode, float32 on CPU."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if (path / "merged" / "config.json").exists():
        path = path / "merged"
    if (path / "config.json").exists():
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    elif (path / "base" / "config.json").exists() and (path / "adapter").is_dir():
        from peft import PeftModel

        base = AutoModelForImageTextToText.from_pretrained(path / "base", local_files_only=True, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
        processor = AutoProcessor.from_pretrained(path / "base", local_files_only=True)
    else:
        raise FileNotFoundError(f"{path}: neither a checkpoint (config.json), a run with merged/, nor a run with base/ + adapter/")
    return model.to(device).eval(), processor


def release_batches(release: str | Path, processor, split: str, batch_size: int, limit: int | None = None, seed: int = 0,
                    max_length: int = 384, shuffle: bool = False):
    """Lists of collated batches (input_ids, attention_mask, labels, pixel_values), right-padded."""
    from training.data import Conversations, collate, encode

    data = Conversations(release, split)
    idx = list(range(len(data)))
    if shuffle:
        random.Random(seed).shuffle(idx)
    if limit:
        idx = idx[:limit]
    pad = processor.tokenizer.pad_token_id
    out = []
    for s in range(0, len(idx), batch_size):
        items = [encode(processor, *data.item(i), max_length) for i in idx[s:s + batch_size]]
        out.append(collate(items, pad))
    return out


def answer_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions t whose hidden state predicts a labelled token t+1: ([B, P] positions, [B, P] valid)."""
    pred = torch.zeros_like(labels, dtype=torch.bool)
    pred[:, :-1] = labels[:, 1:] != -100
    counts = pred.sum(1)
    p = int(counts.max())
    pos = torch.zeros(labels.shape[0], p, dtype=torch.long)
    valid = torch.arange(p)[None, :] < counts[:, None]
    for b in range(labels.shape[0]):
        where = torch.nonzero(pred[b]).flatten()
        pos[b] = where[0] if len(where) else 0  # padding slots repeat a real position, so lookups stay valid
        pos[b, : counts[b]] = where
    return pos, valid


def answer_logits(loop, result, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced answer predictions of a run: (logits [B, P, V], targets [B, P], valid [B, P])."""
    pos, valid = answer_positions(batch["labels"])
    logits = loop.logits(result.hidden_at(pos)).float()
    targets = torch.gather(batch["labels"], 1, (pos + 1).clamp(max=batch["labels"].shape[1] - 1))
    return logits, targets.masked_fill(~valid, 0), valid


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per sample [B] over its valid answer tokens."""
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [B, P]
    return (ce * valid).sum(1) / valid.sum(1).clamp(min=1)
