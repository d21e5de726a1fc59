"""Tiny random checkpoints of every VLM family, built offline from each family's own config classes.

Each is a real Hugging Face checkpoint folder (``AutoModelForImageTextToText`` + ``AutoProcessor``
load it with ``local_files_only=True``): the family's model class at a few MB, its own processor
class with its real image processor at a small image size, a byte-level BPE tokenizer trained on the
release's train text carrying the family's special tokens, and a chat template in the family's own
turn format (PaliGemma ships none, as the real checkpoints). Nothing is downloaded.

``build(family, out, texts)`` writes one; ``FAMILIES`` names the eleven architectures.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

FAMILIES = ("llava", "llava_next", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm", "internvl", "paligemma", "gemma3")

NEEDS = {"smolvlm": "num2words"}  # a family's processor imports a package that transformers does not require

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 64, 2, 4, 2, 16
VOCAB = 700  # BPE merges; the family's special tokens come on top

_PARTS = (  # a message's content, as processors pass it to chat templates (a string or a list of parts)
    "{% macro render(message, image) %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ image }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endmacro %}"
)


def _chatml(image: str, system: bool) -> str:
    """ChatML as Qwen and LLaVA-OneVision write it (Qwen adds the default system turn)."""
    head = "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}" if system else ""
    return (
        _PARTS + head
        + "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ render(message, '" + image + "') }}<|im_end|>\n{% endfor %}"
        + "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


TEMPLATES = {
    "llava": _PARTS + "{% for message in messages %}{% if message['role'] == 'user' %}USER: {{ render(message, '<image>\n') }} "
    "{% else %}ASSISTANT: {{ render(message, '') }}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}",
    "llava_next": _PARTS + "{% for message in messages %}{% if message['role'] == 'user' %}[INST] {{ render(message, '<image>\n') }} [/INST]"
    "{% else %} {{ render(message, '') }}</s>{% endif %}{% endfor %}",
    "llava_onevision": _chatml("<image>\n", system=False),
    "qwen": _chatml("<|vision_start|><|image_pad|><|vision_end|>", system=True),
    "idefics3": _PARTS + "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}:{{ render(message, '<image>') }}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}",
    "internvl": _chatml("<IMG_CONTEXT>\n", system=False),
    "gemma3": _PARTS + "<bos>{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ render(message, '<start_of_image>') }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
}


def tokenizer(texts: Iterable[str], special: list[str], named: dict[str, str], bos: str, eos: str, pad: str, extra: list[str] = ()):
    """A byte-level BPE trained on ``texts``; ``special`` tokens get ids first, ``named`` ones become
    attributes (``tokenizer.image_token``, ``tokenizer.image_token_id``, ...); ``extra`` are ordinary added
    tokens that decoding keeps (PaliGemma's ``<locNNNN>``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys(["<unk>", bos, eos, pad, *special, *named.values()]))
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    if extra:
        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in extra])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, eos_token=eos, pad_token=pad,
                                   extra_special_tokens=named or None, padding_side="right")


def _text(cls_name: str, tok, **kw):
    import transformers

    cfg = dict(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    cfg.update(kw)
    return getattr(transformers, cls_name)(**cfg)


def _clip(image_size: int, patch: int):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                            patch_size=patch, projection_dim=32)


def _siglip(image_size: int, patch: int):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                              patch_size=patch, vision_use_head=False)


def _llava(texts):
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = tokenizer(texts, [], {"image_token": "<image>"}, "<s>", "</s>", "<pad>")
    config = LlavaConfig(vision_config=_clip(32, 8), text_config=_text("LlamaConfig", tok), image_token_index=tok.image_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok,
                          patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=TEMPLATES["llava"])
    return LlavaForConditionalGeneration, config, proc


def _llava_next(texts):
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor

    tok = tokenizer(texts, [], {"image_token": "<image>"}, "<s>", "</s>", "<pad>")
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(vision_config=_clip(32, 8), text_config=_text("MistralConfig", tok, sliding_window=None), image_token_index=tok.image_token_id,
                             vision_feature_select_strategy="default", vision_feature_layer=-1, image_grid_pinpoints=pinpoints)
    ip = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=TEMPLATES["llava_next"])
    return LlavaNextForConditionalGeneration, config, proc


