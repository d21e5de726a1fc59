"""kernels/: each Triton kernel against its PyTorch reference in Triton's interpreter (CPU), on odd
shapes and masks; the references against hand computations; gather/scatter of ragged kept tokens.

Tolerances: the interpreter computes in float32 with numpy; the measured largest difference on these
shapes is ~1e-6 (lse, mass, cosine), so 1e-5 absolute catches any indexing or masking error (those
move values by >= 1e-2).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.attention_mass import attention_lse_reference, attention_mass, attention_mass_reference
from kernels.similarity_topk import max_cosine, max_cosine_reference, propagated_score, topk_indices
from kernels.tokens import gather_kept, scatter_back


def _cases() -> dict:
    """Inputs of the kernel-vs-reference comparisons: odd shapes, padding, subsets, an exact duplicate."""
    q, k = _qk()
    key_valid = torch.ones(2, 53, dtype=torch.bool)
    key_valid[1, :11] = False  # left padding of sample 1
    key_valid[0, 40] = False
    weight = torch.zeros(2, 37)
    weight[0, 3:20], weight[1, 30:] = 1 / 17, 1 / 7  # a mean over a query subset
    q2, k2 = _qk(b=2, h=2, nq=19, nk=19, d=16, seed=1)  # self-attention, left padding: pad queries see no key
    valid2 = torch.ones(2, 19, dtype=torch.bool)
    valid2[0, :5] = False
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 45, 40, generator=g)  # 45 tokens, 40 dims: neither a block multiple
    x[0, 7] = 3 * x[0, 2]  # an exact duplicate direction: cos 1
    xvalid = torch.ones(3, 45, dtype=torch.bool)
    xvalid[2, 30:] = False
    return {"mass": (q, k, weight, key_valid), "selfattn": (q2, k2, torch.ones(2, 19), valid2), "cos": (x, xvalid)}


def interpreted_outputs() -> dict:
    """Run in a fresh process with TRITON_INTERPRET=1: every kernel's output on `_cases()`."""
    import triton

    from kernels import attention_mass_triton as tri

    c = _cases()
    out = {"interpret": bool(triton.knobs.runtime.interpret)}
    q, k, w, kv = c["mass"]
    for causal in (True, False):
        out[f"lse-{causal}"] = tri.attention_lse(q, k, kv, causal, 24 ** -0.5)
        for red in ("max", "sum"):
            out[f"mass-{causal}-{red}"] = attention_mass(q, k, w, kv, causal, red)
    q2, k2, w2, kv2 = c["selfattn"]
    out["selfattn"] = attention_mass(q2, k2, w2, kv2, True, "sum")
    out["selfattn-given-lse"] = attention_mass(q2, k2, w2, kv2, True, "sum", lse=attention_lse_reference(q2, k2, kv2, True))
    out["multi"] = attention_mass(q, k, torch.stack([w, 1 - w], 1), kv, True, "max")  # two subsets, one lse
    out["mass-fp16"] = attention_mass(q.half(), k.half(), w, kv, True, "max")  # half inputs, float32 inside
    out["cos-fp16"] = max_cosine(c["cos"][0].half(), c["cos"][1])
    out["cos"] = max_cosine(*c["cos"])
    return out


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict:
    """The kernels' outputs from Triton's interpreter. A fresh process, because Triton decides at import
    time (of triton itself, which transformers imports) whether kernels are compiled or interpreted."""
    pytest.importorskip("triton")
    path = tmp_path_factory.mktemp("kernels") / "out.pt"
    code = f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_kernels as t; torch.save(t.interpreted_outputs(), {str(path)!r})"
    env = {**os.environ, "TRITON_INTERPRET": "1", "GCOT_FORCE_TRITON": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = torch.load(path)
    assert out.pop("interpret") is True
    return out


def _qk(b=2, h=3, nq=37, nk=53, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, h, nq, d, generator=g), torch.randn(b, h, nk, d, generator=g) * 1.5


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("head_reduce", ["max", "sum"])
def test_attention_mass_kernel_matches_reference(interpreted, causal, head_reduce):
    q, k, weight, key_valid = _cases()["mass"]
    assert torch.allclose(interpreted[f"lse-{causal}"], attention_lse_reference(q, k, key_valid, causal), atol=1e-5)
    got = interpreted[f"mass-{causal}-{head_reduce}"]
    ref = attention_mass_reference(q, k, weight, key_valid, causal, head_reduce)
    assert got.shape == (2, 53) and ref.abs().max() > 0.05
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert (got[1, :11] == 0).all() and got[0, 40] == 0  # masked keys receive nothing


def test_attention_mass_several_subsets_at_once(interpreted):
    q, k, weight, key_valid = _cases()["mass"]
    both = torch.stack([weight, 1 - weight], 1)  # [B, 2, Nq]
    ref = attention_mass_reference(q, k, both, key_valid, True, "max")
    assert ref.shape == (2, 2, 53)
    assert torch.allclose(ref[:, 0], attention_mass_reference(q, k, weight, key_valid, True, "max"), atol=1e-6)
    assert torch.allclose(ref[:, 1], attention_mass_reference(q, k, 1 - weight, key_valid, True, "max"), atol=1e-6)
    assert torch.allclose(interpreted["multi"], ref, atol=1e-5)


def test_half_precision_inputs(interpreted):
    """fp16 inputs: both sides upcast the same rounded values, so the float32 tolerance still holds."""
    q, k, weight, key_valid = _cases()["mass"]
    ref = attention_mass_reference(q.half(), k.half(), weight, key_valid, True, "max")
    assert torch.allclose(interpreted["mass-fp16"], ref, atol=1e-5)
    assert not torch.allclose(ref, attention_mass_reference(q, k, weight, key_valid, True, "max"), atol=1e-6)  # rounding did happen
    x, valid = _cases()["cos"]
    assert torch.allclose(interpreted["cos-fp16"], max_cosine_reference(x.half(), valid), atol=1e-5)


def test_attention_mass_kernel_fully_masked_rows_and_given_lse(interpreted):
    """Self-attention with left padding: pad queries see no key; they must contribute 0, not NaN."""
    q, k, weight, key_valid = _cases()["selfattn"]  # weight 1 on every query, pad queries included on purpose
    lse = attention_lse_reference(q, k, key_valid, True)
    assert torch.isinf(lse[0, :, :5]).all()
    ref = attention_mass_reference(q, k, weight, key_valid, True, "sum")
    for got in (interpreted["selfattn"], interpreted["selfattn-given-lse"]):
        assert torch.isfinite(got).all() and torch.allclose(got, ref, atol=1e-5)
    # each valid query's row sums to 1 in every head: total mass = heads x valid queries
    assert ref[0].sum().item() == pytest.approx(2 * 14, rel=1e-5) and ref[1].sum().item() == pytest.approx(2 * 19, rel=1e-5)


def test_attention_mass_reference_by_hand():
    """Two heads, two tokens, causal: token 0 sees only itself (p = 1); token 1 splits by its scores."""
    q = torch.tensor([[[[0.0], [1.0]], [[0.0], [2.0]]]])  # [1, 2, 2, 1]
    k = torch.tensor([[[[0.0], [1.0]], [[1.0], [0.0]]]])
    # query 1: head 0 scores (0, 1) -> softmax (1/(1+e), e/(1+e)); head 1 scores (2, 0) -> (e^2/(1+e^2), 1/(1+e^2))
    e = math.e
    h0, h1 = (1 / (1 + e), e / (1 + e)), (e * e / (1 + e * e), 1 / (1 + e * e))
    w = torch.tensor([[0.0, 1.0]])  # the subset is query 1 only
    got = attention_mass_reference(q, k, w, causal=True, head_reduce="max", scale=1.0)
    assert got[0].tolist() == pytest.approx([max(h0[0], h1[0]), max(h0[1], h1[1])], rel=1e-6)
    got = attention_mass_reference(q, k, torch.ones(1, 2), causal=True, head_reduce="sum", scale=1.0)
    assert got[0].tolist() == pytest.approx([2 + h0[0] + h1[0], h0[1] + h1[1]], rel=1e-6)


def test_attention_mass_rejects_bad_shapes():
    q, k = _qk(b=1, h=2, nq=5, nk=5, d=8)
    with pytest.raises(ValueError, match="query_weight must be"):
        attention_mass(q, k, torch.ones(1, 4))
    with pytest.raises(ValueError, match="head_reduce"):
        attention_mass(q, k, torch.ones(1, 5), head_reduce="mean")


def test_max_cosine_kernel_matches_reference(interpreted):
    x, valid = _cases()["cos"]
    got, ref = interpreted["cos"], max_cosine_reference(x, valid)
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert got[0, 7].item() == pytest.approx(1.0, abs=1e-5) and got[0, 2].item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(got[2, :30]).all()


def test_max_cosine_reference_by_hand():
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    s = 1 / math.sqrt(2)
    assert max_cosine_reference(x)[0].tolist() == pytest.approx([s, s, s], rel=1e-6)
    assert max_cosine_reference(x, torch.tensor([[True, False, True]]))[0].tolist() == pytest.approx([s, s, s], rel=1e-6)
    assert max_cosine_reference(x, torch.tensor([[True, False, False]]))[0, 0] == float("-inf")


def test_propagated_score_by_a_slow_loop():
    """G-Prune's score against a direct per-element implementation on a hand-made 6-token X."""
    x = torch.tensor([[[1.0, 0.1, 0.0], [0.9, 0.2, 0.0], [0.0, 1.0, 0.1], [0.1, 2.0, 0.0], [0.0, 0.0, 3.0], [0.6, 0.0, 0.6]]])
    tau, temp, steps = 0.5, 0.03, 5
    n = 6
    cos = [[float(x[0, i] @ x[0, j] / (x[0, i].norm() * x[0, j].norm())) for j in range(n)] for i in range(n)]
    a = [[0.0] * n for _ in range(n)]
    for i in range(n):
        nbr = [j for j in range(n) if cos[i][j] >= tau]
        z = sum(math.exp(cos[i][j] / temp) for j in nbr)
        for j in nbr:
            a[i][j] = math.exp(cos[i][j] / temp) / z
    r = [float(x[0, j].norm()) for j in range(n)]
    for _ in range(steps):
        r = [sum(r[i] * a[i][j] for i in range(n)) for j in range(n)]
    degree = [sum(1 for i in range(n) if cos[i][j] >= tau) for j in range(n)]
    want = [r[j] / degree[j] for j in range(n)]
    got = propagated_score(x, tau=tau, temperature=temp, steps=steps)[0].tolist()
    assert got == pytest.approx(want, rel=1e-4)
    keep = topk_indices(propagated_score(x), 3)
    assert keep[0].tolist() == [want[j] >= sorted(want)[-3] for j in range(n)]


def test_topk_ragged_k_valid_and_ties():
    score = torch.tensor([[0.3, 0.9, 0.1, 0.9, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    valid = torch.tensor([[True] * 5, [False, True, True, True, True]])
    keep = topk_indices(score, torch.tensor([2, 3]), valid)
    assert keep.tolist() == [[False, True, False, True, False], [False, True, True, True, False]]
    assert topk_indices(score, 9, valid).sum(1).tolist() == [5, 4]  # k larger than what is there


def test_gather_scatter_ragged_with_positions():
    keep = torch.tensor([[True, False, True, True, False, True], [False, False, True, False, False, True]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 2, 3]])  # sample 1 left-padded by 2
    hidden = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    p = gather_kept(keep)
    assert p.valid.tolist() == [[True] * 4, [False, False, True, True]]
    assert p.take(positions).tolist() == [[0, 2, 3, 5], [0, 0, 0, 3]]
    assert torch.equal(p.take(hidden)[0], hidden[0, [0, 2, 3, 5]]) and torch.equal(p.take(hidden)[1, 2:], hidden[1, [2, 5]])
    assert (p.take(hidden)[1, :2] == 0).all()
    back = scatter_back(p.take(hidden), p, 6, fill=-1.0)
    assert torch.equal(back[keep], hidden[keep]) and (back[~keep] == -1).all()


def _compile_for_h100(fn, pointers: dict[str, str], consts: dict):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    names = fn.arg_names
    sig = {n: "constexpr" if n in consts else pointers.get(n, "i32") for n in names}
    src = ASTSource(fn=fn, signature=sig, constexprs={(names.index(k),): v for k, v in consts.items()})
    return compile(src, target=GPUTarget("cuda", 90, 32))


def test_kernels_compile_to_gpu_code_without_a_gpu():
    """Triton's compiler (with its bundled ptxas) builds sm_90 binaries with no device present: this catches
    what the interpreter lets through (types across branches, dot shapes, pointer arithmetic)."""
    pytest.importorskip("triton")
    import kernels.attention_mass_triton as am
    import kernels.similarity_triton as st

    if not hasattr(am._lse_kernel, "arg_names"):
        pytest.skip("kernels imported in interpreter mode")
    try:
        k = _compile_for_h100(am._lse_kernel, {"Q": "*bf16", "K": "*bf16", "KV": "*i8", "LSE": "*fp32", "scale": "fp32"},
                              {"CAUSAL": True, "HAS_VALID": True, "BM": 32, "BN": 32, "BD": 128})
    except (RuntimeError, FileNotFoundError) as e:  # no CUDA backend / ptxas in this Triton build
        pytest.skip(f"Triton cannot compile for CUDA here: {e}")
    assert k.asm["cubin"]
    k = _compile_for_h100(am._mass_kernel, {"Q": "*bf16", "K": "*bf16", "LSE": "*fp32", "W": "*fp32", "KV": "*i8", "OUT": "*fp32", "scale": "fp32"},
                          {"CAUSAL": True, "HAS_VALID": True, "HEAD_MAX": True, "BM": 32, "BN": 32, "BD": 128})
    assert k.asm["cubin"]
    k = _compile_for_h100(st._max_cos_kernel, {"X": "*bf16", "INV": "*fp32", "V": "*i8", "OUT": "*fp32"}, {"BM": 32, "BN": 32, "BD": 32})
    assert k.asm["cubin"]
