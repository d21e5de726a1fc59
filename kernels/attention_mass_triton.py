"""Triton kernels of `kernels.attention_mass` (import only through its dispatcher).

Pass 1 (`_lse_kernel`): one program per (batch x head, query block); online max / sum over key blocks,
as flash attention does, giving lse [B, H, Nq]. Pass 2 (`_mass_kernel`): one program per (batch, key
block); it walks the query blocks (from the first one that may see the block, under causality),
recomputes each head's scores, turns them into probabilities with the stored lse, reduces heads (max or
sum) and adds the weighted query rows into the key block's accumulator. Query blocks whose weights are
all zero are skipped, so a small query subset (FitPrune's text queries) costs only its own blocks.
Scores are dot products in the inputs' dtype with float32 accumulation (tensor cores for bf16/fp16; on
a GPU float32 inputs go through TF32, so expect ~1e-3 relative differences there, not the interpreter's
~1e-6); everything after the dot is float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.dispatch import padded_head_dim

BLOCK_M, BLOCK_N = 32, 32


@triton.jit
def _lse_kernel(Q, K, KV, LSE, H, NQ, NK, D, OFFSET, scale,
                sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svn, slb, slh, slm,
                CAUSAL: tl.constexpr, HAS_VALID: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    pid_bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
    m_i = tl.full([BM], float("-inf"), tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    hi = NK
    if CAUSAL:
        hi = tl.minimum(NK, (pid_m + 1) * BM + OFFSET)
    for n0 in range(0, hi, BN):
        offs_n = n0 + tl.arange(0, BN)
        k = tl.load(K + b * skb + h * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                    mask=(offs_n[:, None] < NK) & (offs_d[None, :] < D), other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale  # [BM, BN]
        ok = (offs_n[None, :] < NK) & (offs_m[:, None] < NQ)
        if HAS_VALID:
            v = tl.load(KV + b * svb + offs_n * svn, mask=offs_n < NK, other=0)
            ok = ok & (v[None, :] != 0)
        if CAUSAL:
            ok = ok & (offs_n[None, :] <= offs_m[:, None] + OFFSET)
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), 1)
        m_i = m_new
    lse = tl.where(m_i == float("-inf"), float("inf"), m_i + tl.log(l_i))
    tl.store(LSE + b * slb + h * slh + offs_m * slm, lse, mask=offs_m < NQ)


@triton.jit
def _mass_kernel(Q, K, LSE, W, KV, OUT, H, NQ, NK, D, OFFSET, scale,
                 sqb, sqh, sqm, sqd, skb, skh, skn, skd, slb, slh, slm, swb, swm, svb, svn, sob, son,
                 CAUSAL: tl.constexpr, HAS_VALID: tl.constexpr, HEAD_MAX: tl.constexpr,
                 BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    b = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_d = tl.arange(0, BD)
    kvalid = offs_n < NK
    if HAS_VALID:
        kvalid = kvalid & (tl.load(KV + b * svb + offs_n * svn, mask=offs_n < NK, other=0) != 0)
    acc = tl.zeros([BN], tl.float32)
    m_start = 0
    if CAUSAL:
        m_start = (tl.maximum(pid_n * BN - OFFSET, 0) // BM) * BM
    for m0 in range(m_start, NQ, BM):
        offs_m = m0 + tl.arange(0, BM)
        w = tl.load(W + b * swb + offs_m * swm, mask=offs_m < NQ, other=0.0).to(tl.float32)
        if tl.max(tl.abs(w), 0) > 0:
            ok = kvalid[None, :] & (offs_m[:, None] < NQ)
            if CAUSAL:
                ok = ok & (offs_n[None, :] <= offs_m[:, None] + OFFSET)
            red = tl.zeros([BM, BN], tl.float32)  # probabilities are >= 0, so 0 starts the max too
            for h in range(H):
                q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                            mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
                k = tl.load(K + b * skb + h * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                            mask=(offs_n[:, None] < NK) & (offs_d[None, :] < D), other=0.0)
                lse = tl.load(LSE + b * slb + h * slh + offs_m * slm, mask=offs_m < NQ, other=float("inf"))
                p = tl.exp(tl.dot(q, tl.trans(k)) * scale - lse[:, None])
                p = tl.where(ok, p, 0.0)
                if HEAD_MAX:
                    red = tl.maximum(red, p)
                else:
                    red = red + p
            acc += tl.sum(red * w[:, None], 0)
    tl.store(OUT + b * sob + offs_n * son, acc, mask=offs_n < NK)


def _valid(key_valid: torch.Tensor | None, k: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if key_valid is None:
        return torch.ones(1, 1, dtype=torch.int8, device=k.device), False
    return key_valid.to(torch.int8), True


def attention_lse(q, k, key_valid, causal: bool, scale: float) -> torch.Tensor:
    b, h, nq, d = q.shape
    nk = k.shape[2]
    kv, has_valid = _valid(key_valid, k)
    lse = torch.empty(b, h, nq, dtype=torch.float32, device=q.device)
    grid = (b * h, triton.cdiv(nq, BLOCK_M))
    _lse_kernel[grid](q, k, kv, lse, h, nq, nk, d, nk - nq, scale,
                      *q.stride(), *k.stride(), kv.stride(0), kv.stride(1), *lse.stride(),
                      CAUSAL=causal, HAS_VALID=has_valid, BM=BLOCK_M, BN=BLOCK_N, BD=padded_head_dim(d))
    return lse


def attention_mass(q, k, lse, query_weight, key_valid, causal: bool, head_reduce: str, scale: float) -> torch.Tensor:
    b, h, nq, d = q.shape
    nk = k.shape[2]
    kv, has_valid = _valid(key_valid, k)
    w = query_weight.float().contiguous()
    out = torch.empty(b, nk, dtype=torch.float32, device=q.device)
    grid = (b, triton.cdiv(nk, BLOCK_N))
    _mass_kernel[grid](q, k, lse, w, kv, out, h, nq, nk, d, nk - nq, scale,
                       *q.stride(), *k.stride(), *lse.stride(), *w.stride(), kv.stride(0), kv.stride(1), *out.stride(),
                       CAUSAL=causal, HAS_VALID=has_valid, HEAD_MAX=head_reduce == "max",
                       BM=BLOCK_M, BN=BLOCK_N, BD=padded_head_dim(d))
    return out
