"""FLOPs of a Llama-style decoder: FitPrune's analytic per-layer formula and whole-prefill counts.

FitPrune (2409.10197) counts a layer over n tokens as ``4 n d^2 + 2 n^2 d + 3 n d m`` multiply-adds
(d hidden size, m FFN size): q, k, v, o projections; scores and the weighted sum; gate, up, down. It
assumes as many key/value heads as query heads of width d / heads; with grouped-query attention the k
and v projections shrink, and a head width of its own (Gemma, Qwen3) changes the projections and the
scores, which ``layer_macs`` accounts for. ``torch.utils.flop_counter`` counts 2 FLOPs per
multiply-add, so FLOPs = 2 x MACs (checked in tests against FlopCounterMode on a real decoder).
Norms, RoPE, softmax and activations are not counted (as FlopCounterMode does not).

A layer that drops tokens after its attention (FitPrune) runs attention over ``n_attn`` tokens and
the MLP over ``n_mlp``; ``layer_macs`` takes both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderShape:
    hidden: int  # d
    ffn: int  # m
    layers: int
    heads: int
    kv_heads: int
    head_dim: int | None = None  # None: hidden // heads (Gemma, Qwen3 set their own)

    @classmethod
    def of(cls, text_config) -> DecoderShape:
        c = text_config
        return cls(c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
                   getattr(c, "head_dim", None))


def fitprune_layer_macs(n: int, d: int, m: int) -> int:
    """The paper's formula, verbatim: 4 n d^2 + 2 n^2 d + 3 n d m."""
    return 4 * n * d * d + 2 * n * n * d + 3 * n * d * m


def layer_macs(shape: DecoderShape, n_attn: int, n_mlp: int | None = None) -> int:
    """One decoder layer: attention over n_attn tokens, MLP over n_mlp (default n_attn)."""
    n_mlp = n_attn if n_mlp is None else n_mlp
    d, m = shape.hidden, shape.ffn
    hd = shape.head_dim or d // shape.heads
    q, kv = shape.heads * hd, shape.kv_heads * hd  # widths of the query and key/value projections
    proj = n_attn * d * (2 * q + 2 * kv)  # q, o: d x q; k, v: d x kv (= 4 n d^2 without GQA, head_dim = d / heads)
    return proj + 2 * n_attn * n_attn * q + 3 * n_mlp * d * m


def decoder_flops(shape: DecoderShape, tokens: list[tuple[int, int]]) -> int:
    """FLOPs (2 x MACs) of one sample's prefill, given (n_attn, n_mlp) per layer."""
    if len(tokens) != shape.layers:
        raise ValueError(f"{len(tokens)} layer token counts for a {shape.layers}-layer decoder")
    return 2 * sum(layer_macs(shape, a, m) for a, m in tokens)
