import pytest

from core.boxes import (
    find_boxes,
    format_box,
    from_abs_xywh,
    from_abs_xyxy,
    inside_image,
    intersection,
    intersection_over_first,
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


def test_replace_last_box_round_trips_one_two_and_no_box():
    one = "The cup is at [0.210, 0.058, 0.435, 0.150]."
    moved = replace_last_box(one, (0.1, 0.2, 0.3, 0.4))
    assert moved == "The cup is at [0.100, 0.200, 0.300, 0.400]."
    assert replace_last_box(moved, find_boxes(one)[-1][0]) == one
    assert replace_last_box(one, "[box]") == "The cup is at [box]."
    two = "The cup [0.500, 0.500, 0.100, 0.100] is left of the plate at [0.210, 0.058, 0.435, 0.150]."
    placeholder = replace_last_box(two, "[box]")
    assert placeholder == "The cup [0.500, 0.500, 0.100, 0.100] is left of the plate at [box]."
    assert placeholder.replace("[box]", format_box(find_boxes(two)[-1][0])) == two
    moved = replace_last_box(two, (0.1, 0.2, 0.3, 0.4))
    assert [b for b, _ in find_boxes(moved)] == [(0.5, 0.5, 0.1, 0.1), (0.1, 0.2, 0.3, 0.4)]  # only the last box moves
    assert replace_last_box(moved, (0.21, 0.058, 0.435, 0.15)) == two
    none = "The cup is on the table."
    assert replace_last_box(none, (0.1, 0.2, 0.3, 0.4)) == none and replace_last_box(none, "[box]") == none


def test_border_conversions():
    assert from_abs_xywh(64, 48, 320, 240, 640, 480) == (0.1, 0.1, 0.5, 0.5)
    assert from_abs_xyxy(64, 48, 384, 288, 640, 480) == (0.1, 0.1, 0.5, 0.5)
    assert to_abs_xyxy((0.1, 0.1, 0.5, 0.5), 640, 480) == pytest.approx((64, 48, 384, 288))


def test_iou_on_xywh():
    assert iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == 1.0
    assert iou((0, 0, 0.5, 0.5), (0.25, 0, 0.5, 0.5)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0
    assert inside_image((0, 0, 1, 1)) and not inside_image((0.6, 0, 0.5, 0.2))


def test_intersection_is_the_overlap_area_in_the_boxes_units():
    assert intersection((0, 0, 0.5, 0.5), (0.25, 0, 0.5, 0.5)) == 0.125
    assert intersection((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0
    assert intersection((10, 20, 100, 50), (60, 0, 100, 40)) == 50 * 20  # pixel boxes (the synthetic renderer's)
    assert intersection_over_first((0.25, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == 0.5
