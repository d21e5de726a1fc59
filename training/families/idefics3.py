"""Idefics3 (``idefics3``) and SmolVLM (``smolvlm``): each image split into tiles plus a global view, each a
run of ``<image>`` tokens between ``<fake_token_around_image>`` and ``<row_i_col_j>`` markers (several
image-token runs per image); ``pixel_values`` [B, tiles, C, H, W] with ``pixel_attention_mask``; a
pixel-shuffle connector (``model.connector``) as the projector; the decoder is ``model.text_model``.

No box convention of their own: MM-GCoT's normalized ``xywh``.
"""

from __future__ import annotations

from training.families.base import Family

_TILES = "tiled images: several grids (tiles and a global view) per image, not one grid to pool"


class Idefics3(Family):
    name = "idefics3"
    model_types = ("idefics3",)
    decoder = "model.text_model"
    vision = "model.vision_model"
    projector = ("model.connector",)
    not_applicable = {"flashsloth": _TILES}


class SmolVLM(Idefics3):
    name = "smolvlm"
    model_types = ("smolvlm",)
