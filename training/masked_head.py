"""The masked LM head (Long-VITA): logits only for the rows whose label is not ignored.

A chat turn's loss covers the answer tokens alone, a few percent of the sequence; computing the
vocabulary-sized logits for every position wastes memory in proportion to sequence length x vocab.
Here the hidden states are shifted, the rows with a label are selected *before* the head, and the
cross-entropy runs on those rows only. On CUDA, with Liger-Kernel installed, the selected rows go
through its fused linear cross-entropy, which never materializes the logits at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def masked_lm_loss(hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions.

    hidden: [B, T, D] final hidden states; head: the LM head (any module D -> V, PEFT-wrapped or not);
    labels: [B, T] with IGNORE where there is no loss.
    """
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])  # [B*(T-1), D]: position t predicts token t+1
    y = labels[:, 1:].reshape(-1)  # [B*(T-1)]
    keep = y != IGNORE
    h, y = h[keep], y[keep]  # [N, D], [N]: N = labelled tokens only
    if h.is_cuda and isinstance(head, torch.nn.Linear) and head.bias is None:
        try:
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

            out = liger_fused_linear_cross_entropy(h, head.weight, y)
            return out if isinstance(out, torch.Tensor) else out[0]  # some versions return (loss, extras)
        except ImportError:
            pass
    return F.cross_entropy(head(h).float(), y)  # logits [N, V]


def full_lm_loss(hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """The usual way, for reference and the benchmark: logits for every position, then the mask."""
    logits = head(hidden).float()  # [B, T, V]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
