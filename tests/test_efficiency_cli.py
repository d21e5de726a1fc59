"""The efficiency CLI: every config loads, overrides and errors are clear, --help explains the methods."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError
from training.efficiency import METHODS
from training.efficiency.config import EfficiencyConfig

CONFIGS = sorted(Path("training/configs/efficiency").glob("*.yaml"))


def test_every_config_loads_and_names_its_command():
    assert {EfficiencyConfig.from_yaml(p).method for p in CONFIGS} == set(METHODS)
    for p in CONFIGS:
        assert p.read_text().splitlines()[1].strip().startswith("#   python -m training.efficiency")


def test_overrides_and_errors():
    cfg = EfficiencyConfig.from_yaml(CONFIGS[0], flops_budget=0.3, gate_lr="3e-4")
    assert cfg.flops_budget == 0.3 and cfg.gate_lr == 3e-4
    with pytest.raises(ConfigError, match="budget: Extra inputs are not permitted"):
        EfficiencyConfig.from_yaml(CONFIGS[0], budget=1)
    with pytest.raises(ConfigError, match="method: Input should be 'fitprune'"):
        EfficiencyConfig.from_yaml(CONFIGS[0], method="fastv")


def test_help_lists_the_methods():
    out = subprocess.run([sys.executable, "-m", "training.efficiency", "--help"], capture_output=True, text=True, check=True).stdout
    for m in METHODS:
        assert m in out
    assert "recipe.json" in out


def test_overrides_after_options_reach_the_config(tmp_path):
    """`METHOD --model X key=value`: argparse must not drop the overrides that follow an option."""
    r = subprocess.run([sys.executable, "-m", "training.efficiency", "gprune", "--data", str(tmp_path), "keep_ratio=0.25"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not a release folder" in r.stderr  # got past argument parsing and config loading
    r = subprocess.run([sys.executable, "-m", "training.efficiency", "gprune", "--data", str(tmp_path), "keep=0.25"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments: --keep=0.25" in r.stderr
