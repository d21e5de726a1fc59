"""The span-aware decoder loop and FLOPs accounting on a tiny random LLaVA built from configs."""

from __future__ import annotations

import pytest
import torch
from efficiency_models import IMAGE_TOKEN, ragged_batch, tiny_llava

from training.efficiency.flops import DecoderShape, decoder_flops, fitprune_layer_macs, layer_macs
from training.efficiency.layer_loop import LayerLoop, Policy
from training.efficiency.spans import find_spans, position_ids_from_mask


@pytest.fixture(scope="module")
def model():
    return tiny_llava()


def test_spans_per_sample_without_offsets():
    batch = ragged_batch()
    s = find_spans(batch["input_ids"], batch["attention_mask"], IMAGE_TOKEN)
    # left padding: lengths 18, 18, 21 in a row of 21
    assert s.vision.tolist() == [[5, 14], [7, 16], [1, 10]]
    assert s.text.tolist() == [[14, 21], [16, 21], [10, 21]]
    assert s.system.tolist() == [[3, 5], [3, 7], [0, 1]]
    right = ragged_batch(left_pad=False)
    assert find_spans(right["input_ids"], right["attention_mask"], IMAGE_TOKEN).text.tolist() == [[11, 18], [13, 18], [10, 21]]
    with_answer = find_spans(batch["input_ids"], batch["attention_mask"], IMAGE_TOKEN, batch["labels"])  # the last 3 tokens
    assert with_answer.text.tolist() == [[14, 18], [16, 18], [10, 18]] and with_answer.answer.tolist() == [[18, 21]] * 3
    # a tiled image (a tile marker between two runs of image tokens) is one vision span of image tokens only
    ids = batch["input_ids"].clone()
    ids[0, 8] = 7
    tiled = find_spans(ids, batch["attention_mask"], IMAGE_TOKEN)
    assert tiled.vision.tolist() == s.vision.tolist() and tiled.image[0].sum() == 8 and not tiled.mask("vision", ids.shape[1])[0, 8]
    ids[1] = torch.where(ids[1] == IMAGE_TOKEN, 6, ids[1])
    with pytest.raises(ValueError, match=r"samples \[1\] have no image token"):
        find_spans(ids, batch["attention_mask"], IMAGE_TOKEN)


def test_dense_run_equals_the_model(model):
    batch = ragged_batch()
    pos = position_ids_from_mask(batch["attention_mask"])
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"], position_ids=pos).logits
        loop = LayerLoop(model)
        res, _ = loop.forward(batch)
        got = loop.logits(res.hidden)
    real = batch["attention_mask"].bool()
    assert torch.allclose(got[real], ref[real], atol=1e-4), (got[real] - ref[real]).abs().max()


class _DropVisionAfter(Policy):
    def __init__(self, layer):
        self.at = layer

    def after_attention(self, loop, layer, state, q, k):
        return ~state.vision if layer == self.at else None


def test_dropping_keeps_positions_and_equals_a_run_without_those_tokens(model):
    """Dropping the image before layer 0 = feeding the text alone with the original positions."""
    batch = ragged_batch()
    loop = LayerLoop(model)

    class DropFirst(Policy):
        def before_layer(self, loop, layer, state):
            return ~state.vision if layer == 0 else None

    with torch.no_grad():
        res, spans = loop.forward(batch, DropFirst())
        state, _ = loop.embed({k: v for k, v in batch.items() if k != "labels"})
        slow = []
        for b in range(3):  # one sample at a time, through the plain HF decoder
            keep = state.valid[b] & ~state.vision[b]
            out = loop.lm(inputs_embeds=state.hidden[b:b + 1, keep], position_ids=state.position_ids[b:b + 1, keep]).last_hidden_state
            slow.append(out[0])
    for b in range(3):
        got = res.hidden[b][res.state.valid[b]]
        assert torch.allclose(got, slow[b], atol=1e-4)
        assert res.state.position_ids[b][res.state.valid[b]].tolist() == state.position_ids[b][state.valid[b] & ~state.vision[b]].tolist()
    assert [int(t.n_attn[0]) for t in res.trace] == [9, 9, 9] and [int(t.n_attn[1]) for t in res.trace] == [9, 9, 9] and [int(t.n_vision_attn[2]) for t in res.trace] == [0, 0, 0]
    with torch.no_grad():
        mid, _ = loop.forward(batch, _DropVisionAfter(1))
    assert [(int(t.n_attn[1]), int(t.n_mlp[1])) for t in mid.trace] == [(18, 18), (18, 9), (9, 9)]


def test_analytic_flops_equal_flop_counter(model):
    from torch.utils.flop_counter import FlopCounterMode

    shape = DecoderShape.of(model.config.text_config)
    n = 23
    x = torch.randn(1, n, shape.hidden)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.model.language_model(inputs_embeds=x)
    assert fc.get_total_flops() == decoder_flops(shape, [(n, n)] * shape.layers)
    # a head width of its own (Gemma 3, Qwen3: head_dim != hidden / heads), sliding and global layers alike
    from transformers import Gemma3TextConfig, Gemma3TextModel

    gemma = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             head_dim=24, layer_types=["sliding_attention", "full_attention"], sliding_window=64)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        Gemma3TextModel(gemma).eval()(inputs_embeds=torch.randn(1, n, 32))
    assert fc.get_total_flops() == decoder_flops(DecoderShape.of(gemma), [(n, n)] * 2)
    # without grouped-query attention the per-layer count is FitPrune's formula exactly
    mha = DecoderShape(hidden=32, ffn=72, layers=1, heads=4, kv_heads=4)
    assert layer_macs(mha, 23) == fitprune_layer_macs(23, 32, 72)


def test_measured_flops_follow_the_tokens_each_layer_ran(model):
    batch = ragged_batch()
    loop = LayerLoop(model)
    with torch.no_grad():
        res, _ = loop.forward(batch, _DropVisionAfter(1))
    from torch.utils.flop_counter import FlopCounterMode

    # sample 1 alone, dense, through the counter: layers with 18 tokens, then 18 -> 9, then 9
    shape = loop.shape
    x = torch.randn(1, 18, shape.hidden)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        lm = loop.lm
        pe = lm.rotary_emb(x, torch.arange(18)[None])
        h = lm.layers[0](x, position_embeddings=pe)
        h = h + lm.layers[1].self_attn(lm.layers[1].input_layernorm(h), position_embeddings=pe, attention_mask=None)[0]
        h = h[:, :9]
        h = h + lm.layers[1].mlp(lm.layers[1].post_attention_layernorm(h))
        lm.layers[2](h, position_embeddings=lm.rotary_emb(h, torch.arange(9)[None]))
    assert res.flops(shape)[1].item() == fc.get_total_flops()
