"""G-Prune (2501.02268): graph-propagated importance of the projected visual tokens, keep the top k.

Before the first decoder layer, each sample's visual tokens X (the projector's outputs) get
`kernels.similarity_topk.propagated_score` (cos-sim graph cut at tau = 0.5, temperature 0.03, five
propagation steps from r0 = ||X_j||, score = r / degree); the top ``keep_ratio`` of them stay.
Tokens whose id is in ``always_keep_ids`` (LLaVA-NeXT's row-end newline tokens) are kept whatever their
score; LLaVA-1.5 has none. Works on ragged batches: each sample's own visual tokens.
"""

from __future__ import annotations

import math

import torch

from kernels.similarity_topk import GPRUNE_STEPS, GPRUNE_TAU, GPRUNE_TEMPERATURE, propagated_score, topk_indices
from kernels.tokens import gather_kept, scatter_back
from training.efficiency.layer_loop import Policy, TokenState


def gprune_keep(state: TokenState, keep_ratio: float, tau: float = GPRUNE_TAU, temperature: float = GPRUNE_TEMPERATURE,
                steps: int = GPRUNE_STEPS, always_keep: torch.Tensor | None = None) -> torch.Tensor:
    """Keep mask [B, T]: every non-visual token, and the top ceil(keep_ratio x n_visual) visual tokens per sample."""
    if not 0 < keep_ratio <= 1:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    vis = state.vision & state.valid
    p = gather_kept(vis)  # each sample's visual tokens, packed: [B, Nv]
    x = p.take(state.hidden)  # [B, Nv, D]
    score = propagated_score(x, p.valid, tau, temperature, steps)  # [B, Nv]
    n = p.valid.sum(1)
    k = torch.tensor([math.ceil(keep_ratio * int(c)) for c in n], device=n.device)
    kept = topk_indices(score, k, p.valid)  # [B, Nv]
    keep_vis = scatter_back(kept, p, vis.shape[1], fill=False)  # [B, T]
    keep = ~vis | keep_vis
    if always_keep is not None:
        keep |= always_keep
    return keep


class GPrunePolicy(Policy):
    def __init__(self, keep_ratio: float = 0.5, always_keep_ids: list[int] | None = None, **kw):
        self.keep_ratio, self.always_keep_ids, self.kw = keep_ratio, always_keep_ids or [], kw
        self.input_ids: torch.Tensor | None = None  # set by the caller when always_keep_ids is used

    def before_layer(self, loop, layer, state):
        if layer != 0:
            return None
        always = None
        if self.always_keep_ids:
            if self.input_ids is None:
                raise ValueError("always_keep_ids needs the batch's input_ids (policy.input_ids)")
            ids = torch.gather(self.input_ids, 1, state.index)
            always = torch.isin(ids, torch.tensor(self.always_keep_ids, device=ids.device))
        return gprune_keep(state, self.keep_ratio, always_keep=always, **self.kw)
