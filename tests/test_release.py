"""The issue's reference build: 300 synthetic images, seed 7 (built once per session in conftest)."""

import json
import re

import datasets
import pyarrow.parquet as pq
from PIL import Image

from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT
from pipeline.steps import BuildConfig, run_plain
from tests.digests import file_digests

LINE = re.compile(r"^Step (\d+): (.*)$")
BOX = r"\[\d\.\d{3}, \d\.\d{3}, \d\.\d{3}, \d\.\d{3}\]"


def test_releases_enough_examples_of_every_type(demo_release):
    out, s = demo_release
    assert s["examples"] >= 1200
    assert set(s["per_type"]) == {"attribute", "judge", "object"} and min(s["per_type"].values()) >= 300
    assert s["candidates"] == s["examples"] + s["rejected"]
    rejections = [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]
    assert len([r for r in rejections if r["stage"] in ("chains", "verify", "split")]) == s["rejected"]
    assert all(r["rule"] and r["detail"] and r["id"] for r in rejections)


def test_load_dataset_gives_one_example_per_row_with_its_image(demo_release):
    out, s = demo_release
    total = 0
    for split in ("train", "validation", "test"):
        ds = datasets.load_dataset(str(out), split=split)
        total += len(ds)
        assert {"question", "type", "steps", "answer", "image", "answer_box"} <= set(ds.column_names)
        for row in ds.select(range(0, len(ds), max(1, len(ds) // 25))):
            assert isinstance(row["image"], Image.Image) and row["image"].size == (row["width"], row["height"])
            assert row["question"] and row["type"] in ("attribute", "judge", "object") and row["answer"]
            assert all(set(st) >= {"text", "box"} for st in row["steps"])
            boxes = [st["box"] for st in row["steps"] if st["box"] is not None]
            assert all(len(b) == 4 and 0 <= b[0] <= 1 and 0 < b[2] <= 1 for b in boxes)
            assert row["answer_box"] == boxes[-1]
    assert total == s["examples"]


def test_splits_are_by_image(demo_release):
    out, _ = demo_release
    images = {}
    for split in ("train", "validation", "test"):
        ids = set(datasets.load_dataset(str(out), split=split)["image_id"])
        images[split] = ids
    assert not (images["train"] & images["test"]) and not (images["train"] & images["validation"]) and not (images["validation"] & images["test"])


def test_each_image_is_stored_once(demo_release):
    out, _ = demo_release
    stats = json.loads((out / "stats.json").read_text())
    n_images = stats["images"]
    distinct = 0
    for f in sorted((out / "data").glob("*.parquet")):
        md = pq.ParquetFile(f).metadata
        assert md.num_row_groups == 1
        col = [md.row_group(0).column(i) for i in range(md.num_columns) if md.row_group(0).column(i).path_in_schema == "image.bytes"][0]
        assert col.has_dictionary_page
        images = pq.read_table(f, columns=["image_id"]).column("image_id").to_pylist()
        distinct += len(set(images))
    assert distinct == n_images  # no image crosses a shard or a split
    parquet = sum(f.stat().st_size for f in (out / "data").glob("*.parquet"))
    card = (out / "README.md").read_text()
    per_row = float(re.search(r"images if stored once per row \| ([\d.]+) MB", card).group(1))
    unique = float(re.search(r"distinct images \(\d+\) \| ([\d.]+) MB", card).group(1))
    assert per_row > 4 * unique  # ~6 questions an image
    assert parquet < 1.25 * unique * 2**20  # the shards are about the size of the distinct images


def test_mmgcot_json_to_the_letter(demo_release):
    out, s = demo_release
    files = sorted((out / "mmgcot").glob("*.json"))
    names = {f.name for f in files}
    for t in ("attributes", "judge", "objects"):
        for split in ("train", "validation", "test"):
            assert f"GCoT_dataset_{t}_{split}.json" in names
    ids, n = set(), 0
    for f in files:
        text = f.read_text()
        records = json.loads(text)
        assert text == json.dumps(records, indent=2)
        for r in records:
            n += 1
            assert list(r) == ["id", "img", "question", "cot", "answer", "coordinate", "qualified"]
            assert isinstance(r["id"], int) and r["id"] not in ids
            ids.add(r["id"])
            assert re.fullmatch(r"vg/VG_100K/\d+\.jpg", r["img"])
            assert isinstance(r["qualified"], bool) and isinstance(r["coordinate"], str)
            lines = r["cot"].split("\n")
            assert [int(LINE.match(line).group(1)) for line in lines] == list(range(1, len(lines) + 1))
            boxes = re.findall(BOX, r["cot"])
            assert re.fullmatch(BOX, r["coordinate"]) and boxes[-1] == r["coordinate"]
            for line in lines:
                assert re.fullmatch(rf"Step \d+: The .+ is at {BOX}", line) or "[" not in line
            if "judge" in f.name:
                assert r["answer"] in ("Yes", "No")
            assert r["answer"][0].isupper()
    assert n == s["examples"]


def test_llava_pairs(demo_release):
    out, s = demo_release
    rows = json.loads((out / "llava" / "train.json").read_text())
    assert len(rows) == 2 * s["per_split"]["train"]
    plain, cot = rows[0], rows[1]
    assert cot["id"] == plain["id"] + "_cot" and cot["image"] == plain["image"]
    assert plain["conversations"][0]["value"].startswith("<image>\n") and plain["conversations"][0]["value"].endswith(PLAIN_PROMPT)
    assert cot["conversations"][0]["value"].endswith(COT_PROMPT)
    target = cot["conversations"][1]["value"]
    assert target.startswith("Step 1: ") and target.endswith("\nFinal Answer: " + plain["conversations"][1]["value"])


def test_data_card(demo_release):
    out, s = demo_release
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "task_categories:" in card and "\nconfigs:" not in card
    assert f"**{s['examples']}**" in card and "reconciles" in card and "DOES NOT" not in card
    for png in ("types_per_split.png", "steps_per_chain.png", "answers.png", "box_sizes.png"):
        assert f"plots/{png}" in card and (out / "plots" / png).stat().st_size > 5000


def test_same_seed_same_bytes(demo_release, tmp_path):
    """A second build from nothing (fresh work dir: scenes rendered again, no finished shards)."""
    out, _ = demo_release
    again = tmp_path / "demo"
    run_plain(BuildConfig(source="synthetic", images=300, seed=7, out=str(again), work_dir=str(tmp_path / "work")))
    a, b = file_digests(out), file_digests(again)
    assert len(a) > 20 and a == b
