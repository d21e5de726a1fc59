"""Every VLM family through fine-tuning and the model runner, on tiny random checkpoints built offline from
each family's own config classes (tests/tiny_families.py), at batch 2."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_families import FAMILIES, checkpoint

from pipeline.evaluation import strict
from pipeline.evaluation.results import read_results
from training import families
from training.data import Conversations, encode
from training.families import family_of, user_turn

# what each family's processor makes beside input_ids / attention_mask, and the model needs
TENSORS = {
    "llava": {"pixel_values"}, "llava_next": {"pixel_values", "image_sizes"}, "llava_onevision": {"pixel_values", "image_sizes", "batch_num_images"},
    "qwen2_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"}, "qwen2_5_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"},
    "qwen3_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"}, "idefics3": {"pixel_values", "pixel_attention_mask"},
    "smolvlm": {"pixel_values", "pixel_attention_mask"}, "internvl": {"pixel_values"}, "paligemma": {"pixel_values", "token_type_ids"},
    "gemma3": {"pixel_values", "token_type_ids"},
}
FAST = ("llava", "qwen2_5_vl", "paligemma")  # fine-tuning and the runner on these in the default suite, on every family under -m slow


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model family 'mllama'; known: gemma3, idefics3, internvl, llava, "):
        family_of("mllama")
    assert {f.name for f in families.FAMILIES.values()} == set(FAMILIES) and family_of("qwen2_5_vl").box_format == "qwen2.5-vl"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_keeps_every_tensor_and_labels_only_the_answers(family, family_models, demo_release):
    release, _ = demo_release
    model, processor, fam = families.load(checkpoint(family_models, family))
    data = Conversations(release, "train")
    items = [data.item(0), data.item(3)]  # a plain row and a _cot row: different lengths
    batch = encode(fam, processor, items, 384, box_format="normalized")
    assert TENSORS[family] <= set(batch) and "labels" in batch
    for b, (_, _, answer) in enumerate(items):
        labelled = batch["labels"][b][batch["labels"][b] != -100]
        text = processor.tokenizer.decode(labelled, skip_special_tokens=True)
        assert text.strip() == answer  # the answer, and only it (the end-of-turn tokens are special)
    assert (batch["attention_mask"][0] == 0).any() or (batch["attention_mask"][1] == 0).any()  # right padding: a real batch
    assert not batch["attention_mask"][:, 0].eq(0).any()
    from training.masked_head import masked_lm_loss

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():  # the model takes the batch whole; fine-tuning's loss is the model's own on these labels
        out = model(**inputs, labels=batch["labels"])
        ours = masked_lm_loss(model.model(**inputs).last_hidden_state, fam.head(model), batch["labels"])
    assert out.logits.shape[:2] == batch["input_ids"].shape and torch.allclose(ours, out.loss, atol=1e-5), (float(ours), float(out.loss))
    # generation inputs: left padding, one list of images per sample
    gen = fam.generation_inputs(processor, [[user_turn(u)] for _, u, _ in items], [im for im, _, _ in items])
    assert TENSORS[family] - {"token_type_ids"} <= set(gen) and not gen["attention_mask"][:, -1].eq(0).any()


def test_family_box_targets_in_the_training_text(family_models, demo_release):
    """box_format=family writes the chain's boxes as the family does; normalized keeps the release's."""
    release, _ = demo_release
    _, processor, fam = families.load(checkpoint(family_models, "paligemma"))
    item = Conversations(release, "train").item(1)  # a _cot row
    batch = encode(fam, processor, [item], 384)
    text = processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] != -100])
    assert "<loc" in text and "[0." not in text and text.count("<loc") == 4 * item[2].count("[")
    kept = encode(fam, processor, [item], 384, box_format="normalized")
    assert processor.tokenizer.decode(kept["labels"][0][kept["labels"][0] != -100], skip_special_tokens=True).strip() == item[2]


def _finetune(family: str, path, release, out, **kw):
    from training.finetune import FinetuneConfig, Recipe

    cfg = FinetuneConfig(**{"data": str(release), "model": str(path), "out": str(out), "max_steps": 6, "batch_size": 2, "lr": 5e-3, "warmup_steps": 1,
                            "max_length": 256, "save_every": 100, "eval_limit": 0, **kw})
    r = Recipe(cfg)
    r.setup()
    return r


def _check_finetune(family, family_models, demo_release, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    release, _ = demo_release
    path = checkpoint(family_models, family)
    r = _finetune(family, path, release, tmp_path / "run")
    fixed = r._batch(99, 0)
    projector = {n: p.detach().clone() for n, p in r.model.named_parameters() if "modules_to_save" in n and "lm_head" not in n}
    assert projector, "the projector is trained"
    assert not any("lora_" in n and n.split(".lora_")[0].startswith(f"base_model.model.{r.family.vision}") for n, _ in r.model.named_parameters())
    with torch.no_grad():
        before = float(r.loss(fixed))
    r.train()
    losses = [x["loss"] for x in r.log]
    with torch.no_grad():
        after = float(r.loss(fixed))
    assert all(map(torch.isfinite, torch.tensor(losses))) and after < before, (family, before, after, losses)
    changed = [n for n, p in r.model.named_parameters() if n in projector and not torch.equal(p.detach(), projector[n])]
    assert changed and len(changed) == len(projector), "every projector weight moved"
    # the saved adapter reloads to identical logits
    r.model.eval()
    inputs = {k: v for k, v in fixed.items() if k != "labels"}
    with torch.no_grad():
        want = r.model(**inputs).logits
        again = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(path, local_files_only=True), tmp_path / "run" / "adapter").eval()
        got = again(**inputs).logits
    assert torch.allclose(want, got, atol=1e-5), (want - got).abs().max()


def _fast_or_slow(names=FAMILIES):
    return [pytest.param(f, marks=() if f in FAST else pytest.mark.slow) for f in names]


@pytest.mark.parametrize("family", _fast_or_slow())
def test_finetune_at_batch_2(family, family_models, demo_release, tmp_path):
    _check_finetune(family, family_models, demo_release, tmp_path)


def test_lora_on_the_vision_tower_only_when_asked(family_models, demo_release, tmp_path):
    release, _ = demo_release
    r = _finetune("qwen2_vl", checkpoint(family_models, "qwen2_vl"), release, tmp_path / "v", lora_vision=True)
    vision = [n for n, _ in r.model.named_parameters() if "lora_A" in n and ".visual." in n]
    assert vision and not any(".merger." in n for n in vision)  # the merger is trained in full instead
    with pytest.raises(Exception, match=r"modules_to_save 'multi_modal_projector' matches no module of the model \(its projector is model.visual.merger\)"):
        _finetune("qwen2_vl", checkpoint(family_models, "qwen2_vl"), release, tmp_path / "w", modules_to_save=["lm_head", "multi_modal_projector"])


def test_a_nan_loss_stops_the_run_with_a_clear_error(family_models, demo_release, tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from training.finetune import main

    release, _ = demo_release
    src = checkpoint(family_models, "paligemma")
    model = AutoModelForImageTextToText.from_pretrained(src, local_files_only=True)
    with torch.no_grad():
        model.model.multi_modal_projector.linear.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    AutoProcessor.from_pretrained(src, local_files_only=True).save_pretrained(tmp_path / "nan")
    out = tmp_path / "run"
    code = main(["--data", str(release), "--model", str(tmp_path / "nan"), "--out", str(out), "max_steps=3", "batch_size=2", "eval_limit=0", "modules_to_save=[]"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: step 1: the training loss is nan (conversations [" in err and "stopped before the update" in err
    assert not (out / "adapter").exists()


def _check_runner(family, family_models, demo_release, tmp_path):
    from training.generate import RunConfig, run

    release, _ = demo_release
    path = run(RunConfig(release=str(release), model=str(checkpoint(family_models, family)), out=str(tmp_path / "r.jsonl"), protocol="gcot",
                         limit=4, batch_size=2, max_new_tokens=8, max_new_tokens_chain=12))
    recs = read_results(path)
    fam = families.FAMILIES[family]
    assert len(recs) == 4 and all(r["box_format"] == fam.box_format for r in recs)
    assert all(("box_size" in r) == fam.boxes().needs_size for r in recs)
    rep = strict.evaluate(recs, bootstrap=0)
    assert rep["n"] == 4 and rep["box_format"] == fam.box_format and rep["steps"]["reference_steps"] > 0
    return recs


@pytest.mark.parametrize("family", _fast_or_slow())
def test_the_runner_at_batch_2_writes_what_strict_evaluation_reads(family, family_models, demo_release, tmp_path):
    _check_runner(family, family_models, demo_release, tmp_path)


def test_the_runner_nests_images_per_sample(family_models, demo_release):
    """Gemma 3 reads a flat list of images as all images of one sample; nested, batch 2 equals batch 1."""
    from training.generate import Generator

    release, _ = demo_release
    gen = Generator(str(checkpoint(family_models, "gemma3")), "cpu")
    data = Conversations(release, "test")
    items = [data.item(0), data.item(2)]
    convs = [[user_turn(u)] for _, u, _ in items]
    both = gen(convs, [im for im, _, _ in items], 6)
    alone = [gen([c], [im], 6)[0] for c, (im, _, _) in zip(convs, items)]
    assert both == alone


def test_finetuning_records_its_box_format_for_the_runner(family_models, demo_release, tmp_path):
    """A model fine-tuned with box_format=normalized is read back in MM-GCoT's format, not its family's."""
    from training.generate import Generator, RunConfig, run

    release, _ = demo_release
    r = _finetune("internvl", checkpoint(family_models, "internvl"), release, tmp_path / "run", box_format="normalized", max_steps=1)
    r.train()
    merged = r.save_merged()  # what the end-of-run evaluation runs on
    assert json.loads((merged / "config.json").read_text())["gcot_box_format"] == "xywh-norm"
    assert Generator(str(merged), "cpu").box_format == "xywh-norm" and Generator(str(checkpoint(family_models, "internvl")), "cpu").box_format == "internvl"
    path = run(RunConfig(release=str(release), model=str(merged), out=str(tmp_path / "r.jsonl"), limit=2, max_new_tokens=4, max_new_tokens_chain=4))
    assert [x["box_format"] for x in read_results(path)] == ["xywh-norm"] * 2


def test_truncation_never_cuts_an_image_or_every_answer_token(family_models, demo_release):
    release, _ = demo_release
    _, processor, fam = families.load(checkpoint(family_models, "idefics3"))  # tiled: image tokens spread over the prompt
    items = [Conversations(release, "train").item(1)]
    full = encode(fam, processor, items, 4096)
    first_answer = int((full["labels"][0] != -100).nonzero()[0])
    cut = encode(fam, processor, items, first_answer + 3)
    assert cut["input_ids"].shape[1] == first_answer + 3 and int((cut["labels"] != -100).sum()) == 3
    assert torch.equal(cut["pixel_values"], full["pixel_values"])  # per-image tensors are not per-token: kept whole
    with pytest.raises(ValueError, match=r"samples \[0\] of the batch have no answer token within max_length"):
        encode(fam, processor, items, first_answer)
    last_image = int(torch.isin(full["input_ids"][0], torch.tensor(fam.image_token_ids(processor))).nonzero()[-1])
    with pytest.raises(ValueError, match=r"samples \[0\] of the batch have image tokens past max_length"):
        encode(fam, processor, items, last_image)
