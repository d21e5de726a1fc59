"""Every stage end to end on the demo release, with the tiny model built from configs (not fine-tuned:
the numbers are not the point, the path from a release and a run folder to result.json is)."""

from __future__ import annotations

import json

import pytest
import torch

from training.efficiency import METHODS
from training.efficiency.stages import EfficiencyConfig, run


@pytest.fixture(scope="module")
def run_folder(demo_release, tmp_path_factory):
    """A finetune.py-shaped run folder: base/ + adapter/ (a LoRA with non-zero weights), no merged/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from training.tiny_llava import build, release_texts

    release, _ = demo_release
    folder = tmp_path_factory.mktemp("effrun")
    build(folder / "base", release_texts(release))
    model = AutoModelForImageTextToText.from_pretrained(folder / "base", local_files_only=True)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(folder / "adapter")
    return folder, release, peft


def test_run_folder_loads_with_the_lora_merged(run_folder):
    from training.efficiency.data import load_model, release_batches

    folder, release, peft = run_folder
    from training.families import family_of

    model, processor = load_model(folder)
    batch = release_batches(release, processor, family_of(model.config), "test", 2, limit=2)[0]
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, peft.eval()(**inputs).logits, atol=1e-4)
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_every_stage_runs_on_the_release(run_folder, tmp_path):
    folder, release, _ = run_folder
    ref = None
    for method in METHODS:
        cfg = EfficiencyConfig(method=method, model=str(folder), data=str(release), out=str(tmp_path / method), fit_samples=8,
                               eval_samples=8, batch_size=4, latency_repeats=1, gate_hidden=32, gate_steps=4, mod_steps=2,
                               roe_steps=4, adapter_dim=16, flops_budget=0.6, sloth_steps=3)
        row, ref = run(cfg, ref)
        saved = json.loads((tmp_path / method / "result.json").read_text())
        assert saved["method"] == method and 0 <= saved["agreement"] <= 1 and saved["answer_tokens"] > 0
        d, t = saved["answer_tokens_digits"], saved["answer_tokens_text"]
        assert d > 0 and t > 0 and d + t == saved["answer_tokens"]  # the release's CoT answers write boxes
        assert saved["agreement"] == pytest.approx((saved["agreement_digits"] * d + saved["agreement_text"] * t) / (d + t))
        assert (tmp_path / method / "config.yaml").read_text().startswith(f"# gcot efficiency {method}")
    recipe = json.loads((tmp_path / "fitprune" / "recipe.json").read_text())
    assert recipe["visual_tokens"] == 16 and recipe["visual_macs_recipe"] <= 0.6 * recipe["visual_macs_unpruned"]
    assert (tmp_path / "dyvte" / "gates.pt").is_file() and (tmp_path / "gamma-mod" / "gamma_mod.pt").is_file()


def test_digit_tokens_are_the_ones_boxes_are_written_with(run_folder):
    from training.efficiency.data import load_model
    from training.efficiency.evaluate import digit_tokens

    folder, _, _ = run_folder
    tok = load_model(folder)[1].tokenizer
    digits = digit_tokens(tok)
    ids = tok("Step 1: The cone is at [0.327, 0.249, 0.187, 0.322]\nFinal Answer: Rubber", add_special_tokens=False).input_ids
    flagged = "".join(tok.decode([i]) for i in ids if digits[i])
    assert sorted(set(flagged) - set("0123456789")) <= [" ", ",", ".", "[", "]"]  # nothing but numbers and their glue
    assert sum(c.isdigit() for c in flagged) == 17  # every digit: the step number + 4 coordinates x 4 digits
    assert not any(digits[i] for i in tok("Final Answer: Rubber", add_special_tokens=False).input_ids)
