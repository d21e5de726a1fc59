"""γ-MoD, RoE and FlashSloth on small inputs, against hand computations and direct implementations."""

from __future__ import annotations

import math

import pytest
import torch
from efficiency_models import ragged_batch, tiny_llava

from training.efficiency.flashsloth import InstructionQueries, SpatialAttentionPool, pool_state, run_pooled, train_pool
from training.efficiency.gamma_mod import AUX_WEIGHT, MoDPolicy, arank, attention_rank, finetune, layers_to_convert
from training.efficiency.layer_loop import LayerLoop
from training.efficiency.roe import RoE, curriculum, sparsity_regulariser
from training.efficiency.roe import train as roe_train
from training.efficiency.spans import position_ids_from_mask


@pytest.fixture(scope="module")
def model():
    return tiny_llava(layers=3)


# ---- γ-MoD

def test_attention_rank_by_hand():
    h0 = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])  # diagonal zeroed: rows 0, (.5,0,0), (.2,.3,0): rank 2
    h1 = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0]])  # diagonal zeroed: rows 0, (1,0,0), (1,0,0): rank 1
    assert attention_rank(torch.stack([h0, h1])) == 1.5
    assert layers_to_convert([5.0, 2.0, 3.0, 2.0], 2) == [1, 3]


def test_arank_equals_the_eager_maps(model):
    import numpy as np

    batch = ragged_batch()
    got = arank(LayerLoop(model), [batch])
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")},
                        position_ids=position_ids_from_mask(batch["attention_mask"]), output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    for layer, a in enumerate(out.attentions):
        ranks = []
        for b in range(3):
            real = batch["attention_mask"][b].bool()
            for h in range(a.shape[1]):
                m = a[b, h][real][:, real].double().numpy().copy()
                np.fill_diagonal(m, 0)
                ranks.append(np.linalg.matrix_rank(m))
        assert got[layer] == pytest.approx(sum(ranks) / len(ranks))


def _mod_layer_directly(loop, layer, x, b, idx, p):
    """Layer ``layer`` on sample b's tokens ``idx`` alone (original positions), MLP scaled by their p."""
    lay = loop.layers[layer]
    h = x.hidden[b:b + 1, idx]
    pe = loop.lm.rotary_emb(h, x.position_ids[b:b + 1, idx])
    h = h + lay.self_attn(lay.input_layernorm(h), position_embeddings=pe, attention_mask=None)[0]
    return (h + lay.mlp(lay.post_attention_layernorm(h)) * p[b, idx][None, :, None])[0]


def test_mod_layer_routes_as_specified_and_matches_a_direct_computation(model):
    loop = LayerLoop(model)
    batch = ragged_batch()
    torch.manual_seed(1)
    pol = MoDPolicy(32, [1])
    pol.train()
    layer = loop.layers[1]
    with torch.no_grad():
        state, spans = loop.embed(batch)
        x = loop.run(state, stop=1, final_norm=False).state  # input of layer 1
        forced = x.text | x.answer
        res = loop.run(x, pol, start=1, stop=2, final_norm=False)
        logits = pol.router(layer.input_layernorm(x.hidden))  # the router reads the layer's normed input
        p = torch.softmax(logits, -1)[..., 1]
        member = torch.zeros_like(p)
        for b in range(3):
            v = x.valid[b]
            routable = [i for i in range(x.hidden.shape[1]) if v[i] and not forced[b, i]]
            k = math.ceil(0.5 * len(routable))
            top = sorted(sorted(routable, key=lambda i: -float(p[b, i]))[:k])
            go = sorted(top + [i for i in range(x.hidden.shape[1]) if v[i] and forced[b, i]])
            member[b, go] = 1
            out = res.state.hidden[b]
            assert torch.allclose(out[go], _mod_layer_directly(loop, 1, x, b, go, p), atol=1e-5)  # every token through: MLP x p
            skipped = [i for i in routable if i not in top]
            assert torch.equal(out[skipped], x.hidden[b, skipped])  # skipped tokens pass unchanged
            assert res.trace[0].n_attn[b].item() == len(go)
        want = torch.nn.functional.cross_entropy(logits[x.valid], member[x.valid].long())  # forced tokens are targets 1 too
        assert pol.aux[0].item() == pytest.approx(want.item(), rel=1e-5)
    # inference: the threshold over the whole prompt (question tokens too), not top-k; answers forced unless decoding
    pol.eval()
    with torch.no_grad():
        pol.router.bias.copy_(torch.tensor([10.0, -10.0]))  # p ~ 2e-9 < 0.005: every prompt token skips
        res = loop.run(x, pol, start=1, stop=2, final_norm=False)
    assert res.trace[0].n_attn.tolist() == (x.valid & x.answer).sum(1).tolist()
    # the decoding rule: an answer token with p < 0.5 skips the layer (attention as query and key, and MLP)
    torch.manual_seed(3)
    with torch.no_grad():
        pol.router.reset_parameters()
        p = torch.softmax(pol.router(layer.input_layernorm(x.hidden)), -1)[..., 1]
        answer = x.answer & x.valid
        assert (answer & (p < 0.5)).any() and (answer & (p >= 0.5)).any()  # this seed splits them
        prompt = x.valid & ~x.answer & (p > 0.005)
        pol.decode = True
        res = loop.run(x, pol, start=1, stop=2, final_norm=False)
        go = prompt | (answer & (p >= 0.5))
        assert res.trace[0].n_attn.tolist() == go.sum(1).tolist()
        skipped = answer & (p < 0.5)
        assert torch.equal(res.state.hidden[skipped], x.hidden[skipped])
        for b in range(3):  # the tokens that went through: the layer on exactly those
            idx = torch.nonzero(go[b]).flatten()
            assert torch.allclose(res.state.hidden[b, idx], _mod_layer_directly(loop, 1, x, b, idx, p), atol=1e-5)
        pol.decode = False
        assert loop.run(x, pol, start=1, stop=2, final_norm=False).trace[0].n_attn.tolist() == (prompt | answer).sum(1).tolist()


