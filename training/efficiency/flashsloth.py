"""FlashSloth (2412.04317): spatial attention pooling of the vision grid and instruction-aware queries.

`SpatialAttentionPool`: per 3 x 3 window of the (h x w) vision grid, alpha = softmax over the window's
9 tokens of MLP(x), output sum(alpha x): a 27 x 27 grid (729 tokens) becomes 9 x 9 (81). A grid whose
side is not a multiple of 3 is padded; padded slots get no weight.

`InstructionQueries`: 9 learnable query tokens (placed after the instruction); at LLM layer 8 they
cross-attend to the question's hidden states, then to the uncompressed visual features, each with a
residual.

These are architecture modules that need the model trained with them; the tiny LLaVA here is not, so
they are tested on their own (pooling against a direct loop) and not wired into the decoder runner.
"""

from __future__ import annotations

import math

import torch
from torch import nn

WINDOW, N_QUERIES, QUERY_LAYER = 3, 9, 8


class SpatialAttentionPool(nn.Module):
    def __init__(self, dim: int, window: int = WINDOW, mlp_hidden: int | None = None):
        super().__init__()
        self.window = window
        h = mlp_hidden or dim
        self.score = nn.Sequential(nn.Linear(dim, h), nn.GELU(), nn.Linear(h, 1))

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x [B, N, D] in row-major grid order -> [B, ceil(h/3) * ceil(w/3), D]."""
        b, n, d = x.shape
        h, w = grid or (math.isqrt(n), math.isqrt(n))
        if h * w != n:
            raise ValueError(f"{n} tokens do not fill a {h} x {w} grid")
        k = self.window
        hp, wp = -(-h // k) * k, -(-w // k) * k
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
