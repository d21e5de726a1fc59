"""Attention mass received per key token over a query subset, without the attention map.

What it returns (kernel and reference alike), for queries q [B, H, Nq, Dh] and keys k [B, H, Nk, Dh]:

    P_h[i, j]  = exp(s * q_hi . k_hj - lse_hi)     the softmax row of query i in head h
    mass[b, j] = sum_i w[b, i] * R_h P_h[i, j]       R = max over heads ("max") or sum ("sum")

where lse_hi is the log-sum-exp of query i's allowed scores, and a score is allowed when key j is valid
(``key_valid``, padding excluded) and, with ``causal``, j <= i + (Nk - Nq) (the queries are the last Nq
positions, as in Hugging Face attention). ``query_weight`` [B, Nq] selects and weighs the query subset:
0/1 for a sum, 1/n for FitPrune's mean; [B, S, Nq] gives S subsets at once ([B, S, Nk] out), sharing
the softmax (FitPrune's text and visual queries). A query with no allowed key has no softmax row and contributes 0
(its lse is +inf here). FitPrune's statistic is ``head_reduce="max"`` (the max over heads of the
attention map, then the mean over queries).

The Triton path stores lse [B, H, Nq] and the output [B, Nk]: memory linear in tokens, where the
reference materialises [B, H, Nq, Nk].
"""

from __future__ import annotations

import torch

from kernels.dispatch import use_triton

HEAD_REDUCE = ("max", "sum")


def _check(q: torch.Tensor, k: torch.Tensor, query_weight: torch.Tensor, key_valid: torch.Tensor | None, head_reduce: str) -> None:
    if q.dim() != 4 or k.dim() != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q [B, H, Nq, D] and k [B, H, Nk, D] expected, got {tuple(q.shape)} and {tuple(k.shape)}")
    if query_weight.shape[0] != q.shape[0] or query_weight.shape[-1] != q.shape[2] or query_weight.dim() not in (2, 3):
        raise ValueError(f"query_weight must be [B, Nq] or [B, S, Nq] with B, Nq = {(q.shape[0], q.shape[2])}, got {tuple(query_weight.shape)}")
    if key_valid is not None and key_valid.shape != (k.shape[0], k.shape[2]):
        raise ValueError(f"key_valid must be [B, Nk] = {(k.shape[0], k.shape[2])}, got {tuple(key_valid.shape)}")
    if head_reduce not in HEAD_REDUCE:
        raise ValueError(f"head_reduce must be one of {HEAD_REDUCE}, got {head_reduce!r}")


def allowed_scores(q: torch.Tensor, k: torch.Tensor, key_valid: torch.Tensor | None, causal: bool, scale: float,
                   q_pos: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled scores [B, H, Nq, Nk] in float32 with -inf where a key is not allowed (reference only).
    ``q_pos`` [Nq]: the queries' positions among the keys (default: the last Nq)."""
    nq, nk = q.shape[2], k.shape[2]
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale  # [B, H, Nq, Nk]
    allowed = torch.ones(q.shape[0], nq, nk, dtype=torch.bool, device=q.device)  # [B, Nq, Nk]
    if key_valid is not None:
        allowed &= key_valid.bool()[:, None, :]
    if causal:
        q_pos = torch.arange(nk - nq, nk, device=q.device) if q_pos is None else q_pos
        allowed &= torch.arange(nk, device=q.device)[None, :] <= q_pos[:, None]
    return s.masked_fill(~allowed[:, None], float("-inf"))


def attention_lse_reference(q, k, key_valid=None, causal=True, scale=None) -> torch.Tensor:
    """lse [B, H, Nq] float32; +inf for a query with no allowed key."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    lse = torch.logsumexp(allowed_scores(q, k, key_valid, causal, scale), dim=-1)
    return lse.masked_fill(torch.isneginf(lse), float("inf"))


def attention_mass_reference(q, k, query_weight, key_valid=None, causal=True, head_reduce="max", scale=None) -> torch.Tensor:
    """The direct way: materialise softmax [B, H, Nq, Nk], reduce heads, weigh queries. Returns [B, Nk] float32."""
    _check(q, k, query_weight, key_valid, head_reduce)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    w = query_weight.float()
    w3 = w if w.dim() == 3 else w[:, None]  # [B, S, Nq]
    nq, nk = q.shape[2], k.shape[2]
    rows = torch.nonzero((w3 != 0).any(0).any(0)).flatten()  # only the query rows some subset weighs
    q_pos = rows + (nk - nq)
    p = torch.softmax(allowed_scores(q[:, :, rows], k, key_valid, causal, scale, q_pos), dim=-1).nan_to_num(0.0)  # [B, H, R, Nk]
    p = p.amax(dim=1) if head_reduce == "max" else p.sum(dim=1)  # [B, R, Nk]
    out = torch.einsum("bsr,brk->bsk", w3[:, :, rows], p)
    return out if w.dim() == 3 else out[:, 0]


def attention_lse(q, k, key_valid=None, causal=True, scale=None) -> torch.Tensor:
    """Dispatcher of the log-sum-exp pass alone, for callers that weigh several query subsets."""
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if not use_triton(q, k):
        return attention_lse_reference(q, k, key_valid, causal, scale)
    from kernels import attention_mass_triton as tri

    return tri.attention_lse(q, k, key_valid, causal, scale)


def attention_mass(q, k, query_weight, key_valid=None, causal=True, head_reduce="max", scale=None, lse=None) -> torch.Tensor:
    """Dispatcher: Triton (lse pass + mass pass) on CUDA, the reference elsewhere. Returns [B, Nk] float32.

    ``lse`` [B, H, Nq] may come from the caller (fused attention returns it); otherwise the Triton path
    computes it in a first pass.
    """
    _check(q, k, query_weight, key_valid, head_reduce)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if not use_triton(q, k):  # the reference recomputes lse itself; a given one is for the kernel path
        return attention_mass_reference(q, k, query_weight, key_valid, causal, head_reduce, scale)
    from kernels import attention_mass_triton as tri

    if lse is None:
        lse = tri.attention_lse(q, k, key_valid, causal, scale)
    if query_weight.dim() == 3:  # one mass pass per subset, one lse for all
        return torch.stack([tri.attention_mass(q, k, lse, query_weight[:, i], key_valid, causal, head_reduce, scale)
                            for i in range(query_weight.shape[1])], 1)
    return tri.attention_mass(q, k, lse, query_weight, key_valid, causal, head_reduce, scale)

