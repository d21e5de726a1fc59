"""A span-aware layer loop for the Llama decoder inside a Hugging Face LLaVA model.

Pruning methods need what ``model.forward`` hides: the hidden states between layers, the queries and
keys of a layer's attention, and the freedom to drop tokens of some samples and not others. The loop
embeds text and image as LLaVA does, then loops over the decoder layers itself, calling the model's own
modules (norms, attention, MLP), so its outputs equal the model's (tested). Tokens it drops leave the
hidden states, the attention mask and the position ids together; kept tokens keep their original RoPE
positions, and each sample keeps a different number (`kernels.tokens.gather_kept`).

A method plugs in as a `Policy`: ``before_layer`` and ``after_attention`` return a keep mask (or None),
``layer`` may replace a whole layer's computation (mixture-of-depths, routed skipping).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from kernels.tokens import gather_kept
from training.efficiency.flops import DecoderShape, decoder_flops
from training.efficiency.spans import Spans, find_spans, position_ids_from_mask


@dataclass
class TokenState:
    """The tokens alive between two layers, [B, T] each (T shrinks as tokens are dropped)."""

    hidden: torch.Tensor  # [B, T, D]
    position_ids: torch.Tensor  # [B, T] original RoPE positions
    valid: torch.Tensor  # [B, T] bool: real token (False = padding)
    index: torch.Tensor  # [B, T] long: index in the input sequence
    vision: torch.Tensor  # [B, T] bool: an image token
    text: torch.Tensor  # [B, T] bool: an instruction token (after the image, before any answer)
    answer: torch.Tensor  # [B, T] bool: a teacher-forced answer token (never read by a method's decisions)

    def keep(self, keep: torch.Tensor) -> TokenState:
        """Only the tokens where ``keep`` [B, T] is True (padding is dropped too)."""
        p = gather_kept(keep & self.valid)
        return TokenState(hidden=p.take(self.hidden), position_ids=p.take(self.position_ids), valid=p.valid,
                          index=p.take(self.index), vision=p.take(self.vision, False), text=p.take(self.text, False),
                          answer=p.take(self.answer, False))

    def counts(self) -> torch.Tensor:
        return self.valid.sum(1)  # [B]


@dataclass
class LayerTrace:
    n_attn: torch.Tensor  # [B] tokens that entered the layer's attention
    n_mlp: torch.Tensor  # [B] tokens that entered its MLP
    n_vision_attn: torch.Tensor  # [B] of which visual, attention
    n_vision_mlp: torch.Tensor  # [B] of which visual, MLP


@dataclass
class RunResult:
    hidden: torch.Tensor  # [B, T', D] after the final norm
    state: TokenState
    trace: list[LayerTrace] = field(default_factory=list)
    extras: dict = field(default_factory=dict)  # what a policy collected (router logits, ...)

    def hidden_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Final hidden states [B, P, D] at original positions [B, P] (each must have survived)."""
        match = self.state.index[:, None, :] == positions[:, :, None]  # [B, P, T']
        match &= self.state.valid[:, None, :]
        if not bool(match.any(-1).all()):
            raise ValueError("a requested position was dropped by the method")
        return torch.einsum("bpt,btd->bpd", match.to(self.hidden.dtype), self.hidden)

    def flops(self, shape: DecoderShape, vision_only: bool = False) -> torch.Tensor:
        """Per-sample decoder FLOPs [B] from the token counts each layer actually ran on."""
        out = []
        for b in range(self.hidden.shape[0]):
            if vision_only:
                counts = [(int(t.n_vision_attn[b]), int(t.n_vision_mlp[b])) for t in self.trace]
            else:
                counts = [(int(t.n_attn[b]), int(t.n_mlp[b])) for t in self.trace]
            out.append(decoder_flops(shape, counts))
        return torch.tensor(out, dtype=torch.float64)


class Policy:
    """The unchanged model. Methods override what they need."""

    def before_layer(self, loop: LayerLoop, layer: int, state: TokenState) -> torch.Tensor | None:
        return None

    def wants_qk(self, layer: int) -> bool:
        return False

    def after_attention(self, loop: LayerLoop, layer: int, state: TokenState, q, k) -> torch.Tensor | None:
        return None

    def layer(self, loop: LayerLoop, layer: int, state: TokenState) -> tuple[TokenState, LayerTrace] | None:
        return None


def _vision_count(state: TokenState) -> torch.Tensor:
    return (state.vision & state.valid).sum(1)


