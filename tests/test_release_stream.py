"""The release is written as its examples stream by (issue 21), and equals the release written at once.

The source's scene graphs are shuffled, so the release order (split, image, id) comes from the
external sort, not from the order the shards were read in; the spill is made tiny so that it sorts
through many runs and a two-level merge. The oracle is the writer as it was before: every example
loaded and sorted in memory, each file written whole (``json.dumps(records, indent=2)``, one Parquet
``write_table`` a shard).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.schema import SPLITS, Example, Rejection
from core.shards import write_atomically
from pipeline import steps
from pipeline.detect.crosscheck import review_order
from pipeline.release import arrow, llava, mmgcot, spill
from pipeline.release.writer import SourceImages, fill_release
from pipeline.sources.base import reconcile
from pipeline.sources.synthetic import write_synthetic_vg
from pipeline.verify import check_splits
from tests.digests import file_digests


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A shuffled VG-layout source of 40 scenes, its ingest and shard results (shards of 7 images)."""
    tmp = tmp_path_factory.mktemp("stream")
    vg = write_synthetic_vg(tmp / "vg", 40, 3)
    graphs = json.loads((vg / "scene_graphs.json").read_text())
    random.Random(0).shuffle(graphs)
    (vg / "scene_graphs.json").write_text(json.dumps(graphs))
    cfg = steps.BuildConfig(source=f"vg:{vg}", seed=5, out=str(tmp / "rel" / "gcot"), work_dir=str(tmp / "work"), shard_size=7)
    ing = steps.ingest(cfg)
    results = [steps.build_shard(s, d, ing.release_prefix, cfg.seed, cfg.per_type, cfg.rewriter, cfg.results_dir()) for s, d in zip(ing.shards, ing.digests)]
    return cfg, ing, results


def sorted_in_memory(cfg, ing, results) -> tuple[list[Example], list[Rejection], int]:
    """finalize as it was: all examples in one list, sorted, numbered."""
    examples = [Example.from_dict(json.loads(line)) for r in results for line in Path(r.examples_file).read_text().splitlines() if line]
    rejections = list(ing.rejections) + [Rejection(**json.loads(line)) for r in results for line in Path(r.rejections_file).read_text().splitlines() if line]
    for ex in examples:
        ex.split = steps.split_of(ex.image_id, ex.source, cfg.seed, cfg.split_ratios)
    order = {s: i for i, s in enumerate(SPLITS)}
    examples.sort(key=lambda e: (order[e.split], (0, int(e.image_id), "") if e.image_id.isdigit() else (1, 0, e.image_id), e.id))
    leaks = check_splits(examples)
    rejections += leaks
    examples = [e for e in examples if e.id not in {r.id for r in leaks}]
    for i, ex in enumerate(examples):
        ex.provenance["mmgcot_id"] = str(i)
    return examples, rejections, sum(r.candidates for r in results)


def test_images_of_two_sources_in_two_splits_are_rejected_as_in_memory(built, tmp_path):
    """Splits hash (seed, source, image): two sources that share image ids put some images in two
    splits, which the cross-split check rejects (the read-again path of finalize)."""
    cfg, ing, results = built
    others = []
    for r in results:  # the same shards again, as if from a second source
        lines = [json.loads(line) for line in Path(r.examples_file).read_text().splitlines() if line]
        for d in lines:
            d["source"], d["id"] = "other", "other" + d["id"].removeprefix(d["id"].split("-")[0])
        path = tmp_path / f"{r.key}.other.examples.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in lines))
        others.append(steps.ShardResult(r.key + "o", str(path), r.rejections_file, r.candidates, r.examples, r.rejected))
    expected, rejections, candidates = sorted_in_memory(cfg, ing, results + others)
    fin = steps.finalize(results + others, cfg.seed, cfg.split_ratios, tmp_path / "spill")
    assert [e.to_dict() for e in fin.examples()] == [e.to_dict() for e in expected]
    got = [r.to_dict() for r in itertools.chain(ing.rejections, fin.rejections())]
    assert got == [r.to_dict() for r in rejections]
    assert sum(r["rule"] == "split_by_image" for r in got) > 10


def streamed(cfg, ing, results, out: Path) -> dict:
    return steps.release(cfg.model_copy(update={"out": str(out)}), ing, results)


