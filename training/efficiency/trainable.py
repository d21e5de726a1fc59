"""What a stage trains: a module of its own on a frozen model, and optionally one part of the model.

FlashSloth trains its pooling (and the projector), γ-MoD its router (and the decoder layers): both
freeze the whole model first and freeze it again when done, so the model leaves training as it came in.
DyVTE's gates and RoE's curriculum freeze the model with `freeze` too.
"""

from __future__ import annotations

from torch import nn


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def param_groups(model: nn.Module, own: nn.Module, own_lr: float, part: nn.Module, part_lr: float) -> list[dict]:
    """Freeze ``model``; optimizer groups for ``own`` (a module outside the model) at ``own_lr`` and,
    when ``part_lr`` > 0, for ``part`` of the model, unfrozen, at ``part_lr`` (0: the part stays frozen)."""
    freeze(model)
    groups = [{"params": list(own.parameters()), "lr": own_lr}]
    if part_lr > 0:
        for p in part.parameters():
            p.requires_grad_(True)
        groups.append({"params": list(part.parameters()), "lr": part_lr})
    return groups
