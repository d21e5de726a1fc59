"""DyVTE (2411.19628): small per-layer gates decide when the visual tokens can leave the decoder.

Gate of layer l: ``Linear(2d -> hidden) -> GELU -> Linear(hidden -> 2)`` (hidden 2048 in the paper) on
[mean of the text tokens' hidden states, the last text token's hidden state], detached, at the input of
layer l. Training, with the LLM frozen: at a random layer l the batch runs on twice, normally and with
the visual key columns masked for layers >= l. Masking a key column for every later query is the same
as removing the visual tokens from layer l on for the text tokens' outputs (tested), which is what the
second run does. Label 1 ("exit is safe") iff the answer tokens' argmax agrees on > 99 % of them and the
masked loss is < 1.03 x the normal loss. Gate loss: cross-entropy on that label. As the LLM is frozen,
each (batch, layer) label is computed once and cached; steps then sample a random layer as the paper's
loop does.

Inference: at the first layer whose gate says exit (p_exit > threshold), every visual token of that
sample leaves the hidden states, positions and mask for all later layers.
"""

from __future__ import annotations

import logging
import random

import torch
from torch import nn

from training.efficiency.data import answer_logits, per_sample_ce
from training.efficiency.layer_loop import LayerLoop, Policy, TokenState
from training.efficiency.trainable import freeze

log = logging.getLogger(__name__)
AGREE, LOSS_RATIO = 0.99, 1.03  # the official labelling thresholds


class Gates(nn.Module):
    def __init__(self, hidden_size: int, layers: int, gate_hidden: int = 2048):
        super().__init__()
        self.gates = nn.ModuleList(nn.Sequential(nn.Linear(2 * hidden_size, gate_hidden), nn.GELU(), nn.Linear(gate_hidden, 2)) for _ in range(layers))

    def forward(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        return self.gates[layer](features)  # [B, 2] logits: (stay, exit)


def gate_features(state: TokenState) -> torch.Tensor:
    """[B, 2D]: mean of the text tokens' hidden states and the last text token's, detached."""
    text = (state.text & state.valid).float()  # [B, T]
    h = state.hidden.detach().float()
    mean = (h * text[..., None]).sum(1) / text.sum(1, keepdim=True).clamp(min=1)
    pos = torch.arange(text.shape[1], device=h.device).expand_as(text)
    last = pos.masked_fill(text == 0, -1).amax(1).clamp(min=0)
    return torch.cat([mean, h[torch.arange(h.shape[0]), last]], dim=-1)


@torch.no_grad()
def exit_labels(loop: LayerLoop, state: TokenState, layer: int, batch: dict) -> torch.Tensor:
    """[B] long: 1 where removing the visual tokens from ``layer`` on keeps the answer (the official rule)."""
    normal = loop.run(state, start=layer)
    masked = loop.run(state.keep(~state.vision), start=layer)
    ln, targets, valid = answer_logits(loop, normal, batch)
    lm, _, _ = answer_logits(loop, masked, batch)
    agree = ((ln.argmax(-1) == lm.argmax(-1)) & valid).sum(1) / valid.sum(1).clamp(min=1)
    safe = (agree > AGREE) & (per_sample_ce(lm, targets, valid) < LOSS_RATIO * per_sample_ce(ln, targets, valid))
    return safe.long()


@torch.no_grad()
def gate_dataset(loop: LayerLoop, batches: list[dict]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """[layer] -> list of (features [B, 2D], labels [B]) over the batches (the LLM is frozen: computed once)."""
    data: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in loop.layers]
    for batch in batches:
        state, _ = loop.embed(batch)
        for layer in range(len(loop.layers)):
            data[layer].append((gate_features(state), exit_labels(loop, state, layer, batch)))
            state = loop.run(state, start=layer, stop=layer + 1, final_norm=False).state
    return data


def train_gates(loop: LayerLoop, gates: Gates, batches: list[dict], steps: int, lr: float = 1e-3, seed: int = 0) -> list[dict]:
    """Gate training with the LLM frozen; returns the per-step log (layer, loss, share of exit labels)."""
    freeze(loop.model)
    data = gate_dataset(loop, batches)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(gates.parameters(), lr=lr)
    history = []
    for step in range(steps):
        layer = rng.randrange(len(data))  # a random layer per step, as the official loop
        feats, labels = data[layer][rng.randrange(len(data[layer]))]
        loss = nn.functional.cross_entropy(gates(layer, feats), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"step": step, "layer": layer, "loss": float(loss.detach()), "exit_share": float(labels.float().mean())})
    return history


class DyVTEPolicy(Policy):
    def __init__(self, gates: Gates, threshold: float = 0.5):
        self.gates, self.threshold = gates, threshold
        self.exit_layer: torch.Tensor | None = None  # [B] the layer each sample exited at (-1 = never), after a run

    @torch.no_grad()
    def before_layer(self, loop, layer, state):
        b = state.hidden.shape[0]
        if layer == 0 or self.exit_layer is None or self.exit_layer.shape[0] != b:
            self.exit_layer = torch.full((b,), -1, dtype=torch.long)
        p_exit = torch.softmax(self.gates(layer, gate_features(state)), -1)[:, 1]
        now = (p_exit > self.threshold) & (self.exit_layer < 0) & (state.vision & state.valid).any(1)
        if not now.any():
            return None
        self.exit_layer[now] = layer
        return ~(state.vision & now[:, None])
