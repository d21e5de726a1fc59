"""One function per method: fit what the method fits on the release, then measure it against the
unchanged model (`evaluate.py`). The CLI (`python -m training.efficiency METHOD`) and
`benchmarks/bench_efficiency.py` call these.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from training.efficiency import dyvte, fitprune, flashsloth, gamma_mod, gprune, roe
from training.efficiency.config import EfficiencyConfig
from training.efficiency.data import box_format_of, load_model, release_batches
from training.efficiency.evaluate import Reference, answer_loss, compare, digit_tokens, reference
from training.efficiency.layer_loop import LayerLoop

log = logging.getLogger(__name__)


class NotApplicable(ValueError):
    """The method cannot apply to the model's family (the message says why)."""


class Session:
    """The model, its loop, the fitting and evaluation batches, the unchanged model's reference."""

    def __init__(self, cfg: EfficiencyConfig, ref: Reference | None = None):
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.model, self.processor = load_model(cfg.model)
        self.loop = LayerLoop(self.model)
        why = self.loop.family.not_applicable.get(cfg.method)
        if why:  # before any batch or reference is computed
            raise NotApplicable(f"{cfg.method} does not apply to {self.loop.family.name} models: {why}")
        fam, fmt = self.loop.family, box_format_of(self.model)
        self.fit = release_batches(cfg.data, self.processor, fam, cfg.fit_split, cfg.batch_size, cfg.fit_samples, cfg.seed, shuffle=True, box_format=fmt)
        self.eval = release_batches(cfg.data, self.processor, fam, cfg.eval_split, cfg.batch_size, cfg.eval_samples, box_format=fmt)
        self.ref = ref or reference(self.loop, self.eval, cfg.latency_repeats)
        self.digits = digit_tokens(self.processor.tokenizer)

    def measure(self, run) -> dict:
        return compare(self.loop, self.eval, self.ref, run, self.cfg.latency_repeats, self.digits)


def _policy_run(loop, policy):
    return lambda batch, state: loop.run(state, policy)


def run_fitprune(s: Session, out: Path) -> dict:
    if s.cfg.recipe:  # inference only, with a recipe calibrated before
        recipe = fitprune.Recipe.load(s.cfg.recipe)
        if len(recipe.drop_per_layer) != s.loop.shape.layers:
            raise ValueError(f"{s.cfg.recipe}: a recipe for {len(recipe.drop_per_layer)} layers, the model has {s.loop.shape.layers}")
    else:
        recipe = fitprune.calibrate(s.loop, s.fit, s.cfg.flops_budget)
    recipe.save(out / "recipe.json")
    row = s.measure(_policy_run(s.loop, fitprune.FitPrunePolicy(recipe.drop_per_layer)))
    return {"setting": f"budget {recipe.flops_budget:.2f}", "alpha": recipe.alpha, "drop_per_layer": recipe.drop_per_layer, **row}


def run_gprune(s: Session, out: Path) -> dict:
    row = s.measure(_policy_run(s.loop, gprune.GPrunePolicy(s.cfg.keep_ratio)))
    return {"setting": f"keep {s.cfg.keep_ratio:.2f}", **row}


def run_dyvte(s: Session, out: Path) -> dict:
    cfg = s.cfg
    gates = dyvte.Gates(s.loop.shape.hidden, s.loop.shape.layers, cfg.gate_hidden)
    hist = dyvte.train_gates(s.loop, gates, s.fit, cfg.gate_steps, cfg.gate_lr, cfg.seed)
    torch.save(gates.state_dict(), out / "gates.pt")
    policy = dyvte.DyVTEPolicy(gates.eval(), cfg.exit_threshold)
    exits = []

    def run(batch, state):
        res = s.loop.run(state, policy)
        exits.append(policy.exit_layer.clone())
        return res

    row = s.measure(run)
    e = torch.cat(exits)
    return {"setting": f"threshold {cfg.exit_threshold}", "exit_share": float((e >= 0).float().mean()),
            "exit_label_share": sum(h["exit_share"] for h in hist) / max(1, len(hist)), **row}