def test_mod_finetuning_lowers_the_aux_loss():
    model = tiny_llava(layers=3, seed=1)
    loop = LayerLoop(model)
    pol = MoDPolicy(32, [1, 2])
    hist = finetune(loop, pol, [ragged_batch(seed=s) for s in range(2)], steps=40, lr=1e-3, router_lr=1e-2)
    assert AUX_WEIGHT == 0.01 and not pol.training
    # the targets are the router's own top-k, so the aux loss falls as the router grows decisive
    assert sum(h["aux"] for h in hist[-5:]) < 0.85 * sum(h["aux"] for h in hist[:5])
    assert sum(h["lm"] for h in hist[-5:]) < 0.95 * sum(h["lm"] for h in hist[:5])


# ---- RoE

def test_roe_regulariser_and_curriculum_by_hand():
    ce = torch.tensor([0.5, 2.0])
    skip = torch.tensor([[0.1, 0.1], [0.5, 0.5]])
    assert sparsity_regulariser(ce, skip).item() == pytest.approx(math.exp(-2.5) * 0.2 / 2, rel=1e-5)
    assert [curriculum(s, 100)[0] for s in (0, 29, 30, 49, 50, 99)] == [1, 1, 2, 2, 3, 3]
    assert curriculum(40, 100)[1:] == pytest.approx((1.5, 1.0))


def test_roe_routing_token_run_and_skip_paths(model):
    loop = LayerLoop(model)
    batch = ragged_batch(left_pad=False)
    roe = RoE(32, 3, adapter_dim=16)
    with torch.no_grad():
        for a in roe.adapters:
            torch.nn.init.normal_(a[-1].weight, std=0.1)
        roe.mode = "hard"
        for r in roe.routers:
            r.weight.zero_()
            r.bias.copy_(torch.tensor([1.0, 0.0]))  # run every layer
        run_all = roe.forward_batch(loop, batch)
        # direct: the routing token spliced into the embeddings, the plain HF decoder
        state, _ = loop.embed({k: v for k, v in batch.items() if k != "labels"})
        for b in range(3):
            first_answer = int(torch.nonzero(batch["labels"][b] != -100)[0])
            n = int(batch["attention_mask"][b].sum())
            h = torch.cat([state.hidden[b, :first_answer], roe.route_token[None], state.hidden[b, first_answer:n]])[None]
            out = loop.lm.norm(loop.lm(inputs_embeds=h, position_ids=torch.arange(n + 1)[None]).last_hidden_state)
            assert torch.allclose(run_all.hidden[b, : n + 1], out[0], atol=1e-4)
            assert run_all.state.position_ids[b, first_answer + 1].item() == first_answer + 1
        for r in roe.routers:
            r.bias.copy_(torch.tensor([0.0, 1.0]))  # skip every layer
        skip_all = roe.forward_batch(loop, batch)
        h = roe.insert(state).hidden
        for a in roe.adapters:
            h = h + a(h)
        assert torch.allclose(skip_all.hidden, loop.lm.norm(h), atol=1e-5)
        assert all(t.n_attn.sum() == 0 for t in skip_all.trace)


def test_roe_curriculum_trains_the_right_parts_per_phase():
    batches = [ragged_batch(seed=s) for s in range(2)]
    # one step is phase 1: random routing, adapters only
    loop = LayerLoop(tiny_llava(layers=2, seed=2))
    roe = RoE(32, 2, adapter_dim=16)
    router, llm, adapter = roe.routers[0].weight.clone(), loop.layers[0].mlp.up_proj.weight.clone(), roe.adapters[0][-1].weight.clone()
    assert [h["phase"] for h in roe_train(loop, roe, batches, steps=1)] == [1]
    assert torch.equal(roe.routers[0].weight, router) and torch.equal(loop.layers[0].mlp.up_proj.weight, llm)
    assert not torch.equal(roe.adapters[0][-1].weight, adapter)
    # ten steps: 3 of phase 1, 2 of phase 2 (routers join), 5 of phase 3 (the decoder joins)
    loop = LayerLoop(tiny_llava(layers=2, seed=2))
    roe = RoE(32, 2, adapter_dim=16)
    router, llm = roe.routers[0].weight.clone(), loop.layers[0].mlp.up_proj.weight.clone()
    hist = roe_train(loop, roe, batches, steps=10)
    assert [h["phase"] for h in hist] == [1, 1, 1, 2, 2, 3, 3, 3, 3, 3]
    assert not torch.equal(roe.routers[0].weight, router) and not torch.equal(loop.layers[0].mlp.up_proj.weight, llm)
    assert roe.mode == "hard" and all(h["reg"] == 0 for h in hist[:3])


