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


@pytest.fixture(scope="module")
def one_split_releases(tmp_path_factory):
    """Two small releases of one split each: all train (no test split), all test (no train split)."""
    from pipeline.steps import BuildConfig, run_plain

    root = tmp_path_factory.mktemp("splits")
    kw = dict(images=8, seed=2, work_dir=str(root / "work"))
    run_plain(BuildConfig(out=str(root / "train-only"), split_ratios=(1.0, 0.0, 0.0), **kw))
    run_plain(BuildConfig(out=str(root / "test-only"), split_ratios=(0.0, 0.0, 1.0), **kw))
    return root / "train-only", root / "test-only"


def test_a_release_without_train_examples_is_refused_before_training(one_split_releases, tmp_path, capsys):
    _, test_only = one_split_releases
    assert main(["--data", str(test_only), "--out", str(tmp_path / "run"), "max_steps=2"]) == 2
    err = capsys.readouterr().err
    assert f"error: {test_only}: the train split is empty (no rows in data/train-*.parquet), and fine-tuning needs it; the release holds test " in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()  # nothing started, nothing written
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "not a release folder" in capsys.readouterr().err


def test_a_release_without_a_test_split_trains_and_skips_the_evaluation(one_split_releases, tmp_path, capsys):
    train_only, _ = one_split_releases
    out = tmp_path / "run"
    assert main(["--data", str(train_only), "--out", str(out), "max_steps=2", "batch_size=2", "eval_limit=4"]) == 0
    err = capsys.readouterr().err
    assert f"{train_only}: no test split (no rows in data/test-*.parquet): the evaluation is skipped" in err
    assert (out / "adapter").is_dir() and len((out / "loss.jsonl").read_text().splitlines()) == 2 and not (out / "eval").exists()
    assert (out / ".gcot-forge.json").is_file() and "overwrite" not in (out / "config.yaml").read_text()
    # the same folder again: a run of ours, replaced only when asked
    assert main(["--data", str(train_only), "--out", str(out), "max_steps=2", "batch_size=2", "eval_limit=0"]) == 2
    assert "already holds a fine-tuning run written by this tool" in capsys.readouterr().err
    assert main(["--data", str(train_only), "--out", str(out), "max_steps=1", "batch_size=2", "eval_limit=0", "--overwrite"]) == 0
    assert len((out / "loss.jsonl").read_text().splitlines()) == 1 and not (out / "checkpoint-000002").exists()
