"""LLaVA-1.5 (``llava``): one CLIP grid per image on ``<image>`` tokens, a two-layer projector, a Llama-style decoder.

Its grounding data wrote boxes as ``[x1, y1, x2, y2]`` on 0-1 of the image padded to a centred square,
two decimals (``llava-1.5``).
"""

from __future__ import annotations

from training.families.base import Family


class Llava(Family):
    name = "llava"
    model_types = ("llava",)
    box_format = "llava-1.5"
