"""The efficiency stages' one config (light: the CLI reads it without importing torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import CliPositionalArg

from core.config import Config
from training.efficiency import METHODS


class EfficiencyConfig(Config):
    """One efficiency stage on a fine-tuned model: fit what the method fits, measure it against the unchanged model."""

    method: CliPositionalArg[Literal[METHODS]] = Field("fitprune", description="the method: " + ", ".join(METHODS))
    model: str = Field("runs/tiny-cpu", description='a finetune.py run folder (merged/ or base/ + adapter/) or a checkpoint')
    data: str = Field("releases/demo", description='the release folder the stage fits and measures on')
    out: str = Field("runs/efficiency", description="output folder (config.yaml, result.json, the method's artefact); runs/efficiency: runs/efficiency/<method>")
    overwrite: bool = Field(False, description="replace the efficiency run already at --out (only one this tool wrote; never the model, the release or a folder it did not write)")
    fit_split: str = Field("validation", description='calibration (FitPrune, ARank) and training (DyVTE gates, γ-MoD, RoE) data')
    fit_samples: int = Field(64, description='samples of fit_split the method fits on')
    eval_split: str = Field("test", description='the split the stage is measured on')
    eval_samples: int = Field(64, description='samples of eval_split measured')
    batch_size: int = Field(16, description='samples a forward pass')
    latency_repeats: int = Field(3, description='timed repeats of each measured pass (CPU latency)')
    seed: int = Field(0, description='sampling and training seed')
    # FitPrune
    flops_budget: float = Field(0.5, description='FitPrune: fraction of the unpruned visual-token FLOPs kept')
    recipe: str = Field("", description='FitPrune: a recipe.json to prune with, instead of calibrating')
    # G-Prune
    keep_ratio: float = Field(0.5, description="G-Prune: share of visual tokens kept (0.5 is the paper's default)")
    # DyVTE
    gate_hidden: int = Field(2048, description="DyVTE: hidden width of each layer's exit gate (2048 in the paper)")
    gate_steps: int = Field(300, description='DyVTE: gate training steps (the LLM frozen)')
    gate_lr: float = Field(1e-3, description='DyVTE: gate learning rate')
    exit_threshold: float = Field(0.5, description="DyVTE: gate probability above which a sample's visual tokens leave")
    # γ-MoD
    convert: int = Field(1, description='γ-MoD: layers (lowest ARank) turned into MoD layers')
    capacity: float = Field(0.5, description='γ-MoD: share of system + image tokens routed through in training')
    prefill_threshold: float = Field(0.005, description='γ-MoD: at inference a prompt token with router p above this goes through (0.005 in the paper)')
    mod_steps: int = Field(100, description='γ-MoD: fine-tuning steps')
    mod_lr: float = Field(1e-4, description='γ-MoD: decoder learning rate; 0 trains the router alone')
    router_lr: float = Field(1e-3, description='γ-MoD: router learning rate')
    # RoE
    adapter_dim: int = Field(1024, description="RoE: hidden width of each layer's skip adapter")
    roe_steps: int = Field(100, description='RoE: training steps (the 3-phase curriculum)')
    roe_lr: float = Field(1e-3, description='RoE: router and adapter learning rate')
    llm_lr: float = Field(1e-4, description='RoE: decoder learning rate in phase 3')
    # FlashSloth
    window: int = Field(3, description='FlashSloth: pooling window side: 27 x 27 -> 9 x 9 in the paper')
    sloth_steps: int = Field(300, description='FlashSloth: pooling training steps')
    sloth_lr: float = Field(1e-3, description='FlashSloth: pooling learning rate')
    projector_lr: float = Field(1e-4, description='FlashSloth: projector learning rate; 0 trains the pooling alone')
