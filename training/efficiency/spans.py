"""Per-sample vision and text spans of a batch, from input_ids and the image token id(s).

The official codes of these methods hard-code prompt offsets (35 system tokens, 576 image tokens) and
batch size 1. Here each sample's spans are read off its own tokens: the vision span runs from its first
image token to its last, and its ``image`` mask holds the image tokens themselves, so a tiled image
(Idefics3, SmolVLM, InternVL: several image-token runs with tile markers between them) is one span
whose markers are not visual tokens; what follows the last image token is the text span (the
instruction), up to the first labelled token when labels are given (teacher forcing: the answer span,
which no method may look at, as it does not exist at prefill); what precedes the image is the system
prefix. Padding may be on either side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spans:
    vision: torch.Tensor  # [B, 2] long: [start, end) of the image tokens
    text: torch.Tensor  # [B, 2] long: [end of image, first answer token or last real token + 1)
    system: torch.Tensor  # [B, 2] long: [first real token, start of image)
    answer: torch.Tensor  # [B, 2] long: [first labelled token, last real token + 1); empty without labels
    image: torch.Tensor  # [B, T] bool: the image tokens (inside the vision span; tile markers are not)

    def mask(self, which: str, length: int) -> torch.Tensor:
        """[B, length] bool of the positions inside span ``which`` ("vision": the image tokens only, "text",
        "system", "answer")."""
        if which == "vision":
            return self.image[:, :length]
        span = getattr(self, which)
        pos = torch.arange(length, device=span.device)[None, :]
        return (pos >= span[:, :1]) & (pos < span[:, 1:])


def find_spans(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, image_token_id: int | list[int], labels: torch.Tensor | None = None) -> Spans:
    """Spans of every sample; a clear error when a sample has no image token."""
    b, t = input_ids.shape
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    ids = torch.tensor([image_token_id] if isinstance(image_token_id, int) else list(image_token_id), device=input_ids.device)
    is_img = torch.isin(input_ids, ids) & real
    n_img = is_img.sum(1)
    if (n_img == 0).any():
        raise ValueError(f"samples {torch.nonzero(n_img == 0).flatten().tolist()} have no image token (id {image_token_id})")
    pos = torch.arange(t, device=input_ids.device).expand(b, t)
    v_start = pos.masked_fill(~is_img, t).amin(1)
    v_end = pos.masked_fill(~is_img, -1).amax(1) + 1
    first = pos.masked_fill(~real, t).amin(1)
    last = pos.masked_fill(~real, -1).amax(1) + 1
    answer = last.clone()
    if labels is not None:
        labelled = (labels != -100) & real
        answer = torch.where(labelled.any(1), pos.masked_fill(~labelled, t).amin(1), last)
        if (answer <= v_start).any():
            raise ValueError(f"samples {torch.nonzero(answer <= v_start).flatten().tolist()} have labels before their image")
    return Spans(vision=torch.stack([v_start, v_end], 1), text=torch.stack([v_end, answer], 1), system=torch.stack([first, v_start], 1),
                 answer=torch.stack([answer, last], 1), image=is_img)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """RoPE positions as generation makes them: real tokens count from 0 whatever the padding side."""
    pos = attention_mask.long().cumsum(1) - 1
    return pos.clamp(min=0)
