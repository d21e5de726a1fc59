"""Qwen3-VL (``qwen3_vl``): Qwen2-VL's inputs and interleaved multimodal RoPE, q/k norms in attention, and
DeepStack: features of early vision layers (``model.visual.deepstack_merger_list``, trained with the
merger) are added to the visual tokens' hidden states after the first decoder layers. The layer loop
carries those features with each visual token and adds them after the same layers.

Boxes: ``{"bbox_2d": [x1, y1, x2, y2]}`` on 0-1000.
"""

from __future__ import annotations

import torch

from training.families.qwen2_vl import Qwen2VL

_DEEPSTACK = "DeepStack adds per-token vision features to the original visual tokens in early layers; pooled tokens have none"


class Qwen3VL(Qwen2VL):
    name = "qwen3_vl"
    model_types = ("qwen3_vl",)
    projector = ("model.visual.merger", "model.visual.deepstack_merger_list")
    box_format = "qwen3-vl"
    not_applicable = {"flashsloth": _DEEPSTACK}

    def extra(self, lm_kwargs: dict, batch: dict) -> torch.Tensor | None:
        mask, feats = lm_kwargs.get("visual_pos_masks"), lm_kwargs.get("deepstack_visual_embeds")
        if mask is None or not feats:
            return None
        b, t = mask.shape
        out = feats[0].new_zeros(b, t, len(feats), feats[0].shape[-1])  # [B, T, K, D]
        out[mask] = torch.stack(feats, 1)  # [N_visual, K, D] onto the visual positions
        return out

    def after_layer(self, i, hidden, extra, vision):
        if extra is None or i >= extra.shape[2]:
            return hidden
        return hidden + extra[:, :, i].to(hidden.dtype) * vision[..., None].to(hidden.dtype)