def run_gamma_mod(s: Session, out: Path) -> dict:
    cfg = s.cfg
    ranks = gamma_mod.arank(s.loop, s.fit)
    layers = gamma_mod.layers_to_convert(ranks, cfg.convert)
    policy = gamma_mod.MoDPolicy(s.loop.shape.hidden, layers, cfg.capacity, cfg.prefill_threshold)
    hist = gamma_mod.finetune(s.loop, policy, s.fit, cfg.mod_steps, cfg.mod_lr, cfg.router_lr, cfg.seed)
    torch.save({"router": policy.state_dict(), "layers": s.loop.layers.state_dict(), "mod_layers": layers}, out / "gamma_mod.pt")
    row = s.measure(_policy_run(s.loop, policy))
    policy.decode = True  # the prefill threshold and, for the answer tokens, the decoding rule (skip at p < 0.5)
    row["decode"] = s.measure(_policy_run(s.loop, policy))
    policy.decode = False
    policy.prefill = "topk"
    row["topk"] = s.measure(_policy_run(s.loop, policy))
    policy.prefill = "threshold"
    return {"setting": f"MoD layers {layers}" + ("" if cfg.mod_lr > 0 else ", decoder frozen"), "arank": [round(r, 2) for r in ranks], "lm_first": hist[0]["lm"], "lm_last": hist[-1]["lm"], **row}


def run_roe(s: Session, out: Path) -> dict:
    cfg = s.cfg
    r = roe.RoE(s.loop.shape.hidden, s.loop.shape.layers, cfg.adapter_dim, cfg.seed)
    hist = roe.train(s.loop, r, s.fit, cfg.roe_steps, cfg.roe_lr, cfg.llm_lr, cfg.seed)
    torch.save({"roe": r.state_dict(), "layers": s.loop.layers.state_dict()}, out / "roe.pt")
    r.eval()
    skips = []

    def run(batch, state):
        res = r.forward_batch(s.loop, batch, state)
        skips.append(torch.stack(r.skip_weights, 1))
        return res

    row = s.measure(run)
    return {"setting": f"skip ratio {roe.SKIP_RATIO}", "skipped_layers": float(torch.cat(skips).mean()), "lm_last": hist[-1]["lm"], **row}


def run_flashsloth(s: Session, out: Path) -> dict:
    cfg = s.cfg
    pool = flashsloth.SpatialAttentionPool(s.loop.shape.hidden, window=cfg.window).start_uniform()

    def run(batch, state):
        return flashsloth.run_pooled(s.loop, state, pool)

    dense = answer_loss(s.loop, s.eval, lambda batch, state: s.loop.run(state))
    untrained = answer_loss(s.loop, s.eval, run)  # plain average pooling
    hist = flashsloth.train_pool(s.loop, pool, s.fit, cfg.sloth_steps, cfg.sloth_lr, cfg.projector_lr, cfg.seed)
    torch.save({"pool": pool.state_dict(), "projector": s.loop.family.projector_modules(s.model).state_dict(), "window": cfg.window}, out / "flashsloth.pt")
    row = s.measure(run)
    n_vis = int(s.loop.embed(s.eval[0])[0].vision[0].sum())
    m = pool.pooled_count(n_vis)
    return {"setting": f"{n_vis} -> {m} visual tokens", "visual_tokens": [n_vis, m], "answer_loss": answer_loss(s.loop, s.eval, run),
            "answer_loss_unchanged": dense, "answer_loss_average_pooling": untrained, "lm_first": hist[0]["lm"] if hist else None,
            "lm_last": hist[-1]["lm"] if hist else None, **row}


RUNNERS = {"fitprune": run_fitprune, "gprune": run_gprune, "dyvte": run_dyvte, "gamma-mod": run_gamma_mod, "roe": run_roe,
           "flashsloth": run_flashsloth}


def run(cfg: EfficiencyConfig, ref: Reference | None = None) -> tuple[dict, Reference]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.to_yaml(f"gcot efficiency {cfg.method} --config {out / 'config.yaml'}", exclude=("overwrite",)))
    s = Session(cfg, ref)
    row = {"method": cfg.method, "family": s.loop.family.name, **RUNNERS[cfg.method](s, out)}
    row["reference"] = {"gflops": s.ref.flops / 1e9, "latency_ms": s.ref.latency_ms}
    (out / "result.json").write_text(json.dumps(row, indent=2) + "\n")
    return row, s.ref
