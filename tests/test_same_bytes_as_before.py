"""The floor plan moved every module and changed no result: releases equal those of the code before it.

The digests were recorded at commit 9c117ea (before the move) by building the same inputs with the
same parameters: the demo (300 synthetic scenes, seed 7) and a Visual Genome layout folder (60
synthetic scenes, seed 3, built with seed 5 in shards of 25).
"""

from __future__ import annotations

import json

from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import FIXTURES
from tests.digests import file_digests

RECORDED = json.loads((FIXTURES / "release_digests_9c117ea.json").read_text())


def test_demo_release_bytes_as_recorded(demo_release):
    out, _ = demo_release
    assert file_digests(out) == RECORDED["synthetic-300-seed7"]


def test_visual_genome_layout_release_bytes_as_recorded(tmp_path):
    vg = write_synthetic_vg(tmp_path / "vgsrc", 60, 3)
    run_plain(BuildConfig(source=f"vg:{vg}", images=0, seed=5, out=str(tmp_path / "vg"), work_dir=str(tmp_path / "w"), shard_size=25))
    assert file_digests(tmp_path / "vg") == RECORDED["vg-60-seed5-shard25"]
