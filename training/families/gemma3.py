"""Gemma 3 (``gemma3``): a SigLIP image pooled to ``mm_tokens_per_image`` soft tokens between
``<start_of_image>`` and ``<end_of_image>``; the image's tokens attend to each other both ways
(``token_type_ids`` marks them); sliding-window and global layers alternate, each with its own RoPE base;
norms after attention and around the MLP; embeddings scaled by sqrt(hidden) inside the embedding.

No box convention of its own: MM-GCoT's normalized ``xywh``.
"""

from __future__ import annotations

import torch

from training.families.base import Family


class Gemma3(Family):
    name = "gemma3"
    model_types = ("gemma3",)

    def image_token_ids(self, processor) -> list[int]:
        return [processor.tokenizer.image_token_id]  # processor.image_token_id is <start_of_image>

    def blocks(self, batch: dict) -> torch.Tensor:
        """Each contiguous run of image tokens is one bidirectional block (as Gemma 3's own mask)."""
        tti = batch.get("token_type_ids")
        if tti is None:
            return super().blocks(batch)
        image = tti == 1
        start = image & ~torch.nn.functional.pad(image, (1, 0))[:, :-1]
        return torch.where(image, start.long().cumsum(1) - 1, -1)
