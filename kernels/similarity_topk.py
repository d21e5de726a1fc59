"""Similarity scores of tokens and their top k: the max-cosine score (fused kernel) and G-Prune's
propagated score (PyTorch).

- ``max_cosine(x, valid)`` [B, N]: for each token, the largest cosine similarity to another valid token
  of its sample (-inf when it has none). Low = distinct, high = redundant (a near duplicate exists).
  Triton fuses normalise -> matmul -> row max, so the [N, N] similarity matrix is never stored.
- ``propagated_score(x, ...)`` [B, N]: G-Prune (2501.02268): S = cos-sim; entries below tau are cut;
  A = row-softmax of S / temperature over the surviving entries; r0 = ||x_j||_2; r <- r A, ``steps``
  times (vector-matrix products, not a matrix power); score = r / degree, degree = surviving entries per
  column (the token itself included, so never 0).
- ``topk_indices(score, k, valid)``: the k best per sample, returned in ascending token order so that
  kept tokens keep their sequence order.
"""

from __future__ import annotations

import torch

from kernels.dispatch import use_triton

# G-Prune's defaults, from its public code: tau 0.5, temperature 0.03, five propagation steps.
GPRUNE_TAU, GPRUNE_TEMPERATURE, GPRUNE_STEPS = 0.5, 0.03, 5


def _valid(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if valid.shape != x.shape[:2]:
        raise ValueError(f"valid must be [B, N] = {tuple(x.shape[:2])}, got {tuple(valid.shape)}")
    return valid.bool()


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    xn = torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-12)  # [B, N, D]
    return xn @ xn.transpose(1, 2)  # [B, N, N]


def max_cosine_reference(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    v = _valid(x, valid)
    s = cosine_matrix(x)
    n = x.shape[1]
    ok = v[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=x.device)[None]
    return s.masked_fill(~ok, float("-inf")).amax(dim=-1)  # [B, N]


def max_cosine(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Dispatcher: the fused Triton kernel on CUDA, the reference elsewhere. [B, N] float32."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, N, D], got {tuple(x.shape)}")
    v = _valid(x, valid)
    if not use_triton(x):
        return max_cosine_reference(x, v)
    from kernels.similarity_triton import max_cosine as tri_max_cosine

    return tri_max_cosine(x, v)


def propagated_score(x: torch.Tensor, valid: torch.Tensor | None = None, tau: float = GPRUNE_TAU,
                     temperature: float = GPRUNE_TEMPERATURE, steps: int = GPRUNE_STEPS) -> torch.Tensor:
    """G-Prune's importance [B, N] float32 (0 for invalid tokens)."""
    v = _valid(x, valid)
    s = cosine_matrix(x)  # [B, N, N]
    edge = (s >= tau) & v[:, :, None] & v[:, None, :]
    edge |= torch.diag_embed(v)  # a valid token is always its own neighbour (cos = 1 up to rounding)
    a = torch.softmax((s / temperature).masked_fill(~edge, float("-inf")), dim=-1).nan_to_num(0.0)  # rows of invalid tokens: 0
    r = x.float().norm(dim=-1) * v  # [B, N]
    for _ in range(steps):
        r = torch.bmm(r[:, None, :], a)[:, 0]  # r <- r A
    degree = edge.sum(dim=1).clamp(min=1)  # [B, N], column counts
    return r / degree


def topk_indices(score: torch.Tensor, k: int | torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Keep mask [B, N] of the k highest-scoring valid tokens per sample (k an int or a [B] tensor)."""
    b, n = score.shape
    v = torch.ones_like(score, dtype=torch.bool) if valid is None else valid.bool()
    k = torch.as_tensor(k, device=score.device).expand(b).clamp(max=v.sum(1))
    # stable: ties go to the earlier token, so the result does not depend on the sort implementation
    order = torch.sort(score.float().masked_fill(~v, float("-inf")), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=score.device).expand(b, n))
    return (rank < k[:, None]) & v
