"""`gcot efficiency METHOD` (also ``python -m training.efficiency METHOD``), from the stages' one config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.cli import CommandFailed, ConfigCommand
from training.efficiency.config import EfficiencyConfig  # light: --help imports no torch


class EfficiencyCommand(EfficiencyConfig, ConfigCommand):
    """Run one efficiency stage on a fine-tuning run: fit what the method fits on the release, then
    measure it against the unchanged model (decoder FLOPs, CPU latency, next-token agreement). Writes
    OUT/config.yaml, OUT/result.json and the method's artefact (FitPrune: recipe.json; DyVTE: gates.pt;
    γ-MoD: gamma_mod.pt; RoE: roe.pt; FlashSloth: flashsloth.pt).

    Examples:
      gcot efficiency fitprune --config training/configs/efficiency/fitprune.yaml
      gcot efficiency gprune --model runs/tiny-cpu --keep-ratio 0.25
    """

    CONFIG = EfficiencyConfig

    def run(self) -> int:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        cfg = self.resolve()
        if cfg.out == "runs/efficiency":
            cfg = cfg.model_copy(update={"out": f"runs/efficiency/{cfg.method}"})
        if not Path(cfg.data, "llava", "train.json").exists():
            raise CommandFailed(f"{cfg.data}: not a release folder (no llava/train.json); build one with `make demo`")
        from training.efficiency.stages import NotApplicable, run

        try:
            row, _ = run(cfg)
        except NotApplicable as e:
            raise CommandFailed(str(e)) from None
        print(json.dumps(row, indent=2))
        return 0
