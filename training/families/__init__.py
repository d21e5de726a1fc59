"""Model families: what differs between VLM architectures, each in its own small module, chosen from the
checkpoint's ``model_type`` (`base.Family` is the interface and the shared defaults).

| family | model_type | module |
|---|---|---|
| LLaVA-1.5 | llava | `llava` |
| LLaVA-NeXT, LLaVA-OneVision | llava_next, llava_onevision | `llava_next` |
| Qwen2-VL, Qwen2.5-VL | qwen2_vl, qwen2_5_vl | `qwen2_vl` |
| Qwen3-VL | qwen3_vl | `qwen3_vl` |
| Idefics3, SmolVLM | idefics3, smolvlm | `idefics3` |
| InternVL | internvl | `internvl` |
| PaliGemma | paligemma | `paligemma` |
| Gemma 3 | gemma3 | `gemma3` |
"""

from __future__ import annotations

from pathlib import Path

from training.families.base import Embedded, Family, assistant_turn, user_turn
from training.families.gemma3 import Gemma3
from training.families.idefics3 import Idefics3, SmolVLM
from training.families.internvl import InternVL
from training.families.llava import Llava
from training.families.llava_next import LlavaNext, LlavaOnevision
from training.families.paligemma import PaliGemma
from training.families.qwen2_vl import Qwen2_5VL, Qwen2VL
from training.families.qwen3_vl import Qwen3VL

FAMILIES: dict[str, Family] = {f.name: f for f in (Llava(), LlavaNext(), LlavaOnevision(), Qwen2VL(), Qwen2_5VL(), Qwen3VL(), Idefics3(), SmolVLM(),
                                                   InternVL(), PaliGemma(), Gemma3())}
_BY_TYPE = {t: f for f in FAMILIES.values() for t in f.model_types}

__all__ = ["FAMILIES", "Embedded", "Family", "assistant_turn", "family_of", "load", "user_turn"]


def family_of(config_or_type) -> Family:
    """The family of a model config (or a ``model_type`` string); an unknown one names the known families."""
    model_type = config_or_type if isinstance(config_or_type, str) else getattr(config_or_type, "model_type", None)
    try:
        return _BY_TYPE[model_type]
    except KeyError:
        raise ValueError(f"unknown model family {model_type!r}; known: {', '.join(sorted(_BY_TYPE))}") from None


def load(path: str | Path, dtype=None, **model_kw):
    """(model, processor, family) of a local checkpoint folder: the family from its config's model_type,
    its processor prepared by the family (a chat template where the checkpoint has none). The model stays
    where ``from_pretrained`` puts it (CPU unless ``model_kw`` says otherwise). Nothing is downloaded."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    family = family_of(AutoConfig.from_pretrained(path, local_files_only=True))
    processor = family.prepare(AutoProcessor.from_pretrained(path, local_files_only=True))
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype, **model_kw)
    return model, processor, family
