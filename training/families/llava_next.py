"""LLaVA-NeXT (``llava_next``) and LLaVA-OneVision (``llava_onevision``): "anyres" images, a base grid plus
high-resolution tiles with a learned row-end (newline) feature, all on ``<image>`` tokens; the processor
returns ``image_sizes`` (and OneVision ``batch_num_images``), which the model needs to unpad the tiles.

No box convention of their own is documented; corners on 0-1 of the image (``xyxy-norm``), as the
LLaVA data they were tuned on writes them (unpadded: anyres does not pad to a square).
"""

from __future__ import annotations

from training.families.base import Family

_ANYRES = "anyres images: a base grid plus tiles with row-end newline features per image, not one square grid to pool"


class LlavaNext(Family):
    name = "llava_next"
    model_types = ("llava_next",)
    box_format = "xyxy-norm"
    not_applicable = {"flashsloth": _ANYRES}


class LlavaOnevision(LlavaNext):
    name = "llava_onevision"
    model_types = ("llava_onevision",)
