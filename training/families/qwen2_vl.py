"""Qwen2-VL (``qwen2_vl``) and Qwen2.5-VL (``qwen2_5_vl``): dynamic-resolution patches (``pixel_values``
[patches, C*T*P*P] with ``image_grid_thw``), a patch merger as the projector (``model.visual.merger``),
and multimodal RoPE: positions on three axes (time, height, width) that the model computes from
``mm_token_type_ids`` and the grid; the layer loop carries all three with the kept tokens.

Boxes: Qwen2-VL writes ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` on 0-1000; Qwen2.5-VL absolute
pixels of the image *as resized by its processor* (sides rounded to multiples of patch x merge = 28
within min/max pixels), ``{"bbox_2d": [x1, y1, x2, y2]}``.
"""

from __future__ import annotations

from training.families.base import Family

_MROPE = "multimodal RoPE: a pooled grid has no positions the model defines (its height/width axes are the grid's)"


class Qwen2VL(Family):
    name = "qwen2_vl"
    model_types = ("qwen2_vl",)
    vision = "model.visual"
    projector = ("model.visual.merger",)
    box_format = "qwen2-vl"
    mrope = True
    not_applicable = {"flashsloth": _MROPE}


def resized_size(image_processor, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the image as Qwen's image processor resizes it (what its pixel boxes refer to)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    size = image_processor.size
    factor = image_processor.patch_size * image_processor.merge_size
    h, w = smart_resize(height, width, factor=factor, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
    return w, h


class Qwen2_5VL(Qwen2VL):
    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    box_format = "qwen2.5-vl"

    def frame(self, processor, width: int, height: int) -> tuple[int, int]:
        return resized_size(processor.image_processor, width, height)
