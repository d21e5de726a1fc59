"""RoE (2407.14093): routing experts: per example, each decoder layer runs, or is skipped through an adapter.

A learned routing token is inserted at the end of each sample's instruction (before the answer; it
takes the next position id and shifts the answer's by one). Layer l's router ``Linear(2d -> 2)`` reads
[routing token's hidden state, mean of the text tokens' hidden states] and mixes the full layer with a
skip path ``x + Adapter(LN(x))``, adapter ``d -> 1024 -> d`` (its output layer starts at zero, so a
skip starts as the identity).

Training (`train`): loss = answer cross-entropy + the sparsity regulariser
``exp(-5 CE).detach() * max(0, skip_ratio - mean skip weight)`` per sample (skip_ratio 0.3: confident
samples are pushed to skip more). Curriculum over the steps: < 30 % random routing, adapters only;
30-50 % routers and adapters, with the router temperature (2 -> 1) and a bias towards running (2 -> 0)
annealed; >= 50 % everything, the decoder layers included.

Inference: each layer's run/skip is decided once per sample at prefill (argmax); samples that skip a
layer do not enter it.
"""

from __future__ import annotations

import random
from dataclasses import fields, replace

import torch
from torch import nn

from training.efficiency.data import answer_logits, per_sample_ce
from training.efficiency.layer_loop import LayerLoop, LayerTrace, Policy, TokenState
from training.efficiency.trainable import freeze

SKIP_RATIO, CE_SCALE = 0.3, 5.0  # regulariser constants of the official code
T0, BIAS0 = 2.0, 2.0  # start of the annealing in phase 2 (our choice; the paper anneals both to 1 and 0)


def curriculum(step: int, total: int) -> tuple[int, float, float]:
    """(phase, temperature, run-bias) at ``step`` of ``total``."""
    f = step / max(1, total)
    if f < 0.3:
        return 1, 1.0, 0.0
    if f < 0.5:
        a = (f - 0.3) / 0.2
        return 2, T0 + (1.0 - T0) * a, BIAS0 * (1 - a)
    return 3, 1.0, 0.0


def sparsity_regulariser(ce: torch.Tensor, skip_weight: torch.Tensor, skip_ratio: float = SKIP_RATIO) -> torch.Tensor:
    """ce [B] per-sample answer loss, skip_weight [B, L]: mean over samples of exp(-5 CE).detach() * relu(ratio - mean skip)."""
    return (torch.exp(-CE_SCALE * ce).detach() * torch.relu(skip_ratio - skip_weight.mean(1))).mean()


