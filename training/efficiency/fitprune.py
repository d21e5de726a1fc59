"""FitPrune (2409.10197): a per-layer drop recipe fitted to attention statistics under a FLOPs budget.

Statistics (per layer, per visual key j), from `kernels.attention_mass` with the max over heads:
``cross[j]`` = mean over the instruction's queries (text after the image; never the answer) of A[i, j]; ``self[j]`` = mean over visual queries of A[i, j]
(A = softmax(QK^T / sqrt(d)), causal, padding excluded).

Calibration: for alpha in [0, 1] on a 0.01 grid, each calibration sample walks the layers; at each it
drops the largest set of its remaining visual tokens that keeps at least (1 - alpha) of both their
cross mass and their self mass: the tokens inside the low-cross prefix *and* the low-self prefix (each
prefix = the lowest tokens, in ascending order, whose cumulative mass stays <= alpha x the total over
the remaining tokens). It stops pruning once the FLOPs forecast (the drops so far, no later ones) meets
the budget. The recipe is the mean drop count per layer, rounded; the smallest alpha whose recipe meets
the budget wins, found by binary search on the grid as the official code does. The recipe's FLOPs fall
as alpha grows only roughly (per-sample stopping and rounding make small bumps), so the result is an
alpha at which the budget is met and one step less is not, not always the global smallest. FLOPs are FitPrune's: the
decoder's multiply-adds over the visual tokens (`flops.layer_macs` with n = visual tokens).

Inference: after layer l's attention, score = cross x self over the visual tokens still present; the
recipe[l] lowest leave the hidden states, positions and mask before the layer's MLP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kernels.attention_mass import attention_mass
from kernels.similarity_topk import topk_indices
from training.efficiency.flops import DecoderShape, layer_macs
from training.efficiency.layer_loop import LayerLoop, Policy, TokenState

log = logging.getLogger(__name__)
ALPHA_STEPS = 100  # alpha on a 0.01 grid, as the official search


def attention_stats(q: torch.Tensor, k: torch.Tensor, state: TokenState) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross, self) [B, T] float32: mean over instruction / visual queries of the max-over-heads attention."""
    w = torch.stack([state.text & state.valid, state.vision & state.valid], 1).float()  # [B, 2, T]
    w = w / w.sum(2, keepdim=True).clamp(min=1)
    mass = attention_mass(q, k, w, state.valid, causal=True, head_reduce="max")  # [B, 2, T], one softmax for both
    return mass[:, 0], mass[:, 1]


