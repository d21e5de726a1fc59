"""The floors hold (import-linter's contracts in pyproject.toml), and the contracts do catch a break."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("core", "kernels", "pipeline", "data_cards", "annotation", "training", "gcot")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the packages and the contracts, to plant imports in."""
    for p in PACKAGES:
        shutil.copytree(REPO / p, tmp_path / p, ignore=shutil.ignore_patterns("__pycache__", "*.pt", "*.png", "weights"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_its_contracts():
    r = lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


def test_a_lower_floor_importing_a_higher_one_breaks_the_floors(tree):
    with open(tree / "core" / "boxes.py", "a") as f:
        f.write("\nimport pipeline.steps  # planted\n")
    r = lint(tree)
    assert r.returncode != 0
    assert "core is not allowed to import pipeline.steps" in r.stdout
    assert "core.boxes -> pipeline.steps" in r.stdout


def test_two_modules_importing_each_other_break_the_acyclic_contract(tree):
    with open(tree / "pipeline" / "chains" / "templates.py", "a") as f:
        f.write("\nimport pipeline.chains.sampler  # planted\n")  # sampler imports templates
    r = lint(tree)
    assert r.returncode != 0
    assert "No cycles are allowed in pipeline.chains" in r.stdout
