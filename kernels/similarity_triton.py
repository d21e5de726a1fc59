"""Triton kernel of `kernels.similarity_topk.max_cosine` (import only through its dispatcher).

One program per (sample, row block): the row block's tokens against every column block, the dot
product accumulated over head-dim chunks, scaled by both inverse norms (the normalisation, fused), the
diagonal and invalid columns masked, a running row max. Norms come from one torch reduction first.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_N, BLOCK_D = 32, 32, 32


@triton.jit
def _max_cos_kernel(X, INV, V, OUT, N, D, sxb, sxn, sxd, sib, sin, svb, svn, sob, son,
                    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    b = tl.program_id(0)
    offs_m = tl.program_id(1) * BM + tl.arange(0, BM)
    inv_m = tl.load(INV + b * sib + offs_m * sin, mask=offs_m < N, other=0.0)
    best = tl.full([BM], float("-inf"), tl.float32)
    for n0 in range(0, N, BN):
        offs_n = n0 + tl.arange(0, BN)
        acc = tl.zeros([BM, BN], tl.float32)
        for d0 in range(0, D, BD):
            offs_d = d0 + tl.arange(0, BD)
            xm = tl.load(X + b * sxb + offs_m[:, None] * sxn + offs_d[None, :] * sxd,
                         mask=(offs_m[:, None] < N) & (offs_d[None, :] < D), other=0.0)
            xn = tl.load(X + b * sxb + offs_n[:, None] * sxn + offs_d[None, :] * sxd,
                         mask=(offs_n[:, None] < N) & (offs_d[None, :] < D), other=0.0)
            acc += tl.dot(xm, tl.trans(xn))
        inv_n = tl.load(INV + b * sib + offs_n * sin, mask=offs_n < N, other=0.0)
        vn = tl.load(V + b * svb + offs_n * svn, mask=offs_n < N, other=0)
        s = acc * inv_m[:, None] * inv_n[None, :]
        ok = (offs_n[None, :] < N) & (vn[None, :] != 0) & (offs_n[None, :] != offs_m[:, None])
        best = tl.maximum(best, tl.max(tl.where(ok, s, float("-inf")), 1))
    tl.store(OUT + b * sob + offs_m * son, best, mask=offs_m < N)


def max_cosine(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    b, n, d = x.shape
    inv = 1.0 / x.float().norm(dim=-1).clamp(min=1e-12)  # [B, N], as F.normalize's eps
    v = valid.to(torch.int8)
    out = torch.empty(b, n, dtype=torch.float32, device=x.device)
    grid = (b, triton.cdiv(n, BLOCK_M))
    _max_cos_kernel[grid](x, inv, v, out, n, d, *x.stride(), *inv.stride(), *v.stride(), *out.stride(),
                          BM=BLOCK_M, BN=BLOCK_N, BD=BLOCK_D)
    return out
