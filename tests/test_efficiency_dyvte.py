"""DyVTE: labels from the masked-key-column run (computed here directly), gate training, exit at inference."""

from __future__ import annotations

import pytest
import torch
from efficiency_models import ragged_batch, tiny_llava

from training.efficiency.data import answer_positions
from training.efficiency.dyvte import DyVTEPolicy, Gates, exit_labels, gate_features, train_gates
from training.efficiency.layer_loop import LayerLoop, Policy


@pytest.fixture(scope="module")
def model():
    return tiny_llava(layers=3)


def masked_columns_logits(loop, state, layer, batch):
    """The paper's second run, directly: the full sequence, visual key columns masked from ``layer`` on."""
    b, t = state.valid.shape
    ok = torch.ones(t, t, dtype=torch.bool).tril()[None] & state.valid[:, None, :] & ~state.vision[:, None, :]
    ok |= torch.eye(t, dtype=torch.bool)[None]
    mask = torch.zeros(b, 1, t, t).masked_fill(~ok[:, None], torch.finfo(torch.float32).min)
    h = state.hidden
    pe = loop.lm.rotary_emb(h, state.position_ids)
    for i in range(layer, len(loop.layers)):
        h = loop.layers[i](h, attention_mask=mask, position_embeddings=pe)
    pos, valid = answer_positions(batch["labels"])
    h = loop.lm.norm(h)[torch.arange(b)[:, None], pos]
    return loop.logits(h), pos, valid


def test_exit_labels_follow_the_official_rule_on_masked_columns(model):
    loop = LayerLoop(model)
    batch = ragged_batch()
    with torch.no_grad():
        state, _ = loop.embed({k: v for k, v in batch.items() if k != "labels"})
        for layer in range(3):
            got = exit_labels(loop, state, layer, batch)
            normal = loop.logits(loop.run(state, start=layer).hidden)  # no drops: positions are the original ones
            masked, pos, valid = masked_columns_logits(loop, state, layer, batch)
            want = []
            for b in range(3):
                p = pos[b][valid[b]]
                ln, lm = normal[b, p], masked[b][valid[b]]
                tgt = batch["labels"][b, p + 1]
                agree = (ln.argmax(-1) == lm.argmax(-1)).float().mean()
                ce_n = torch.nn.functional.cross_entropy(ln, tgt)
                ce_m = torch.nn.functional.cross_entropy(lm, tgt)
                want.append(int(agree > 0.99 and ce_m < 1.03 * ce_n))
            assert got.tolist() == want
            state = loop.run(state, start=layer, stop=layer + 1, final_norm=False).state
    # at the last layer's input, removing the image from one layer is harmless for some sample here
    assert sum(want) >= 1


def test_gate_features_are_the_text_mean_and_last_text_token(model):
    loop = LayerLoop(model)
    batch = ragged_batch()
    state, spans = loop.embed({k: v for k, v in batch.items() if k != "labels"})
    f = gate_features(state)
    for b in range(3):
        t0, t1 = spans.text[b].tolist()
        assert torch.allclose(f[b, :32], state.hidden[b, t0:t1].mean(0), atol=1e-6)
        assert torch.equal(f[b, 32:], state.hidden[b, t1 - 1])


def test_gate_training_leaves_the_llm_alone_and_learns_the_labels(model):
    loop = LayerLoop(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gates = Gates(32, 3, gate_hidden=64)
    torch.manual_seed(0)
    hist = train_gates(loop, gates, [ragged_batch(seed=s) for s in range(3)], steps=150, lr=3e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    first = sum(h["loss"] for h in hist[:15]) / 15
    last = sum(h["loss"] for h in hist[-15:]) / 15
    assert last < 0.5 * first, (first, last)


def test_exit_removes_every_visual_token_from_that_layer_on(model):
    loop = LayerLoop(model)
    batch = ragged_batch()
    gates = Gates(32, 3, gate_hidden=8)
    with torch.no_grad():
        for i, g in enumerate(gates.gates):
            g[2].weight.zero_()
            g[2].bias.copy_(torch.tensor([0.0, 5.0 if i == 1 else -5.0]))  # layer 1's gate says exit
        pol = DyVTEPolicy(gates)
        res, _ = loop.forward(batch, pol)

        class DropAt1(Policy):
            def before_layer(self, loop, layer, state):
                return ~state.vision if layer == 1 else None

        ref, _ = loop.forward(batch, DropAt1())
        never, _ = loop.forward(batch, DyVTEPolicy(gates, threshold=1.0))
        dense, _ = loop.forward(batch)
    assert pol.exit_layer.tolist() == [1, 1, 1]
    assert [t.n_vision_attn.tolist() for t in res.trace] == [[9, 9, 9], [0, 0, 0], [0, 0, 0]]
    assert torch.allclose(res.hidden, ref.hidden, atol=1e-6) and torch.allclose(never.hidden, dense.hidden)
