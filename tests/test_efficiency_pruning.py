"""FitPrune and G-Prune on a tiny random LLaVA, against direct slow implementations written here."""

from __future__ import annotations

import math

import pytest
import torch
from efficiency_models import ragged_batch, tiny_llava

from training.efficiency.fitprune import FitPrunePolicy, Recipe, _Recorder, calibrate, drop_set
from training.efficiency.gprune import GPrunePolicy
from training.efficiency.layer_loop import LayerLoop
from training.efficiency.spans import find_spans, position_ids_from_mask


@pytest.fixture(scope="module")
def model():
    return tiny_llava(layers=3, kv_heads=4)  # as many kv heads as heads: FitPrune's formula holds exactly


def eager_maps(model, batch) -> list[torch.Tensor]:
    """Each layer's attention map, max over heads, straight from Hugging Face's eager attention: [B, T, T]."""
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"],
                        position_ids=position_ids_from_mask(batch["attention_mask"]), output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    return [a.amax(dim=1) for a in out.attentions]


def slow_stats(model, batch):
    """[sample][layer] -> (cross, self) lists over the sample's visual tokens, by loops over the eager map."""
    spans = find_spans(batch["input_ids"], batch["attention_mask"], model.config.image_token_id, batch["labels"])  # text = instruction
    maps = eager_maps(model, batch)
    out = []
    for b in range(batch["input_ids"].shape[0]):
        v0, v1 = spans.vision[b].tolist()
        t0, t1 = spans.text[b].tolist()
        layers = []
        for a in maps:
            cross = [sum(float(a[b, i, j]) for i in range(t0, t1)) / (t1 - t0) for j in range(v0, v1)]
            self_ = [sum(float(a[b, i, j]) for i in range(v0, v1)) / (v1 - v0) for j in range(v0, v1)]
            layers.append((cross, self_))
        out.append(layers)
    return out


def test_statistics_equal_the_eager_attention_map(model):
    batch = ragged_batch()
    rec = _Recorder()
    with torch.no_grad():
        LayerLoop(model).forward(batch, rec)
    slow = slow_stats(model, batch)
    for layer in range(3):
        for b in range(3):
            cross, self_ = rec.stats[layer][b]
            assert cross.tolist() == pytest.approx(slow[b][layer][0], abs=1e-5)
            assert self_.tolist() == pytest.approx(slow[b][layer][1], abs=1e-5)


def test_drop_set_by_hand():
    cross = torch.tensor([0.05, 0.30, 0.10, 0.40, 0.15])
    self_ = torch.tensor([0.20, 0.10, 0.05, 0.50, 0.15])
    # alpha 0.3: low-cross prefix {0, 2, 4} (0.05 + 0.10 + 0.15 = 0.30); low-self prefix {2, 1, 4}; both: {2, 4}
    assert drop_set(cross, self_, 0.3).tolist() == [False, False, True, False, True]
    assert not drop_set(cross, self_, 0.0).any() and drop_set(cross, self_, 1.0).all()


def slow_calibration(stats, d, m, layers, budget_fraction):
    """FitPrune's search written out on plain lists, with the paper's formula."""
    def macs(n_in, n_out):
        return 4 * n_in * d * d + 2 * n_in * n_in * d + 3 * n_out * d * m

    def forecast(n, drops):
        total = 0
        for x in drops + [0] * (layers - len(drops)):
            total += macs(n, n - x)
            n -= x
        return total

    n_vis = len(stats[0][0][0])
    budget = budget_fraction * forecast(n_vis, [])

    def recipe(alpha):
        per_sample = []
        for sample in stats:
            remaining = list(range(n_vis))
            drops = []
            for cross, self_ in sample:
                if forecast(n_vis, drops) <= budget:
                    drops.append(0)
                    continue
                low = []
                for mass in (cross, self_):
                    total = sum(mass[j] for j in remaining)
                    acc, chosen = 0.0, set()
                    for j in sorted(remaining, key=lambda j: mass[j]):
                        acc += mass[j]
                        if acc > alpha * total * (1 + 1e-6):
                            break
                        chosen.add(j)
                    low.append(chosen)
                gone = low[0] & low[1]
                remaining = [j for j in remaining if j not in gone]
                drops.append(len(gone))
            per_sample.append(drops)
        return [round(sum(s[i] for s in per_sample) / len(per_sample)) for i in range(layers)]

    def fits(step):
        return forecast(n_vis, recipe(step / 100)) <= budget

    lo, hi = 0, 100  # the official binary search on the 0.01 grid
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    assert fits(hi) and (hi == 0 or not fits(hi - 1))  # a boundary: one step less does not fit
    return hi / 100, recipe(hi / 100)


