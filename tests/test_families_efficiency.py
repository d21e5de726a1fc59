"""The efficiency layer loop on every VLM family (tiny random checkpoints from each family's config classes):
it equals ``model.forward``, and FitPrune, G-Prune and DyVTE run on it; a method that cannot apply says why."""

from __future__ import annotations

import pytest
import torch
from tiny_families import FAMILIES, checkpoint

from training import families
from training.efficiency import dyvte, fitprune, gprune
from training.efficiency.data import release_batches
from training.efficiency.layer_loop import LayerLoop, Policy
from training.families import user_turn

TOL = 1e-4  # max abs logit difference on the answer tokens (float32; measured 0 on every family)


def _model(family_models, family):
    model, processor, fam = families.load(checkpoint(family_models, family), dtype=torch.float32)
    model.eval()
    with torch.no_grad():  # a random init is nearly uniform; larger decoder weights give peaked attention worth pruning by
        for p in fam.language_model(model).parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    return model, processor, fam


def _reference(model, fam, batch):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if not fam.mrope:  # generation's positions (padding-aware); multimodal RoPE: the model computes its own
        inputs["position_ids"] = fam.text_positions(batch["attention_mask"].bool())
    with torch.no_grad():
        return model(**inputs).logits


class _QK(Policy):
    """Asks every layer for its queries and keys (the capture path must not change the outputs)."""

    def wants_qk(self, layer):
        return True

    def after_attention(self, loop, layer, state, q, k):
        assert q.shape[1] == k.shape[1] and q.shape[2] == state.hidden.shape[1]
        return None


@pytest.mark.parametrize("family", FAMILIES)
def test_the_layer_loop_equals_model_forward(family, family_models, demo_release):
    release, _ = demo_release
    model, processor, fam = _model(family_models, family)
    loop = LayerLoop(model)
    batch = release_batches(release, processor, fam, "test", 3, limit=3)[0]  # prompt + answer, right-padded, as the stages use
    ref = _reference(model, fam, batch)
    answer = batch["labels"] != -100
    with torch.no_grad():
        res, spans = loop.forward(batch)
        got = loop.logits(res.hidden)
        qk = loop.logits(loop.forward(batch, _QK())[0].hidden)
    assert (got[answer] - ref[answer]).abs().max() <= TOL and (qk[answer] - ref[answer]).abs().max() <= TOL
    assert int(spans.image.sum()) == int((batch["input_ids"] == model.config.image_token_id).sum())
    if fam.mrope:
        assert res.state.position_ids.shape[-1] == 3  # all three axes carried
    # left padding (generation's inputs), every real token
    from training.data import Conversations

    data = Conversations(release, "test")
    items = [data.item(i) for i in (0, 2, 5)]
    gen = fam.generation_inputs(processor, [[user_turn(u)] for _, u, _ in items], [im for im, _, _ in items])
    ref = _reference(model, fam, gen)
    with torch.no_grad():
        got = loop.logits(loop.forward(gen)[0].hidden)
    real = gen["attention_mask"].bool()
    assert (got[real] - ref[real]).abs().max() <= TOL


def test_what_each_family_differs_in_is_what_the_loop_reproduces(family_models, demo_release):
    """Without PaliGemma's prefix block, Qwen's multimodal positions, Qwen3-VL's DeepStack features or
    Gemma 3's sliding window, the loop would not equal the model: each is needed."""
    from dataclasses import replace

    release, _ = demo_release
    for family, drop in (("paligemma", lambda s: replace(s, block=None)), ("qwen2_5_vl", lambda s: replace(s, position_ids=s.position_ids[..., 0])),
                         ("qwen3_vl", lambda s: replace(s, extra=None)), ("gemma3", None)):
        model, processor, fam = _model(family_models, family)
        loop = LayerLoop(model)
        batch = release_batches(release, processor, fam, "test", 3, limit=3)[0]
        ref = _reference(model, fam, batch)
        answer = batch["labels"] != -100
        with torch.no_grad():
            state, _ = loop.embed(batch)
            if drop is None:  # Gemma 3: every layer as if it were global
                window = fam.window
                fam.window = lambda lm, i: None
                try:
                    got = loop.logits(loop.run(state).hidden)
                finally:
                    fam.window = window
            else:
                got = loop.logits(loop.run(drop(state)).hidden)
        assert (got[answer] - ref[answer]).abs().max() > 10 * TOL, family


def test_dropped_tokens_keep_their_multimodal_positions(family_models, demo_release):
    """Qwen2-VL: dropping the image before layer 0 = the plain decoder on the text alone at its original 3-D positions."""
    release, _ = demo_release
    model, processor, fam = _model(family_models, "qwen2_vl")
    loop = LayerLoop(model)
    batch = release_batches(release, processor, fam, "test", 2, limit=2)[0]

    class DropImage(Policy):
        def before_layer(self, loop, layer, state):
            return ~state.vision if layer == 0 else None

    with torch.no_grad():
        res, _ = loop.forward(batch, DropImage())
        state, _ = loop.embed(batch)
        for b in range(2):
            keep = state.valid[b] & ~state.vision[b]
            pos = state.position_ids[b, keep].T[:, None]  # [3, 1, n]
            want = loop.lm(inputs_embeds=state.hidden[b:b + 1, keep], position_ids=pos).last_hidden_state[0]
            got = res.hidden[b][res.state.valid[b]]
            assert torch.allclose(got, want, atol=1e-4)
            assert torch.equal(res.state.position_ids[b][res.state.valid[b]], state.position_ids[b, keep])