class RoE(Policy, nn.Module):
    def __init__(self, hidden_size: int, layers: int, adapter_dim: int = 1024, seed: int = 0):
        nn.Module.__init__(self)
        g = torch.Generator().manual_seed(seed)
        self.route_token = nn.Parameter(torch.randn(hidden_size, generator=g) * 0.02)
        self.routers = nn.ModuleList(nn.Linear(2 * hidden_size, 2) for _ in range(layers))
        self.adapters = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, adapter_dim), nn.GELU(), nn.Linear(adapter_dim, hidden_size))
                                      for _ in range(layers))
        for a in self.adapters:
            nn.init.zeros_(a[-1].weight)
            nn.init.zeros_(a[-1].bias)
        self.mode, self.temperature, self.bias = "hard", 1.0, 0.0  # "random" | "soft" | "hard"
        self.rng = random.Random(seed)
        self.insert_at: torch.Tensor | None = None  # [B] original index the routing token goes before
        self.slot: torch.Tensor | None = None  # [B] its index in the running state
        self.skip_weights: list[torch.Tensor] = []  # per layer [B]

    def set_batch(self, batch: dict) -> None:
        """Routing token before the first answer token (labels), else after the last real token."""
        labels, mask = batch.get("labels"), batch["attention_mask"].bool()
        t = mask.shape[1]
        pos = torch.arange(t).expand_as(mask)
        end = pos.masked_fill(~mask, -1).amax(1) + 1
        if labels is not None and (labels != -100).any(1).all():
            end = pos.masked_fill(labels == -100, t).amin(1)
        self.insert_at = end

    def insert(self, state: TokenState) -> TokenState:
        b, t, d = state.hidden.shape
        rows = {f.name: [] for f in fields(state) if getattr(state, f.name) is not None}
        slots = []
        for i in range(b):
            s = int((state.index[i] < self.insert_at[i]).logical_and(state.valid[i]).nonzero().max()) + 1
            slots.append(s)
            pos = state.position_ids[i]  # [T] or [T, A] (multimodal RoPE: every axis moves on by one)
            after = (torch.arange(t) >= s).view(-1, *([1] * (pos.dim() - 1)))
            new = {  # the routing token's value of each per-token field, beside the shifted originals
                "hidden": (self.route_token.to(state.hidden.dtype)[None], state.hidden[i]),
                "position_ids": (pos[s - 1][None] + 1, torch.where(after, pos + 1, pos)),
                "valid": (torch.tensor([True]), state.valid[i]),
                "index": (torch.tensor([-1]), state.index[i]),
            }
            for k in rows:
                old = getattr(state, k)[i]
                add, old = new.get(k, (torch.full_like(old[:1], -1 if k == "block" else 0), old))
                rows[k].append(torch.cat([old[:s], add, old[s:]]))
        self.slot = torch.tensor(slots)
        return TokenState(**{k: torch.stack(v) for k, v in rows.items()})

    def before_layer(self, loop, layer, state):
        return None

    def weights(self, layer: int, state: TokenState) -> torch.Tensor:
        """[B, 2]: (run, skip) weights of this layer per sample."""
        b = state.hidden.shape[0]
        if self.mode == "random":
            skip = torch.tensor([self.rng.random() < 0.5 for _ in range(b)])
            return torch.stack([~skip, skip], 1).float()
        text = (state.text & state.valid).float()
        mean = (state.hidden * text[..., None]).sum(1) / text.sum(1, keepdim=True).clamp(min=1)
        route = state.hidden[torch.arange(b), self.slot]
        logits = self.routers[layer](torch.cat([route, mean], -1).float())
        if self.mode == "hard":
            return nn.functional.one_hot(logits.argmax(-1), 2).float()
        return torch.softmax((logits + torch.tensor([self.bias, 0.0])) / self.temperature, -1)

    def layer(self, loop, layer, state):
        w = self.weights(layer, state)
        self.skip_weights.append(w[:, 1])
        skip = state.hidden.clone()
        by_adapter = w[:, 1] > 0  # hard routing: only the samples that skip pay for the adapter
        if by_adapter.any():
            skip[by_adapter] = state.hidden[by_adapter] + self.adapters[layer](state.hidden[by_adapter])
        run = w[:, 0] > 0
        n_attn = torch.zeros_like(state.counts())
        n_vis = torch.zeros_like(n_attn)
        if not run.any():
            return replace(state, hidden=skip), LayerTrace(n_attn, n_attn, n_vis, n_vis)
        sub = state.rows(run)
        full_sub, _ = loop.dense_layer(layer, sub, Policy())
        full = state.hidden.clone()
        full[run] = full_sub.hidden
        n_attn[run] = sub.counts()
        n_vis[run] = (sub.vision & sub.valid).sum(1)
        wd = w.to(state.hidden.dtype)[:, :, None, None]
        return replace(state, hidden=wd[:, 0] * full + wd[:, 1] * skip), LayerTrace(n_attn, n_attn, n_vis, n_vis)

    def forward_batch(self, loop: LayerLoop, batch: dict, state: TokenState | None = None):
        """(Embed unless ``state`` is given,) insert the routing token, run; skip weights land in ``self.skip_weights``."""
        self.set_batch(batch)
        self.skip_weights = []
        if state is None:
            state, _ = loop.embed(batch)
        return loop.run(self.insert(state), self)


def train(loop: LayerLoop, roe: RoE, batches: list[dict], steps: int, lr: float = 1e-3, llm_lr: float = 1e-4, seed: int = 0) -> list[dict]:
    """The 3-phase curriculum; returns the per-step log (phase, lm, reg, mean skip weight)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW([{"params": list(roe.adapters.parameters()), "lr": lr},
                             {"params": list(roe.routers.parameters()) + [roe.route_token], "lr": lr},
                             {"params": list(loop.layers.parameters()), "lr": llm_lr}])
    freeze(loop.model)
    history = []
    for step in range(steps):
        phase, roe.temperature, roe.bias = curriculum(step, steps)
        roe.mode = "random" if phase == 1 else "soft"
        for p in list(roe.routers.parameters()) + [roe.route_token]:
            p.requires_grad_(phase >= 2)
        for p in loop.layers.parameters():
            p.requires_grad_(phase == 3)
        batch = batches[rng.randrange(len(batches))]
        res = roe.forward_batch(loop, batch)
        logits, targets, valid = answer_logits(loop, res, batch)
        ce = per_sample_ce(logits, targets, valid)
        skip = torch.stack(roe.skip_weights, 1)  # [B, L]
        reg = sparsity_regulariser(ce, skip) if phase >= 2 else ce.new_zeros(())
        loss = ce.mean() + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"step": step, "phase": phase, "lm": float(ce.mean().detach()), "reg": float(reg.detach()), "skip": float(skip.mean().detach())})
    freeze(loop.model)
    roe.mode = "hard"
    return history