class LayerLoop:
    def __init__(self, model):
        self.model = model  # LlavaForConditionalGeneration (or any model with .model.language_model Llama-like)
        self.lm = model.model.language_model
        self.layers = self.lm.layers
        self.shape = DecoderShape.of(model.config.text_config)
        self.image_token_id = model.config.image_token_id

    # ---- inputs
    def embed(self, input_ids, attention_mask, pixel_values, labels=None) -> tuple[TokenState, Spans]:
        inner = self.model.model
        spans = find_spans(input_ids, attention_mask, self.image_token_id, labels)
        emb = inner.get_input_embeddings()(input_ids)  # [B, T, D]
        feats = inner.get_image_features(pixel_values=pixel_values, vision_feature_layer=self.model.config.vision_feature_layer,
                                         vision_feature_select_strategy=self.model.config.vision_feature_select_strategy, return_dict=True).pooler_output
        feats = torch.cat(list(feats), dim=0).to(emb.dtype)  # [B * n_img, D]
        img = (input_ids == self.image_token_id)[..., None]
        emb = emb.masked_scatter(img, feats)
        b, t = input_ids.shape
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        state = TokenState(hidden=emb, position_ids=position_ids_from_mask(mask), valid=mask,
                           index=torch.arange(t, device=input_ids.device).expand(b, t).clone(),
                           vision=spans.mask("vision", t), text=spans.mask("text", t), answer=spans.mask("answer", t))
        return state, spans

    # ---- one layer, in parts
    def mask4d(self, state: TokenState) -> torch.Tensor:
        """Additive mask [B, 1, T, T]: causal in sequence order over valid keys; a padding query sees itself
        (so no softmax row is empty; its output is never used)."""
        b, t = state.valid.shape
        causal = torch.ones(t, t, dtype=torch.bool, device=state.valid.device).tril()
        ok = causal[None] & state.valid[:, None, :]
        ok |= torch.eye(t, dtype=torch.bool, device=ok.device)[None]
        dtype = state.hidden.dtype
        return torch.zeros(b, 1, t, t, dtype=dtype, device=ok.device).masked_fill(~ok[:, None], torch.finfo(dtype).min)

    def rope(self, state: TokenState):
        return self.lm.rotary_emb(state.hidden, position_ids=state.position_ids)

    def attention(self, i: int, state: TokenState, want_qk: bool = False):
        """The layer's attention output [B, T, D] (before the residual), and its roped q, k [B, H, T, Dh] if asked."""
        layer = self.layers[i]
        attn = layer.self_attn
        normed = layer.input_layernorm(state.hidden)
        cos, sin = self.rope(state)
        seen: dict[str, torch.Tensor] = {}
        hooks = []
        if want_qk:  # the projections the attention computes anyway, caught on the way (no second matmul)
            for name in ("q_proj", "k_proj"):
                hooks.append(getattr(attn, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o)))
        try:
            out, _ = attn(hidden_states=normed, position_embeddings=(cos, sin), attention_mask=self.mask4d(state))
        finally:
            for h in hooks:
                h.remove()
        if not want_qk:
            return out, None, None
        b, t, _ = normed.shape
        q = seen["q_proj"].view(b, t, -1, attn.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = seen["k_proj"].view(b, t, -1, attn.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return out, q, repeat_kv(k, attn.num_key_value_groups)

    def mlp(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        layer = self.layers[i]
        return layer.mlp(layer.post_attention_layernorm(hidden))

    def dense_layer(self, i: int, state: TokenState, policy: Policy) -> tuple[TokenState, LayerTrace]:
        n_attn, v_attn = state.counts(), _vision_count(state)
        out, q, k = self.attention(i, state, policy.wants_qk(i))
        state = replace(state, hidden=state.hidden + out)
        keep = policy.after_attention(self, i, state, q, k)
        if keep is not None:
            state = state.keep(keep)
        state = replace(state, hidden=state.hidden + self.mlp(i, state.hidden))
        return state, LayerTrace(n_attn, state.counts(), v_attn, _vision_count(state))

    # ---- the whole decoder
    def run(self, state: TokenState, policy: Policy | None = None, start: int = 0, stop: int | None = None, final_norm: bool = True) -> RunResult:
        policy = policy or Policy()
        trace = []
        for i in range(start, len(self.layers) if stop is None else stop):
            keep = policy.before_layer(self, i, state)
            if keep is not None:
                state = state.keep(keep)
            done = policy.layer(self, i, state)
            state, t = done if done is not None else self.dense_layer(i, state, policy)
            trace.append(t)
        hidden = self.lm.norm(state.hidden) if final_norm else state.hidden
        return RunResult(hidden=hidden, state=state, trace=trace)

    def forward(self, batch: dict, policy: Policy | None = None) -> tuple[RunResult, Spans]:
        state, spans = self.embed(batch["input_ids"], batch.get("attention_mask"), batch["pixel_values"], batch.get("labels"))
        return self.run(state, policy), spans

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(hidden)
