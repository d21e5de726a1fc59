"""training/finetune.py on the demo release with the tiny offline model, on this CPU."""

import json
import shutil

import pytest
import torch

from core.config import ConfigError
from training.finetune import FinetuneConfig, Recipe, main
from training.masked_head import full_lm_loss, masked_lm_loss


def test_masked_head_equals_the_full_head():
    torch.manual_seed(0)
    hidden = torch.randn(3, 17, 8, requires_grad=True)  # [B, T, D]
    head = torch.nn.Linear(8, 50, bias=False)
    labels = torch.full((3, 17), -100)
    labels[0, 5:9], labels[2, 10:17] = torch.randint(0, 50, (4,)), torch.randint(0, 50, (7,))
    a, b = masked_lm_loss(hidden, head, labels), full_lm_loss(hidden, head, labels)
    assert torch.allclose(a, b, atol=1e-6)
    ga = torch.autograd.grad(a, hidden)[0]
    gb = torch.autograd.grad(full_lm_loss(hidden, head, labels), hidden)[0]
    assert torch.allclose(ga, gb, atol=1e-6)


def test_config_file_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("max_steps: 7\nlr: 0.01\n")
    cfg = FinetuneConfig.from_yaml(tmp_path / "c.yaml", lr="3e-4", target_modules=["q_proj", "v_proj"])  # YAML 1.1 reads 3e-4 as a string
    assert cfg.max_steps == 7 and cfg.lr == 3e-4 and cfg.target_modules == ["q_proj", "v_proj"]
    (tmp_path / "bad.yaml").write_text("learning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: learning_rate: Extra inputs are not permitted"):
        FinetuneConfig.from_yaml(tmp_path / "bad.yaml")


def test_default_run_halves_the_loss_and_writes_the_evaluation(demo_release, tmp_path):
    release, _ = demo_release
    out = tmp_path / "run"
    assert main(["--config", "training/configs/tiny_cpu.yaml", "--data", str(release), "--out", str(out), "eval_limit=8"]) == 0
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert len(log) == 150
    last = sum(r["loss"] for r in log[-10:]) / 10
    assert last <= 0.5 * log[0]["loss"], (log[0]["loss"], last)
    report = (out / "eval" / "report.md").read_text()
    assert "| answer-first |" in report and "| gcot |" in report
    assert json.loads((out / "eval" / "gcot" / "report.json").read_text())["n"] == 8
    assert (out / "config.yaml").read_text().count("max_steps: 150") == 1 and (out / "loss.png").is_file()


def test_reloaded_adapter_gives_the_same_outputs_and_resume_is_exact(demo_release, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    release, _ = demo_release
    cfg = FinetuneConfig(data=str(release), out=str(tmp_path / "a"), max_steps=6, batch_size=2, save_every=3, eval_limit=0)
    r = Recipe(cfg)
    r.setup()
    r.train()
    r.model.eval()
    batch = r._batch(99, 0)
    with torch.no_grad():
        before = r.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]).logits
    base = AutoModelForImageTextToText.from_pretrained(r.base_path, local_files_only=True)
    again = PeftModel.from_pretrained(base, tmp_path / "a" / "adapter").eval()
    with torch.no_grad():
        after = again(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]).logits
    assert torch.allclose(before, after, atol=1e-5)

    # cut the run after step 3, resume: the same losses and the same adapter as the straight run
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoint-000006")
    shutil.rmtree(tmp_path / "b" / "adapter")
    main(["--out", str(tmp_path / "b"), "--resume", "eval_limit=0", f"out={tmp_path / 'b'}"])
    la = [json.loads(x)["loss"] for x in (tmp_path / "a" / "loss.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "b" / "loss.jsonl").read_text().splitlines()]
    assert lb == pytest.approx(la, rel=1e-5)
