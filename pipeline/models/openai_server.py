"""The OpenAI-compatible backend: vLLM, SGLang, Ollama, llama.cpp's server, TGI, `transformers serve`.

Chat completions through the `openai` client library, which times out, retries (connection errors,
timeouts, 408/409/429 and 5xx) and backs off (0.5 s doubling to 8 s, less up to 25 % jitter; a
server's Retry-After wins). The attempts are counted on the client's HTTP requests. The API key is
read from the environment and handed to the client only: never stored in a config, logged, or put in
an error. Structured output (``response_format`` with a JSON schema) is asked where a request has a
schema; a server that refuses the field (400/422 naming it) is asked again without it, from then on,
and the answer is parsed from its text (`transformers serve` ignores the field and says so in its log).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time

import openai

from pipeline.models.client import ModelError, Reply, Request, image_mime

log = logging.getLogger(__name__)


class OpenAIServer:
    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0, retries: int = 2):
        self.endpoint, self.model = endpoint.rstrip("/"), model
        self._attempts = threading.local()
        self._structured = True
        http = openai.DefaultHttpxClient(event_hooks={"request": [self._count_attempt]})
        # Local servers take any key; the client library insists on one.
        self._client = openai.OpenAI(base_url=self.endpoint, api_key=os.environ.get(api_key_env) or "none", timeout=timeout, max_retries=retries, http_client=http)

    def __repr__(self) -> str:
        return f"OpenAIServer({self.endpoint!r}, model={self.model!r})"

    def _count_attempt(self, request) -> None:
        self._attempts.n = getattr(self._attempts, "n", 0) + 1

    def complete(self, request: Request) -> Reply:
        if request.images:
            content: str | list = [{"type": "image_url", "image_url": {"url": f"data:{image_mime(b)};base64,{base64.b64encode(b).decode()}"}} for b in request.images]
            content.append({"type": "text", "text": request.prompt})
        else:
            content = request.prompt  # plain text: what every server takes for a text-only model
        kwargs = {
            "model": self.model, "messages": [{"role": "user", "content": content}],
            "max_tokens": request.max_tokens, "temperature": request.temperature, "seed": request.seed,
        }
        if request.schema is not None and self._structured:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": request.schema}}
        self._attempts.n = 0
        t0 = time.perf_counter()
        try:
            try:
                r = self._client.chat.completions.create(**kwargs)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                if "response_format" not in kwargs or "response_format" not in str(e).lower():
                    raise
                log.info("%s does not take response_format (%s); asking for JSON in the prompt only", self.endpoint, e.status_code)
                self._structured = False
                del kwargs["response_format"]
                r = self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise ModelError("timeout", f"{self.endpoint}: no answer within the timeout", self._attempts.n) from None
        except openai.APIConnectionError as e:
            raise ModelError("connection_error", f"{self.endpoint}: {e}", self._attempts.n) from None
        except openai.APIStatusError as e:
            raise ModelError(f"http_{e.status_code}", f"{self.endpoint}: {str(e)[:300]}", self._attempts.n) from None
        latency = time.perf_counter() - t0
        if not r.choices:
            raise ModelError("empty_reply", f"{self.endpoint}: no choice in the reply", self._attempts.n)
        usage = r.usage
        return Reply(
            text=r.choices[0].message.content or "", model=r.model or self.model, latency_s=latency,
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
            attempts=max(1, self._attempts.n),
        )


def probe(endpoint: str, timeout: float = 5.0) -> None:
    """Raise a `ModelError` naming the endpoint when nothing answers there (any HTTP answer will do:
    some servers have no /models, or guard it with the key)."""
    url = endpoint.rstrip("/") + "/models"
    with openai.DefaultHttpxClient(timeout=timeout) as http:
        try:
            http.get(url)
        except Exception as e:  # the HTTP library's transport errors (refused, unknown host, timeout)
            raise ModelError("connection_error", f"nothing answers at {endpoint} ({type(e).__name__}: {e})") from None
