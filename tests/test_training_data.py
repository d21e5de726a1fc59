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
