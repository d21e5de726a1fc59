"""Fine-tune an image-text model on a GCoT release's LLaVA conversations with PEFT LoRA.

    python training/finetune.py --data releases/demo --model tiny --out runs/tiny
    python training/finetune.py --config training/configs/tiny_cpu.yaml max_steps=300 lr=1e-3
    python training/finetune.py --out runs/tiny --resume

``--model tiny`` (the offline default) builds a small LLaVA-style model from configs with a tokenizer
trained on the release's text (`training/tiny_llava.py`); any local Hugging Face image-text-to-text
checkpoint works too (``--model /models/llava-1.5-7b-hf``; nothing is downloaded). The loss covers
the answer tokens only, through the masked LM head (`training/masked_head.py`). The run folder keeps
the resolved config, checkpoints, the loss log and plot, the adapter, and at the end the GCoT
evaluation of the test split (`eval/report.md`).

Data-parallel over several processes (CPU: gloo; CUDA: nccl, one GPU per process):

    torchrun --nproc_per_node 2 training/finetune.py --config training/configs/tiny_cpu.yaml
    accelerate launch --multi_gpu --num_processes 2 training/finetune.py --config training/configs/tiny_cpu.yaml

(``--multi_gpu`` is accelerate's torchrun launcher, gloo on a CPU machine too; ``--cpu`` starts one process.)

``batch_size`` stays the global batch: each step every process takes its slice of the same sampled
batch, the gradients are summed across processes with each process's loss weighted by its share of
the batch's answer tokens, so the update (and the loss curve) is the single-process one. Rank 0
alone writes the run folder (config, checkpoints, loss log, adapter, evaluation).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import env  # noqa: E402
from core.cli import CommandFailed, ConfigCommand, single  # noqa: E402
from core.config import Config  # noqa: E402
from core.guard import OutputGuard, OutputRefused, prepare_run_folder  # noqa: E402

env.apply()

from pydantic import Field  # noqa: E402

from pipeline.evaluation.box_formats import NAMES as BOX_FORMATS  # noqa: E402
from training.data import Conversations, ReleaseError, check_splits, encode, target_format  # noqa: E402


class FinetuneConfig(Config):
    """Fine-tune an image-text model on a release's conversations with PEFT LoRA."""

    data: str = Field("releases/demo", description="a release folder (gcot build output)")
    model: str = Field("tiny", description="tiny (a small LLaVA-style model built from configs, tokenizer trained on the release's train split) or a local Hugging Face image-text-to-text checkpoint of a family that training/families knows (the README's family table)")
    out: str = Field("runs/finetune", description="the run folder: config.yaml, checkpoints, loss log and plot, adapter, evaluation")
    overwrite: bool = Field(False, description="replace the fine-tuning run already at --out (only a run this tool wrote; never the release, the model or a folder it did not write)")
    max_steps: int = Field(150, ge=1, description="optimizer steps")
    batch_size: int = Field(8, ge=1, description="the global batch (split over data-parallel processes)")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(2e-3, gt=0, description="learning rate: LoRA on a small model takes a large rate; ~2e-4 for 7B models")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (usually 2 * r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], description="names of the decoder's Linear modules LoRA adapts (the decoder only: the family knows where it is)")
    lora_vision: bool = Field(False, description="also put LoRA on every Linear of the vision tower (its projector excepted)")
    modules_to_save: list[str] = Field(default_factory=lambda: ["lm_head", "projector"], description="modules trained in full and saved with the adapter; 'projector' is the family's projector (LLaVA's multi_modal_projector, Qwen's visual.merger, Idefics3's connector, ...)")
    box_format: Literal[("family", "normalized", *BOX_FORMATS)] = Field("family", description="how the targets write boxes: family (the model family's own convention, what it was pretrained on), normalized (MM-GCoT's [x, y, w, h] as the release has them) or a box format by name")
    masked_head: bool = Field(True, description="logits only for the answer tokens (training/masked_head.py)")
    qlora: bool = Field(True, description="4-bit base weights when on CUDA with bitsandbytes installed; ignored elsewhere")
    max_length: int = Field(384, ge=16, description="tokens a conversation is cut to")
    save_every: int = Field(50, ge=1, description="steps between checkpoints (--resume continues from the latest)")
    rows: Literal["both", "plain", "cot"] = Field("both", description="which conversations of each train example: both (the plain row and the _cot chain row, as MM-GCoT trains), plain (answers only) or cot (chains only)")
    protocols: list[Literal["answer-first", "grounding-first", "gcot"]] = Field(default_factory=lambda: ["answer-first", "gcot"], description="the MM-GCoT protocols the end-of-run evaluation runs")
    eval_limit: int = Field(48, ge=0, description="test-split samples evaluated at the end (0: skip; a release without a test split skips it too, saying so)")
    seed: int = Field(0, description="seed of sampling, initialisation and dropout")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")


