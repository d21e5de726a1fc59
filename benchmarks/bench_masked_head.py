"""The masked LM head against the full head: step time and peak memory of the loss (CPU).

A long sequence (8,192 tokens) with a large vocabulary (32,000) and 10 % of the tokens labelled, as
in chat fine-tuning where only answers carry loss. Each variant runs forward + backward in a fresh
process; the peak is that process's resident-memory high-water mark above its inputs.
Target: >= 2x lower peak with the masked head.

    .venv/bin/python benchmarks/bench_masked_head.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T, V, D, LABELLED = 8192, 32_000, 512, 0.10


def child(variant: str) -> None:
    import torch

    from training.masked_head import full_lm_loss, masked_lm_loss

    torch.manual_seed(0)
    hidden = torch.randn(1, T, D, requires_grad=True)  # [B, T, D]
    head = torch.nn.Linear(D, V, bias=False)
    labels = torch.full((1, T), -100)
    n = int(T * LABELLED)
    labels[0, -n:] = torch.randint(0, V, (n,))
    fn = masked_lm_loss if variant == "masked" else full_lm_loss
    fn(hidden[:, :64], head, labels[:, :64]).backward()  # warm-up, small
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    fn(hidden, head, labels).backward()
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"seconds": dt, "peak_mb": peak / 1024}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("masked", "full"):
        child(sys.argv[1])
        return
    res = {}
    for v in ("full", "masked"):
        out = subprocess.run([sys.executable, __file__, v], capture_output=True, text=True, check=True)
        res[v] = json.loads(out.stdout.strip().splitlines()[-1])
    f, m = res["full"], res["masked"]
    print(f"\nLM-head loss, T={T}, V={V}, D={D}, {LABELLED:.0%} of tokens labelled, forward+backward on CPU")
    print(f"  full head     {f['seconds']:6.2f} s   peak +{f['peak_mb']:7.0f} MB")
    print(f"  masked head   {m['seconds']:6.2f} s   peak +{m['peak_mb']:7.0f} MB")
    print(f"  peak ratio    {f['peak_mb'] / max(m['peak_mb'], 1):6.1f}x   time ratio {f['seconds'] / m['seconds']:.1f}x  (target: >= 2x lower peak)")
    print("  GPU tokens/s: no GPU was lent to this task; on CUDA the masked rows go through Liger's fused linear cross-entropy when installed")


if __name__ == "__main__":
    main()
