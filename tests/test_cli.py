import json
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO, timeout=600, **kw)


@pytest.mark.parametrize("cmd,expect", [([], "build-longv"), (["build-gcot"], "--source"), (["convert"], "--from"), (["serve"], "deployment")])
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


def _commands(model, path=()):
    """Every command of the `gcot` tree: (its words, its model). A subcommand field is marked by
    pydantic-settings' CliSubCommand in its metadata."""
    from typing import get_args

    from pydantic_settings.sources.types import _CliSubCommand

    for name, field in model.model_fields.items():
        if _CliSubCommand in field.metadata:
            sub = next(a for a in get_args(field.annotation) if isinstance(a, type))
            words = (*path, name.replace("_", "-"))
            yield words, sub
            yield from _commands(sub, words)


def test_gcot_help_lists_every_command_and_every_field_is_described(capsys):
    from gcot.cli import Gcot, main

    commands = list(_commands(Gcot))
    top = {w[0] for w, _ in commands}
    assert top >= {"build", "build-longv", "convert", "eval", "run-model", "review", "finetune", "efficiency", "detector", "scale", "serve"}
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in top:
        assert name in out
    leaves = 0

    def flat(text: str) -> str:  # argparse wraps lines after a hyphen too ("--rewrite-\n questions")
        return re.sub(r"-\s+", "-", " ".join(text.split()))

    for words, model in commands:
        assert main([*words, "--help"]) == 0
        text = flat(capsys.readouterr().out)
        for name, field in model.model_fields.items():
            assert field.description, f"gcot {' '.join(words)}: field {name} has no description"
            assert flat(field.description) in text, f"gcot {' '.join(words)} --help lacks {name}'s description"
        leaves += 1
    assert leaves >= 20


def test_a_releases_stored_config_builds_it_again_byte_for_byte(tmp_path):
    from tests.digests import file_digests as digests

    r = run("build", "--images", "15", "--seed", "4", "--per-type", '{"attribute": 1, "judge": 2, "object": 1}', "--out", str(tmp_path / "a" / "rel"),
            "--work-dir", str(tmp_path / "wa"), "--no-prefect")
    assert r.returncode == 0, r.stderr
    r = run("build", "--config", str(tmp_path / "a" / "rel" / "config.yaml"), "--out", str(tmp_path / "b" / "rel"), "--work-dir", str(tmp_path / "wb"), "--no-prefect")
    assert r.returncode == 0, r.stderr
    assert digests(tmp_path / "a" / "rel") == digests(tmp_path / "b" / "rel")
    assert "per_type:\n  attribute: 1\n  judge: 2\n  object: 1\n" in (tmp_path / "b" / "rel" / "config.yaml").read_text()


def test_bad_values_and_config_files_are_one_line_errors(tmp_path):
    r = run("build", "--images", "-3", "--no-prefect")
    assert r.returncode == 2 and "--images: Input should be greater than or equal to 0" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "c.yaml").write_text("imagez: 3\n")
    r = run("build", "--config", str(tmp_path / "c.yaml"), "--no-prefect")
    assert r.returncode == 2 and f"{tmp_path / 'c.yaml'}: imagez: Extra inputs are not permitted" in r.stderr and "Traceback" not in r.stderr
