"""FlashSloth (2412.04317): spatial attention pooling of the vision grid and instruction-aware queries.

`SpatialAttentionPool`: per 3 x 3 window of the (h x w) vision grid, alpha = softmax over the window's
9 tokens of MLP(x), output sum(alpha x): a 27 x 27 grid (729 tokens) becomes 9 x 9 (81). A grid whose
side is not a multiple of 3 is padded; padded slots get no weight.

`InstructionQueries`: 9 learnable query tokens (placed after the instruction); at LLM layer 8 they
cross-attend to the question's hidden states, then to the uncompressed visual features, each with a
residual.

The stage (`python -m training.efficiency flashsloth`) puts the pooling between the projector and the
decoder of a fine-tuned model: each sample's image tokens become the pooled ones, which take the first
slots of the image span while the rest leave, and positions are renumbered so the sequence reads as one
built with the pooled count (`pool_state`). Only the pooling (its scoring MLP starts at zero: uniform
weights, plain average pooling) and, if ``projector_lr`` > 0, the projector learn, on the LM loss of
the answer tokens with the decoder frozen (`train_pool`); FlashSloth itself trains the whole model.
`InstructionQueries` stays a module, tested alone: it needs a decoder trained with query tokens at
layer 8, and the tiny models have 2 to 4 layers.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import torch
from torch import nn

from training.efficiency.data import answer_logits
from training.efficiency.layer_loop import LayerLoop, Policy, RunResult, TokenState
from training.efficiency.spans import position_ids_from_mask
from training.efficiency.trainable import freeze, param_groups

WINDOW, N_QUERIES, QUERY_LAYER = 3, 9, 8


class SpatialAttentionPool(nn.Module):
    def __init__(self, dim: int, window: int = WINDOW, mlp_hidden: int | None = None):
        super().__init__()
        self.window = window
        h = mlp_hidden or dim
        self.score = nn.Sequential(nn.Linear(dim, h), nn.GELU(), nn.Linear(h, 1))

    def start_uniform(self) -> SpatialAttentionPool:
        """Zero the last layer: equal weights in every window (average pooling) until training moves them."""
        nn.init.zeros_(self.score[-1].weight)
        nn.init.zeros_(self.score[-1].bias)
        return self

    def _grid(self, n: int, grid: tuple[int, int] | None) -> tuple[int, int, int, int]:
        """(h, w) of the token grid (square unless given) and (hp, wp), padded to whole windows."""
        h, w = grid or (math.isqrt(n), math.isqrt(n))
        if h * w != n:
            raise ValueError(f"{n} tokens do not fill a {h} x {w} grid")
        k = self.window
        return h, w, -(-h // k) * k, -(-w // k) * k

    def pooled_count(self, n: int, grid: tuple[int, int] | None = None) -> int:
        """How many tokens ``forward`` makes of ``n``."""
        _, _, hp, wp = self._grid(n, grid)
        return hp // self.window * (wp // self.window)

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x [B, N, D] in row-major grid order -> [B, ceil(h/3) * ceil(w/3), D]."""
        b, n, d = x.shape
        h, w, hp, wp = self._grid(n, grid)
        k = self.window
        g = x.view(b, h, w, d)
        s = self.score(x).view(b, h, w)  # [B, h, w]
        g = nn.functional.pad(g, (0, 0, 0, wp - w, 0, hp - h))
        s = nn.functional.pad(s, (0, wp - w, 0, hp - h), value=float("-inf"))
        # [B, hp/k, k, wp/k, k, ...] -> windows [B, hp/k * wp/k, k*k, ...]
        gw = g.view(b, hp // k, k, wp // k, k, d).permute(0, 1, 3, 2, 4, 5).reshape(b, -1, k * k, d)
        sw = s.view(b, hp // k, k, wp // k, k).permute(0, 1, 3, 2, 4).reshape(b, -1, k * k)
        alpha = torch.softmax(sw, -1)  # [B, windows, 9]
        return (alpha[..., None] * gw).sum(2)


class InstructionQueries(nn.Module):
    def __init__(self, dim: int, heads: int = 4, n_queries: int = N_QUERIES):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.to_question = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.to_vision = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, question: torch.Tensor, question_mask: torch.Tensor, vision: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """question [B, Nq, D] with mask [B, Nq] (True = real), vision [B, Nv, D] -> the queries [B, 9, D].

        ``queries`` are the query tokens' hidden states at layer 8 (default: the learned embeddings)."""
        q = self.queries.expand(question.shape[0], -1, -1) if queries is None else queries
        q = q + self.to_question(q, question, question, key_padding_mask=~question_mask.bool(), need_weights=False)[0]
        return q + self.to_vision(q, vision, vision, need_weights=False)[0]


def pool_state(state: TokenState, pool: SpatialAttentionPool, grid: tuple[int, int] | None = None, positions=position_ids_from_mask) -> TokenState:
    """The tokens entering the decoder with each sample's image tokens pooled (see the module doc);
    ``positions`` numbers the shorter sequence (the model family's: `LayerLoop.text_positions`)."""
    vis = state.vision & state.valid
    counts = vis.sum(1)
    n = int(counts[0])
    if not bool((counts == n).all()):
        raise ValueError(f"FlashSloth pools one grid per sample; these samples have {sorted(set(counts.tolist()))} image tokens")
    b, _, d = state.hidden.shape
    idx = torch.nonzero(vis)[:, 1].view(b, n)  # row-major: the image tokens of each sample, in grid order
    x = torch.gather(state.hidden, 1, idx[..., None].expand(b, n, d))
    pooled = pool(x, grid).to(state.hidden.dtype)  # [B, m, D]
    m = pooled.shape[1]
    rows = torch.arange(b, device=idx.device)[:, None].expand(b, m)
    hidden = state.hidden.index_put((rows.reshape(-1), idx[:, :m].reshape(-1)), pooled.reshape(-1, d))
    keep = (state.valid & ~vis).scatter(1, idx[:, :m], True)
    out = replace(state, hidden=hidden).keep(keep)
    return replace(out, position_ids=positions(out.valid))


def run_pooled(loop: LayerLoop, state: TokenState, pool: SpatialAttentionPool) -> RunResult:
    return loop.run(pool_state(state, pool, positions=loop.text_positions), Policy())


def train_pool(loop: LayerLoop, pool: SpatialAttentionPool, batches: list[dict], steps: int, lr: float = 1e-3,
               projector_lr: float = 0.0, seed: int = 0) -> list[dict]:
    """LM loss on the answer tokens through the pooled image, the decoder frozen; the pooling (and the
    projector when ``projector_lr`` > 0) learns."""
    model = loop.model
    opt = torch.optim.AdamW(param_groups(model, pool, lr, loop.family.projector_modules(model), projector_lr))
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pool.train()
    history = []
    for step in range(steps):
        batch = batches[rng.randrange(len(batches))]
        with torch.set_grad_enabled(projector_lr > 0):
            state, _ = loop.embed(batch)
        logits, targets, valid = answer_logits(loop, run_pooled(loop, state, pool), batch)
        loss = nn.functional.cross_entropy(logits[valid], targets[valid])
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"step": step, "lm": float(loss.detach())})
    pool.eval()
    freeze(model)
    return history
