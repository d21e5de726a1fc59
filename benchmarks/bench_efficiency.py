"""Efficiency stages on the model that training/finetune.py fine-tunes on the demo release (CPU).

For each method, against the unchanged model on the test split (teacher-forced prompt + answer): the
analytic decoder FLOPs per sample (`training/efficiency/flops.py`, from the tokens each layer ran on),
the cut of all decoder FLOPs and of the visual tokens' FLOPs (FitPrune's budget measure), the CPU
latency of the decoder forward per sample (best of 3, one thread, on a machine shared with other
work; the unchanged model is timed again beside each method, in brackets, and the speed-up is the
ratio of the two), and next-token agreement on the answer tokens (all of them, teacher-forced; split
between the digit tokens box coordinates are written with and the rest; and the first one alone: the
next token at the end of the prompt). FitPrune and G-Prune at 3 budgets; DyVTE,
γ-MoD, RoE and FlashSloth's pooling once. Target: FitPrune >= 50 % of the visual FLOPs cut with >= 99 % agreement.

The models, all fine-tuned by training/finetune.py on the demo release:
  runs/grounding-cpu the shipped grounding model (`make finetune`, training/configs/grounding_cpu.yaml):
                 100 visual tokens, 4 decoder layers, pretrained to ground (training/pretrain.py);
  runs/tiny-cpu  the tiny model built from configs with random weights (training/configs/tiny_cpu.yaml):
                 16 visual tokens, 2 decoder layers;
  runs/tiny-eff  the same recipe on a tiny model with 64 visual tokens (96 px, 12 px patches) and 4
                 decoder layers, built here, so that layer-wise pruning has layers to work with;
  runs/tiny-cpu-long the default model fine-tuned for 1,500 steps instead of 150 (surer of its answers).
Two reference points per model frame the agreement numbers: every visual token removed before the first
layer (how much the answers depend on the image), and the decoder in bfloat16 (numerical noise).
Missing pieces are built first (demo release ~40 s, each fine-tune ~1-2 min).

    .venv/bin/python benchmarks/bench_efficiency.py [--models tiny-cpu,tiny-eff] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import env  # noqa: E402

env.apply()

import torch  # noqa: E402

RELEASE = ROOT / "releases" / "demo"


def ensure_release() -> None:
    if not (RELEASE / "llava" / "train.json").exists():
        subprocess.run([sys.executable, "-m", "pipeline", "build-gcot", "--source", "synthetic", "--images", "300", "--seed", "7", "--out", str(RELEASE)],
                       cwd=ROOT, check=True)


def ensure_model(name: str) -> Path:
    from core.guard import OutputGuard, prepare_run_folder
    from training.finetune import RUN_FOLDER

    run = ROOT / "runs" / name
    if (run / "adapter").is_dir():
        return run
    if (run / "config.yaml").exists():  # a run cut off before its adapter: start it again (a run of ours only)
        again = OutputGuard(run, "fine-tuning run", overwrite=True, owned=RUN_FOLDER)
        prepare_run_folder(again, again.check())
    if name == "tiny-eff" and not (run / "base" / "config.json").exists():
        from training.tiny_llava import TinyLlavaConfig, build, release_texts

        guard = OutputGuard(run, "fine-tuning run", owned=RUN_FOLDER)  # a run folder prepared with its own base model
        prepare_run_folder(guard, guard.check())
        build(run / "base", release_texts(RELEASE), TinyLlavaConfig(image_size=96, patch_size=12, text_layers=4))
    extra = [] if name == "tiny-cpu" else ["eval_limit=0"]
    if name == "tiny-cpu-long":
        extra.append("max_steps=1500")
    config = "training/configs/grounding_cpu.yaml" if name == "grounding-cpu" else "training/configs/tiny_cpu.yaml"
    subprocess.run([sys.executable, "training/finetune.py", "--config", config, "--data", str(RELEASE), "--out", str(run), *extra],
                   cwd=ROOT, check=True)
    return run


def base_of(run: Path) -> Path:
    """The checkpoint a fine-tuning run started from: its own base/ (tiny), else the model its config names."""
    import yaml

    if (run / "base" / "config.json").exists():
        return run / "base"
    model = Path(yaml.safe_load((run / "config.yaml").read_text())["model"])
    return model if model.is_absolute() else ROOT / model


def rows_for(model: Path, quick: bool) -> tuple[list[dict], dict]:
    from training.efficiency.stages import EfficiencyConfig, run

    base = EfficiencyConfig(model=str(model), data=str(RELEASE), fit_samples=32 if quick else 64, eval_samples=32 if quick else 96,
                            gate_steps=100 if quick else 300, mod_steps=30 if quick else 150, roe_steps=30 if quick else 150)
    out = ROOT / "bench-output" / "efficiency" / model.name
    plan = [replace(base, method="fitprune", flops_budget=b) for b in (0.7, 0.5, 0.3)]
    plan += [replace(base, method="gprune", keep_ratio=k) for k in (0.75, 0.5, 0.25)]
    plan += [replace(base, method="dyvte", fit_samples=2 * base.fit_samples),
             replace(base, method="gamma-mod", fit_split="train", fit_samples=4 * base.fit_samples, router_lr=1e-2),
             replace(base, method="gamma-mod", fit_split="train", fit_samples=4 * base.fit_samples, router_lr=1e-2, mod_lr=0.0),
             replace(base, method="roe", fit_split="train", fit_samples=4 * base.fit_samples),
             replace(base, method="flashsloth", fit_split="train", fit_samples=4 * base.fit_samples, sloth_steps=60 if quick else 300)]
    rows, ref = [], None
    for i, cfg in enumerate(plan):
        t = time.perf_counter()
        try:
            row, ref = run(replace(cfg, out=str(out / f"{i:02d}-{cfg.method}")), ref)
        except ValueError as e:  # e.g. a FitPrune budget the model's first layer cannot meet
            row = {"method": cfg.method, "setting": f"budget {cfg.flops_budget:.2f}", "error": str(e)}
        row["seconds"] = time.perf_counter() - t
        rows.append(row)
    rows += reference_points(base, ref)
    return rows, {"gflops": ref.flops / 1e9, "latency_ms": ref.latency_ms}


def reference_points(cfg, ref) -> list[dict]:
    """The same measurement of two runs that are not methods: no image at all, and a bfloat16 decoder."""
    from training.efficiency.layer_loop import LayerLoop, Policy
    from training.efficiency.stages import Session

    class NoImage(Policy):
        def before_layer(self, loop, layer, state):
            return ~state.vision if layer == 0 else None

    t = time.perf_counter()
    s = Session(cfg, ref)
    half = LayerLoop(copy.deepcopy(s.model).to(torch.bfloat16))

    def bf16(batch, state):
        res = half.run(replace(state, hidden=state.hidden.to(torch.bfloat16)))
        res.hidden = res.hidden.float()  # the float32 LM head reads it
        return res

    rows = [{"method": "reference", "setting": "no image", **s.measure(lambda batch, state: s.loop.run(state, NoImage()))},
            {"method": "reference", "setting": "bfloat16 decoder", **s.measure(bf16)}]
    for r in rows:
        r["seconds"] = (time.perf_counter() - t) / 2
    return rows


def split(r: dict) -> str:
    return f"{r['agreement_text']:.2%} / {r['agreement_digits']:.2%}"


def table(name: str, rows: list[dict], ref: dict, n_vis: int, layers: int) -> str:
    lines = [f"\n{name}: {n_vis} visual tokens, {layers} decoder layers; unchanged model {ref['gflops'] * 1000:.1f} MFLOPs/sample, {ref['latency_ms']:.2f} ms/sample",
             "| method | setting | MFLOPs/sample | FLOPs cut | visual FLOPs cut | latency ms (unchanged ms) | speed-up | agreement | text / box digits | first token | fit+eval s | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['setting']} | - | - | - | - | - | - | - | - | {r['seconds']:.0f} | {r['error'][:90]} |")
            continue
        note = {"fitprune": lambda r: f"alpha {r['alpha']:.2f}, drops {r['drop_per_layer']}",
                "dyvte": lambda r: f"{r['exit_share']:.0%} of samples exit; exit labels {r['exit_label_share']:.0%}",
                "gamma-mod": lambda r: f"ARank {r['arank']}; p > 0.005 prefill",
                "roe": lambda r: f"{r['skipped_layers']:.0%} of layers skipped",
                "reference": lambda r: {"no image": "every visual token removed before layer 0", "bfloat16 decoder": "numerical noise floor"}[r["setting"]],
                "flashsloth": lambda r: f"answer loss {r['answer_loss']:.3f} (unchanged {r['answer_loss_unchanged']:.3f}, average pooling {r['answer_loss_average_pooling']:.3f})"}.get(r["method"], lambda r: "")(r)
        lines.append(f"| {r['method']} | {r['setting']} | {r['gflops'] * 1000:.1f} | {r['flops_cut']:.1%} | {r['visual_flops_cut']:.1%} | "
                     f"{r['latency_ms']:.2f} ({r['dense_latency_ms']:.2f}) | {r['speedup']:.2f}x | {r['agreement']:.2%} | {split(r)} | {r['first_token_agreement']:.1%} | {r['seconds']:.0f} | {note} |")
        for key, what, why in (("decode", "p > 0.005 prefill + decoding rule", "answer tokens skip the MoD layer at p < 0.5"),
                               ("topk", "top-k prefill", "same router, half of system + image tokens")):
            if key in r:  # γ-MoD evaluated again: with the decoding rule, and with the training capacity instead of the threshold
                t = r[key]
                lines.append(f"| {r['method']} | {r['setting']}, {what} | {t['gflops'] * 1000:.1f} | {t['flops_cut']:.1%} | {t['visual_flops_cut']:.1%} | "
                             f"{t['latency_ms']:.2f} ({t['dense_latency_ms']:.2f}) | {t['speedup']:.2f}x | {t['agreement']:.2%} | {split(t)} | {t['first_token_agreement']:.1%} | | {why} |")
    fp = [r for r in rows if r["method"] == "fitprune" and "error" not in r]
    for key, what in (("agreement", "all answer tokens"), ("agreement_text", "answer tokens other than box digits"),
                      ("first_token_agreement", "first answer token")):
        hit = [r for r in fp if r["visual_flops_cut"] >= 0.5 and r[key] >= 0.99]
        lines.append(f"FitPrune target (>= 50 % visual FLOPs cut with >= 99 % agreement, {what}): {'met at ' + hit[0]['setting'] if hit else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="grounding-cpu,tiny-cpu,tiny-eff,tiny-cpu-long", help="comma-separated, of: grounding-cpu (make finetune: the shipped grounding model), tiny-cpu, tiny-eff, tiny-cpu-long")
    ap.add_argument("--quick", action="store_true", help="fewer samples and steps (a smoke run)")
    a = ap.parse_args()
    torch.set_num_threads(1)  # steadier latencies on a shared 2-core machine
    ensure_release()
    out = []
    for name in a.models.split(","):
        if name == "grounding-cpu" and not (ROOT / "training/weights/gcot-grounding/config.json").is_file():
            print("grounding-cpu: skipped, no grounding model at training/weights/gcot-grounding (make pretrain builds it)", flush=True)
            continue
        model = ensure_model(name)
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(base_of(model), local_files_only=True)
        n_vis = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
        rows, ref = rows_for(model, a.quick)
        text = table(f"runs/{name}", rows, ref, n_vis, cfg.text_config.num_hidden_layers)
        print(text, flush=True)
        out.append(text)
        (ROOT / "bench-output" / "efficiency" / f"{name}.json").write_text(json.dumps({"reference": ref, "rows": rows}, indent=2, default=str))
    print("\nFLOPs: analytic decoder multiply-adds x 2 over the teacher-forced prompt + answer; latency: decoder forward only, CPU, 1 thread.")


if __name__ == "__main__":
    main()
