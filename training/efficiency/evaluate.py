"""What a method costs and what it changes: decoder FLOPs, CPU latency, next-token agreement.

Every method is compared with the unchanged model on the same batches (teacher-forced prompt + answer):
agreement is the share of answer tokens whose argmax prediction equals the unchanged model's;
first-token agreement counts only the prediction at the end of the prompt (the next token at prefill). Given
the ids of the vocabulary's digit-bearing tokens, agreement is also split between the tokens a box
coordinate is written with (GCoT answers are ~30 % of them: "[0.327, 0.249, ...]") and the rest. FLOPs are
the analytic decoder count (`flops.py`) from the tokens each layer actually ran on, per sample, both
whole-prefill and over the visual tokens alone (FitPrune's budget measure). Latency is the wall time of
the decoder forward (embedding, vision tower and LM head excluded) per batch, best of ``repeats``,
divided by the batch size; the unchanged model is timed again beside each method's run, alternating,
so that ``speedup`` compares the two under the same load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from training.efficiency.data import answer_logits
from training.efficiency.layer_loop import LayerLoop, Policy, RunResult


@dataclass
class Reference:
    """The unchanged model's predictions and costs on the evaluation batches (computed once)."""

    predictions: list[torch.Tensor]  # per batch [B, P] argmax on answer positions
    valid: list[torch.Tensor]  # per batch [B, P]
    flops: float  # mean per sample, whole decoder prefill
    flops_visual: float
    latency_ms: float


def _timed(fn: Callable[[], RunResult], repeats: int) -> tuple[RunResult, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _embedded(loop: LayerLoop, batch: dict):
    return loop.embed(batch)[0]


@torch.no_grad()
def reference(loop: LayerLoop, batches: list[dict], repeats: int = 3) -> Reference:
    preds, valids, flops, fv, secs, n = [], [], 0.0, 0.0, 0.0, 0
    for batch in batches:
        state = _embedded(loop, batch)
        res, dt = _timed(lambda state=state: loop.run(state, Policy()), repeats)
        logits, _, valid = answer_logits(loop, res, batch)
        preds.append(logits.argmax(-1))
        valids.append(valid)
        flops += float(res.flops(loop.shape).sum())
        fv += float(res.flops(loop.shape, vision_only=True).sum())
        secs += dt
        n += batch["input_ids"].shape[0]
    return Reference(preds, valids, flops / n, fv / n, 1000 * secs / n)


def digit_tokens(tokenizer) -> torch.Tensor:
    """Bool [vocab]: tokens whose text holds a digit (how box coordinates are written)."""
    return torch.tensor([any(c.isdigit() for c in tokenizer.decode([i])) for i in range(len(tokenizer))])


@torch.no_grad()
def answer_loss(loop: LayerLoop, batches: list[dict], run: Callable[[dict, object], RunResult]) -> float:
    """Mean cross-entropy of the answer tokens (token-weighted) under ``run(batch, state)``."""
    total = count = 0.0
    for batch in batches:
        logits, targets, valid = answer_logits(loop, run(batch, _embedded(loop, batch)), batch)
        total += float(torch.nn.functional.cross_entropy(logits[valid], targets[valid], reduction="sum"))
        count += int(valid.sum())
    return total / max(1, count)


@torch.no_grad()
def compare(loop: LayerLoop, batches: list[dict], ref: Reference, run: Callable[[dict, object], RunResult], repeats: int = 3,
            digits: torch.Tensor | None = None) -> dict:
    """``run(batch, state)`` -> RunResult of the method; returns the row of numbers. ``digits``: see `digit_tokens`."""
    agree = total = first = 0
    split = {"digits": [0, 0], "text": [0, 0]}  # [agreeing, total] by the kind of the teacher-forced target
    flops = fv = secs = dense_secs = 0.0
    n = 0
    for i, batch in enumerate(batches):
        state = _embedded(loop, batch)
        dt = ddt = float("inf")
        for _ in range(repeats):  # the unchanged model timed right beside the method: the machine is shared
            _, d = _timed(lambda state=state: loop.run(state, Policy()), 1)
            res, m = _timed(lambda batch=batch, state=state: run(batch, state), 1)
            dt, ddt = min(dt, m), min(ddt, d)
        dense_secs += ddt
        logits, targets, _ = answer_logits(loop, res, batch)
        ok = ref.valid[i]
        same = (logits.argmax(-1) == ref.predictions[i]) & ok
        agree += int(same.sum())
        total += int(ok.sum())
        if digits is not None:
            is_digit = digits[targets]
            for kind, where in (("digits", is_digit & ok), ("text", ~is_digit & ok)):
                split[kind][0] += int((same & where).sum())
                split[kind][1] += int(where.sum())
        first += int(same[:, 0].sum())  # the prediction at the end of the prompt: the first answer token
        flops += float(res.flops(loop.shape).sum())
        fv += float(res.flops(loop.shape, vision_only=True).sum())
        secs += dt
        n += batch["input_ids"].shape[0]
    return {
        "gflops": flops / n / 1e9, "flops_cut": 1 - flops / n / ref.flops, "visual_flops_cut": 1 - fv / n / ref.flops_visual,
        "latency_ms": 1000 * secs / n, "dense_latency_ms": 1000 * dense_secs / n, "speedup": dense_secs / secs,
        "agreement": agree / max(1, total), "answer_tokens": total, "first_token_agreement": first / max(1, n),
        **({f"agreement_{k}": a / max(1, t) for k, (a, t) in split.items()} | {f"answer_tokens_{k}": t for k, (_, t) in split.items()}
           if digits is not None else {}),
    }
