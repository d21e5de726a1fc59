"""training/data.py, the one release reader of training, on the demo release."""

import json

from training.data import Conversations, llava_rows, split_examples


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
