"""The wording checks every written text passes, templates included: articles, doubled words, the
alias table; verification's question_wording rule; LongV-EVAL's prompt form (the subject named,
"an orange backdrop"); and the card's keyframe sheet."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image

from core.schema import EDIT_KINDS, Subject, TrackPoint
from pipeline import wording
from pipeline.longv import prompts
from pipeline.verify import example_failures
from tests.texts import longv_item, tracked, verified_tabletop


@pytest.fixture(scope="module")
def table():
    return verified_tabletop()


def test_articles_agree_with_the_next_sound():
    assert wording.with_article("orange backdrop") == "an orange backdrop"
    assert wording.with_article("yellow taxi", capital=True) == "A yellow taxi"
    assert [wording.article_for(w) for w in ("hour", "unicorn", "one", "umbrella", "euro", "igloo", "hot-air")] == ["an", "a", "a", "an", "a", "an", "a"]
    assert [r for r, _ in wording.grammar_failures("A cube on a orange backdrop.")] == ["article_agreement"]
    assert [r for r, _ in wording.grammar_failures("An cube near the the ball.")] == ["article_agreement", "doubled_word"]
    assert wording.grammar_failures("An hour on an orange tray near a unicorn, a 3D cube.") == []


def test_names_takes_aliases_and_plurals():
    assert wording.names("What colour is the cube to the left of the balls?", "left of")
    assert wording.names("What colour is it?", "color") and wording.names("the balls", "ball")
    assert not wording.names("the cube right of the ball", "left of")
    assert wording.missing("the grey cube under the ball", ["gray", "cube", "below", "ball", "metal"]) == ["metal"]


def test_verification_checks_the_wording_of_every_question(table):
    g, rg, exs = table
    ex = copy.deepcopy(exs[("attribute", "What is the color of the cube under the blue ball?")])
    ex.question = "What is the color of the the cube under a blue ball?"
    assert [r for r, _ in example_failures(ex, g, rg)] == ["question_wording"]


def test_template_prompts_pass_their_own_checks_whatever_the_colour():
    for colour in ("orange", "red", "indigo", "umber"):
        for vid in range(40):
            subjects = [tracked("cube", colour), Subject(2, "ring", "orange", 0.8, [TrackPoint(0, (0.2, 0.2, 0.1, 0.1))] * 2)]
            d = prompts.draft(f"{vid:05d}", 0, subjects, colour)
            item = longv_item(subjects, **{k: d[k] for k in EDIT_KINDS})
            item.style_name = d["style_name"]
            assert prompts.prompt_failures(item) == [], (d, prompts.prompt_failures(item))
            assert prompts.caption_failures(prompts.caption(subjects, colour, "static", 2), item) == []
    assert "on an orange backdrop" in prompts.draft("00000", 0, [tracked("cube", "red")], "orange")["foreground"]


def test_prompts_must_name_the_subject_and_read_right():
    item = longv_item([tracked()], background="A dog runs across a misty pine forest.", style="Comic-style red cube slides in a orange world.")
    assert [r for r, _ in prompts.prompt_failures(item)] == ["background_subject_not_named", "style_article_agreement"]
    assert prompts.prompt_failures(longv_item([], background="A dog runs across the moon.", style="Comic-style scene in a vivid world.")) == []  # no subject: nothing to name


def test_keyframe_sheet_draws_every_keyframe_in_its_own_cell(tmp_path):
    from data_cards.plots import CELL, GAP, LABEL, keyframe_sheet

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    items = []
    for vid, size in (("wide", (320, 180)), ("tall", (180, 320))):
        d = tmp_path / vid
        d.mkdir()
        for k, colour in enumerate(colours):
            Image.new("RGB", size, colour).save(d / f"{k * 100:06d}.jpg", quality=95)
        items.append(longv_item([]))
        items[-1].id = vid
    sheet = np.asarray(keyframe_sheet(items, tmp_path)).astype(int)
    cw, ch = CELL
    for k, colour in enumerate(colours):
        x = LABEL + k * (cw + GAP)
        wide = sheet[GAP : GAP + ch, x : x + cw]
        assert np.abs(wide - colour).max() < 40  # the whole cell: full width
        assert (sheet[GAP : GAP + ch, x + cw : x + cw + GAP] > 240).all()  # white gap before the next one
        tall = sheet[GAP + ch + 14 + GAP :, x : x + cw][:ch]
        painted = np.where(np.abs(tall - colour).max(axis=(0, 2)) < 40)[0]
        assert abs(len(painted) - round(ch * 180 / 320)) <= 2  # a portrait frame keeps its aspect
