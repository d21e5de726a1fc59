"""InternVL (``internvl``, the Hugging Face port of InternVL2.5/3): dynamic tiles of 448 px plus a thumbnail,
each ``image_seq_length`` ``<IMG_CONTEXT>`` tokens between ``<img>`` and ``</img>``; pixel-shuffle MLP
projector (``model.multi_modal_projector``).

Boxes: ``<box>[[x1, y1, x2, y2]]</box>`` on 0-1000.
"""

from __future__ import annotations

from training.families.base import Family


class InternVL(Family):
    name = "internvl"
    model_types = ("internvl",)
    box_format = "internvl"
    not_applicable = {"flashsloth": "dynamic tiling: several tile grids per image, not one grid to pool"}
