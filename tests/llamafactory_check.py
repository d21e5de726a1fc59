"""Run inside .venv-llamafactory (``make llamafactory``) by tests/test_exports.py: LLaMA-Factory's own dataset
loading on a ``gcot convert --to llamafactory`` export, as its SFT workflow does it (``get_train_args``,
``load_tokenizer``, ``get_template_and_fix_tokenizer``, ``get_dataset``), with a tiny local Qwen2-VL
checkpoint as the tokenizer and processor. Nothing is downloaded.

    python tests/llamafactory_check.py MODEL_DIR DATASET_DIR WORK_DIR OUT.json

OUT.json: the registered entry as LLaMA-Factory parses it, every train row as its ShareGPT converter aligns
it (prompt, response, image paths), and the first tokenized train and validation rows decoded.
"""

import json
import sys

from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.data.loader import _get_merged_dataset
from llamafactory.data.parser import get_dataset_list
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer

TOKENIZED = 8  # rows run through the tokenizer and Qwen2-VL's multimodal plugin, per split


def main(model_dir: str, dataset_dir: str, work: str, out: str) -> None:
    model_args, data_args, training_args, _, _ = get_train_args(dict(
        model_name_or_path=model_dir, template="qwen2_vl", dataset_dir=dataset_dir, dataset="gcot_train", eval_dataset="gcot_validation",
        stage="sft", do_train=True, finetuning_type="lora", output_dir=work, cutoff_len=2048, overwrite_cache=True, report_to="none"))
    attr = get_dataset_list(["gcot_train"], dataset_dir)[0]
    aligned = _get_merged_dataset(["gcot_train"], model_args, data_args, training_args, stage="sft")  # every row, not tokenized
    modules = load_tokenizer(model_args)
    tokenizer = modules["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    data_args.max_samples = TOKENIZED
    tokenized = get_dataset(template, model_args, data_args, training_args, stage="sft", **modules)

    def decoded(row):
        labels = [t for t in row["labels"] if t != -100]
        return {"text": tokenizer.decode(row["input_ids"]), "labels": tokenizer.decode(labels), "images": row["images"],
                "image_pads": row["input_ids"].count(tokenizer.convert_tokens_to_ids("<|image_pad|>"))}

    report = {
        "attr": {k: getattr(attr, k) for k in ("load_from", "dataset_name", "formatting", "messages", "images", "role_tag", "content_tag", "user_tag", "assistant_tag")},
        "processor": type(modules["processor"]).__name__,
        "aligned": [{"prompt": r["_prompt"], "response": r["_response"], "system": r["_system"], "images": r["_images"]} for r in aligned],
        "train": [decoded(r) for r in tokenized["train_dataset"]],
        "validation": [decoded(r) for r in tokenized["eval_dataset"]],
    }
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
