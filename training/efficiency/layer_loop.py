"""A span-aware layer loop for the decoder inside a Hugging Face image-text model, of any known family.

Pruning methods need what ``model.forward`` hides: the hidden states between layers, the queries and
keys of a layer's attention, and the freedom to drop tokens of some samples and not others. The loop
takes the first decoder layer's inputs as the model computes them (the model's family, `training.families`:
image features placed, embeddings scaled, multimodal RoPE positions), then loops over the decoder layers
itself, calling the model's own modules (norms, attention, MLP) the way the family's decoder does (per-layer
RoPE and sliding windows, bidirectional blocks such as PaliGemma's prefix and Gemma 3's images, Gemma's
norms around attention and MLP, Qwen3-VL's DeepStack features added after the first layers), so its
outputs equal the model's (tested for every family). Tokens it drops leave the hidden states, the
attention mask and the position ids together; kept tokens keep their original RoPE positions (all three
axes under multimodal RoPE), and each sample keeps a different number (`kernels.tokens.gather_kept`).

A method plugs in as a `Policy`: ``before_layer`` and ``after_attention`` return a keep mask (or None),
``layer`` may replace a whole layer's computation (mixture-of-depths, routed skipping).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace

import torch
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from kernels.tokens import gather_kept
from training.efficiency.flops import DecoderShape, decoder_flops
from training.efficiency.spans import Spans, find_spans
from training.families import Family, family_of


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
    block: torch.Tensor | None = None  # [B, T] long: bidirectional block id (-1: causal only); None: none anywhere
    extra: torch.Tensor | None = None  # [B, T, K, D]: per-token features the family adds after layers 0..K-1

    _FILL = {"valid": False, "vision": False, "text": False, "answer": False, "block": -1}  # what a padding slot holds

    def keep(self, keep: torch.Tensor) -> TokenState:
        """Only the tokens where ``keep`` [B, T] is True (padding is dropped too)."""
        p = gather_kept(keep & self.valid)
        out = {f.name: None if getattr(self, f.name) is None else p.take(getattr(self, f.name), self._FILL.get(f.name, 0)) for f in fields(self)}
        return TokenState(**{**out, "valid": p.valid})

    def rows(self, rows: torch.Tensor) -> TokenState:
        """The samples where ``rows`` [B] is True."""
        return TokenState(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows] for f in fields(self)})

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


_CAPTURE = "gcot_capture_qk"
_captured: dict = {}


def _capture_qk(module, query, key, value, attention_mask, **kwargs):
    """The attention of a decoder layer as configured, with its roped queries and keys caught on the way
    (whatever the family does to them first: q/k norms, multimodal RoPE)."""
    _captured["q"], _captured["k"], _captured["scaling"] = query, key, kwargs.get("scaling")
    impl = _captured["impl"]
    if impl == "eager":  # the module's own eager function (Gemma's soft-capping lives there)
        fn = sys.modules[type(module).__module__].eager_attention_forward
    else:
        fn = ALL_ATTENTION_FUNCTIONS[impl]
    return fn(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(_CAPTURE, _capture_qk)


class LayerLoop:
    def __init__(self, model, family: Family | None = None):
        self.model = model  # any *ForConditionalGeneration of a known family
        self.family = family or family_of(model.config)
        self.lm = self.family.language_model(model)
        self.layers = self.lm.layers
        self.shape = DecoderShape.of(model.config.get_text_config())
        self.image_token_id = model.config.image_token_id  # the placeholder the image features replace

    # ---- inputs
    def embed(self, batch: dict) -> tuple[TokenState, Spans]:
        """The first decoder layer's inputs of a batch (every tensor its processor made), with the spans."""
        input_ids, attention_mask = batch["input_ids"], batch.get("attention_mask")
        spans = find_spans(input_ids, attention_mask, self.image_token_id, batch.get("labels"))
        if attention_mask is None:
            batch = {**batch, "attention_mask": torch.ones_like(input_ids)}
        e = self.family.embed(self.model, batch)
        b, t = input_ids.shape
        mask = batch["attention_mask"].bool()
        block = e.block if bool((e.block >= 0).any()) else None
        state = TokenState(hidden=e.hidden, position_ids=e.position_ids, valid=mask,
                           index=torch.arange(t, device=input_ids.device).expand(b, t).clone(),
                           vision=spans.mask("vision", t), text=spans.mask("text", t), answer=spans.mask("answer", t), block=block, extra=e.extra)
        return state, spans

    def text_positions(self, valid: torch.Tensor) -> torch.Tensor:
        """Positions of a sequence built with only these tokens (the family's first position included)."""
        return self.family.text_positions(valid)

    # ---- one layer, in parts
    def mask4d(self, state: TokenState, window: int | None = None) -> torch.Tensor:
        """Additive mask [B, 1, T, T]: causal in sequence order over valid keys, both ways inside a block,
        within ``window`` tokens for a sliding-window layer; a padding query sees itself (so no softmax row
        is empty; its output is never used)."""
        b, t = state.valid.shape
        ar = torch.arange(t, device=state.valid.device)
        ok = (ar[None, :] <= ar[:, None])[None]  # [1, Tq, Tk]
        if state.block is not None:
            blk = state.block
            ok = ok | ((blk[:, :, None] == blk[:, None, :]) & (blk[:, :, None] >= 0))
        if window is not None:
            ok = ok & (ar[None, :] > ar[:, None] - window)[None]
        ok = ok & state.valid[:, None, :]
        ok = ok | torch.eye(t, dtype=torch.bool, device=ok.device)[None]
        dtype = state.hidden.dtype
        return torch.zeros(b, 1, t, t, dtype=dtype, device=ok.device).masked_fill(~ok[:, None], torch.finfo(dtype).min)

    def rope(self, state: TokenState, layer: int = 0):
        return self.family.rope(self.lm, state.hidden, state.position_ids, layer)

    def attention(self, i: int, state: TokenState, want_qk: bool = False):
        """What layer i's attention adds [B, T, D], and (if asked) its roped queries and keys [B, H, T, Dh],
        the keys repeated to the query heads, the queries scaled so that 1/sqrt(Dh) gives the layer's logits."""
        layer = self.layers[i]
        pe = self.rope(state, i)
        mask = self.mask4d(state, self.family.window(self.lm, i))
        if not want_qk:
            return self.family.attention_branch(layer, state.hidden, pe, mask), None, None
        cfg = layer.self_attn.config
        impl = cfg._attn_implementation_internal
        _captured.clear()
        _captured["impl"] = impl or "eager"
        cfg._attn_implementation_internal = _CAPTURE
        try:
            out = self.family.attention_branch(layer, state.hidden, pe, mask)
        finally:
            cfg._attn_implementation_internal = impl
        q, k, scaling = _captured["q"], _captured["k"], _captured["scaling"]
        if scaling is not None:
            q = q * (scaling * q.shape[-1] ** 0.5)
        groups = q.shape[1] // k.shape[1]
        return out, q, k.repeat_interleave(groups, dim=1) if groups > 1 else k

    def mlp(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        """What layer i's MLP adds [B, T, D]."""
        return self.family.mlp_branch(self.layers[i], hidden)

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
            if state.extra is not None:
                state = replace(state, hidden=self.family.after_layer(i, state.hidden, state.extra, state.vision & state.valid))
            trace.append(t)
        hidden = self.lm.norm(state.hidden) if final_norm else state.hidden
        return RunResult(hidden=hidden, state=state, trace=trace)

    def forward(self, batch: dict, policy: Policy | None = None) -> tuple[RunResult, Spans]:
        state, spans = self.embed(batch)
        return self.run(state, policy), spans

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.family.logits(self.model, hidden)
