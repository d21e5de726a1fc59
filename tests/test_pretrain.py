"""The grounding model: pretraining learns, refuses the test images, and the shipped checkpoint
reproduces its recorded held-out outputs; the plain-vs-GCoT experiment's statistics."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.strict import metrics
from pipeline.steps import BuildConfig, run_plain
from training import pretrain_tasks as tasks
from training.experiment import paired_bootstrap
from training.pretrain import SCORES, SHIPPED, main, run_heldout, scene_image, scores

TINY = ["--image-size", "64", "--patch-size", "16", "--vision-hidden", "32", "--vision-layers", "1", "--text-hidden", "64",
        "--text-layers", "1", "--heads", "2", "--vocab-size", "400", "--batch-size", "8", "--units", "2", "--vision-steps", "10"]


def test_a_few_pretraining_steps_lower_the_loss_and_write_a_loadable_checkpoint(tmp_path):
    from training import families

    out = tmp_path / "model"
    assert main(["--scenes", "24", "--scene-seed", "31", "--work", str(tmp_path / "work"), "--avoid", str(tmp_path / "none"), "--steps", "40",
                 "--lr", "3e-3", "--warmup", "5", "--heldout", "3", "--subset", "1", "--out", str(out), *TINY]) == 0
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert len(log) == 40
    assert sum(r["loss"] for r in log[-5:]) / 5 < 0.7 * log[0]["loss"], (log[0]["loss"], log[-5:])
    record = json.loads((out / "pretrain.json").read_text())
    assert record["recipe"]["steps"] == 40 and record["time"]["wall_s"] >= 0 and set(record["heldout"]) >= {"refer_box_accuracy", "name_box_accuracy", "answer_accuracy", "loss_own_image", "loss_other_image"}
    held = json.loads((out / "heldout.json").read_text())
    assert [i["kind"] for i in held["items"]] == ["refer", "region", "question", "name"]
    model, processor, family = families.load(out)  # an ordinary checkpoint, as fine-tuning and the runner load it
    assert family.name == "llava" and model.config.gcot_box_format == "xywh-norm"
    assert processor.tokenizer.tokenize("0.125") == ["0", ".", "1", "2", "5"]  # one token a digit
    assert (out / "README.md").read_text().startswith("# gcot-grounding") and (out / "loss.png").is_file()


def test_pretraining_stops_when_a_scene_is_a_test_image_of_the_release_to_avoid(tmp_path, capsys):
    avoid = tmp_path / "avoid"
    # every scene of seed 5 in the test split: the pretraining release of the same scenes trains on some of them
    run_plain(BuildConfig(source="synthetic", images=20, seed=5, split_ratios=(0.0, 0.0, 1.0), out=str(avoid), work_dir=str(tmp_path / "w1")))
    assert main(["--scenes", "20", "--scene-seed", "5", "--work", str(tmp_path / "work"), "--avoid", str(avoid), "--steps", "1", "--out", str(tmp_path / "m"), *TINY]) != 0
    assert re.search(rf"{re.escape(str(avoid))}: \d+ of its test images are among the pretraining scenes", capsys.readouterr().err)
    assert not (tmp_path / "m").exists()  # nothing trained, nothing written


def test_a_vision_tower_checkpoint_that_is_not_there_is_refused_before_anything_runs(tmp_path, capsys):
    assert main(["--vision-from", str(tmp_path / "nothing"), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "m"), *TINY]) != 0
    assert f"--vision-from {tmp_path / 'nothing'}: no model.safetensors there" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "work").exists()  # no scene built either


def test_curriculum_units_never_teach_a_chain():
    scene = tasks.Scene("vg/VG_100K/1.jpg", refer=[("the red ball", "[0.100, 0.100, 0.200, 0.200]")],
                        region=[("[0.100, 0.100, 0.200, 0.200]", "small red metal ball")],
                        qa=[("What is the color of the ball?", "Red", "[0.100, 0.100, 0.200, 0.200]")], inventory=[(tasks.COUNT_PROMPT, "1")])
    import random

    turns = [t for seed in range(40) for t in tasks.conversation(scene, random.Random(seed), 3)]
    assert {a for _, a in turns} == {"[0.100, 0.100, 0.200, 0.200]", "Small red metal ball", "Red", "1"}
    assert not any("Step" in a or "Final Answer" in a for _, a in turns)
    assert tasks.phrase_of("The cylinder on the ball is at [0.1, 0.2, 0.3, 0.4]") == "the cylinder on the ball"
    assert tasks.phrase_of("The color of the ball is red.") is None


def test_patch_labels_give_every_object_a_patch_and_the_digits_the_decoder_writes():
    scene = tasks.Scene("x.jpg", objects=[((0.1, 0.1, 0.5, 0.5), "large red metal cube"), ((0.72, 0.72, 0.04, 0.04), "small blue glass ball")])
    y = tasks.patch_labels(scene, 10)
    from core.boxes import format_box
    from pipeline.sources.synthetic import COLORS

    blue, red = 1 + list(COLORS).index("blue"), 1 + list(COLORS).index("red")
    assert int((y[0] == red).sum()) == 25  # the patch centres 0.15 .. 0.55 in both axes
    assert int((y[0] == blue).sum()) == 1  # covers no patch centre: owns the patch holding its centre
    k = int((y[0] == blue).nonzero()[0])
    assert (k // 10, k % 10) == (7, 7)
    written = format_box((0.72, 0.72, 0.04, 0.04))  # "[0.720, 0.720, 0.040, 0.040]"
    assert [int(d) for d in y[3:, k]] == [int(c) for v in written[1:-1].split(", ") for c in v[2:4]]
    assert bool((y[3:, y[0] == 0] == -100).all())  # background: no box target


def test_name_units_use_one_word_that_picks_one_object():
    import random

    a, b, c = "[0.100, 0.100, 0.200, 0.200]", "[0.500, 0.500, 0.100, 0.100]", "[0.700, 0.100, 0.100, 0.100]"
    region = [(a, "small red metal cube"), (b, "large red glass ball"), (c, "small blue rubber ball")]
    assert sorted(tasks.names(region)) == sorted([("the cube", a), ("the blue object", c)])
    scene = tasks.Scene("x.jpg", region=region, names=tasks.names(region))
    turns = [t for seed in range(20) for t in tasks.conversation(scene, random.Random(seed), 2, warm=True)]
    assert (tasks.REFER_PROMPT.format("the cube"), a) in turns and (tasks.REFER_PROMPT.format("the blue object"), c) in turns


@pytest.mark.skipif(not (Path(SHIPPED) / "config.json").is_file(), reason="no shipped grounding model (make pretrain)")
def test_the_shipped_checkpoint_reproduces_its_recorded_heldout_outputs():
    import hashlib

    from training import families

    held = json.loads((Path(SHIPPED) / "heldout.json").read_text())
    items = held["items"]
    images = {}
    for it in items:
        b = scene_image(it["scene_seed"], it["image_id"])
        assert hashlib.sha256(b).hexdigest() == it["image_sha256"], f"{it['image']}: the scene renderer no longer gives the pretraining image"
        images[it["image"]] = b
    model, processor, _ = families.load(SHIPPED)
    keys = ("kind", "image", "user", "box", "answer")
    again = run_heldout(model, processor, [{k: it[k] for k in keys if k in it} for it in items], images)
    differ = [(a["user"], a["pred"], b["pred"]) for a, b in zip(items, again) if a["pred"] != b["pred"] or a.get("pred_box") != b.get("pred_box")]
    assert len(differ) <= 1, differ  # greedy on float32: the same outputs up to a rare near-tie on another CPU
    got, recorded = scores(again), held["scores"]
    for k in recorded:
        n = sum(1 for it in items if it["kind"] == SCORES[k][0])
        assert n == 0 or abs(got[k] - recorded[k]) <= 100 / n + 1e-9, (k, got[k], recorded[k])  # one item's worth: the near-tie above


def test_paired_bootstrap_intervals_and_differences():
    rng = np.random.default_rng(0)
    c, g = rng.random(200) < 0.7, rng.random(200) < 0.5
    same = paired_bootstrap((c, g), (c, g), 500, 0)
    assert all(same[k]["diff"] == 0 and same[k]["diff_ci95"] == [0.0, 0.0] for k in same)  # the same answers: no difference, no spread
    m = [metrics(c, g)[k] for k in ("answer_accuracy", "grounding_accuracy", "consistency")]
    cr, cm, wr = (c & g).sum(), (c & ~g).sum(), (~c & g).sum()
    assert np.allclose(m, [c.mean() * 100, g.mean() * 100, cr / (cr + cm + wr) * 100])
    better = paired_bootstrap((c, g), (c, g | c), 500, 0)  # (b) grounds every answer it gets right
    lo, hi = better["consistency"]["diff_ci95"]
    assert better["consistency"]["diff"] > 0 and 0 < lo <= better["consistency"]["diff"] <= hi
    lo, hi = better["consistency"]["plain_ci95"]
    assert lo < m[2] < hi


def test_rows_choose_the_plain_or_the_chain_row_of_each_example(demo_release):
    from training.data import Conversations

    release, _ = demo_release
    both, plain, cot = (Conversations(release, "train", rows) for rows in ("both", "plain", "cot"))
    assert len(plain) == len(cot) == len(both) // 2
    assert not any(c.id.endswith("_cot") for c in plain.rows) and all(c.id.endswith("_cot") for c in cot.rows)
    assert all("Final Answer: " in c.answer for c in cot.rows) and not any("Step 1:" in c.answer for c in plain.rows)
    with pytest.raises(ValueError, match="rows 'chains'"):
        Conversations(release, "train", "chains")


@pytest.mark.slow
def test_the_experiment_fine_tunes_both_variants_and_writes_the_table(demo_release, tmp_path):
    from training.experiment import main as experiment

    release, _ = demo_release
    out = tmp_path / "exp"
    assert experiment(["--data", str(release), "--model", "tiny", "--steps", "3", "--eval-limit", "6", "--bootstrap", "100", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["protocols"]) == ["answer-first", "grounding-first", "gcot"]
    for e in results["protocols"].values():
        assert e["n"] == 6 and set(e) >= {"plain", "cot", "paired"}
    for rows in ("plain", "cot"):
        cfg = (out / rows / "config.yaml").read_text()
        assert f"rows: {rows}" in cfg and "max_steps: 3" in cfg
    table = (out / "table.md").read_text()
    assert "(b) - (a)" in table and table.count("| gcot") == 3 and (out / "consistency.png").is_file()


def test_the_focus_curriculum_names_objects_and_hides_only_the_others():
    import random

    import torch

    from core.boxes import format_box
    from training.pretrain import hide_others

    objects = [((0.1, 0.1, 0.3, 0.3), "large red metal cube"), ((0.6, 0.6, 0.3, 0.3), "large blue glass ball")]
    region = [(format_box(b), d) for b, d in objects]
    scene = tasks.Scene("x.jpg", region=region, names=tasks.names(region), objects=objects)
    turns, keep = tasks.focus_conversation(scene, random.Random(0), 1)
    ((user, box),) = turns
    assert keep == {[format_box(b) for b, _ in objects].index(box)}  # the named object is the one kept
    own = tasks.owners(scene, 10)
    assert set(own.tolist()) == {-1, 0, 1}
    tokens, background = torch.randn(100, 8), torch.full((8,), 7.0)
    hidden = hide_others(tokens, own, keep, 0.0, random.Random(0), background)
    other = 1 - next(iter(keep))
    assert bool((hidden[own == other] == 7.0).all())  # the other object: background
    assert torch.equal(hidden[own != other], tokens[own != other])  # the named object and the background as they were
    assert torch.equal(hide_others(tokens, own, keep, 1.0, random.Random(0), background), tokens)  # p = 1: everything shown


def test_image_embeddings_from_cached_tower_tokens_equal_the_pixel_forward_and_the_projector_starts_as_the_heads():
    import torch

    from training.pretrain import Encoder, embeds_with_image, patch_heads, projector_from_heads, tower_tokens
    from training.tiny_llava import TinyLlavaConfig, make

    torch.manual_seed(0)
    model, processor = make(["the red cube is at [0.125, 0.5, 0.25, 0.75]"], TinyLlavaConfig(vision_hidden=32, text_hidden=128, vocab_size=300, split_digits=True, crop=False))
    model.eval()
    enc = Encoder(processor, 200)
    pixels = torch.rand(2, 3, 64, 64)
    b = enc.batch(list(pixels), [[(tasks.REFER_PROMPT.format("the cube"), "[0.125, 0.500, 0.250, 0.750]")]] * 2)
    with torch.no_grad():
        ref = model.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"]).last_hidden_state
        toks = tower_tokens(model, b["pixel_values"])
        got = model.model(inputs_embeds=embeds_with_image(model, b["input_ids"], toks), attention_mask=b["attention_mask"]).last_hidden_state
        assert torch.allclose(got, ref, atol=1e-5)
        heads = patch_heads(32)
        projector_from_heads(model, heads)
        logits = torch.cat([h(toks) for h in heads], -1)
        assert torch.allclose(model.model.multi_modal_projector.linear_1(toks)[..., : logits.shape[-1]], logits, atol=1e-5)