def test_examples_come_back_in_the_order_sorting_them_in_memory_gives(built, tmp_path, monkeypatch):
    cfg, ing, results = built
    monkeypatch.setattr(spill, "MAX_BYTES", 4000)  # a run every ~3 examples
    monkeypatch.setattr(spill, "FAN_IN", 3)  # and groups merged first
    expected, rejections, candidates = sorted_in_memory(cfg, ing, results)
    assert [int(e.image_id) for e in expected] != sorted(int(e.image_id) for e in expected)  # the split order does not follow the ids
    fin = steps.finalize(results, cfg.seed, cfg.split_ratios, tmp_path / "spill")
    assert len(fin.spill._runs) > 3 * spill.FAN_IN
    got = list(fin.examples())
    assert [e.to_dict() for e in got] == [e.to_dict() for e in expected]
    assert [r.to_dict() for r in itertools.chain(ing.rejections, fin.rejections())] == [r.to_dict() for r in rejections]
    assert fin.candidates == candidates
    assert not list((tmp_path / "spill").glob("*"))  # the runs are removed once read


def test_release_written_shard_by_shard_equals_the_release_written_at_once(built, tmp_path, monkeypatch):
    cfg, ing, results = built
    monkeypatch.setattr(spill, "MAX_BYTES", 4000)
    monkeypatch.setattr(spill, "FAN_IN", 3)
    s = streamed(cfg, ing, results, tmp_path / "streamed" / "gcot")
    assert not list(cfg.work_path().glob("release-spill-*"))  # the sorted runs went with the release

    examples, rejections, candidates = sorted_in_memory(cfg, ing, results)
    at_once = tmp_path / "at-once" / "gcot"
    images = SourceImages(ing.source_root, ing.release_prefix)
    full = cfg.model_copy(update={"out": str(at_once)})
    meta = {"name": f"GCoT release ({ing.source_name}, {len(examples)} examples)", "source": cfg.source, "seed": cfg.seed, "command": full.release_command(), "config": full.stored(),
            "records": reconcile(ing.counts, ing.images, len({e.image_id for e in examples}))}

    def fill(tmp: Path) -> None:
        fill_release(tmp, at_once, examples, rejections, candidates, meta, images.read, images.size)
        (tmp / "config.yaml").write_text(meta["config"])

    write_atomically(at_once, fill, full.output_guard())  # the same kind of folder, the same marker
    a, b = file_digests(tmp_path / "streamed" / "gcot"), file_digests(at_once)
    assert len(a) > 15 and a == b
    assert s["examples"] == len(examples) and s["candidates"] == s["examples"] + s["rejected"]

    # each file as it was written whole before
    rel = at_once
    groups: dict[tuple[str, str], list[dict]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault((ex.type, ex.split), []).append(mmgcot.to_record(ex, i))
    assert sorted(p.name for p in (rel / "mmgcot").iterdir()) == sorted(mmgcot.file_name(*k) for k in groups)
    for key, recs in groups.items():
        assert (rel / "mmgcot" / mmgcot.file_name(*key)).read_text() == json.dumps(recs, indent=2)
    for split in SPLITS:
        rows = [row for ex in examples if ex.split == split for row in llava.conversations(ex)]
        assert (rel / "llava" / f"{split}.json").read_text() == json.dumps(rows, indent=2)
        part = [ex for ex in examples if ex.split == split]
        rows = [arrow.to_row(ex, images.read(ex), int(ex.provenance["mmgcot_id"])) for ex in part]
        whole = tmp_path / f"{split}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow.FEATURES.arrow_schema), whole, row_group_size=len(rows),
                       compression="zstd", use_dictionary=True, dictionary_pagesize_limit=arrow.MAX_SHARD_IMAGE_BYTES + 2**20)
        assert (rel / "data" / f"{split}-00000-of-00001.parquet").read_bytes() == whole.read_bytes()
    queue = [json.loads(line)["id"] for line in (rel / "review_queue.jsonl").read_text().splitlines()]
    assert queue == [e.id for e in review_order(examples)]
    assert (rel / "rejections.jsonl").read_text() == "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejections)


