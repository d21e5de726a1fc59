"""Rebuild the inputs of tests/test_same_bytes_as_before.py, compare them with a recorded expectation,
and record a new one when a change alters releases on purpose.

    .venv/bin/python -m tests.record_digests b52bd28            # what differs from the expectation of b52bd28
    .venv/bin/python -m tests.record_digests b52bd28 93c0fb1    # ... and record tests/fixtures/*_93c0fb1

It prints, per release, the files only now, only then and changed (the card compared without its
build block and source path, as the test does): say why in the test's docstring
before pointing the test at the new expectation.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from core.guard import MARKER
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import FIXTURES
from tests.digests import file_digests
from tests.test_same_bytes_as_before import card_without_how_it_was_built


def build(tmp: Path) -> dict[str, Path]:
    """The two releases the test checks, as it builds them."""
    run_plain(BuildConfig(source="synthetic", images=300, seed=7, out=str(tmp / "demo"), work_dir=str(tmp / "w0")))
    vg = write_synthetic_vg(tmp / "vgsrc", 60, 3)
    run_plain(BuildConfig(source=f"vg:{vg}", seed=5, out=str(tmp / "vg"), work_dir=str(tmp / "w"), shard_size=25))
    return {"synthetic-300-seed7": tmp / "demo", "vg-60-seed5-shard25": tmp / "vg"}


def main(old: str, new: str | None = None) -> None:
    recorded = json.loads((FIXTURES / f"release_digests_{old}.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="gcot-digests-"))
    outs, now = build(tmp), {}
    for name, out in outs.items():
        d = now[name] = {k: v for k, v in file_digests(out).items() if k not in ("config.yaml", MARKER)}
        then = dict(recorded[name])
        card = FIXTURES / f"cards_{old}" / f"{name}.md"  # the card names its source folder: compared as the test does
        if card.is_file() and card_without_how_it_was_built(card.read_text()) == card_without_how_it_was_built((out / "README.md").read_text()):
            then["README.md"] = d["README.md"]
        print(f"{name}: {len(d)} files; only now {sorted(set(d) - set(then))}; only then {sorted(set(then) - set(d))}; "
              f"changed {sorted(k for k in set(d) & set(then) if d[k] != then[k])}")
    if new:
        (FIXTURES / f"release_digests_{new}.json").write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
        (FIXTURES / f"cards_{new}").mkdir(exist_ok=True)
        for name, out in outs.items():
            shutil.copy(out / "README.md", FIXTURES / f"cards_{new}" / f"{name}.md")
        print(f"recorded tests/fixtures/release_digests_{new}.json and cards_{new}/")
    print(f"releases under {tmp}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
