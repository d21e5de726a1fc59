"""Every family's box convention both ways (pipeline/evaluation/box_formats.py): box -> the family's text ->
box within the convention's quantisation, Qwen2.5-VL's resized frame included; strict evaluation reads
a results line in the convention it names."""

from __future__ import annotations

import random

import pytest

from pipeline.evaluation import box_formats, strict
from training.families import FAMILIES

SIZES = [(640, 480), (600, 450), (333, 517), (1024, 1024), (97, 1301)]


def _boxes(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        x, y = rng.uniform(0, 0.9), rng.uniform(0, 0.9)
        yield (x, y, rng.uniform(0.01, 1 - x), rng.uniform(0.01, 1 - y))


@pytest.mark.parametrize("name", box_formats.NAMES)
def test_every_format_round_trips_within_its_quantum(name):
    fmt = box_formats.get(name)
    for size in SIZES:
        q = fmt.quantum(size)
        for box in _boxes(200, seed=size[0]):
            text = fmt.format(box, size)
            back, why = fmt.parse(text, size)
            assert why == "" and back is not None, text
            # corners are what a format quantises: compare them (a width is the difference of two)
            for a, b in zip(box_formats._xyxy(box), box_formats._xyxy(back)):
                assert abs(a - b) <= q + 1e-12, (name, size, box, text, back)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_round_trips_its_own_convention(family, tmp_path):
    """Through the family (its processor's frame where the convention is in pixels)."""
    fam = FAMILIES[family]
    fmt = fam.boxes()
    processor = _Qwen25Processor() if family == "qwen2_5_vl" else None
    for size in SIZES:
        frame = fam.box_size(processor, *size)
        assert (frame is not None) == fmt.needs_size
        for box in _boxes(50):
            back, why = fmt.parse(fmt.format(box, frame), frame)
            assert why == "" and max(abs(a - b) for a, b in zip(box_formats._xyxy(box), box_formats._xyxy(back))) <= fmt.quantum(frame) + 1e-12


class _Qwen25Processor:
    """Qwen2.5-VL's real image processor at its default pixel limits."""

    def __init__(self):
        from transformers import Qwen2VLImageProcessor

        self.image_processor = Qwen2VLImageProcessor()


def test_qwen25_boxes_are_pixels_of_the_resized_image():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    fam = FAMILIES["qwen2_5_vl"]
    proc = _Qwen25Processor()
    ip = proc.image_processor
    w, h = fam.box_size(proc, 641, 479)
    assert (h, w) == smart_resize(479, 641, factor=ip.patch_size * ip.merge_size, min_pixels=ip.size["shortest_edge"], max_pixels=ip.size["longest_edge"])
    assert w % 28 == 0 and h % 28 == 0 and (w, h) != (641, 479)  # the rounding the convention carries
    text = fam.boxes().format((0.5, 0.5, 0.5, 0.5), (w, h))
    assert text == f'{{"bbox_2d": [{round(w / 2)}, {round(h / 2)}, {w}, {h}]}}'
    # read against the stored image's size instead, the same text is a different box
    wrong, _ = fam.boxes().parse(text, (641, 479))
    assert abs(wrong[0] - 0.5) > 0.001 or abs(wrong[1] - 0.5) > 0.001
    # above max_pixels the image shrinks: boxes follow the frame, not the stored pixels
    big = fam.box_size(proc, 8000, 6000)
    assert big[0] * big[1] <= ip.size["longest_edge"] and big[0] < 8000


def test_known_texts():
    box = (0.25, 0.125, 0.5, 0.25)  # corners (0.25, 0.125) - (0.75, 0.375)
    fmts = box_formats.FORMATS
    assert fmts["xywh-norm"].format(box) == "[0.250, 0.125, 0.500, 0.250]"
    assert fmts["qwen2-vl"].format(box) == "<|box_start|>(250,125),(750,375)<|box_end|>"
    assert fmts["qwen3-vl"].format(box) == '{"bbox_2d": [250, 125, 750, 375]}'
    assert fmts["internvl"].format(box) == "<box>[[250, 125, 750, 375]]</box>"
    assert fmts["paligemma"].format(box) == "<loc0128><loc0256><loc0384><loc0768>"  # y1 x1 y2 x2, 1024 bins
    # LLaVA-1.5 pads 600 x 450 to a 600 x 600 square, 75 px above and below
    assert fmts["llava-1.5"].format((0.0, 0.0, 1.0, 1.0), (600, 450)) == "[0.00, 0.12, 1.00, 0.88]"
    # a decoder that dropped the special tokens still reads
    assert fmts["qwen2-vl"].parse("(250,125),(750,375)")[0] == pytest.approx(box)
    assert fmts["paligemma"].parse("<loc0128><loc0256> the cube")[1] == "fewer_than_4_loc_tokens"
    with pytest.raises(ValueError, match="is in pixels"):
        fmts["qwen2.5-vl"].format(box)
    with pytest.raises(ValueError, match="unknown box format 'qwen'; choose from xywh-norm"):
        box_formats.get("qwen")


def test_rewrite_puts_a_chain_in_the_family_convention():
    chain = "Step 1: The ball is at [0.250, 0.125, 0.500, 0.250]\nStep 2: The cube left of the ball is at [0.000, 0.500, 0.100, 0.100]"
    out = box_formats.rewrite(chain, box_formats.get("internvl"))
    assert out == "Step 1: The ball is at <box>[[250, 125, 750, 375]]</box>\nStep 2: The cube left of the ball is at <box>[[0, 500, 100, 600]]</box>"
    assert box_formats.rewrite(chain, box_formats.get("xywh-norm")) == chain


def test_strict_evaluation_reads_each_line_in_its_own_convention():
    gt = "[0.250, 0.125, 0.500, 0.250]"
    box = (0.25, 0.125, 0.5, 0.25)
    lines = [
        {"text": "Red", "gt_text": "Red", "coor": box_formats.get("paligemma").format(box), "gt_coor": gt, "img": "a.jpg", "box_format": "paligemma"},
        {"text": "Red", "gt_text": "Red", "coor": box_formats.get("qwen2.5-vl").format(box, (112, 84)), "gt_coor": gt, "img": "a.jpg",
         "box_format": "qwen2.5-vl", "box_size": [112, 84]},
        {"text": "Red", "gt_text": "Red", "coor": box_formats.get("internvl").format(box), "gt_coor": gt, "img": "a.jpg", "box_format": "internvl",
         "cot": f"Step 1: x is at {box_formats.get('internvl').format(box)}", "gt_cot": f"Step 1: x is at {gt}"},
    ]
    rep = strict.evaluate(lines, bootstrap=0)
    assert rep["grounding_accuracy"] == 100 and rep["steps"]["recall"] == 100 and rep["box_format"] == "internvl/paligemma/qwen2.5-vl"
    # the same lines read as MM-GCoT's xywh (an explicit --box-format overrides the lines) are misses
    assert strict.evaluate(lines, box_format="xywh-norm", bootstrap=0)["grounding_accuracy"] < 100
