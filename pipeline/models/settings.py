"""The model fields every command with model stages shares, defined once, and the clients they open.

`BuildConfig` and `LongVConfig` declare these fields with these types (each type carries its flag's
description), so ``gcot build --help``, ``gcot build-longv --help`` and the Prefect run form say the
same; `ModelSettings.of` takes them off either config.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field

from core.config import Config
from core.shards import code_digest
from pipeline.models.cache import AnswerCache
from pipeline.models.client import ModelClient, ModelError

Model = Annotated[str | None, Field(description="the text model of the model stages: a name the --model-endpoint server serves (e.g. Qwen/Qwen2.5-7B-Instruct on vLLM, qwen2.5:7b on Ollama), or, without an endpoint, a local Hugging Face checkpoint folder run in-process with transformers")]
VisionModel = Annotated[str | None, Field(description="the image-text model of the stages that look at images (answerability judge, video captions), on the same endpoint or in-process; none: --model")]
Endpoint = Annotated[str | None, Field(description="an OpenAI-compatible server's base URL (vLLM, SGLang, Ollama, llama.cpp's server, TGI, transformers serve), e.g. http://127.0.0.1:8000/v1; none: the models are local checkpoints run in-process")]
ApiKeyEnv = Annotated[str, Field(description="the environment variable holding the server's API key (read when the client starts; never stored or logged); unset: no key")]
Concurrency = Annotated[int, Field(ge=1, description="model requests in flight at once, over all tasks of the run (a Prefect concurrency limit holds the rest)")]
Timeout = Annotated[float, Field(gt=0, description="seconds a model request may take before it counts as failed and is retried")]
Retries = Annotated[int, Field(ge=0, description="retries of a failed request (connection errors, timeouts, 408/409/429/5xx) with exponential backoff, 0.5 s doubling to 8 s; then the output is recorded as failed and the template stays")]
MaxTokens = Annotated[int, Field(ge=1, description="new tokens a model may write per request")]
Temperature = Annotated[float, Field(ge=0, description="sampling temperature (0: greedy); with the seed it is part of every cached answer's key")]
CachePath = Annotated[str | None, Field(description="the SQLite file of model answers, keyed by (model, prompt, images, parameters): a rerun makes no call for an answer it has; none: <work_dir>/model-cache.sqlite3")]

# The fields, by name, that `ModelSettings.of` reads off a command's config.
FIELDS = ("model", "vision_model", "model_endpoint", "model_api_key_env", "model_concurrency", "model_timeout", "model_retries", "model_max_tokens", "model_temperature", "model_cache")


class ModelSettings(Config):
    """What the model stages of one run need, resolved (the cache path filled in)."""

    model: Model = None
    vision_model: VisionModel = None
    model_endpoint: Endpoint = None
    model_api_key_env: ApiKeyEnv = "OPENAI_API_KEY"
    model_concurrency: Concurrency = 4
    model_timeout: Timeout = 60.0
    model_retries: Retries = 2
    model_max_tokens: MaxTokens = 256
    model_temperature: Temperature = 0.0
    model_cache: CachePath = None
    seed: int = 0

    @classmethod
    def of(cls, cfg, work: Path) -> ModelSettings:
        values = {name: getattr(cfg, name) for name in FIELDS}
        values["model_cache"] = values["model_cache"] or str(work / "model-cache.sqlite3")
        return cls(**values, seed=cfg.seed)

    @property
    def vision(self) -> str | None:
        return self.vision_model or self.model

    def key(self, stages: tuple[str, ...], code: str = "") -> str:
        """What the stages' outputs depend on: the stages, the models, the generation parameters, the
        seed and the code (prompts and checks; ``code``: a domain's own). Not the endpoint, the key or
        the concurrency."""
        payload = [stages, self.model, self.vision, self.model_max_tokens, self.model_temperature, self.seed, code, code_digest("pipeline.models", "pipeline.wording", "pipeline.verify")]
        return hashlib.sha256(repr(payload).encode()).hexdigest()[:16]

    def limit_name(self) -> str:
        """The Prefect concurrency limit of the run's model requests: one per endpoint (or per local model)."""
        where = self.model_endpoint or f"local:{self.model}"
        return "gcot-models-" + re.sub(r"[^A-Za-z0-9]+", "-", where).strip("-")[-40:] + "-" + hashlib.sha256(where.encode()).hexdigest()[:6]

    def check(self, stages: dict[str, bool], vision_stages: tuple[str, ...]) -> None:
        """A clear error before any work: a stage that is on with no model, a local checkpoint that is
        not there, an endpoint where nothing answers."""
        on = [s for s, v in stages.items() if v]
        if not on:
            return
        if self.model is None and any(s not in vision_stages for s in on):
            raise ValueError(f"{', '.join(on)}: no --model (a model the --model-endpoint server serves, or a local checkpoint folder)")
        if self.vision is None:
            raise ValueError(f"{', '.join(on)}: no --vision-model or --model")
        if self.model_endpoint:
            from pipeline.models.openai_server import probe

            try:
                probe(self.model_endpoint)
            except ModelError as e:
                raise ValueError(f"--model-endpoint: {e.detail}") from None
        else:
            for name in {self.model, self.vision} - {None}:
                if not (Path(name) / "config.json").is_file():
                    raise ValueError(f"{name}: not a local checkpoint folder (no config.json); to use a model by name give --model-endpoint")

    def client(self, vision: bool = False, clients: dict | None = None) -> ModelClient:
        """The client of the text (or image-text) model; ``clients`` shares one per model between stages."""
        name = self.vision if vision else self.model
        if clients is not None and name in clients:
            return clients[name]
        if self.model_endpoint:
            from pipeline.models.openai_server import OpenAIServer

            backend = OpenAIServer(self.model_endpoint, name, self.model_api_key_env, self.model_timeout, self.model_retries)
        else:
            from pipeline.models.local import LocalCheckpoint

            backend = LocalCheckpoint(name)
        c = ModelClient(backend, AnswerCache(self.model_cache) if self.model_cache else None, self.model_concurrency)
        if clients is not None:
            clients[name] = c
        return c
