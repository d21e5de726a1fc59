"""Efficiency stages on a fine-tuned LLaVA-style model: fit the method, then measure it against the
unchanged model (decoder FLOPs, CPU latency, next-token agreement on the answer tokens).

    python -m training.efficiency fitprune --config training/configs/efficiency/fitprune.yaml
    python -m training.efficiency gprune --model runs/tiny-cpu keep_ratio=0.25
    python -m training.efficiency dyvte --config training/configs/efficiency/dyvte.yaml gate_steps=100
    python -m training.efficiency gamma-mod --config training/configs/efficiency/gamma_mod.yaml
    python -m training.efficiency roe --config training/configs/efficiency/roe.yaml
    python -m training.efficiency flashsloth --config training/configs/efficiency/flashsloth.yaml

methods:
  fitprune   calibrate a per-layer drop recipe under a FLOPs budget (recipe.json), prune at inference
  gprune     keep the top keep_ratio visual tokens by graph-propagated importance (inference only)
  dyvte      train per-layer exit gates with the LLM frozen (gates.pt), drop all visual tokens at exit
  gamma-mod  ARank per layer, convert the lowest to mixture-of-depths, fine-tune router + decoder
  roe        routers and adapters with the sparsity regulariser and the 3-phase curriculum
  flashsloth 3x3 spatial attention pooling of the image tokens, trained with the decoder frozen (flashsloth.pt)

--model is a training/finetune.py run folder (runs/tiny-cpu: its merged/ or base/ + adapter/) or a
checkpoint; the LoRA is merged. Writes OUT/config.yaml, OUT/result.json and the method's artefact.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import env  # noqa: E402

env.apply()

from training.efficiency import METHODS  # noqa: E402  (light: --help imports no torch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.efficiency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=METHODS)
    ap.add_argument("--config", default=None, help="YAML config (training/configs/efficiency/*.yaml)")
    ap.add_argument("--model", default=None, help="fine-tuning run folder or checkpoint [config: model]")
    ap.add_argument("--data", default=None, help="release folder [config: data]")
    ap.add_argument("--out", default=None, help="output folder [config: out; default runs/efficiency/METHOD]")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. flops_budget=0.3")
    a = ap.parse_intermixed_args(argv)  # overrides may follow options
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from training.efficiency.stages import load_config, run

    flags = [f"{k}={v}" for k, v in (("model", a.model), ("data", a.data), ("out", a.out)) if v]
    cfg = load_config(a.config, [f"method={a.method}"] + a.overrides + flags)
    if not a.out and not any(o.startswith("out=") for o in a.overrides) and cfg.out == "runs/efficiency":
        cfg.out = f"runs/efficiency/{a.method}"
    if not Path(cfg.data, "llava", "train.json").exists():
        raise SystemExit(f"{cfg.data}: not a release folder (no llava/train.json); build one with `make demo`")
    row, _ = run(cfg)
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