def test_row_groups_and_shards_cut_between_images_keep_every_row(built, tmp_path, monkeypatch):
    """Limits small enough to cut many shards and row groups: the rows are those of one shard a split,
    every image's rows sit in one row group (its bytes stored once), and load_dataset reads them back."""
    cfg, ing, results = built
    streamed(cfg, ing, results, tmp_path / "one" / "gcot")
    monkeypatch.setattr(arrow, "ROW_GROUP_ROWS", 3)  # about an image a row group
    biggest = max(f.stat().st_size for f in (Path(ing.source_root) / "VG_100K").iterdir())
    monkeypatch.setattr(arrow, "MAX_SHARD_IMAGE_BYTES", 4 * biggest)  # four images a shard or more
    streamed(cfg, ing, results, tmp_path / "many" / "gcot")
    one, many = tmp_path / "one" / "gcot", tmp_path / "many" / "gcot"
    assert len(list((many / "data").glob("*.parquet"))) > len(SPLITS)
    groups = []
    for split in SPLITS:
        files = sorted((many / "data").glob(f"{split}-*.parquet"))
        assert [f.name for f in files] == [f"{split}-{k:05d}-of-{len(files):05d}.parquet" for k in range(len(files))]
        whole = pq.read_table(one / "data" / f"{split}-00000-of-00001.parquet")
        assert pa.concat_tables(pq.read_table(f) for f in files).equals(whole)
        for f in files:
            pf = pq.ParquetFile(f)
            groups.append(pf.metadata.num_row_groups)
            seen: set[str] = set()
            for g in range(pf.metadata.num_row_groups):
                ids = set(pf.read_row_group(g, columns=["image_id"]).column("image_id").to_pylist())
                assert not ids & seen  # an image's rows never span two row groups
                seen |= ids
                col = next(pf.metadata.row_group(g).column(i) for i in range(pf.metadata.num_columns) if pf.metadata.row_group(g).column(i).path_in_schema == "image.bytes")
                assert col.has_dictionary_page
        assert datasets.load_dataset(str(many), split=split)["id"] == whole.column("id").to_pylist()
    assert sum(groups) >= 2 * len(groups) and max(groups) >= 4
    for name in ("mmgcot", "llava"):
        assert file_digests(many / name) == file_digests(one / name)


def test_release_by_reference_loads_its_images_from_the_root_the_card_names(built, tmp_path, monkeypatch):
    cfg, ing, results = built
    out = tmp_path / "ref" / "gcot"
    s = steps.release(cfg.model_copy(update={"out": str(out), "image_storage": "reference"}), ing, results)
    root = Path(ing.source_root).resolve()
    card = (out / "README.md").read_text()
    assert f"`{root}`" in card and "with_image_root" in card
    assert "image_storage: reference" in (out / "config.yaml").read_text()
    table = pa.concat_tables(pq.read_table(f) for f in sorted((out / "data").glob("*.parquet")))
    images = table.column("image").to_pylist()
    assert all(im["bytes"] is None and not Path(im["path"]).is_absolute() for im in images)
    assert sum(f.stat().st_size for f in (out / "data").glob("*.parquet")) < 0.1 * sum((root / im["path"]).stat().st_size for im in images)

    ds = datasets.load_dataset(str(out), split="train")
    with pytest.raises(FileNotFoundError):  # the paths are relative: without the root they do not open
        ds[0]["image"]
    ds = arrow.with_image_root(ds, root)
    assert len(ds) == s["per_split"]["train"]
    for row in ds.select(range(0, len(ds), 9)):
        with Image.open(root / row["img"].removeprefix("vg/")) as im:
            assert row["image"].tobytes() == im.tobytes()
    assert set(arrow.read_images(sorted((out / "data").glob("*.parquet")), root)) == {im for im in table.column("img").to_pylist()}

    # the card's own snippet, run from elsewhere: the root it names is all it needs
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace(f'load_dataset("{out.name}"', f'load_dataset("{out}"')
    scope: dict = {}
    monkeypatch.chdir(tmp_path)
    exec(snippet, scope)
    assert isinstance(scope["row"]["image"], Image.Image) and scope["row"]["image"].size == (scope["row"]["width"], scope["row"]["height"])


