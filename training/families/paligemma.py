"""PaliGemma (``paligemma``, 1 and 2): ``image_seq_length`` image tokens, BOS, the prompt and a newline are
the *prefix*, which attends both ways; the answer (the *suffix*, ``token_type_ids`` = 1) is causal.
Positions count from 1. The checkpoints ship no chat template: the family supplies one (a conversation's
turns joined by newlines; the processor adds the image tokens, BOS and the closing newline), and a
training batch is the prompt as prefix, the answer as suffix, labels on the suffix.

Boxes: ``<locY1><locX1><locY2><locX2>``, corners in y-x order on 1024 bins.
"""

from __future__ import annotations

import torch

from training.families.base import IGNORE, Family, user_turn

_PARTS = "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
CHAT_TEMPLATE = (  # "{{ '\\n' }}": a newline that trim_blocks (on for chat templates) cannot eat
    "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}" + _PARTS + "{% endif %}{% endfor %}"
)


class PaliGemma(Family):
    name = "paligemma"
    model_types = ("paligemma",)
    box_format = "paligemma"
    chat_template = CHAT_TEMPLATE
    position_offset = 1

    def encode(self, processor, images, users, answers, max_length):
        prompts = self.render(processor, [[user_turn(u)] for u in users], True)
        enc = self.process(processor, images, prompts, "right", suffix=list(answers))
        answer = enc["token_type_ids"].bool() & enc["attention_mask"].bool()
        enc["labels"] = enc["input_ids"].masked_fill(~answer, IGNORE)
        return self.truncate(enc, max_length, self.image_token_ids(processor))

    def blocks(self, batch: dict) -> torch.Tensor:
        """The prefix (``token_type_ids`` 0) is one bidirectional block, the suffix causal."""
        tti = batch.get("token_type_ids")
        if tti is None:
            return super().blocks(batch)
        return torch.where(tti == 0, 0, -1)