class FinetuneCommand(FinetuneConfig, ConfigCommand):
    """Fine-tune an image-text model on a GCoT release's conversations with PEFT LoRA; the run folder keeps
    the resolved config.yaml, checkpoints, the loss log and plot, the adapter and the test split's GCoT
    evaluation (eval/report.md).

    Examples:
      gcot finetune --config training/configs/tiny_cpu.yaml
      gcot finetune --config training/configs/tiny_cpu.yaml --max-steps 300 --lr 1e-3
      gcot finetune --out runs/tiny --resume
      torchrun --nproc_per_node 2 training/finetune.py --config training/configs/tiny_cpu.yaml
    """

    CONFIG = FinetuneConfig
    resume: bool = Field(False, description="continue from the run folder's latest checkpoint (with its stored config.yaml)")

    def run(self) -> int:
        if self.resume and self.config is None and "out" in self.model_fields_set and (Path(self.out) / "config.yaml").exists():
            self.config = Path(self.out) / "config.yaml"
        return train(self.resolve(), resume=self.resume)


@dataclass
class Distributed:
    """This process's place in a data-parallel run, read from the environment that torchrun and
    ``accelerate launch`` set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); one process: rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        import os

        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: str) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                if device.startswith("cuda"):
                    import torch

                    torch.cuda.set_device(device)  # nccl: one GPU per process
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, t):
        """Sum a tensor over the processes, in place; returns it."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class Recipe:
    """setup -> train -> evaluate; checkpoints let ``--resume`` continue a cut-off run exactly."""

    def __init__(self, cfg: FinetuneConfig, dist: Distributed | None = None):
        import torch

        self.cfg, self.torch = cfg, torch
        self.dist = dist or Distributed()
        self.out = Path(cfg.out)
        if cfg.batch_size % self.dist.world:
            raise SystemExit(f"batch_size {cfg.batch_size} (the global batch) does not split over {self.dist.world} processes")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        if self.device == "cuda" and self.dist.world > 1:
            self.device = f"cuda:{self.dist.local_rank}"
        self.dist.init(self.device)

    def setup(self) -> None:
        import torch
        from peft import LoraConfig, get_peft_model

        from training import families

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            (self.out / "config.yaml").write_text(cfg.to_yaml(f"resolved config; rerun: gcot finetune --config {self.out / 'config.yaml'}", exclude=("overwrite",)))
        release = Path(cfg.data)
        base = Path(cfg.model)
        if cfg.model == "tiny":
            from training.tiny_llava import build, release_texts

            base = self.out / "base"
            if self.dist.main and not (base / "config.json").exists():
                build(base, release_texts(release))
            self.dist.barrier()  # the other processes load what rank 0 built
        self.base_path = base
        torch.manual_seed(cfg.seed)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        quant = None
        if cfg.qlora and self.device.startswith("cuda"):
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig

                quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
            except ImportError:
                print("qlora: bitsandbytes is not installed; plain LoRA on bf16 weights", file=sys.stderr)
        try:
            model, self.processor, self.family = families.load(base, dtype=dtype, quantization_config=quant)
            targets = self.family.lora_targets(model, cfg.target_modules, cfg.lora_vision)
            save = self.family.modules_to_save(model, cfg.modules_to_save)
        except ValueError as e:
            raise CommandFailed(f"{base}: {e}") from None
        if quant is not None:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets, modules_to_save=save or None)
        self.model = get_peft_model(model, lora)
        self.box_format = target_format(self.family, cfg.box_format)
        if quant is None:
            self.model.to(self.device)
        self.data = Conversations(release, "train", cfg.rows)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.dist.world > 1:  # the same seed gives the same LoRA init everywhere; make it certain
            import torch.distributed as tdist

            for p in params:
                tdist.broadcast(p.data, 0)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        warm = max(1, cfg.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, cfg.max_steps))))
        )
        self.step = 0
        self.log: list[dict] = []

    def _batch(self, step: int, micro: int) -> dict:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}:{step}:{micro}")  # the batch is a function of the step: resume sees the same data
        idx = rng.sample(range(len(self.data)), min(cfg.batch_size, len(self.data)))
        idx = idx[self.dist.rank :: self.dist.world]  # this process's slice of the global batch
        self.batch_ids = [self.data.rows[i].id for i in idx]
        try:
            batch = encode(self.family, self.processor, [self.data.item(i) for i in idx], cfg.max_length, cfg.box_format)
        except ValueError as e:
            raise CommandFailed(f"{cfg.data}: conversations {self.batch_ids}: {e}") from None
        return {k: v.to(self.device) for k, v in batch.items()}

    def _answer_tokens(self, batch: dict) -> int:
        return int((batch["labels"][:, 1:] != -100).sum())  # the positions the loss averages over

    def loss(self, batch: dict):
        from training.masked_head import full_lm_loss, masked_lm_loss

        inner = self.model.get_base_model()  # LoRA layers sit inside it
        inputs = {k: v for k, v in batch.items() if k != "labels"}  # every tensor the processor made
        hidden = inner.model(**inputs).last_hidden_state  # [B, T, D]: no logits computed here
        return (masked_lm_loss if self.cfg.masked_head else full_lm_loss)(hidden, self.family.head(inner), batch["labels"])

    def save_checkpoint(self) -> Path:
        ckpt = self.out / f"checkpoint-{self.step:06d}"
        self.model.save_pretrained(ckpt)
        self.torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "log": self.log}, ckpt / "trainer_state.pt")
        return ckpt

    def resume(self) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        ckpts = sorted(self.out.glob("checkpoint-*"))
        if not ckpts:
            raise SystemExit(f"--resume: no checkpoint in {self.out}")
        ckpt = ckpts[-1]
        set_peft_model_state_dict(self.model, load_file(ckpt / "adapter_model.safetensors"))
        state = self.torch.load(ckpt / "trainer_state.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.log = state["step"], state["log"]
        if self.dist.main:
            print(f"resumed from {ckpt} at step {self.step}", file=sys.stderr)

    def train(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        self.model.train()
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="finetune", unit="step", disable=not self.dist.main)
        while self.step < cfg.max_steps:
            t0, tokens, total = time.perf_counter(), 0, 0.0
            for micro in range(cfg.grad_accum):
                batch = self._batch(self.step, micro)
                # Each process's mean is weighted by its share of the global batch's answer tokens, so
                # the gradients summed over processes are those of the single-process mean.
                n = self.dist.sum_(self.torch.tensor([self._answer_tokens(batch), int(batch["attention_mask"].sum())]))
                share = self._answer_tokens(batch) / max(1, int(n[0])) if self.dist.world > 1 else 1.0
                tokens += int(n[1])
                if share == 0:  # no answer token in this process's slice: nothing to add (the mean would be NaN)
                    continue
                loss = self.loss(batch) * share / cfg.grad_accum
                loss.backward()
                total += loss.detach().item()
            if self.dist.world > 1:
                self._sum_gradients()
                total = float(self.dist.sum_(self.torch.tensor([total], dtype=self.torch.float64))[0])
            if not math.isfinite(total):  # every process sees the summed loss: all stop together, before the update
                raise CommandFailed(f"step {self.step + 1}: the training loss is {total} (conversations {self.batch_ids}); stopped before "
                                    f"the update, nothing saved after checkpoint {self.step // cfg.save_every * cfg.save_every}. Lower lr, "
                                    "check the labels, or use float32")
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            rate = tokens / (time.perf_counter() - t0)
            self.log.append({"step": self.step, "loss": total, "lr": self.scheduler.get_last_lr()[0], "tokens_per_s": rate})
            bar.set_postfix(loss=f"{total:.3f}", tok_s=f"{rate:.0f}")
            bar.update(1)
            if self.dist.main and (self.step % cfg.save_every == 0 or self.step == cfg.max_steps):
                self.save_checkpoint()
        bar.close()
        if self.dist.main:
            self.model.save_pretrained(self.out / "adapter")
            (self.out / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.log))
            self._plot()
        self.dist.barrier()

    def _sum_gradients(self) -> None:
        """One all-reduce of every trainable gradient, flattened (LoRA + saved modules: small)."""
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:  # the same tensors in the same order on every process, even one that had no loss
            if p.grad is None:
                p.grad = self.torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = self.dist.sum_(_flatten_dense_tensors(grads))
        for g, s in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(s)

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["step"] for r in self.log], [r["loss"] for r in self.log])
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (answer tokens)")
        ax.set_title("Fine-tuning loss")
        fig.tight_layout()
        fig.savefig(self.out / "loss.png", dpi=100, metadata={"Software": None})
        plt.close(fig)

    def save_merged(self) -> Path:
        """The base with the LoRA merged in, as a plain checkpoint (``merged/``), recording the box format the
        targets were written in (the runner reads the model's boxes back in it)."""
        merged = self.out / "merged"
        model = self.model.merge_and_unload()
        model.config.gcot_box_format = self.box_format
        model.save_pretrained(merged)
        self.processor.save_pretrained(merged)  # with the family's chat template where the checkpoint had none
        return merged

    def evaluate(self) -> dict | None:
        """Merge the adapter, run the test split in the GCoT protocols, write the reports (rank 0)."""
        if not self.cfg.eval_limit or not self.dist.main:
            return None
        from pipeline.evaluation import official, report, strict
        from pipeline.evaluation.results import read_results
        from training.generate import RunConfig, run

        merged = self.save_merged()
        reports = {}
        for protocol in self.cfg.protocols:
            path = run(RunConfig(release=self.cfg.data, model=str(merged), out=str(self.out / "eval" / f"{protocol}.jsonl"), overwrite=True, protocol=protocol,
                                 limit=self.cfg.eval_limit, batch_size=8, device=self.device))
            recs = read_results(path)
            r = {"model_format": None, **strict.evaluate(recs, bootstrap=200)}
            try:
                r["official"] = official.evaluate(recs)
            except official.OfficialScriptWouldFail as e:
                r["official"] = {"error": str(e)}
            report.write(r, self.out / "eval" / protocol)
            reports[protocol] = r
        lines = ["| protocol | answer acc. | grounding acc. | consistency | step recall |", "|---|---|---|---|---|"]
        for p, r in reports.items():
            steps = r.get("steps") or {}
            lines.append(f"| {p} | {r['answer_accuracy']:.1f} | {r['grounding_accuracy']:.1f} | {r['consistency'] if r['consistency'] == r['consistency'] else float('nan'):.1f} | {steps.get('recall', float('nan')):.1f} |")
        (self.out / "eval" / "report.md").write_text("# GCoT evaluation of the fine-tuned model (strict mode)\n\n" + "\n".join(lines) + "\n")
        return reports


