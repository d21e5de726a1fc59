"""Gather and scatter of kept tokens, ragged per sample, with their original position ids.

Pruning leaves each sample a different number of tokens. ``gather_kept`` packs every sample's kept
tokens, in their original order, to the right end of a [B, K] batch (K = the most kept by any sample):
left padding, as generation uses, so position -1 is every sample's last token. The original RoPE
position ids travel with the tokens, and ``index`` remembers where each came from so ``scatter_back``
can put per-token results into the full-length layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Packed:
    index: torch.Tensor  # [B, K] long: original token index (0 where padding)
    valid: torch.Tensor  # [B, K] bool: a real token (False = padding)

    def take(self, t: torch.Tensor, fill=0) -> torch.Tensor:
        """Select along dim 1 of any [B, T, ...] tensor; padding slots get ``fill``."""
        idx = self.index.view(*self.index.shape, *([1] * (t.dim() - 2))).expand(*self.index.shape, *t.shape[2:])
        out = torch.gather(t, 1, idx)
        pad = ~self.valid.view(*self.valid.shape, *([1] * (t.dim() - 2)))
        return out.masked_fill(pad, fill)


def gather_kept(keep: torch.Tensor) -> Packed:
    """keep [B, T] bool -> Packed with K = max kept per sample, kept tokens right-aligned, order kept."""
    b, t = keep.shape
    counts = keep.sum(1)  # [B]
    k = int(counts.max()) if b else 0
    # sort key: dropped tokens first, then kept in original order (stable), so the last k are the kept ones
    order = torch.sort(keep.to(torch.int8), dim=1, stable=True).indices[:, t - k:]  # [B, K]
    slot = torch.arange(k, device=keep.device).expand(b, k)
    valid = slot >= (k - counts)[:, None]
    return Packed(index=order.masked_fill(~valid, 0), valid=valid)


def scatter_back(values: torch.Tensor, packed: Packed, length: int, fill=0) -> torch.Tensor:
    """values [B, K, ...] -> [B, length, ...] at the original indices; untouched slots get ``fill``."""
    b, k = packed.index.shape
    out = values.new_full((b, length, *values.shape[2:]), fill)
    rows = torch.arange(b, device=values.device)[:, None].expand(b, k)
    out[rows[packed.valid], packed.index[packed.valid]] = values[packed.valid]
    return out
