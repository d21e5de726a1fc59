"""Real models and a real OpenAI-compatible server for the model-stage tests, all offline.

- `random_text_model` / `random_vision_model`: tiny random models built from configs (a Llama; the
  project's tiny LLaVA): they write garbage, which the checks must turn down with a reason.
- `writer_model`: a tiny Llama whose weights are set so that greedy decoding writes one given text
  after any prompt. Every layer adds nothing (output projections zeroed), the embeddings are one-hot
  and the LM head maps each token of the text to the next: a real model, served and run like any
  other, that gives a known good answer (the text's tokens must be distinct and not end the prompt).
- `ModelServer`: ``transformers serve`` on a free port (models are loaded by path on first use),
  stopped by its process id; its log counts the requests it received.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.ports import free_port

WORDS = [
    "What is the color of the large cube right of the ball?", "Is the red cylinder on the tray blue?",
    "A white wolf runs left on a green backdrop.", "USER: ASSISTANT:", '{"question": "?"}',
]


def _tokenizer(texts: list[str], vocab: int):
    from training.tiny_llava import train_tokenizer

    return train_tokenizer(texts * 10, vocab)


def random_text_model(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(WORDS, 400)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def random_vision_model(out: Path) -> Path:
    from training.tiny_llava import TinyLlavaConfig, build

    return build(out, WORDS * 10, TinyLlavaConfig(vocab_size=400, max_positions=4096))


def writer_model(out: Path, text: str) -> Path:
    """A model that answers ``text`` to any prompt (greedy)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(WORDS + [text], 400)
    target = tok(text, add_special_tokens=False)["input_ids"]
    last = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"][-1]
    chain = [last, *target, tok.eos_token_id]
    if len(set(chain)) != len(chain):
        raise ValueError(f"{text!r}: its tokens repeat (or repeat the prompt's last one); a bigram writer cannot write it")
    n = len(tok)
    cfg = LlamaConfig(vocab_size=n, hidden_size=n, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
                      head_dim=8, max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for layer in model.model.layers:  # every layer adds nothing to the residual stream
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(n))
        head = torch.zeros(n, n)
        head[tok.eos_token_id, :] = 1.0  # any other token: stop
        for a, b in zip(chain, chain[1:]):
            head[:, a] = 0.0
            head[b, a] = 10.0
        model.lm_head.weight.copy_(head)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


class ModelServer:
    def __init__(self, log: Path):
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> ModelServer:
        exe = Path(sys.executable).parent / "transformers"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        self.proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--default-seed", "0"],
                                     env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within {timeout} s")

    def requests(self) -> int:
        """Chat completions the server has received (its log says so for each)."""
        return self.log.read_text(errors="replace").count("[Request received]") if self.log.is_file() else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
