"""Shared primitives of the efficiency stages: each a Triton kernel beside its PyTorch reference, one
dispatcher (`kernels.dispatch.use_triton`): Triton on CUDA, the reference elsewhere."""

from kernels.attention_mass import attention_lse, attention_lse_reference, attention_mass, attention_mass_reference
from kernels.similarity_topk import max_cosine, max_cosine_reference, propagated_score, topk_indices
from kernels.tokens import Packed, gather_kept, scatter_back

__all__ = [
    "attention_mass", "attention_mass_reference", "attention_lse", "attention_lse_reference",
    "max_cosine", "max_cosine_reference", "propagated_score", "topk_indices",
    "Packed", "gather_kept", "scatter_back",
]
