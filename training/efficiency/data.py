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
    """(model, processor) from a fine-tuning run folder or a plain checkpoint, eval mode, float32 on CPU;
    the processor prepared by the model's family (`training.families`)."""
    from training import families

    path = Path(path)
    if (path / "merged" / "config.json").exists():
        path = path / "merged"
    if (path / "config.json").exists():
        model, processor, _ = families.load(path, dtype=torch.float32)
    elif (path / "base" / "config.json").exists() and (path / "adapter").is_dir():
        from peft import PeftModel

        base, processor, _ = families.load(path / "base", dtype=torch.float32)
        model = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
        run = path / "config.yaml"
        if run.exists() and not getattr(model.config, "gcot_box_format", None):  # what finetune.py wrote its targets in
            import yaml

            from training.data import target_format

            fmt = (yaml.safe_load(run.read_text()) or {}).get("box_format")
            if fmt:
                model.config.gcot_box_format = target_format(families.family_of(model.config), fmt)
    else:
        raise FileNotFoundError(f"{path}: neither a checkpoint (config.json), a run with merged/, nor a run with base/ + adapter/")
    return model.to(device).eval(), processor


def release_batches(release: str | Path, processor, family, split: str, batch_size: int, limit: int | None = None, seed: int = 0,
                    max_length: int = 384, shuffle: bool = False, box_format: str = "normalized"):
    """Batches as fine-tuning makes them (`training.data.encode` through the model's ``family``: every tensor
    of the processor, labels on the answer tokens), right-padded, the answers' boxes in ``box_format`` (what
    the model was fine-tuned on: `box_format_of`)."""
    from training.data import Conversations, encode

    data = Conversations(release, split)
    idx = list(range(len(data)))
    if shuffle:
        random.Random(seed).shuffle(idx)
    if limit:
        idx = idx[:limit]
    return [encode(family, processor, [data.item(i) for i in idx[s:s + batch_size]], max_length, box_format) for s in range(0, len(idx), batch_size)]


def box_format_of(model) -> str:
    """The box format a fine-tuned model's targets were written in (MM-GCoT's when it was never recorded)."""
    return getattr(model.config, "gcot_box_format", None) or "normalized"


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
