"""Exports for the trainers teams use: `gcot convert --to llamafactory` (ShareGPT messages + images, the
dataset_info.json entry LLaMA-Factory documents) and `--to trl` (messages + images Parquet, loadable with
datasets), each row checked for as many image placeholders as images; then each read by the trainer's own code
(LLaMA-Factory's dataset loading in its own venv, TRL's SFTTrainer for a step)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from gcot.cli import main as gcot
from pipeline.convert import convert
from pipeline.release import llamafactory, trl
from training.data import split_examples


def test_llamafactory_export(demo_release, tmp_path):
    release, summary = demo_release
    out = tmp_path / "lf"
    assert gcot(["convert", str(release), "--from", "arrow", "--to", "llamafactory", "--out", str(out)]) == 0
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"gcot_train", "gcot_validation", "gcot_test"}
    # LLaMA-Factory's documented ShareGPT entry for multimodal data (data/README.md, "mllm_demo")
    assert info["gcot_train"] == {"file_name": "train.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
                                  "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
    for split in ("train", "validation", "test"):
        rows = json.loads((out / f"{split}.json").read_text())
        examples = split_examples(release, split)
        assert len(rows) == 2 * len(examples) and [r["id"] for r in rows[:2]] == [examples[0].id, f"{examples[0].id}_cot"]
        for r in rows:
            assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
            assert r["messages"][0]["content"].count("<image>") == len(r["images"]) == 1 and "<image>" not in r["messages"][1]["content"]
            assert (out / r["images"][0]).is_file()  # relative to the dataset folder, LLaMA-Factory's default media_dir
    assert rows[1]["messages"][1]["content"].startswith("Step 1: ") and "\nFinal Answer: " in rows[1]["messages"][1]["content"]
    n_images = len({r["images"][0] for s in ("train", "validation", "test") for r in json.loads((out / f"{s}.json").read_text())})
    assert len(list((out / "images").rglob("*.*"))) == n_images == summary["images"]  # each image once
    assert (out / "rejections.jsonl").read_text() == ""  # every format carries the file; nothing was rejected


def test_a_row_whose_image_tokens_do_not_match_is_rejected(demo_release, tmp_path):
    release, _ = demo_release
    examples = split_examples(release, "test")[:3]
    odd = replace(examples[1], question="Is the <image> tag the cube?")  # the question writes the placeholder itself
    data = {e.image: b"\xff\xd8 not decoded here" for e in examples}
    for exporter, name in ((llamafactory, "lf"), (trl, "trl")):
        (tmp_path / name).mkdir()
        rejected = exporter.write_dir([examples[0], odd, examples[2]], tmp_path / name, lambda ex: data.get(ex.image) if ex is not examples[2] else None)
        assert [(r.id, r.rule) for r in rejected] == [(odd.id, "image_token_count"), (f"{odd.id}_cot", "image_token_count"), (examples[2].id, "image_missing")]
    assert len(json.loads((tmp_path / "lf" / "test.json").read_text())) == 2  # the good example's two rows
    # --strict stops at the first, and leaves no folder behind
    import pipeline.convert as conv

    with pytest.raises(ValueError, match=r"record .* rejected \(image_token_count\)"):
        conv.write([examples[0], odd], [], tmp_path / "strict", "llamafactory", source=str(release), strict=True)
    assert not (tmp_path / "strict").exists()


def test_trl_export_loads_with_datasets_and_a_processor_takes_its_rows(demo_release, family_models, tmp_path):
    import datasets
    from tiny_families import checkpoint

    from training import families

    release, _ = demo_release
    out = tmp_path / "trl"
    s = convert(release, "arrow", "trl", out)
    assert s["rejected"] == 0
    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train", "validation", "test"}
    examples = split_examples(release, "test")
    assert ds["test"].num_rows == 2 * len(examples)
    row = ds["test"][1]
    assert row["id"] == f"{examples[0].id}_cot" and row["images"][0].size == (examples[0].width, examples[0].height)
    user, answer = row["messages"]
    assert [p["type"] for p in user["content"]] == ["image", "text"] and user["content"][1]["text"].startswith(examples[0].question)
    assert answer["content"][0]["text"].endswith(f"Final Answer: {examples[0].answer}")
    # what TRL's vision collator does with a row: the processor's chat template, then the processor on the text and images
    _, processor, _ = families.load(checkpoint(family_models, "qwen2_vl"))
    text = processor.apply_chat_template(row["messages"], tokenize=False)
    enc = processor(text=[text], images=[row["images"]], return_tensors="pt")
    assert text.count("<|vision_start|>") == len(row["images"]) and int(enc["image_grid_thw"].shape[0]) == 1


def test_trl_sft_trainer_takes_the_export_for_a_step(demo_release, tmp_path):
    """TRL's own SFTTrainer on the export as `datasets.load_dataset` gives it (no glue): one optimizer step
    of a tiny random Qwen2-VL, built offline, with its processor as the processing class."""
    import datasets
    import torch
    import trl
    from tiny_families import build

    from training import families
    from training.tiny_llava import release_texts

    release, _ = demo_release
    out = tmp_path / "trl"
    assert gcot(["convert", str(release), "--from", "arrow", "--to", "trl", "--out", str(out)]) == 0
    train = datasets.load_dataset(str(out), split="train").select(range(4))
    model, processor, _ = families.load(build("qwen2_vl", tmp_path / "qwen2_vl", release_texts(release)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3, use_cpu=True,
                         bf16=False, report_to="none", save_strategy="no", logging_steps=1, dataloader_num_workers=0, seed=0)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=train, processing_class=processor)
    # TRL's vision collator on a row: the image part expanded into the image's visual tokens, the turns' text whole, every token a label
    batch = trainer.data_collator([train[1]])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    user, answer = (m["content"][-1]["text"] for m in train[1]["messages"])
    assert text.count("<|vision_start|>") == 1 and f"<|vision_end|>{user}<|im_end|>" in text and f"assistant\n{answer}<|im_end|>" in text
    n_visual = int(batch["image_grid_thw"].prod()) // 4  # after the 2x2 merge
    assert int((batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) == n_visual > 0
    assert bool((batch["labels"] != -100).all())
    result = trainer.train()
    assert trainer.state.global_step == 1
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 1 and math.isfinite(losses[0]) and result.training_loss == pytest.approx(losses[0])
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert any(n.startswith("model.language_model") for n in changed) and any(n.startswith("model.visual") for n in changed)  # the image reached the loss


LF_VENV = Path(__file__).resolve().parent.parent / ".venv-llamafactory"  # make llamafactory (tests/llamafactory.lock.txt)


@pytest.mark.slow  # kept out of the default run's 15 minutes (make test-all runs it)
@pytest.mark.skipif(not (LF_VENV / "bin" / "python").exists(), reason="LLaMA-Factory's own environment not installed: make llamafactory")
def test_llamafactory_own_loader_reads_the_export(demo_release, tmp_path):
    """LLaMA-Factory 0.9.5's own dataset loading (in .venv-llamafactory: its pins clash with ours) on the export's
    dataset_info.json with dataset_dir + dataset: gcot_train, a tiny offline Qwen2-VL as tokenizer and processor:
    every row aligned as we wrote it, the image found, the tokenized rows carrying the image's visual tokens."""
    import os
    import subprocess

    from PIL import Image
    from tiny_families import build
    from transformers import AutoProcessor

    from training.tiny_llava import release_texts

    release, _ = demo_release
    out = tmp_path / "lf"
    assert gcot(["convert", str(release), "--from", "arrow", "--to", "llamafactory", "--out", str(out)]) == 0
    model = build("qwen2_vl", tmp_path / "qwen2_vl", release_texts(release))
    report = tmp_path / "report.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf-datasets")}
    script = Path(__file__).resolve().parent / "llamafactory_check.py"
    run = subprocess.run([str(LF_VENV / "bin" / "python"), str(script), str(model), str(out), str(tmp_path / "work"), str(report)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    r = json.loads(report.read_text())
    assert r["attr"] == {"load_from": "file", "dataset_name": "train.json", "formatting": "sharegpt", "messages": "messages", "images": "images",
                         "role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    assert r["processor"] == "Qwen2VLProcessor"
    ours = json.loads((out / "train.json").read_text())
    assert [(a["prompt"], a["response"], a["system"]) for a in r["aligned"]] == [(row["messages"][:1], row["messages"][1:], "") for row in ours]  # none skipped
    assert [a["images"] for a in r["aligned"]] == [[str(out / row["images"][0])] for row in ours]
    processor = AutoProcessor.from_pretrained(model, local_files_only=True)
    for split, n in (("train", 8), ("validation", 8)):
        rows = json.loads((out / f"{split}.json").read_text())[:n]
        assert len(r[split]) == n
        for got, row in zip(r[split], rows):
            question, answer = row["messages"][0]["content"].removeprefix("<image>\n"), row["messages"][1]["content"]
            assert got["images"] == [str(out / row["images"][0])]
            assert f"<|vision_end|>\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n" in got["text"]
            assert got["labels"] == f"{answer}<|im_end|>\n"  # the loss on the answer only, LLaMA-Factory's default
            grid = processor.image_processor(images=[Image.open(got["images"][0])], return_tensors="pt")["image_grid_thw"]
            assert got["image_pads"] == int(grid.prod()) // 4 > 0  # one image, its visual tokens after the 2x2 merge