@pytest.mark.parametrize("budget", [0.5, 0.7])
def test_calibration_equals_a_direct_search_and_inference_meets_the_budget(model, budget, tmp_path):
    batches = [ragged_batch(seed=s) for s in (0, 1)]
    loop = LayerLoop(model)
    recipe = calibrate(loop, batches, budget)
    stats = [sample for b in batches for sample in slow_stats(model, b)]
    cfg = model.config.text_config
    alpha, drops = slow_calibration(stats, cfg.hidden_size, cfg.intermediate_size, 3, budget)
    assert (recipe.alpha, recipe.drop_per_layer) == (pytest.approx(alpha), drops)
    assert recipe.visual_macs_recipe <= budget * recipe.visual_macs_unpruned and sum(drops) > 0
    assert Recipe.load(recipe.save(tmp_path / "recipe.json")) == recipe

    with torch.no_grad():
        res, _ = loop.forward(batches[0], FitPrunePolicy(recipe.drop_per_layer))
    left = 9
    for layer, t in enumerate(res.trace):
        assert t.n_vision_attn.tolist() == [left] * 3
        left -= drops[layer]
        assert t.n_vision_mlp.tolist() == [left] * 3
    assert (res.flops(loop.shape, vision_only=True) <= budget * recipe.visual_macs_unpruned * 2).all()


def test_inference_drops_the_lowest_cross_times_self(model):
    batch = ragged_batch()
    loop = LayerLoop(model)
    with torch.no_grad():
        res, spans = loop.forward(batch, FitPrunePolicy([3, 0, 0]))
    slow = slow_stats(model, batch)
    for b in range(3):
        cross, self_ = slow[b][0]
        score = [c * s for c, s in zip(cross, self_)]
        dropped = set(sorted(range(9), key=lambda j: score[j])[:3])
        v0 = int(spans.vision[b, 0])
        kept_vis = {int(i) - v0 for i, v, ok in zip(res.state.index[b], res.state.vision[b], res.state.valid[b]) if v and ok}
        assert kept_vis == set(range(9)) - dropped


def test_gprune_keeps_each_samples_top_tokens_alone(model):
    """Batched, ragged G-Prune = G-Prune of each sample alone, by the direct formula."""
    from kernels.similarity_topk import propagated_score

    batch = ragged_batch()
    loop = LayerLoop(model)
    state, spans = loop.embed({k: v for k, v in batch.items() if k != "labels"})
    with torch.no_grad():
        res = loop.run(state, GPrunePolicy(keep_ratio=0.4))
    for b in range(3):
        v0, v1 = spans.vision[b].tolist()
        x = state.hidden[b:b + 1, v0:v1]
        score = propagated_score(x)[0].tolist()
        want = sorted(sorted(range(9), key=lambda j: -score[j])[: math.ceil(0.4 * 9)])
        kept = sorted(int(i) - v0 for i, v, ok in zip(res.state.index[b], res.state.vision[b], res.state.valid[b]) if v and ok)
        assert kept == want
        assert res.trace[0].n_attn[b].item() == int(batch["attention_mask"][b].sum()) - 9 + 4
    # text positions untouched: the last token's position id is unchanged
    assert res.state.position_ids[:, -1].tolist() == position_ids_from_mask(batch["attention_mask"])[:, -1].tolist()