# What a fine-tuning run writes at the top of its folder (the output guard's test of a run folder's files).
RUN_FOLDER = ("config.yaml", "base", "checkpoint-*", "adapter", "loss.jsonl", "loss.png", "merged", "eval")


def run_guard(cfg: FinetuneConfig) -> OutputGuard:
    """Where the run may go (`core.guard`): not the release or the model, nor a folder this tool did not write."""
    inputs = [("the release to train on", cfg.data)] + ([("the model to tune", cfg.model)] if Path(cfg.model).exists() else [])
    return OutputGuard(cfg.out, "fine-tuning run", inputs, overwrite=cfg.overwrite, owned=RUN_FOLDER)


def train(cfg: FinetuneConfig, resume: bool = False) -> int:
    """The run, after checking before it starts what it needs: a train split with examples, and a run folder
    it may write (a release without a test split is trained on, and its evaluation skipped with a message)."""
    try:
        rows = check_splits(cfg.data, {"train": "fine-tuning"})
        guard = run_guard(cfg)
        state = guard.check(resume=resume)
    except (ReleaseError, OutputRefused) as e:
        raise CommandFailed(str(e)) from None
    evaluate = cfg.eval_limit > 0 and rows.get("test", 0) > 0
    if cfg.eval_limit and not evaluate:
        print(f"{cfg.data}: no test split (no rows in data/test-*.parquet): the evaluation is skipped", file=sys.stderr)
    recipe = Recipe(cfg, Distributed.from_env())  # with several processes: after every one has checked, before rank 0 writes
    try:
        if recipe.dist.main:
            prepare_run_folder(guard, state)
        recipe.dist.barrier()
        recipe.setup()
        if resume:
            recipe.resume()
        recipe.train()
        if not recipe.dist.main:
            return 0
        first, last = recipe.log[0]["loss"], sum(r["loss"] for r in recipe.log[-10:]) / len(recipe.log[-10:])
        print(f"loss {first:.3f} -> {last:.3f} (mean of the last 10 steps); adapter: {recipe.out / 'adapter'}" + (f"; {recipe.dist.world} processes" if recipe.dist.world > 1 else ""))
        reports = recipe.evaluate() if evaluate else None
        if reports:
            print((recipe.out / "eval" / "report.md").read_text())
    finally:
        recipe.dist.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return single(FinetuneCommand, "python training/finetune.py", argv)


if __name__ == "__main__":
    sys.exit(main())
