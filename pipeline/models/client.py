"""The one model client: a `Backend` answers a `Request` with a `Reply`; `ModelClient` adds what every
stage needs around it.

- the answer cache (`pipeline.models.cache`), keyed by (model, prompt, images, parameters): a rerun
  makes no call for an answer it has;
- a concurrency limit (``map`` keeps at most ``concurrency`` requests in flight, answers in order);
- a breaker: after ``breaker`` calls in a row fail to reach the model (connection refused, timeouts,
  each after the backend's own retries), the rest fail at once as ``endpoint_down`` instead of each
  waiting through its retries;
- per-stage counts (`pipeline.models.usage.StageUsage`).

Failures are values, not exceptions: ``ask`` returns a `ModelError` for the stage to record, and the
stage keeps its template.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol

from pipeline.models.cache import AnswerCache
from pipeline.models.usage import StageUsage

RAW_CHARS = 500  # of a model's raw output kept in an example's provenance
UNREACHABLE = ("connection_error", "timeout")  # what the breaker counts


@dataclass(frozen=True)
class Request:
    """One question to a model: a user turn of images (shown first, in order) and text."""

    prompt: str
    images: tuple[bytes, ...] = ()  # encoded JPEG or PNG files
    schema: dict | None = None  # JSON schema of the answer: asked as structured output where the server has it
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0

    def key(self, model: str) -> str:
        """The cache key: the model, the prompt, the images' digests and every generation parameter."""
        payload = {
            "model": model, "prompt": self.prompt, "images": [hashlib.sha256(b).hexdigest() for b in self.images],
            "schema": self.schema, "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Reply:
    text: str
    model: str  # as the backend names it (a server reports its own name)
    latency_s: float  # the call, retries included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    cached: bool = False

    def provenance(self, stage: str) -> dict[str, str]:
        """What an example keeps of the call that wrote it (the original call's numbers when cached,
        so a rerun from the cache writes the same bytes)."""
        return {
            f"{stage}.model": self.model,
            f"{stage}.latency_s": f"{self.latency_s:.3f}",
            f"{stage}.prompt_tokens": str(self.prompt_tokens),
            f"{stage}.completion_tokens": str(self.completion_tokens),
            f"{stage}.raw": self.text[:RAW_CHARS],
        }

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("cached")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Reply:
        return cls(**json.loads(text), cached=True)


class ModelError(Exception):
    """A call that gave no answer: a snake_case reason (connection_error, timeout, http_500,
    endpoint_down, generation_error, ...), a detail for people, and the attempts it took."""

    def __init__(self, reason: str, detail: str, attempts: int = 1):
        super().__init__(reason, detail, attempts)
        self.reason, self.detail, self.attempts = reason, detail, attempts

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail} ({self.attempts} attempt{'s' if self.attempts != 1 else ''})"


class Backend(Protocol):
    """What a model backend is: the model it was asked for, and one call."""

    model: str  # the model as requested: part of the cache key

    def complete(self, request: Request) -> Reply: ...


@dataclass
class ModelClient:
    backend: Backend
    cache: AnswerCache | None = None
    concurrency: int = 4
    breaker: int = 3  # failed calls in a row that mark the endpoint down for this client
    usage: dict[str, StageUsage] = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._down: ModelError | None = None

    def stage(self, name: str) -> StageUsage:
        with self._lock:
            return self.usage.setdefault(name, StageUsage(model=self.backend.model))

    def ask(self, request: Request, stage: str) -> Reply | ModelError:
        u = self.stage(stage)
        key = request.key(self.backend.model)
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            with self._lock:
                u.asked += 1
                u.cached += 1
            return Reply.from_json(hit)
        with self._lock:
            u.asked += 1
            down = self._down
        if down is not None:
            with self._lock:
                u.failed += 1
            return ModelError("endpoint_down", f"not sent: {self.breaker} calls in a row failed before (last: {down})", 0)
        try:
            reply = self.backend.complete(request)
        except ModelError as e:
            with self._lock:
                u.calls += 1
                u.failed += 1
                u.retries += max(0, e.attempts - 1)
                if e.reason in UNREACHABLE:
                    self._in_a_row += 1
                    if self._in_a_row >= self.breaker and self._down is None:
                        self._down = e
            return e
        with self._lock:
            self._in_a_row = 0
            u.calls += 1
            u.retries += reply.attempts - 1
            u.prompt_tokens += reply.prompt_tokens
            u.completion_tokens += reply.completion_tokens
            u.model_seconds += reply.latency_s
        if self.cache is not None:
            self.cache.put(key, self.backend.model, reply.to_json())
        return reply

    def map(self, requests: Sequence[Request], stage: str) -> list[Reply | ModelError]:
        """Every request, at most ``concurrency`` in flight; the answers in the requests' order."""
        u = self.stage(stage)
        t0 = time.perf_counter()
        if self.concurrency <= 1 or len(requests) <= 1:
            out = [self.ask(r, stage) for r in requests]
        else:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"model-{stage}") as pool:
                out = list(pool.map(lambda r: self.ask(r, stage), requests))
        with self._lock:
            u.seconds += time.perf_counter() - t0
        return out


def encode_image(data: bytes, max_side: int = 1024) -> bytes:
    """An image file's bytes as a model gets them: JPEG and PNG as they are unless a side exceeds
    ``max_side`` (then scaled down, JPEG quality 90); other formats re-encoded as PNG."""
    from PIL import Image

    is_jpeg_or_png = data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        if is_jpeg_or_png and max(im.size) <= max_side:
            return data
        im = im.convert("RGB")
        if max(im.size) > max_side:
            im.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        im.save(buf, "JPEG" if is_jpeg_or_png else "PNG", **({"quality": 90} if is_jpeg_or_png else {}))
        return buf.getvalue()


def image_mime(data: bytes) -> str:
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


def parse_json_field(text: str, name: str) -> str | None:
    """``name`` of the first JSON object in ``text`` (a model may wrap it in prose or a code fence)."""
    obj = parse_json(text)
    value = obj.get(name) if isinstance(obj, dict) else None
    return value.strip() if isinstance(value, str) else None


def parse_json(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None
