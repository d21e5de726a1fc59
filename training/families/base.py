"""What a VLM family is to training: the one interface fine-tuning, the model runner, evaluation and the
efficiency stages go through, with the defaults most families share. A family module subclasses
`Family` and overrides only what its architecture does differently.

A family owns:
- **inputs**: (images, conversation) through the checkpoint's own processor and chat template, batched
  by the processor itself with images nested per sample (``[[image], [image], ...]``), so every tensor
  the model reads comes along (``mm_token_type_ids``, ``image_grid_thw``, ``image_sizes``,
  ``pixel_attention_mask``, ``token_type_ids``, ...); labels on the answer tokens only, never the
  processor's own;
- **module names**: the decoder (where LoRA goes by default), the vision tower (only when asked) and
  the projector (trained in full and saved with the adapter);
- **its box convention** (`pipeline.evaluation.box_formats`) for training targets and for reading
  outputs back, and the pixel frame an absolute convention refers to;
- **a chat template** where a checkpoint ships none;
- **the decoder's internals** the efficiency layer loop needs: the first layer's inputs as the model
  computes them, RoPE positions (multimodal ones too), per-layer RoPE and sliding windows, bidirectional
  blocks, the norms around attention and MLP, what is added after a layer, the logits.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.evaluation import box_formats

TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")  # [B, T] tensors a processor returns
DROPPED_KEYS = ("labels",)  # processor outputs never passed on: the loss is ours (answer tokens only)
IGNORE = -100


def user_turn(text: str, with_image: bool = True) -> dict:
    return {"role": "user", "content": ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]}


def assistant_turn(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _Stop(Exception):
    """Raised by the hook on the first decoder layer once its inputs are caught (the rest is not run)."""


@dataclass
class Embedded:
    """What enters the first decoder layer, per token, as the model itself computes it."""

    hidden: torch.Tensor  # [B, T, D]
    position_ids: torch.Tensor  # [B, T] RoPE positions, or [B, T, A] for multimodal RoPE (A axes)
    block: torch.Tensor  # [B, T] long: tokens of one block (>= 0) see each other both ways; -1: causal only
    extra: torch.Tensor | None = None  # [B, T, K, D] added to the visual tokens after layers 0..K-1 (Qwen3-VL deepstack)


class Family:
    name = ""
    model_types: tuple[str, ...] = ()
    decoder = "model.language_model"  # the text decoder, relative to the *ForConditionalGeneration model
    vision = "model.vision_tower"
    projector: tuple[str, ...] = ("model.multi_modal_projector",)
    box_format = "xywh-norm"  # the family's own convention (pipeline.evaluation.box_formats)
    chat_template: str | None = None  # used only when the checkpoint has none
    position_offset = 0  # the first real token's RoPE position (PaliGemma counts from 1)
    mrope = False  # multimodal RoPE: positions [B, T, 3], computed by the model from the image grid
    not_applicable: dict[str, str] = {}  # efficiency method -> why it cannot apply to this family

    def __repr__(self) -> str:
        return f"<family {self.name}>"

    # ---------------------------------------------------------------- processor
    def prepare(self, processor):
        """The processor ready for use: the family's chat template where the checkpoint has none."""
        if getattr(processor, "chat_template", None) is None and self.chat_template is not None:
            processor.chat_template = self.chat_template
        if getattr(processor, "chat_template", None) is None:
            raise ValueError(f"{self.name}: the checkpoint's processor has no chat template and the family supplies none")
        return processor

    def render(self, processor, conversations: list[list[dict]], add_generation_prompt: bool) -> list[str]:
        return processor.apply_chat_template(conversations, add_generation_prompt=add_generation_prompt, tokenize=False)

    def process(self, processor, images: list, texts: list[str], padding_side: str, **kw) -> dict:
        """The processor on a batch: images nested per sample, padded on ``padding_side``. A template that
        writes the BOS itself is not given a second one (as ``apply_chat_template(tokenize=True)`` does)."""
        bos = processor.tokenizer.bos_token
        if bos is not None and texts and texts[0].startswith(bos):
            kw.setdefault("add_special_tokens", False)
        enc = processor(images=[[im] for im in images], text=texts, padding=True, padding_side=padding_side, return_tensors="pt", **kw)
        return {k: v for k, v in enc.items() if k not in DROPPED_KEYS}

    def encode(self, processor, images: list, users: list[str], answers: list[str], max_length: int) -> dict:
        """A training batch, right-padded: the processor's tensors and labels on the answer tokens only
        (the tokens after the prompt with its generation prompt, the end-of-turn tokens included)."""
        prompts = self.render(processor, [[user_turn(u)] for u in users], True)
        fulls = self.render(processor, [[user_turn(u), assistant_turn(a)] for u, a in zip(users, answers)], False)
        enc = self.process(processor, images, fulls, "right")
        prompt_ids = self.process(processor, images, prompts, "right")
        labels = torch.full_like(enc["input_ids"], IGNORE)
        for b in range(len(users)):
            full = enc["input_ids"][b][enc["attention_mask"][b].bool()].tolist()
            prompt = prompt_ids["input_ids"][b][prompt_ids["attention_mask"][b].bool()].tolist()
            start = common_prefix(full, prompt)
            labels[b, start:len(full)] = enc["input_ids"][b, start:len(full)]
        enc["labels"] = labels
        return self.truncate(enc, max_length, self.image_token_ids(processor))

    def truncate(self, enc: dict, max_length: int, image_ids: list[int]) -> dict:
        """Cut the per-token tensors to ``max_length``; image tokens past the cut are an error (their
        features would no longer match), and so is a sample left without an answer token."""
        ids = enc["input_ids"]
        if ids.shape[1] > max_length:
            image = torch.isin(ids, torch.tensor(image_ids))
            lost = image[:, max_length:].any(1)
            if lost.any():
                raise ValueError(f"samples {torch.nonzero(lost).flatten().tolist()} of the batch have image tokens past max_length {max_length}; raise max_length")
            enc = {k: (v[:, :max_length] if k in (*TOKEN_KEYS, "labels") else v) for k, v in enc.items()}
        empty = ~(enc["labels"] != IGNORE).any(1)
        if empty.any():
            raise ValueError(f"samples {torch.nonzero(empty).flatten().tolist()} of the batch have no answer token within max_length {max_length}")
        return enc

    def generation_inputs(self, processor, conversations: list[list[dict]], images: list) -> dict:
        """Left-padded prompts (generation prompt added) with their images, one list of images per sample."""
        return self.process(processor, images, self.render(processor, conversations, True), "left")

    def image_token_ids(self, processor) -> list[int]:
        """Ids of the tokens an image expands to (the placeholder the features replace)."""
        ids = {getattr(processor, "image_token_id", None), getattr(processor.tokenizer, "image_token_id", None)}
        return sorted(i for i in ids if i is not None)

    # ---------------------------------------------------------------- modules
    def module(self, model: nn.Module, path: str) -> nn.Module:
        try:
            return model.get_submodule(path)
        except AttributeError:
            raise ValueError(f"{self.name}: the model has no module {path}") from None

    def lora_targets(self, model: nn.Module, names: list[str], vision: bool = False) -> list[str]:
        """Full names of the Linear modules LoRA adapts: those of the decoder whose name ends in one of
        ``names`` and, with ``vision``, every Linear of the vision tower outside the projector."""
        decoder = self.decoder + "."
        projector = tuple(p + "." for p in self.projector)
        out = []
        for full, m in model.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if full.startswith(decoder) and full.rsplit(".", 1)[-1] in names:
                out.append(full)
            elif vision and full.startswith(self.vision + ".") and not full.startswith(projector):
                out.append(full)
        if not out:
            raise ValueError(f"{self.name}: target_modules {names} match no Linear module of the decoder {self.decoder}")
        return out

    def modules_to_save(self, model: nn.Module, names: list[str]) -> list[str]:
        """``names`` with the role ``projector`` resolved to the family's projector modules; each must exist."""
        modules = dict(model.named_modules())
        out = []
        for n in names:
            for m in self.projector if n == "projector" else [n]:
                if m not in modules and not any(k.endswith("." + m) for k in modules):
                    raise ValueError(f"{self.name}: modules_to_save {m!r} matches no module of the model (its projector is {', '.join(self.projector)})")
                if isinstance(modules.get(m), (nn.ModuleList, nn.ModuleDict)):  # PEFT wraps modules, not containers
                    out += [f"{m}.{k}" for k, _ in modules[m].named_children()]
                else:
                    out.append(m)
        return out

    def projector_modules(self, model: nn.Module) -> nn.ModuleList:
        return nn.ModuleList(self.module(model, p) for p in self.projector)

    def language_model(self, model: nn.Module) -> nn.Module:
        return self.module(model, self.decoder)

    # ---------------------------------------------------------------- boxes
    def boxes(self) -> box_formats.BoxFormat:
        return box_formats.get(self.box_format)

    def box_size(self, processor, width: int, height: int, box_format: str | None = None) -> tuple[int, int] | None:
        """The pixel frame boxes in ``box_format`` (default: the family's own) refer to for an image of this
        size; None for a relative format. The family's own convention may use its own frame (Qwen2.5-VL's
        resized image); any other format in pixels uses the image's."""
        fmt = box_formats.get(box_format or self.box_format)
        if not fmt.needs_size:
            return None
        return self.frame(processor, width, height) if fmt.name == self.box_format else (width, height)

    def frame(self, processor, width: int, height: int) -> tuple[int, int]:
        """The pixel frame of the family's own convention: the image as stored, unless the family says otherwise."""
        return width, height

    # ---------------------------------------------------------------- the decoder, for the layer loop
    def text_positions(self, valid: torch.Tensor) -> torch.Tensor:
        """RoPE positions [B, T] of a right- or left-padded batch: real tokens count from ``position_offset``."""
        return (valid.long().cumsum(1) - 1).clamp(min=0) + self.position_offset

    def blocks(self, batch: dict) -> torch.Tensor:
        """[B, T] long bidirectional block ids (-1: causal only); none by default."""
        return torch.full_like(batch["input_ids"], -1)

    def model_inputs(self, batch: dict) -> dict:
        return {k: v for k, v in batch.items() if k != "labels"}

    def embed(self, model: nn.Module, batch: dict) -> Embedded:
        """Run the model up to its first decoder layer and take that layer's input: the image features
        placed, embeddings scaled, exactly as ``model.forward`` does, whatever the architecture."""
        inputs = self.model_inputs(batch)
        if not self.mrope:
            inputs["position_ids"] = self.text_positions(batch["attention_mask"].bool())
        lm = self.language_model(model)
        seen: dict = {}

        def on_lm(module, args, kwargs):
            seen["lm"] = kwargs

        def on_layer(module, args, kwargs):
            seen["hidden"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        hooks = [lm.register_forward_pre_hook(on_lm, with_kwargs=True), lm.layers[0].register_forward_pre_hook(on_layer, with_kwargs=True)]
        try:
            model.model(**inputs, use_cache=False)
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        if "hidden" not in seen:
            raise RuntimeError(f"{self.name}: the model's forward never reached its first decoder layer")
        pos = seen["lm"].get("position_ids")
        if pos is None:
            pos = inputs["position_ids"]
        elif self.mrope:
            pos = pos[-3:].permute(1, 2, 0)  # [3, B, T] (or [4, ...] with text positions first) -> [B, T, 3]
        return Embedded(hidden=seen["hidden"], position_ids=pos, block=self.blocks(batch), extra=self.extra(seen["lm"], batch))

    def extra(self, lm_kwargs: dict, batch: dict) -> torch.Tensor | None:
        return None

    def after_layer(self, i: int, hidden: torch.Tensor, extra: torch.Tensor | None, vision: torch.Tensor) -> torch.Tensor:
        return hidden

    def rope(self, lm: nn.Module, hidden: torch.Tensor, position_ids: torch.Tensor, layer: int):
        """(cos, sin) of layer ``layer`` for positions [B, T] (or [B, T, A])."""
        pos = position_ids.permute(2, 0, 1) if position_ids.dim() == 3 else position_ids
        if "layer_type" in inspect.signature(lm.rotary_emb.forward).parameters:
            return lm.rotary_emb(hidden, pos, lm.config.layer_types[layer])
        return lm.rotary_emb(hidden, pos)

    def window(self, lm: nn.Module, layer: int) -> int | None:
        """The sliding window of layer ``layer`` (None: full attention)."""
        types = getattr(lm.config, "layer_types", None)
        if types and types[layer] == "sliding_attention":
            return getattr(lm.config, "sliding_window", None)
        return None

    @staticmethod
    def sandwich(layer: nn.Module) -> bool:
        """Gemma 2/3: a norm after attention and around the MLP (pre- and post-feedforward)."""
        return hasattr(layer, "pre_feedforward_layernorm")

    def attention_branch(self, layer: nn.Module, hidden: torch.Tensor, position_embeddings, mask: torch.Tensor) -> torch.Tensor:
        """What the layer's attention adds to the residual stream."""
        out, _ = layer.self_attn(hidden_states=layer.input_layernorm(hidden), position_embeddings=position_embeddings, attention_mask=mask)
        return layer.post_attention_layernorm(out) if self.sandwich(layer) else out

    def mlp_branch(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """What the layer's MLP adds to the residual stream."""
        if self.sandwich(layer):
            return layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(hidden)))
        return layer.mlp(layer.post_attention_layernorm(hidden))

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(model)(hidden)

    def head(self, model: nn.Module):
        """The LM head as the model applies it: the Linear itself, or with Gemma 2's final soft-capping."""
        cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
        if not cap:
            return model.lm_head
        return lambda hidden: torch.tanh(model.lm_head(hidden) / cap) * cap
