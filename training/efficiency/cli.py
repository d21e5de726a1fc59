"""`gcot efficiency METHOD` (also ``python -m training.efficiency METHOD``), from the stages' one config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.cli import CommandFailed, ConfigCommand
from training.efficiency.config import EfficiencyConfig  # light: --help imports no torch

# What an efficiency run writes in its folder (the output guard's test of a run folder's files).
RUN_FOLDER = ("config.yaml", "result.json", "recipe.json", "gates.pt", "gamma_mod.pt", "roe.pt", "flashsloth.pt")


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
        from core.guard import OutputGuard, OutputRefused, prepare_run_folder
        from training.data import ReleaseError, check_splits

        # before anything is loaded: the splits the stage fits and measures on, and a folder it may write
        inputs = [("the release to measure on", cfg.data)] + ([("the model to measure", cfg.model)] if Path(cfg.model).exists() else [])
        guard = OutputGuard(cfg.out, "efficiency run", inputs, overwrite=cfg.overwrite, owned=RUN_FOLDER)
        try:
            check_splits(cfg.data, {cfg.fit_split: f"{cfg.method}'s fitting (--fit-split)", cfg.eval_split: "the measurement (--eval-split)"})
            prepare_run_folder(guard, guard.check())
        except (ReleaseError, OutputRefused) as e:
            raise CommandFailed(str(e)) from None
        from training.efficiency.stages import NotApplicable, run

        try:
            row, _ = run(cfg)
        except NotApplicable as e:
            raise CommandFailed(str(e)) from None
        print(json.dumps(row, indent=2))
        return 0