# ---- FlashSloth

def test_spatial_attention_pool_by_a_direct_loop():
    torch.manual_seed(0)
    pool = SpatialAttentionPool(8, mlp_hidden=16)
    x = torch.randn(2, 7 * 5, 8)  # a 7 x 5 grid: padded to 9 x 6, 3 x 2 windows
    got = pool(x, (7, 5))
    assert got.shape == (2, 6, 8) and pool.pooled_count(35, (7, 5)) == 6
    g = x.view(2, 7, 5, 8)
    for b in range(2):
        for wi in range(3):
            for wj in range(2):
                cells = [(r, c) for r in range(3 * wi, 3 * wi + 3) for c in range(3 * wj, 3 * wj + 3) if r < 7 and c < 5]
                s = torch.stack([pool.score(g[b, r, c])[0] for r, c in cells])
                a = torch.softmax(s, 0)
                want = sum(a[i] * g[b, r, c] for i, (r, c) in enumerate(cells))
                assert torch.allclose(got[b, wi * 2 + wj], want, atol=1e-5)
    assert SpatialAttentionPool(8)(torch.randn(1, 729, 8)).shape == (1, 81, 8)  # 27 x 27 -> 9 x 9
    assert SpatialAttentionPool(8).pooled_count(729) == 81 and SpatialAttentionPool(8, window=2).pooled_count(64) == 16


def test_instruction_queries_read_only_the_real_question_tokens():
    torch.manual_seed(0)
    iq = InstructionQueries(16, heads=4).eval()
    question, vision = torch.randn(2, 6, 16), torch.randn(2, 10, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    out = iq(question, mask, vision)
    assert out.shape == (2, 9, 16)
    changed = question.clone()
    changed[1, 4:] = 100.0  # padding of sample 1
    assert torch.allclose(iq(changed, mask, vision), out, atol=1e-6)
    changed[1, 0] = 100.0
    assert not torch.allclose(iq(changed, mask, vision)[1], out[1], atol=1e-3)


def test_pooled_image_runs_as_a_sequence_built_with_the_pooled_tokens():
    """The decoder on `pool_state` = the decoder on each sample alone, its image replaced by the pooled vectors,
    positions 0.. without gaps (a direct implementation through the model's own forward)."""
    model = tiny_llava(layers=2, image_size=24, patch=4)  # 6 x 6 = 36 image tokens -> 2 x 2 pooled
    batch = ragged_batch(n_img=36)
    loop = LayerLoop(model)
    torch.manual_seed(1)
    pool = SpatialAttentionPool(32, mlp_hidden=8).eval()  # random scores: not average pooling
    with torch.no_grad():
        state, _ = loop.embed(batch)
        pooled = pool_state(state, pool)
        res = run_pooled(loop, state, pool)
        for b in range(3):
            real = state.valid[b]
            vis = state.vision[b][real]
            seq = state.hidden[b][real]
            img = pool(seq[vis][None])[0]  # [4, D]
            first = int(torch.nonzero(vis)[0])
            direct_in = torch.cat([seq[:first], img, seq[first + 36:]])
            direct = model.model.language_model(inputs_embeds=direct_in[None], position_ids=torch.arange(len(direct_in))[None]).last_hidden_state[0]
            got = res.hidden[b][res.state.valid[b]]
            assert got.shape == direct.shape and torch.allclose(got, direct, atol=1e-4)
            assert int((pooled.vision[b] & pooled.valid[b]).sum()) == 4
            assert pooled.position_ids[b][pooled.valid[b]].tolist() == list(range(len(direct_in)))
    with pytest.raises(ValueError, match="one grid per sample"):
        keep = state.valid.clone()
        keep[0, int(torch.nonzero(state.vision[0])[0])] = False  # sample 0 loses an image token
        pool_state(state.keep(keep), pool)


def test_pool_training_lowers_the_answer_loss_and_leaves_the_decoder_alone():
    model = tiny_llava(layers=2, image_size=24, patch=4)
    batch = ragged_batch(n_img=36)
    loop = LayerLoop(model)
    pool = SpatialAttentionPool(32, mlp_hidden=8).start_uniform()
    decoder = {k: v.clone() for k, v in loop.layers.state_dict().items()}
    projector = model.model.multi_modal_projector.linear_1.weight.clone()
    hist = train_pool(loop, pool, [batch], steps=30, lr=1e-2, projector_lr=1e-2)
    assert hist[-1]["lm"] < hist[0]["lm"]
    assert all(torch.equal(v, loop.layers.state_dict()[k]) for k, v in decoder.items())
    assert not torch.equal(projector, model.model.multi_modal_projector.linear_1.weight)
    assert not any(p.requires_grad for p in model.parameters())