def _llava_onevision(texts):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
    )

    tok = tokenizer(texts, ["<|im_start|>", "<|im_end|>"], {"image_token": "<image>", "video_token": "<video>"}, "<|endoftext|>", "<|im_end|>", "<|endoftext|>")
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    config = LlavaOnevisionConfig(vision_config=_siglip(32, 8), text_config=_text("Qwen2Config", tok), image_token_index=tok.image_token_id,
                                  video_token_index=tok.video_token_id, vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  image_grid_pinpoints=pinpoints, vision_aspect_ratio="anyres_max_4")
    ip = LlavaOnevisionImageProcessor(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    from transformers import LlavaOnevisionVideoProcessor

    proc = LlavaOnevisionProcessor(image_processor=ip, tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(), num_image_tokens=16,
                                   vision_feature_select_strategy="full", chat_template=TEMPLATES["llava_onevision"])
    return LlavaOnevisionForConditionalGeneration, config, proc


def _qwen_tokenizer(texts):
    named = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}
    return tokenizer(texts, ["<|im_start|>", "<|im_end|>", "<|box_start|>", "<|box_end|>"], named, "<|endoftext|>", "<|im_end|>", "<|endoftext|>")


QWEN_PIXELS = {"shortest_edge": 4 * 28 * 28, "longest_edge": 16 * 28 * 28}  # at most 16 visual tokens after the 2x2 merge


def _qwen2_vl(texts):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tok = _qwen_tokenizer(texts)
    text = _text("Qwen2VLTextConfig", tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": HIDDEN, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text.to_dict(), vision_config=vision, image_token_id=tok.image_token_id, video_token_id=tok.video_token_id,
                           vision_start_token_id=tok.vision_start_token_id, vision_end_token_id=tok.vision_end_token_id)
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=QWEN_PIXELS), tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                            chat_template=TEMPLATES["qwen"])
    return Qwen2VLForConditionalGeneration, config, proc


def _qwen2_5_vl(texts):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _qwen_tokenizer(texts)
    text = _text("Qwen2_5_VLTextConfig", tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": HIDDEN, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1]}
    config = Qwen2_5_VLConfig(text_config=text.to_dict(), vision_config=vision, image_token_id=tok.image_token_id, video_token_id=tok.video_token_id,
                              vision_start_token_id=tok.vision_start_token_id, vision_end_token_id=tok.vision_end_token_id)
    proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=QWEN_PIXELS), tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                               chat_template=TEMPLATES["qwen"])
    return Qwen2_5_VLForConditionalGeneration, config, proc


def _qwen3_vl(texts):
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tok = _qwen_tokenizer(texts)
    text = _text("Qwen3VLTextConfig", tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True})
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": HIDDEN, "patch_size": 16,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
    config = Qwen3VLConfig(text_config=text.to_dict(), vision_config=vision, image_token_id=tok.image_token_id, video_token_id=tok.video_token_id,
                           vision_start_token_id=tok.vision_start_token_id, vision_end_token_id=tok.vision_end_token_id)
    pixels = {"shortest_edge": 4 * 32 * 32, "longest_edge": 16 * 32 * 32}
    proc = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(size=pixels, patch_size=16), tokenizer=tok,
                            video_processor=Qwen3VLVideoProcessor(), chat_template=TEMPLATES["qwen"])
    return Qwen3VLForConditionalGeneration, config, proc


def _idefics_tokenizer(texts):
    tiles = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    return tokenizer(texts, ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *tiles], {}, "<|begin_of_text|>",
                     "<end_of_utterance>", "<|finetune_right_pad_id|>")


def _idefics3(texts):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    tok = _idefics_tokenizer(texts)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    config = Idefics3Config(text_config=_text("LlamaConfig", tok).to_dict(), vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<image>"),
                            scale_factor=2, pad_token_id=tok.pad_token_id)
    ip = Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=TEMPLATES["idefics3"])
    return Idefics3ForConditionalGeneration, config, proc


