"""training/data.py, the one release reader of training, on the demo release."""

import json

from training.data import Conversations, decode_image, llava_rows, read_split, split_examples


def test_conversations_are_the_releases_llava_rows(demo_release):
    release, _ = demo_release
    for split in ("train", "validation", "test"):
        written = json.loads((release / "llava" / f"{split}.json").read_text())
        assert llava_rows(split_examples(release, split)) == written  # same rows, same order, same texts
        data = Conversations(release, split)
        assert [(c.id, c.image, c.user, c.answer) for c in data.rows] == [
            (r["id"], r["image"], r["conversations"][0]["value"].removeprefix("<image>\n"), r["conversations"][1]["value"]) for r in written
        ]
        image, user, answer = data.item(1)  # the first example's _cot row
        assert image.mode == "RGB" and user == data.rows[1].user and answer.startswith("Step 1: ") and "\nFinal Answer: " in answer


def test_split_examples_are_load_datasets_rows_in_its_order(demo_release):
    """What training/generate.py read with datasets.load_dataset before it read through training.data."""
    import datasets

    release, _ = demo_release
    examples, images = read_split(release, "test")
    ds = datasets.load_dataset(str(release), split="test")
    assert [e.id for e in examples] == ds["id"] and [int(e.provenance["mmgcot_id"]) for e in examples] == ds["mmgcot_id"]
    assert [(e.image, e.question, e.answer) for e in examples] == list(zip(ds["img"], ds["question"], ds["answer"]))
    assert set(images) == set(ds["img"])
    row = ds[0]
    assert decode_image(images[examples[0].image]).tobytes() == row["image"].convert("RGB").tobytes()


def _plant(release, split: str, word: str) -> None:
    """Put ``word`` into the question of the first example of ``split`` (its Parquet shard, in place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = sorted((release / "data").glob(f"{split}-*.parquet"))[0]
    t = pq.read_table(f)
    questions = t.column("question").to_pylist()
    questions[0] = f"{word} {questions[0]}"
    pq.write_table(t.set_column(t.schema.get_field_index("question"), "question", pa.array(questions, pa.string())), f)


def test_the_tiny_tokenizer_trains_on_the_train_split_only(demo_release, tmp_path):
    import shutil

    from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT
    from training.tiny_llava import release_texts

    release, _ = demo_release
    train = [t["value"] for r in json.loads((release / "llava" / "train.json").read_text()) for t in r["conversations"]]
    texts = release_texts(release)
    assert texts[:2] == [PLAIN_PROMPT, COT_PROMPT] and texts[4:] == train
    held_out = {t["value"] for s in ("validation", "test") for r in json.loads((release / "llava" / f"{s}.json").read_text()) for t in r["conversations"]}
    assert held_out - set(train) and not (held_out - set(train)) & set(texts)

    copy = tmp_path / "release"
    shutil.copytree(release / "data", copy / "data")
    _plant(copy, "test", "Zyzzyvatest")
    _plant(copy, "validation", "Zyzzyvaval")
    _plant(copy, "train", "Zyzzyvatrain")
    joined = "\n".join(release_texts(copy))
    assert "Zyzzyvatrain" in joined and "Zyzzyvatest" not in joined and "Zyzzyvaval" not in joined
