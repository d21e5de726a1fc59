"""One rule for every primitive: the Triton kernel on CUDA, the PyTorch reference elsewhere.

``GCOT_FORCE_TRITON=1`` sends CPU tensors to the Triton kernels too; with ``TRITON_INTERPRET=1`` set
before the kernel module is imported, that runs Triton's interpreter on the CPU (how the tests compare
kernel and reference without a GPU). The Triton modules are imported only when chosen, so a CPU-only
run never needs a working Triton compiler.
"""

from __future__ import annotations

import math
import os

import torch


def use_triton(*tensors: torch.Tensor) -> bool:
    if os.environ.get("GCOT_FORCE_TRITON") == "1":
        return True
    return all(t.is_cuda for t in tensors)


def padded_head_dim(d: int) -> int:
    """The head dimension a Triton block is padded to: a power of two, at least 16 (tl.dot's minimum)."""
    return max(16, 1 << math.ceil(math.log2(d)))