def low_prefix(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Bool [N]: the lowest entries, ascending, whose cumulative sum stays <= alpha x the total."""
    order = torch.argsort(x, stable=True)
    cum = torch.cumsum(x[order].double(), 0)
    inside = cum <= alpha * x.double().sum() * (1 + 1e-6)  # float32 sums: equal masses must tie
    out = torch.zeros_like(x, dtype=torch.bool)
    out[order[inside]] = True
    return out


def drop_set(cross: torch.Tensor, self_: torch.Tensor, alpha: float) -> torch.Tensor:
    """Bool [N]: tokens low in both, so at least (1 - alpha) of each mass stays."""
    return low_prefix(cross, alpha) & low_prefix(self_, alpha)


def visual_macs(shape: DecoderShape, n_visual: int, drops: list[int]) -> int:
    """FitPrune's FLOPs forecast: multiply-adds over the visual tokens, drops after each layer's attention."""
    total, n = 0, n_visual
    for d in drops:
        total += layer_macs(shape, n, n - d)
        n -= d
    return total


@dataclass
class Recipe:
    method: str
    flops_budget: float  # fraction of the unpruned visual-token FLOPs allowed
    alpha: float
    drop_per_layer: list[int]
    visual_tokens: int
    visual_macs_unpruned: int
    visual_macs_recipe: int
    calibration_samples: int

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        return cls(**json.loads(Path(path).read_text()))


class _Recorder(Policy):
    """Unpruned run that keeps every layer's (cross, self) over each sample's visual tokens."""

    def __init__(self):
        self.stats: list[list[tuple[torch.Tensor, torch.Tensor]]] = []  # [layer][sample] -> (cross [Nv], self [Nv])

    def wants_qk(self, layer: int) -> bool:
        return True

    def after_attention(self, loop, layer, state, q, k):
        cross, self_ = attention_stats(q, k, state)
        vis = state.vision & state.valid
        self.stats.append([(cross[b][vis[b]], self_[b][vis[b]]) for b in range(cross.shape[0])])
        return None


def collect_stats(loop: LayerLoop, batches: list[dict]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per calibration sample: per layer (cross, self) over its visual tokens, from the unpruned model."""
    samples = []
    with torch.no_grad():
        for batch in batches:
            rec = _Recorder()
            loop.forward(batch, rec)
            for b in range(batch["input_ids"].shape[0]):
                samples.append([rec.stats[layer][b] for layer in range(len(rec.stats))])
    return samples


def sample_drops(stats: list[tuple[torch.Tensor, torch.Tensor]], alpha: float, shape: DecoderShape, budget_macs: float) -> list[int]:
    """One sample's drop count per layer at this alpha (pruning stops once the forecast meets the budget)."""
    n_vis = len(stats[0][0])
    remaining = torch.ones(n_vis, dtype=torch.bool)
    drops: list[int] = []
    for cross, self_ in stats:
        if visual_macs(shape, n_vis, drops + [0] * (len(stats) - len(drops))) <= budget_macs:
            drops.append(0)
            continue
        d = drop_set(cross[remaining], self_[remaining], alpha)
        idx = torch.nonzero(remaining).flatten()[d]
        remaining[idx] = False
        drops.append(int(d.sum()))
    return drops


def recipe_at(samples, alpha: float, shape: DecoderShape, budget_macs: float) -> list[int]:
    per = torch.tensor([sample_drops(s, alpha, shape, budget_macs) for s in samples], dtype=torch.float64)  # [S, L]
    return [int(x) for x in per.mean(0).round().tolist()]


def calibrate(loop: LayerLoop, batches: list[dict], flops_budget: float) -> Recipe:
    """Binary search of the smallest alpha (0.01 grid) whose recipe meets ``flops_budget`` x unpruned visual FLOPs."""
    if not 0 < flops_budget <= 1:
        raise ValueError(f"flops_budget is the fraction of visual-token FLOPs kept, in (0, 1]; got {flops_budget}")
    samples = collect_stats(loop, batches)
    if not samples:
        raise ValueError("no calibration samples")
    n_vis = len(samples[0][0][0])
    counts = sorted({len(s[0][0]) for s in samples})
    if len(counts) > 1:  # a recipe is absolute token counts, as the paper's (fixed-resolution LLaVA-1.5)
        raise ValueError(f"calibration samples have different numbers of visual tokens ({counts}); FitPrune recipes assume one")
    shape = loop.shape
    full = visual_macs(shape, n_vis, [0] * shape.layers)
    budget = flops_budget * full

    def fits(step: int) -> bool:
        return visual_macs(shape, n_vis, recipe_at(samples, step / ALPHA_STEPS, shape, budget)) <= budget

    if not fits(ALPHA_STEPS):
        raise ValueError(f"flops_budget {flops_budget} cannot be met even at alpha = 1 (the first layer's attention always runs on all "
                         f"{n_vis} visual tokens: at least {visual_macs(shape, n_vis, [n_vis] + [0] * (shape.layers - 1)) / full:.3f})")
    lo, hi = 0, ALPHA_STEPS  # invariant: hi fits
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    drops = recipe_at(samples, hi / ALPHA_STEPS, shape, budget)
    log.info("fitprune: alpha %.2f, drops per layer %s", hi / ALPHA_STEPS, drops)
    return Recipe(method="fitprune", flops_budget=flops_budget, alpha=hi / ALPHA_STEPS, drop_per_layer=drops, visual_tokens=n_vis,
                  visual_macs_unpruned=full, visual_macs_recipe=visual_macs(shape, n_vis, drops), calibration_samples=len(samples))


class FitPrunePolicy(Policy):
    """Inference: drop recipe[l] visual tokens (lowest cross x self) after layer l's attention."""

    def __init__(self, drop_per_layer: list[int]):
        self.drops = list(drop_per_layer)

    def wants_qk(self, layer: int) -> bool:
        return self.drops[layer] > 0

    def after_attention(self, loop, layer, state, q, k):
        if self.drops[layer] == 0:
            return None
        cross, self_ = attention_stats(q, k, state)
        vis = state.vision & state.valid
        drop = topk_indices(-(cross * self_), torch.full((vis.shape[0],), self.drops[layer]), valid=vis)  # lowest scores
        return ~drop
