import pytest

from core.boxes import (
    find_boxes,
    format_box,
    from_abs_xywh,
    from_abs_xyxy,
    inside_image,
    iou,
    parse_box,
    quantize,
    replace_last_box,
    to_abs_xyxy,
)


def test_format_is_mmgcot_three_decimals():
    assert format_box((0.21, 0.0583, 0.4351, 0.15)) == "[0.210, 0.058, 0.435, 0.150]"


def test_parse_round_trips_and_rejects_non_boxes():
    assert parse_box("[0.210, 0.058, 0.435, 0.150]") == (0.21, 0.058, 0.435, 0.15)
    with pytest.raises(ValueError):
        parse_box("[0.1, 0.2, 0.3]")


def test_quantize_makes_text_and_box_agree():
    b = quantize((0.12345, 0.5, 0.33333, 0.1))
    assert parse_box(format_box(b)) == b


def test_replace_last_box_rewrites_only_the_literal():
    t = "The hat on the man is at [0.210, 0.058, 0.435, 0.150].  "
    assert replace_last_box(t, (0.1, 0.2, 0.3, 0.4)) == "The hat on the man is at [0.100, 0.200, 0.300, 0.400].  "
    assert find_boxes("no box here") == []


def test_border_conversions():
    assert from_abs_xywh(64, 48, 320, 240, 640, 480) == (0.1, 0.1, 0.5, 0.5)
    assert from_abs_xyxy(64, 48, 384, 288, 640, 480) == (0.1, 0.1, 0.5, 0.5)
    assert to_abs_xyxy((0.1, 0.1, 0.5, 0.5), 640, 480) == pytest.approx((64, 48, 384, 288))


def test_iou_on_xywh():
    assert iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == 1.0
    assert iou((0, 0, 0.5, 0.5), (0.25, 0, 0.5, 0.5)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0
    assert inside_image((0, 0, 1, 1)) and not inside_image((0.6, 0, 0.5, 0.2))
