"""Releases equal those recorded: same inputs and parameters, same bytes.

Recorded first at commit 9c117ea (before the floor plan moved every module, which changed no result)
by building the same inputs with the same parameters: the demo (300 synthetic scenes, seed 7) and a
Visual Genome layout folder (60 synthetic scenes, seed 3, built with seed 5 in shards of 25). What the
floor plan changed on purpose: a release keeps its resolved `config.yaml`, and its card's "how it was
built" block gives the exact `gcot build` command and that config; the rest of the card is compared
line for line with the recorded card (kept beside the digests). Since the output guard (issue 15), a
release also carries `.gcot-forge.json`, the marker that says this tool wrote it and lists every other
file of it (it is written after them, so no other file changes); its bytes follow from the file set
and are checked here.

Recorded again at commit b52bd28 (issue 16), which changed the releases on purpose: every step keeps
the origin of its relation, its direction and its region phrase (three new Parquet columns); the
chains change (the walk takes annotated relations first, never shows a predicate twice, and an
object question's walk avoids the answer's noun; the quality rules reject what still says its
answer; "inside" is the canonical "in"): the demo releases 1794 examples instead of 1798; the card
gains its quality section and plots/quality_vs_mmgcot.png. The Visual Genome layout build is read as
photos (normalise step; only left of, right of, above, below and near from boxes): 359 examples
instead of 360.

Recorded again at commit 93c0fb1 (`python -m tests.record_digests b52bd28 93c0fb1`), where issues 15, 16 and 21 came together: every data file (Parquet,
MM-GCoT, LLaVA, plots, rejections, review queue) is byte for byte the one of b52bd28; only stats.json and
the card changed, on purpose: both carry the source's records reconciled (held, read = released +
rejected, issue 15), and the quality section's sample questions are spread over a thinned stream (at
most 48 a type kept, so memory does not grow with the release: issue 21) instead of the whole list.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

from core.guard import MARKER, marker_text
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import FIXTURES
from tests.digests import file_digests

RECORDED = json.loads((FIXTURES / "release_digests_93c0fb1.json").read_text())
CARDS = FIXTURES / "cards_93c0fb1"


def card_without_how_it_was_built(text: str) -> str:
    text = re.sub(r"\nThe resolved configuration is `config.yaml`.*?```yaml\n.*?```\n", "", text, flags=re.S)
    text = re.sub(r"\*\*vg:[^*]+\*\*", "**vg:SOURCE**", text)  # the card names the source folder, wherever it is
    return re.sub(r"^(gcot build|python -m pipeline build-gcot) .*$", "COMMAND", text, flags=re.M)


def check(out: Path, name: str, cfg: BuildConfig) -> None:
    now, then = file_digests(out), RECORDED[name]
    assert set(now) == set(then) | {"config.yaml", MARKER}
    assert (out / MARKER).read_text() == marker_text("GCoT release", sorted(set(now) - {MARKER}))
    assert {k: v for k, v in now.items() if k not in ("README.md", "config.yaml", MARKER)} == {k: v for k, v in then.items() if k != "README.md"}
    card = (out / "README.md").read_text()
    assert hashlib.sha256((CARDS / f"{name}.md").read_bytes()).hexdigest() == then["README.md"]  # the kept card is the recorded one
    assert card_without_how_it_was_built(card) == card_without_how_it_was_built((CARDS / f"{name}.md").read_text())
    assert cfg.release_command() in card
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert BuildConfig(**stored) == cfg.model_copy(update={"out": out.name, "work_dir": None})
    assert not {"work_dir", "runner", "dask_address", "workers"} & set(stored)


def test_demo_release_bytes_as_recorded(demo_release, work_dir):
    out, _ = demo_release
    check(out, "synthetic-300-seed7", BuildConfig(source="synthetic", images=300, seed=7, out=str(out), work_dir=str(work_dir)))


def test_visual_genome_layout_release_bytes_as_recorded(tmp_path):
    vg = write_synthetic_vg(tmp_path / "vgsrc", 60, 3)
    cfg = BuildConfig(source=f"vg:{vg}", seed=5, out=str(tmp_path / "vg"), work_dir=str(tmp_path / "w"), shard_size=25)
    run_plain(cfg)
    check(tmp_path / "vg", "vg-60-seed5-shard25", cfg)