def _smolvlm(texts):
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    tok = _idefics_tokenizer(texts)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    config = SmolVLMConfig(text_config=_text("LlamaConfig", tok).to_dict(), vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<image>"),
                           scale_factor=2, pad_token_id=tok.pad_token_id)
    ip = SmolVLMImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    proc = SmolVLMProcessor(image_processor=ip, tokenizer=tok, video_processor=SmolVLMVideoProcessor(), image_seq_len=4,
                            chat_template=TEMPLATES["idefics3"])
    return SmolVLMForConditionalGeneration, config, proc


def _internvl(texts):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    tok = tokenizer(texts, ["<|im_start|>", "<|im_end|>", "<box>", "</box>"], named, "<|endoftext|>", "<|im_end|>", "<|endoftext|>")
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": [32, 32], "patch_size": [8, 8]}
    config = InternVLConfig(text_config=_text("Qwen2Config", tok).to_dict(), vision_config=vision, image_token_id=tok.context_image_token_id,
                            image_seq_length=4, downsample_ratio=0.5)
    ip = GotOcr2ImageProcessor(size={"height": 32, "width": 32}, crop_to_patches=True, max_patches=2)
    proc = InternVLProcessor(image_processor=ip, tokenizer=tok, video_processor=InternVLVideoProcessor(), image_seq_length=4,
                             chat_template=TEMPLATES["internvl"])
    return InternVLForConditionalGeneration, config, proc


def _paligemma(texts):
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    locs = [f"<loc{i:04d}>" for i in range(1024)]
    tok = tokenizer(texts, [], {"image_token": "<image>"}, "<bos>", "<eos>", "<pad>", extra=locs)
    text = _text("GemmaConfig", tok, hidden_activation="gelu_pytorch_tanh")
    vision = _siglip(32, 8)
    config = PaliGemmaConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_index=tok.image_token_id, projection_dim=HIDDEN,
                             hidden_size=HIDDEN, vocab_size=len(tok))
    config.text_config.num_image_tokens = 16
    ip = SiglipImageProcessor(size={"height": 32, "width": 32})
    ip.image_seq_length = 16
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # no chat template, as the real checkpoints
    return PaliGemmaForConditionalGeneration, config, proc


def _gemma3(texts):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    named = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
    tok = tokenizer(texts, ["<start_of_turn>", "<end_of_turn>"], named, "<bos>", "<eos>", "<pad>")
    # a sliding layer then a full one, a window shorter than the prompt, local and global RoPE bases: what Gemma 3 differs in
    text = _text("Gemma3TextConfig", tok, layer_types=["sliding_attention", "full_attention"], sliding_window=24, query_pre_attn_scalar=24,
                 rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                  "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}})
    vision = _siglip(32, 8)
    config = Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4, boi_token_index=tok.boi_token_id,
                          eoi_token_index=tok.eoi_token_id, image_token_index=tok.image_token_id)
    ip = Gemma3ImageProcessor(size={"height": 32, "width": 32})
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=4, chat_template=TEMPLATES["gemma3"])
    return Gemma3ForConditionalGeneration, config, proc


BUILDERS = {"llava": _llava, "llava_next": _llava_next, "llava_onevision": _llava_onevision, "qwen2_vl": _qwen2_vl, "qwen2_5_vl": _qwen2_5_vl,
            "qwen3_vl": _qwen3_vl, "idefics3": _idefics3, "smolvlm": _smolvlm, "internvl": _internvl, "paligemma": _paligemma, "gemma3": _gemma3}


def build(family: str, out: str | Path, texts: list[str], seed: int = 0) -> Path:
    """Write a tiny random checkpoint of ``family`` (a `FAMILIES` name) to ``out``."""
    cls, config, processor = BUILDERS[family](texts)
    torch.manual_seed(seed)
    model = cls(config)
    tok = processor.tokenizer
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def available(family: str) -> bool:
    import importlib.util

    return family not in NEEDS or importlib.util.find_spec(NEEDS[family]) is not None


def checkpoint(family_models: dict[str, Path], family: str) -> Path:
    """The family's tiny checkpoint from the session fixture, or a skip that names the missing package."""
    import pytest

    if family not in family_models:
        pytest.skip(f"{family}: its processor imports {NEEDS[family]}, which is not installed (pyproject's dependencies list it)")
    return family_models[family]
