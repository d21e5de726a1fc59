"""Efficiency stages on a fine-tuned model of any family: fit the method, then measure it against the
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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import env  # noqa: E402

env.apply()

from core.cli import single  # noqa: E402
from training.efficiency.cli import EfficiencyCommand  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return single(EfficiencyCommand, "python -m training.efficiency", argv)


if __name__ == "__main__":
    sys.exit(main())
