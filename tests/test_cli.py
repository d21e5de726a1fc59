import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO, timeout=600, **kw)


@pytest.mark.parametrize("cmd,expect", [([], "build-gcot"), (["build-gcot"], "--source"), (["convert"], "--from"), (["serve"], "deployment")])
def test_help_on_every_command(cmd, expect):
    r = run(*cmd, "--help")
    assert r.returncode == 0 and expect in r.stdout


def test_unknown_source_and_missing_paths_are_clear_errors(tmp_path):
    r = run("build-gcot", "--source", "flickr:abc", "--out", str(tmp_path / "x"), "--no-prefect")
    assert r.returncode == 2 and "unknown source 'flickr:abc'" in r.stderr and "Traceback" not in r.stderr
    r = run("build-gcot", "--source", f"vg:{tmp_path}/nope", "--out", str(tmp_path / "x"), "--no-prefect")
    assert r.returncode == 2 and "image_data.json" in r.stderr
    r = run("build-gcot", "--source", f"coco:{tmp_path}/nope.json", "--out", str(tmp_path / "x"), "--no-prefect")
    assert r.returncode == 2 and "nope.json" in r.stderr
    assert not (tmp_path / "x").exists()


def test_build_prints_where_the_release_went(tmp_path):
    r = run("build-gcot", "--images", "12", "--seed", "2", "--out", str(tmp_path / "rel"), "--work-dir", str(tmp_path / "w"), "--no-prefect", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["release"] == str(tmp_path / "rel") and s["examples"] > 0 and (tmp_path / "rel" / "README.md").is_file()