FAST = ("llava", "qwen3_vl", "paligemma")  # the pruning methods on these in the default suite, on every family under -m slow


@pytest.mark.parametrize("family", [pytest.param(f, marks=() if f in FAST else pytest.mark.slow) for f in FAMILIES])
def test_fitprune_gprune_and_dyvte_run_on_every_family(family, family_models, demo_release):
    release, _ = demo_release
    model, processor, fam = _model(family_models, family)
    loop = LayerLoop(model)
    batches = release_batches(release, processor, fam, "validation", 2, limit=4)
    shape = loop.shape

    recipe = fitprune.calibrate(loop, batches, flops_budget=0.7)
    assert recipe.visual_macs_recipe <= 0.7 * recipe.visual_macs_unpruned and sum(recipe.drop_per_layer) > 0
    with torch.no_grad():
        dense, _ = loop.forward(batches[0])
        pruned, _ = loop.forward(batches[0], fitprune.FitPrunePolicy(recipe.drop_per_layer))
        kept, _ = loop.forward(batches[0], gprune.GPrunePolicy(0.5))
    assert (pruned.flops(shape, vision_only=True) < dense.flops(shape, vision_only=True)).all()
    n_vis = (dense.state.vision & dense.state.valid).sum(1)
    assert ((kept.state.vision & kept.state.valid).sum(1) == torch.ceil(n_vis * 0.5)).all()
    for res in (pruned, kept):
        assert torch.isfinite(loop.logits(res.hidden)).all()
    gates = dyvte.Gates(shape.hidden, shape.layers, gate_hidden=16)
    hist = dyvte.train_gates(loop, gates, batches, steps=3)
    policy = dyvte.DyVTEPolicy(gates.eval(), threshold=0.0)  # every sample exits at layer 0: no visual token after it
    with torch.no_grad():
        out, _ = loop.forward(batches[0], policy)
    assert len(hist) == 3 and (policy.exit_layer == 0).all() and not (out.state.vision & out.state.valid).any()


def test_a_method_that_cannot_apply_says_why(family_models, demo_release, tmp_path):
    from training.efficiency.stages import EfficiencyConfig, NotApplicable, run

    release, _ = demo_release
    cfg = EfficiencyConfig(method="flashsloth", model=str(checkpoint(family_models, "qwen2_vl")), data=str(release), out=str(tmp_path / "fs"),
                           fit_samples=2, eval_samples=2, batch_size=2, latency_repeats=1, sloth_steps=1)
    with pytest.raises(NotApplicable, match="flashsloth does not apply to qwen2_vl models: multimodal RoPE"):
        run(cfg)
    assert not (tmp_path / "fs" / "result.json").exists()
    # where it applies (PaliGemma: one square grid), it runs, with PaliGemma's positions counted from 1
    cfg = cfg.model_copy(update={"model": str(checkpoint(family_models, "paligemma")), "out": str(tmp_path / "pg")})
    row, _ = run(cfg)
    assert row["family"] == "paligemma" and row["visual_tokens"] == [16, 4] and 0 <= row["agreement"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_gamma_mod_and_roe_run_on_every_family(family, family_models, demo_release):
    """The layer-level methods: γ-MoD's routed layer and RoE's routing token (inserted with the next position on
    every RoPE axis, causal in a bidirectional prefix) through each family's decoder."""
    from training.efficiency import gamma_mod, roe

    release, _ = demo_release
    model, processor, fam = _model(family_models, family)
    loop = LayerLoop(model)
    batches = release_batches(release, processor, fam, "validation", 2, limit=4)
    ranks = gamma_mod.arank(loop, batches)
    policy = gamma_mod.MoDPolicy(loop.shape.hidden, gamma_mod.layers_to_convert(ranks, 1))
    assert len(gamma_mod.finetune(loop, policy, batches, 2, lr=0.0)) == 2
    r = roe.RoE(loop.shape.hidden, loop.shape.layers, adapter_dim=16)
    roe.train(loop, r, batches, 4, llm_lr=0.0)
    r.eval()
    with torch.no_grad():
        res = r.forward_batch(loop, batches[0])
        routed, _ = loop.forward(batches[0], policy)
    assert torch.isfinite(loop.logits(res.hidden)).all() and torch.isfinite(loop.logits(routed.hidden)).all()
    state, _ = loop.embed(batches[0])
    r.set_batch(batches[0])
    inserted = r.insert(state)
    slot = int(r.slot[0])
    prev, new = inserted.position_ids[0, slot - 1], inserted.position_ids[0, slot]
    assert torch.equal(new, prev + 1) and (inserted.block is None or int(inserted.block[0, slot]) == -1)
