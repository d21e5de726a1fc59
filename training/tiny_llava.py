"""A small LLaVA-style model built from a config, with a tokenizer trained on a release's train text.

The offline default of generation (`training/generate.py`) and of fine-tuning: nothing is
downloaded. A CLIP-style vision tower, LLaVA's two-layer projector and a Llama decoder, all a few
layers deep; the tokenizer is a byte-level BPE trained with `tokenizers` on the prompts and the train
split's questions, steps and answers (never validation or test text: what a model is evaluated on
stays unseen, its vocabulary included); byte-level, so it still encodes every string. The result is
saved as an ordinary Hugging Face checkpoint (``AutoModelForImageTextToText`` / ``AutoProcessor`` load
it with ``local_files_only=True``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from core.cli import Command, CommandFailed, single
from core.guard import OutputGuard
from core.shards import write_atomically

IMAGE_TOKEN = "<image>"
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
# LLaVA-1.5's conversation shape ("USER: <image>\n... ASSISTANT: ...</s>"); accepts string content or
# the list-of-parts content that processors' apply_chat_template passes.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %} "
    "{% else %}ASSISTANT: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass
class TinyLlavaConfig:
    image_size: int = 64
    patch_size: int = 16  # 16 patches + CLS; LLaVA's "default" strategy drops the CLS
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    heads: int = 4
    vocab_size: int = 2048
    max_positions: int = 1024
    seed: int = 0
    intermediate_ratio: int = 2  # MLP width / hidden, both towers
    crop: bool = True  # CLIP's resize-then-centre-crop; False: the whole image resized to a square, so no box falls off the edge
    split_digits: bool = False  # one token a digit: a box's numbers are read and written digit by digit, as they are scored


def train_tokenizer(texts: Iterable[str], vocab_size: int, split_digits: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]) if split_digits else byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN}, padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(out_dir: str | Path, texts: Iterable[str], cfg: TinyLlavaConfig | None = None) -> Path:
    """Train the tokenizer, build the model from configs with a fixed seed, save both."""
    model, processor = make(texts, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make(texts: Iterable[str], cfg: TinyLlavaConfig | None = None):
    """(model, processor): the tokenizer trained on ``texts``, the model built from configs with a fixed seed."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    cfg = cfg or TinyLlavaConfig()
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.split_digits)
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden, intermediate_size=cfg.intermediate_ratio * cfg.vision_hidden, num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.heads, image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.intermediate_ratio * cfg.text_hidden,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default", vision_feature_layer=-1, projector_hidden_act="gelu",
    )
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if cfg.crop:
        image_processor = CLIPImageProcessorPil(size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size})
    else:
        image_processor = CLIPImageProcessorPil(size={"height": cfg.image_size, "width": cfg.image_size}, do_center_crop=False)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
        vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )
    return model, processor


def release_texts(release_dir: str | Path) -> list[str]:
    """The prompts, then the turns of the train split's LLaVA conversations (questions with their
    prompts, step lines, answers): the tokenizer's training text. The train split only."""
    from pipeline.release.llava import COT_PROMPT, PLAIN_PROMPT
    from training.data import llava_rows, split_examples

    texts = [PLAIN_PROMPT, COT_PROMPT, "Please provide the bounding box coordinate of the region for the final answer.", "USER: ASSISTANT: Final Answer:"]
    for row in llava_rows(split_examples(release_dir, "train")):
        texts += [turn["value"] for turn in row["conversations"]]
    return texts


class TinyModelCommand(Command):
    """Build the tiny offline LLaVA-style model from configs, its tokenizer trained on a release's text.

    Example:
      gcot tiny-model --release releases/demo --out models/tiny
    """

    release: str = Field(description="the release folder whose conversations train the tokenizer")
    out: str = Field(description="the model folder to write (a new one, or one this tool wrote with --overwrite)")
    overwrite: bool = Field(False, description="replace the model folder already at --out (only one this tool wrote)")
    seed: int = Field(0, description="initialisation seed")

    def run(self) -> int:
        guard = OutputGuard(self.out, "tiny model", [("the release", self.release)], overwrite=self.overwrite)
        try:
            guard.check()  # before the tokenizer is trained
            texts = release_texts(self.release)
            print(write_atomically(self.out, lambda tmp: build(tmp, texts, TinyLlavaConfig(seed=self.seed)), guard))
        except (ValueError, FileNotFoundError) as e:  # OutputRefused, a folder that is not a release
            raise CommandFailed(str(e)) from None
        return 0


if __name__ == "__main__":
    sys.exit(single(TinyModelCommand, "python training/tiny_llava.py"))
