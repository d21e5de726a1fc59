"""A tiny random LLaVA built from configs (no tokenizer, no download) and a hand-made ragged batch."""

from __future__ import annotations

import torch

IMAGE_TOKEN, PAD = 5, 0


def tiny_llava(layers: int = 3, image_size: int = 24, patch: int = 8, hidden: int = 32, kv_heads: int = 2, seed: int = 0):
    """image_size / patch squared visual tokens (9 by default), grouped-query attention, eval mode."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=patch, projection_dim=16)
    text = LlamaConfig(vocab_size=64, hidden_size=hidden, intermediate_size=2 * hidden + 8, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=256, pad_token_id=PAD)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # a random init is nearly uniform; larger weights give peaked attention worth pruning by
        for p in model.model.language_model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    return model


def ragged_batch(n_img: int = 9, seed: int = 0, left_pad: bool = True) -> dict:
    """Three samples, different system prefixes, question lengths and padding; labels on the last 3 tokens."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, 7), (4, 5), (1, 11)]  # (system tokens, text tokens) per sample: no shared offset
    rows = [torch.cat([torch.randint(6, 64, (s,), generator=g), torch.full((n_img,), IMAGE_TOKEN), torch.randint(6, 64, (t,), generator=g)]) for s, t in shapes]
    n = max(len(r) for r in rows)
    ids = torch.full((3, n), PAD)
    mask = torch.zeros(3, n, dtype=torch.long)
    labels = torch.full((3, n), -100)
    for b, r in enumerate(rows):
        sl = slice(n - len(r), n) if left_pad else slice(0, len(r))
        ids[b, sl], mask[b, sl] = r, 1
        labels[b, sl][-3:] = r[-3:]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": torch.randn(3, 3, 24, 24, generator=g)}
