"""The attention-mass kernel against the materialised softmax, on CUDA: time and peak memory as the
token count grows (target: >= 3x faster, memory linear in tokens). On a machine without CUDA it says so
and exits 0 (the kernels are then verified only in Triton's interpreter, by tests/test_kernels.py).

    .venv/bin/python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

B, H, D = 1, 32, 128  # LLaVA-1.5-7B's heads and head size
TOKENS = (1024, 2048, 4096, 8192, 16384)


def _measure(fn) -> tuple[float, float]:
    """(ms, peak MiB above the inputs) of one call, after a warm-up."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 5, (torch.cuda.max_memory_allocated() - base) / 2**20


def main() -> int:
    if not torch.cuda.is_available():
        print("bench_kernels: no GPU available on this machine; the Triton kernels were checked against their "
              "references in the interpreter only (tests/test_kernels.py). Nothing to measure.")
        return 0
    from kernels.attention_mass import attention_mass, attention_mass_reference

    print(f"attention mass over the last 10 % of queries (text), max over {H} heads, head dim {D}, bf16 inputs, causal")
    print("| tokens | materialised ms | kernel ms | speed-up | materialised MiB | kernel MiB | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for n in TOKENS:
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16, generator=g)
        w = torch.zeros(B, n, device="cuda")
        w[:, -n // 10:] = 1.0 / (n // 10)
        try:
            ref_ms, ref_mb = _measure(lambda q=q, k=k, w=w: attention_mass_reference(q, k, w))
            ref = attention_mass_reference(q, k, w)
        except torch.cuda.OutOfMemoryError:
            ref_ms = ref_mb = float("nan")
            ref = None
        torch.cuda.empty_cache()
        ker_ms, ker_mb = _measure(lambda q=q, k=k, w=w: attention_mass(q, k, w))
        diff = float((attention_mass(q, k, w) - ref).abs().max()) if ref is not None else float("nan")
        print(f"| {n} | {ref_ms:.2f} | {ker_ms:.2f} | {ref_ms / ker_ms:.1f}x | {ref_mb:.0f} | {ker_mb:.1f} | {diff:.2e} |")
        del q, k, ref
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
