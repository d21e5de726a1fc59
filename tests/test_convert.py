"""mmgcot -> arrow -> mmgcot keeps every value. The committed fixture is hand-written with the quirks
of the published files (repeated ids, trailing spaces and periods, steps without a box, "are at",
qualified false). Set MMGCOT_DIR to a folder with the official test files to check those too; they
are public in DoubtedSteam/MM-GCoT and are not committed here."""

import json
import os
import shutil
from pathlib import Path

import datasets
import pytest

from pipeline.__main__ import main
from pipeline.convert import convert
from tests.conftest import FIXTURES

SOURCES = [FIXTURES / "mmgcot_quirks"]
if os.environ.get("MMGCOT_DIR"):
    SOURCES.append(Path(os.environ["MMGCOT_DIR"]))


def load_all(folder: Path) -> dict[str, list]:
    return {f.name: json.loads(f.read_text()) for f in sorted(folder.glob("GCoT_dataset_*.json"))}


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_mmgcot_arrow_mmgcot_keeps_every_value(src, tmp_path):
    convert(src, "mmgcot", "arrow", tmp_path / "arrow")
    convert(tmp_path / "arrow", "arrow", "mmgcot", tmp_path / "back")
    before, after = load_all(src), load_all(tmp_path / "back")
    assert before.keys() == after.keys()
    for name in before:
        assert after[name] == before[name], name  # order, ids, strings, bools: all equal
        assert (tmp_path / "back" / name).read_text() == json.dumps(before[name], indent=2)


def test_arrow_output_loads_with_datasets(tmp_path):
    convert(FIXTURES / "mmgcot_quirks", "mmgcot", "arrow", tmp_path / "arrow")
    ds = datasets.load_dataset(str(tmp_path / "arrow"), split="test")
    assert len(ds) == 4 and ds[0]["image"] is None and ds[0]["img"] == "vg/VG_100K/10.jpg"
    assert ds[2]["steps"][2] == {**ds[2]["steps"][2], "box": None, "text": "The caption describes the lamp as glowing."}


def test_images_are_embedded_when_given(tmp_path):
    from PIL import Image

    for rel in ("VG_100K/10.jpg", "VG_100K_2/11.jpg", "VG_100K/12.jpg", "VG_100K/13.jpg"):
        p = tmp_path / "images" / "vg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (200, 10, 10)).save(p)
    convert(FIXTURES / "mmgcot_quirks", "mmgcot", "arrow", tmp_path / "arrow", images=tmp_path / "images")
    ds = datasets.load_dataset(str(tmp_path / "arrow"), split="test")
    assert ds[1]["image"].size == (32, 24)
    with pytest.raises(FileNotFoundError, match="13.jpg"):
        (tmp_path / "images" / "vg" / "VG_100K" / "13.jpg").unlink()
        convert(FIXTURES / "mmgcot_quirks", "mmgcot", "arrow", tmp_path / "arrow2", images=tmp_path / "images")
    assert not (tmp_path / "arrow2").exists()  # nothing half-written


def test_to_llava(tmp_path):
    convert(FIXTURES / "mmgcot_quirks", "mmgcot", "llava", tmp_path / "llava")
    rows = json.loads((tmp_path / "llava" / "test.json").read_text())
    assert len(rows) == 8 and rows[1]["conversations"][1]["value"].endswith("\nFinal Answer: Blue")


def rejections_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rejections.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("to", ["mmgcot", "llava", "arrow"])
def test_malformed_records_are_recorded_in_every_format_not_fatal(tmp_path, capsys, to):
    d = tmp_path / "in"
    d.mkdir()
    good = load_all(FIXTURES / "mmgcot_quirks")["GCoT_dataset_attributes_test.json"]
    (d / "GCoT_dataset_attributes_test.json").write_text(json.dumps([good[0], {"id": 5, "img": "x.jpg"}, good[1]]))
    s = convert(d, "mmgcot", to, tmp_path / "out")
    assert s["records"] == 2 and s["rejected"] == 1 and s["files_rejected"] == 0
    (rej,) = rejections_of(tmp_path / "out")
    assert rej["rule"] == "malformed_record" and rej["id"] == "5" and "lacks question" in rej["detail"]
    assert rej["file"] == str(d / "GCoT_dataset_attributes_test.json")
    assert main(["convert", str(d), "--from", "mmgcot", "--to", to, "--out", str(tmp_path / "o2"), "--strict"]) == 2
    assert "record #1" in capsys.readouterr().err and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("to", ["mmgcot", "llava", "arrow"])
def test_a_bad_file_in_a_folder_is_recorded_and_the_others_converted(tmp_path, capsys, to):
    d = tmp_path / "in"
    shutil.copytree(FIXTURES / "mmgcot_quirks", d)
    n_good = sum(len(v) for v in load_all(d).values())
    (d / "GCoT_dataset_judge_test.json").write_text("[{ not json")
    (d / "GCoT_dataset_objects_val.json").write_text('{"records": []}')  # an object, not a list
    n_lost = sum(len(v) for k, v in load_all(FIXTURES / "mmgcot_quirks").items() if k == "GCoT_dataset_judge_test.json")
    assert main(["convert", str(d), "--from", "mmgcot", "--to", to, "--out", str(tmp_path / "o")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["records"] == n_good - n_lost and s["rejected"] == 0 and s["files_rejected"] == 2
    rej = {r["id"]: r for r in rejections_of(tmp_path / "o")}
    assert set(rej) == {"GCoT_dataset_judge_test.json", "GCoT_dataset_objects_val.json"}
    assert {r["rule"] for r in rej.values()} == {"unreadable_file"} and all(r["file"].startswith(str(d)) for r in rej.values())
    assert "malformed JSON at line 1" in rej["GCoT_dataset_judge_test.json"]["detail"]
    assert "expected a JSON list" in rej["GCoT_dataset_objects_val.json"]["detail"]
    assert main(["convert", str(d), "--from", "mmgcot", "--to", to, "--out", str(tmp_path / "o3"), "--strict"]) == 2
    assert "GCoT_dataset_judge_test.json: malformed JSON at line 1" in capsys.readouterr().err and not (tmp_path / "o3").exists()


def test_a_broken_parquet_shard_is_recorded_and_the_others_converted(tmp_path):
    convert(FIXTURES / "mmgcot_quirks", "mmgcot", "arrow", tmp_path / "arrow")
    (tmp_path / "arrow" / "data" / "validation-00000-of-00001.parquet").write_bytes(b"PAR1 truncated")
    s = convert(tmp_path / "arrow", "arrow", "mmgcot", tmp_path / "back")
    assert s["records"] == 4 and s["files_rejected"] == 1
    (rej,) = rejections_of(tmp_path / "back")
    assert rej["rule"] == "unreadable_file" and rej["id"] == "validation-00000-of-00001.parquet" and "Parquet" in rej["detail"]
