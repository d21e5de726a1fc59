"""The in-process backend: a local Hugging Face checkpoint run with transformers (nothing downloaded).

An image-text checkpoint (a processor with an image processor: ``AutoModelForImageTextToText``) takes
images and text; a text one (``AutoModelForCausalLM`` + its tokenizer) takes text. Either speaks through
its own chat template. A checkpoint is loaded once a process (shards in threads share it) and generates
one request at a time; greedy at temperature 0, else sampled with the request's seed. JSON is parsed
from the text (no constrained decoding here).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from functools import cache
from pathlib import Path

from pipeline.models.client import ModelError, Reply, Request

_LOCK = threading.Lock()  # one generate at a time in a process: the model is shared


def checkpoint_id(path: str | Path) -> str:
    """``local:<folder>@<digest>``: the folder's name and a digest of its config and of its files'
    names and sizes (cheap for a 15 GB checkpoint; an edited checkpoint is a new model for the cache)."""
    p = Path(path)
    h = hashlib.sha256((p / "config.json").read_bytes())
    for f in sorted(p.iterdir()):
        if f.is_file():
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return f"local:{p.name}@{h.hexdigest()[:12]}"


@cache
def _load(path: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        processor = None
    vision = processor is not None and getattr(processor, "image_processor", None) is not None
    if vision:
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype)
        tokenizer = processor.tokenizer
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.to(device).eval(), processor if vision else None, tokenizer, device


class LocalCheckpoint:
    def __init__(self, path: str | Path):
        p = Path(path)
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"{p}: not a local checkpoint folder (no config.json); give --model-endpoint to use a server's model by name")
        self.path = str(p.resolve())
        self.model = checkpoint_id(p)

    def __repr__(self) -> str:
        return f"LocalCheckpoint({self.path!r})"

    def complete(self, request: Request) -> Reply:
        import torch
        from PIL import Image

        model, processor, tokenizer, device = _load(self.path)
        t0 = time.perf_counter()
        if request.images and processor is None:
            raise ModelError("no_image_input", f"{self.path} is a text model; this stage needs an image-text model")
        try:
            if processor is not None:
                parts = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": request.prompt}]
                text = processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True, tokenize=False)
                images = [Image.open(io.BytesIO(b)).convert("RGB") for b in request.images] or None
                enc = processor(images=images, text=text, return_tensors="pt")
            elif tokenizer.chat_template:
                enc = tokenizer.apply_chat_template([{"role": "user", "content": request.prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
            else:
                enc = tokenizer(request.prompt, return_tensors="pt")
            enc = enc.to(device)
            sample = request.temperature > 0
            with _LOCK, torch.inference_mode():
                torch.manual_seed(request.seed)
                out = model.generate(
                    **enc, max_new_tokens=request.max_tokens, do_sample=sample, temperature=request.temperature if sample else None,
                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                )
        except (RuntimeError, ValueError) as e:  # out of memory, a prompt longer than the model takes, a processor's refusal
            raise ModelError("generation_error", f"{self.path}: {type(e).__name__}: {str(e)[:300]}") from None
        n_in = enc["input_ids"].shape[1]
        new = out[0, n_in:]
        return Reply(
            text=tokenizer.decode(new, skip_special_tokens=True).strip(), model=self.model, latency_s=time.perf_counter() - t0,
            prompt_tokens=int(n_in), completion_tokens=int(new.shape[0]),
        )