def test_a_split_that_comes_back_is_an_error(tmp_path):
    from core.schema import Step
    from pipeline.release.writer import SplitFormats

    def ex(i: int, split: str) -> Example:
        return Example(f"e{i}", str(i), f"img/{i}.jpg", 10, 10, "Q?", "object", [Step("The cube is at [0.100, 0.100, 0.200, 0.200]", (0.1, 0.1, 0.2, 0.2))], "Cube", (0.1, 0.1, 0.2, 0.2), split=split)

    formats = SplitFormats(tmp_path, lambda e: b"x", lambda e: 1)
    formats.add(ex(1, "train"), 0)
    formats.add(ex(2, "test"), 1)
    with pytest.raises(ValueError, match="split 'train' must come together"):
        formats.add(ex(3, "train"), 2)


def test_sorted_spill_is_a_stable_sort_through_many_runs(tmp_path):
    rng = random.Random(1)
    records = [{"k": rng.randrange(20), "s": rng.choice("abc"), "n": i, "pad": "x" * rng.randrange(50)} for i in range(2000)]
    sp = spill.SortedSpill(tmp_path / "runs", key=lambda r: (r["k"], r["s"]), max_bytes=2000, fan_in=2)
    for r in records:
        sp.add(r)
    assert len(sp._runs) > 20
    assert list(sp.merged()) == sorted(records, key=lambda r: (r["k"], r["s"]))  # equal keys keep their add order
    assert not list((tmp_path / "runs").iterdir())
    small = spill.SortedSpill(tmp_path / "none", key=lambda r: r["n"])
    for r in records[:5]:
        small.add(r)
    assert [r["n"] for r in small.merged()] == list(range(5)) and not (tmp_path / "none").exists()  # held in memory, no file


def test_review_queue_sorted_on_disk_is_review_order(tmp_path, monkeypatch):
    from core.schema import DetectorCheck, Step
    from pipeline.release.writer import ReviewQueue

    monkeypatch.setattr(spill, "MAX_BYTES", 600)
    rng = random.Random(2)
    examples = []
    for i in range(300):
        det = None if rng.random() < 0.3 else DetectorCheck("m", [0.5], ["cube"], rng.choice([0.0, 0.25, 0.5]), rng.choice([0.1, 0.6]), rng.random() < 0.5)
        examples.append(Example(f"e{rng.randrange(1000):03d}-{i}", str(i), f"img/{i}.jpg", 10, 10, "Q?", "object", [Step("s", (0.1, 0.1, 0.2, 0.2))], "Cube", (0.1, 0.1, 0.2, 0.2), detector=det))
    queue = ReviewQueue(tmp_path / "spill")
    for e in examples:
        queue.add(e)
    assert len(queue.spill._runs) > 5
    queue.write(tmp_path / "review_queue.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "review_queue.jsonl").read_text().splitlines()]
    assert [d["id"] for d in lines] == [e.id for e in review_order(examples)]
    assert lines[0]["min_iou"] == 0.0 and lines[-1]["min_iou"] is None


def test_json_list_written_item_by_item_is_json_dumps_of_the_list(tmp_path):
    from pipeline.release.jsonlist import JsonListWriter, dumps_indented

    rng = random.Random(3)

    def value(depth: int = 0):
        k = rng.randrange(8 if depth < 4 else 5)
        if k == 0:
            return rng.choice(["", 'quote " and \\ back', "line\nbreak", "é ☃ 𝄞", "\t\x00"])
        if k == 1:
            return rng.randrange(-10**12, 10**12)
        if k == 2:
            return rng.choice([0.1, 1e-7, 1e22, -0.0, 3.0, float("nan"), float("inf"), rng.random()])
        if k == 3:
            return rng.choice([True, False, None])
        if k == 4:
            return rng.choice([[], {}, ()])
        if k in (5, 6):
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["id", "é", 'a"']) + str(i): value(depth + 1) for i in range(rng.randrange(4))}

    for n in range(400):
        items = [value() for _ in range(rng.randrange(4))]
        with JsonListWriter(tmp_path / f"{n}.json") as w:
            for item in items:
                w.add(item)
        assert (tmp_path / f"{n}.json").read_text() == json.dumps(items, indent=2)
        assert all(dumps_indented(item) == json.dumps(item, indent=2) for item in items)
    with pytest.raises(TypeError):
        dumps_indented({1: "a"})
