"""γ-MoD (2410.13859): find redundant layers by ARank, turn them into mixture-of-depths layers.

ARank of a layer: for each head, the rank of its causal attention map over a sample's real tokens with
the diagonal zeroed; mean over heads (and calibration samples). Low ARank = the layer's attention is
redundant; the ``convert`` layers with the lowest ARank become MoD layers.

A MoD layer, as the official code (MODE-LLaVA, `llava_llama_mod.py`) does it: one router ``Linear(d -> 2)``,
shared by all MoD layers, reads the layer's input-normed hidden states and gives each token
p = softmax(...)[1]. Masked routing in training: question and answer tokens (the text after the image)
always go through; of the system + image tokens, the top half by p go through. At inference the prompt's
tokens (system, image and question alike) go through where p > 0.005. Tokens not chosen skip the layer
entirely (neither queries nor keys there). The MLP output of every token that goes through is scaled by
its p, which is how the router gets a gradient from the LM loss (and learns p ~ 1 for question and
answer tokens). Aux loss: cross-entropy of the router logits of all real tokens against going through
(forced tokens count as chosen), weight 0.01. Unlike the official code, kept tokens keep their original
RoPE positions (it renumbers them 0..k-1 inside a MoD layer).

``prefill = "topk"`` evaluates with the training capacity instead of the threshold (to see what the
routing costs when the router is not yet confident enough to push p below 0.005).

``decode = True`` adds the paper's decoding rule to an evaluation: an answer token skips a MoD layer when
its p < 0.5. Teacher-forced, that is what KV-cache decoding computes: a token that skips layer l at its
decode step writes no key or value there, so no later token sees it at that layer; here it leaves that
layer's attention (as query and key) and its MLP, which is what the loop does with any skipped token.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import replace

import torch
from torch import nn

from kernels.attention_mass import allowed_scores
from kernels.similarity_topk import topk_indices
from kernels.tokens import gather_kept, scatter_back
from training.efficiency.data import answer_logits
from training.efficiency.layer_loop import LayerLoop, LayerTrace, Policy, TokenState
from training.efficiency.trainable import freeze, param_groups

log = logging.getLogger(__name__)
CAPACITY, PREFILL_THRESHOLD, DECODE_THRESHOLD, AUX_WEIGHT = 0.5, 0.005, 0.5, 0.01  # from the paper's code


def attention_rank(probs: torch.Tensor) -> float:
    """Mean over heads of rank(map with the diagonal zeroed); probs [H, n, n] of one sample's real tokens."""
    a = probs.double().clone()
    a.diagonal(dim1=-2, dim2=-1).zero_()
    return float(torch.linalg.matrix_rank(a).double().mean())


class _ARankRecorder(Policy):
    def __init__(self):
        self.ranks: list[list[float]] = []  # [layer] -> per sample

    def wants_qk(self, layer):
        return True

    def after_attention(self, loop, layer, state, q, k):
        p = torch.softmax(allowed_scores(q, k, state.valid, True, q.shape[-1] ** -0.5), -1)  # [B, H, T, T]
        ranks = []
        for b in range(p.shape[0]):
            v = state.valid[b]
            ranks.append(attention_rank(p[b][:, v][:, :, v]))
        self.ranks.append(ranks)
        return None


@torch.no_grad()
def arank(loop: LayerLoop, batches: list[dict]) -> list[float]:
    """Mean ARank per layer over the calibration samples."""
    per_layer: list[list[float]] = [[] for _ in loop.layers]
    for batch in batches:
        rec = _ARankRecorder()
        loop.forward(batch, rec)
        for layer, r in enumerate(rec.ranks):
            per_layer[layer] += r
    return [sum(r) / len(r) for r in per_layer]


def layers_to_convert(ranks: list[float], convert: int) -> list[int]:
    """The ``convert`` layers of lowest ARank (ties: the later layer first, as deeper layers are more redundant)."""
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i], -i))
    return sorted(order[:convert])


class MoDPolicy(Policy, nn.Module):
    """The shared router and the routed layers; ``training`` picks top-k routing, eval the threshold."""

    def __init__(self, hidden_size: int, mod_layers: list[int], capacity: float = CAPACITY, threshold: float = PREFILL_THRESHOLD):
        nn.Module.__init__(self)
        self.router = nn.Linear(hidden_size, 2)
        self.mod_layers, self.capacity, self.threshold = set(mod_layers), capacity, threshold
        self.prefill = "threshold"  # at inference: "threshold" (the paper's p > 0.005) or "topk" (the training capacity)
        self.decode = False  # at inference: answer tokens skip when p < 0.5 (the decoding rule)
        self.aux: list[torch.Tensor] = []  # per MoD layer of the last run

    def route(self, loop: LayerLoop, layer: int, state: TokenState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, T, 2], p [B, T], go [B, T]: the tokens that run the layer)."""
        logits = self.router(loop.layers[layer].input_layernorm(state.hidden).float())
        p = torch.softmax(logits, -1)[..., 1]
        answer = state.answer & state.valid
        if self.training or self.prefill == "topk":
            routable = ~state.text & ~state.answer & state.valid  # system + image tokens
            k = torch.tensor([math.ceil(self.capacity * int(n)) for n in routable.sum(1)], device=p.device)
            go = topk_indices(p.detach(), k, routable) | (state.text & state.valid) | answer
        else:
            go = state.valid & ~state.answer & (p > self.threshold)  # the prompt at prefill
            go |= answer
        if self.decode and not self.training:  # answer tokens are decode steps: skip at p < 0.5
            go &= ~answer | (p >= DECODE_THRESHOLD)
        return logits, p, go

    def layer(self, loop, layer, state):
        if layer not in self.mod_layers:
            return None
        logits, p, go = self.route(loop, layer, state)
        if self.training:
            self.aux.append(nn.functional.cross_entropy(logits[state.valid], go[state.valid].long()))
        packed = gather_kept(go)
        sub = state.keep(go)
        scale = packed.take(p)  # [B, K]
        n_attn = sub.counts()
        out, _, _ = loop.attention(layer, sub, False)
        h = sub.hidden + out
        h = h + loop.mlp(layer, h) * scale[..., None].to(h.dtype)
        merged = torch.where(go[..., None], scatter_back(h, packed, go.shape[1]), state.hidden)
        v = (sub.vision & sub.valid).sum(1)
        return replace(state, hidden=merged), LayerTrace(n_attn, n_attn, v, v)

    def before_layer(self, loop, layer, state):
        if layer == 0:
            self.aux = []
        return None


def finetune(loop: LayerLoop, policy: MoDPolicy, batches: list[dict], steps: int, lr: float = 1e-4, router_lr: float = 1e-3,
             seed: int = 0) -> list[dict]:
    """LM loss on the answer tokens + 0.01 x aux, training the router and (lr > 0) the decoder layers."""
    random.seed(seed)
    torch.manual_seed(seed)
    model = loop.model
    opt = torch.optim.AdamW(param_groups(model, policy, router_lr, loop.layers, lr))  # lr = 0: the router alone learns
    policy.train()
    history = []
    rng = random.Random(seed)
    for step in range(steps):
        batch = batches[rng.randrange(len(batches))]
        res, _ = loop.forward(batch, policy)
        logits, targets, valid = answer_logits(loop, res, batch)
        lm = nn.functional.cross_entropy(logits[valid], targets[valid])
        aux = torch.stack(policy.aux).mean() if policy.aux else lm.new_zeros(())
        loss = lm + AUX_WEIGHT * aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"step": step, "lm": float(lm.detach()), "aux": float(aux.detach())})
    policy.eval()
    freeze(model)
    return history
