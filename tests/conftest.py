from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before any library import: offline switches and a Prefect home of the test session's own.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gcot-test-prefect-")
os.environ.pop("PREFECT_API_URL", None)
from core import env  # noqa: E402

env.apply()

import pytest  # noqa: E402

from pipeline.steps import BuildConfig, run_plain  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def demo_release(tmp_path_factory, work_dir) -> tuple[Path, dict]:
    """The issue's reference build: 300 synthetic images, seed 7, plain functions."""
    out = tmp_path_factory.mktemp("rel") / "demo"
    s = run_plain(BuildConfig(source="synthetic", images=300, seed=7, out=str(out), work_dir=str(work_dir)))
    return out, s


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield



@pytest.fixture(scope="session")
def family_models(demo_release, tmp_path_factory) -> dict[str, Path]:
    """A tiny random checkpoint of every VLM family (tests/tiny_families.py: each family's own config,
    model and processor classes, a few hundred KB), built once per test run, offline; a family whose
    processor needs a missing package is left out (`tiny_families.checkpoint` skips it, naming the package)."""
    from tiny_families import FAMILIES, available, build

    from training.tiny_llava import release_texts

    release, _ = demo_release
    texts = release_texts(release)
    root = tmp_path_factory.mktemp("families")
    return {f: build(f, root / f, texts) for f in FAMILIES if available(f)}
