"""The output guard (issue 15): --out never destroys a user's files, never the input, and replaces a release
of ours only when asked. Each refusal leaves every byte where it was and says what it found and what to do."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from core.guard import MARKER, OutputGuard, OutputRefused, prepare_run_folder, write_marker
from gcot.cli import main
from pipeline.convert import convert
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import FIXTURES
from tests.digests import file_digests


@pytest.fixture(scope="module")
def vg(tmp_path_factory):
    """A 4-image Visual Genome layout folder, in a parent folder of its own."""
    return write_synthetic_vg(tmp_path_factory.mktemp("data") / "vg", images=4, seed=3, workers=1)


@pytest.fixture()
def work(tmp_path):
    return tmp_path / "work"


def cfg(vg, out, work, **kw) -> BuildConfig:
    return BuildConfig(source=f"vg:{vg}", seed=1, out=str(out), work_dir=str(work), shard_size=2, **kw)


def user_folder(parent):
    d = parent / "mydata"
    (d / "thesis").mkdir(parents=True)
    (d / "precious.txt").write_text("years of notes\n")
    (d / "thesis" / "chapter1.tex").write_text("\\chapter{One}\n")
    return d


def asides(parent) -> list[str]:
    return sorted(n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_folder_is_never_replaced(vg, work, tmp_path, overwrite):
    mine = user_folder(tmp_path)
    before = file_digests(mine)
    with pytest.raises(OutputRefused) as e:
        run_plain(cfg(vg, mine, work, overwrite=overwrite))
    msg = str(e.value)
    assert f"--out {mine} is a folder this tool did not write (it holds precious.txt, thesis/)" in msg
    assert "Nothing was changed" in msg and "choose a new folder" in msg
    with pytest.raises(OutputRefused, match="did not write"):
        convert(FIXTURES / "mmgcot_quirks", "mmgcot", "arrow", mine, overwrite=overwrite)
    assert file_digests(mine) == before and asides(tmp_path) == []
    assert not work.exists()  # refused before any work


def test_the_command_line_says_it_in_one_line(vg, work, tmp_path, capsys):
    mine = user_folder(tmp_path)
    before = file_digests(mine)
    assert main(["build", "--source", f"vg:{vg}", "--out", str(mine), "--work-dir", str(work), "--no-prefect", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {mine} is a folder this tool did not write") and "Traceback" not in err
    assert main(["convert", str(FIXTURES / "mmgcot_quirks"), "--from", "mmgcot", "--to", "llava", "--out", str(mine)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert file_digests(mine) == before


@pytest.mark.parametrize("where", ["source", "parent", "inside"])
def test_the_source_its_parent_and_a_folder_inside_it_are_refused(vg, work, where):
    out = {"source": vg, "parent": vg.parent, "inside": vg / "VG_100K" / "release"}[where]
    before = file_digests(vg.parent)
    with pytest.raises(OutputRefused) as e:
        run_plain(cfg(vg, out, work, overwrite=True))
    said = {"source": f"--out {vg} is the source folder of vg:{vg}, which this command reads: the GCoT release would replace it",
            "parent": f"--out {vg.parent} holds the source folder of vg:{vg} ({vg}), which this command reads: replacing {vg.parent} would delete it",
            "inside": f"--out {out} lies inside the source folder of vg:{vg} ({vg}), which this command reads"}[where]
    assert said in str(e.value) and "Nothing was changed" in str(e.value)
    assert file_digests(vg.parent) == before and asides(vg.parent) == [] and asides(vg.parent.parent) == []
    assert where != "inside" or not out.exists()


def test_an_images_folder_never_receives_the_release(tmp_path, work):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(photos / "a.jpg")
    before = file_digests(photos)
    for out in (photos / "release", photos):
        with pytest.raises(OutputRefused, match=f"the source folder of images:{photos}"):
            run_plain(BuildConfig(source=f"images:{photos}", out=str(out), work_dir=str(work), overwrite=True))
    # the work folder may not lie inside the source either: a rerun would read its files as images
    with pytest.raises(OutputRefused, match=f"--work-dir {photos / '.gcot-work'} lies inside the source folder"):
        run_plain(BuildConfig(source=f"images:{photos}", out=str(tmp_path / "rel"), work_dir=str(photos / ".gcot-work")))
    assert file_digests(photos) == before


def test_a_file_at_out_is_refused_and_left_alone(vg, work, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("do not rename me\n")
    for overwrite in (False, True):
        with pytest.raises(OutputRefused, match=f"--out {notes} is a file, not a folder"):
            run_plain(cfg(vg, notes, work, overwrite=overwrite))
    with pytest.raises(OutputRefused, match="lies under .*notes.txt, which is a file"):
        run_plain(cfg(vg, notes / "rel", work))
    assert notes.read_text() == "do not rename me\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_the_input_of_convert_and_of_a_pull_are_refused(tmp_path):
    src = tmp_path / "in"
    shutil.copytree(FIXTURES / "mmgcot_quirks", src)
    before = file_digests(src)
    with pytest.raises(OutputRefused, match="is the input being converted, which this command reads"):
        convert(src, "mmgcot", "mmgcot", src, overwrite=True)
    with pytest.raises(OutputRefused, match="lies inside the input being converted"):
        convert(src, "mmgcot", "llava", src / "llava")
    assert file_digests(src) == before
    from annotation.review import pull_guard

    with pytest.raises(OutputRefused, match="is the release being pulled"):
        pull_guard(src, src, overwrite=True).check()
    with pytest.raises(OutputRefused, match="Label Studio's data folder"):
        pull_guard(src, tmp_path / "ls" / "out", inputs=(("Label Studio's data folder", tmp_path / "ls"),)).check()


def test_a_release_of_ours_is_replaced_only_with_overwrite(vg, work, tmp_path):
    out = tmp_path / "rel"
    run_plain(cfg(vg, out, work))
    marker = json.loads((out / MARKER).read_text())
    assert marker["tool"] == "gcot-forge" and marker["kind"] == "GCoT release"
    assert set(marker["files"]) == set(file_digests(out)) - {MARKER}  # every other file, nothing more
    first = file_digests(out)
    with pytest.raises(OutputRefused, match=f"--out {out} already holds a GCoT release written by this tool.*pass --overwrite"):
        run_plain(cfg(vg, out, work))
    assert file_digests(out) == first
    run_plain(cfg(vg, out, work, overwrite=True))
    assert file_digests(out) == first and asides(tmp_path) == []  # same inputs, same bytes; nothing left beside it
    # a file the user put into the release is never deleted, --overwrite or not
    (out / "data" / "my-notes.txt").write_text("mine\n")
    with pytest.raises(OutputRefused, match=r"and files it did not write \(data/my-notes.txt\).*move them out"):
        run_plain(cfg(vg, out, work, overwrite=True))
    assert (out / "data" / "my-notes.txt").read_text() == "mine\n"


def test_a_release_from_before_the_marker_needs_overwrite_and_is_warned_about(vg, work, tmp_path, caplog):
    out = tmp_path / "rel"
    run_plain(cfg(vg, out, work))
    (out / MARKER).unlink()  # as releases were written before the guard
    with pytest.raises(OutputRefused, match="looks like a GCoT release written by an earlier version of this tool.*pass --overwrite"):
        run_plain(cfg(vg, out, work))
    with caplog.at_level(logging.WARNING, logger="core.guard"):
        run_plain(cfg(vg, out, work, overwrite=True))
    assert any("no .gcot-forge.json marker" in r.getMessage() and "replacing it" in r.getMessage() for r in caplog.records)
    assert (out / MARKER).is_file()
    # not every folder with a README is ours: one name a release never has, and it is foreign
    (out / MARKER).unlink()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(OutputRefused, match="is a folder this tool did not write"):
        run_plain(cfg(vg, out, work, overwrite=True))


def test_a_run_folder_is_resumed_replaced_or_refused(tmp_path):
    owned = ("config.yaml", "checkpoint-*", "adapter", "base")
    out = tmp_path / "run"
    guard = OutputGuard(out, "fine-tuning run", owned=owned)
    prepare_run_folder(guard, guard.check())
    (out / "base").mkdir()  # prepared with a base model of its own: no run in it yet, written into as it is
    assert guard.check() == "ours"
    prepare_run_folder(guard, "ours")
    assert (out / "base").is_dir()
    (out / "config.yaml").write_text("max_steps: 3\n")
    (out / "checkpoint-000003").mkdir()
    with pytest.raises(OutputRefused, match="already holds a fine-tuning run.*pass --overwrite"):
        guard.check()
    assert guard.check(resume=True) == "ours"
    with pytest.raises(OutputRefused, match="both --resume and --overwrite"):
        OutputGuard(out, "fine-tuning run", owned=owned, overwrite=True).check(resume=True)
    with pytest.raises(OutputRefused, match="no fine-tuning run to resume"):
        OutputGuard(tmp_path / "none", "fine-tuning run", owned=owned).check(resume=True)
    again = OutputGuard(out, "fine-tuning run", owned=owned, overwrite=True)
    prepare_run_folder(again, again.check())
    assert sorted(os.listdir(out)) == [MARKER] and asides(tmp_path) == []  # the old run is gone, the new one is marked
    (out / "notes.md").write_text("mine")
    with pytest.raises(OutputRefused, match=r"files it did not write \(notes.md\)"):
        again.check()


def test_finetune_refuses_its_release_and_a_users_folder_before_training(demo_release, tmp_path, capsys):
    from training.finetune import main as finetune

    release, _ = demo_release
    mine = user_folder(tmp_path)
    before = file_digests(mine)
    assert finetune(["--data", str(release), "--out", str(release / "run")]) == 2
    assert f"lies inside the release to train on ({release})" in capsys.readouterr().err
    assert finetune(["--data", str(release), "--out", str(mine), "--overwrite"]) == 2
    assert "is a folder this tool did not write" in capsys.readouterr().err
    assert file_digests(mine) == before and not (release / "run").exists()


def test_a_marker_that_is_not_ours_is_not_trusted(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / MARKER).write_text('{"tool": "something-else"}')
    (out / "data.csv").write_text("1,2\n")
    with pytest.raises(OutputRefused, match="is not one this tool writes"):
        OutputGuard(out, "GCoT release", overwrite=True).check()
    write_marker(out, "GCoT release")
    assert OutputGuard(out, "GCoT release", overwrite=True).check() == "ours"


def test_eval_report_folder_is_guarded(tmp_path, capsys):
    """gcot eval --out: a user's folder is refused before the evaluation; a report folder of ours is
    replaced only with --overwrite."""
    from tests.test_eval import records

    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records(type="judge")))
    mine = user_folder(tmp_path)
    before = file_digests(mine)
    assert main(["eval", "--results", str(results), "--out", str(mine), "--overwrite"]) == 2
    assert "is a folder this tool did not write" in capsys.readouterr().err and file_digests(mine) == before
    rep = tmp_path / "rep"
    assert main(["eval", "--results", str(results), "--out", str(rep)]) == 0
    assert sorted(os.listdir(rep)) == [MARKER, "breakdown.png", "report.json", "report.md"]
    capsys.readouterr()
    assert main(["eval", "--results", str(results), "--out", str(rep)]) == 2
    assert "already holds a gcot eval report written by this tool" in capsys.readouterr().err
    assert main(["eval", "--results", str(results), "--out", str(rep), "--overwrite"]) == 0


def test_run_model_and_tiny_model_refuse_a_users_file_and_folder_before_loading(tmp_path, capsys):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("mine\n")
    # the model path does not exist: the refusal comes first, before anything is loaded
    assert main(["run-model", "--release", str(tmp_path / "rel"), "--model", str(tmp_path / "no-model"), "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"--out {notes}: {notes} already exists" in err and "--overwrite" in err and notes.read_text() == "mine\n"
    mine = user_folder(tmp_path)
    before = file_digests(mine)
    assert main(["tiny-model", "--release", str(tmp_path / "rel"), "--out", str(mine), "--overwrite"]) == 2
    assert "is a folder this tool did not write" in capsys.readouterr().err and file_digests(mine) == before


def test_detector_training_refuses_existing_weights_and_a_users_work_folder(tmp_path):
    from pipeline.detect.train import DetectorTrainConfig, train

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"someone's weights")
    with pytest.raises(SystemExit, match=f"--out {weights}: {weights} already exists"):
        train(DetectorTrainConfig(out=str(weights), work=str(tmp_path / "work")))
    mine = user_folder(tmp_path)
    (mine / "data").mkdir()
    (mine / "data" / "keep.txt").write_text("mine\n")
    before = file_digests(mine)
    with pytest.raises(SystemExit, match="--work .* is a folder this tool did not write"):
        train(DetectorTrainConfig(out=str(tmp_path / "new.pt"), work=str(mine)))
    assert file_digests(mine) == before and weights.read_bytes() == b"someone's weights"
