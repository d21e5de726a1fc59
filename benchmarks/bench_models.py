"""The model client's costs, against a real OpenAI-compatible server (`transformers serve`, a tiny
random Llama built from configs, on this machine's CPUs):

1. question rewriting of a small synthetic build's examples: the stage (cache, checks, re-verification
   included) at 1 and at 4 requests in flight, beside the same requests sent with the bare openai
   client one after another; then the rerun, every answer from the cache;
2. a dead endpoint: the time one call takes to fail with 0, 1 and 2 retries (the openai client's
   backoff), and a shard of 30 requests with and without the breaker.

The model is tiny, so the numbers are the client's and the server's overhead, not a real model's
speed.

    make bench      # or: .venv/bin/python benchmarks/bench_models.py [--images 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import env  # noqa: E402

env.apply()
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gcot-bench-prefect-")
os.environ.pop("PREFECT_API_URL", None)

from benchmarks.bench_build import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=12)
    args = ap.parse_args()

    from pipeline.chains.relations import build_relation_graph
    from pipeline.models import questions
    from pipeline.models.client import ModelClient, Request
    from pipeline.models.openai_server import OpenAIServer
    from pipeline.models.settings import ModelSettings
    from pipeline.steps import BuildConfig, build_shard, ingest, load_shard_result
    from tests.model_server import ModelServer, random_text_model

    work = Path(tempfile.mkdtemp(prefix="gcot-bench-models-"))
    model = str(random_text_model(work / "text"))
    cfg = BuildConfig(images=args.images, seed=3, out=str(work / "rel"), work_dir=str(work / "w"))
    ing = ingest(cfg)
    r = build_shard(ing.shards[0], ing.digests[0], ing.release_prefix, cfg.seed, cfg.per_type, cfg.rewriter, cfg.results_dir())
    from core.shards import load_scene_graphs

    graphs = {g.image_id: g for g in load_scene_graphs(ing.shards[0])}
    relations = {i: build_relation_graph(g) for i, g in graphs.items()}

    server = ModelServer(work / "serve.log").start()
    try:
        examples, _ = load_shard_result(r)
        n = len(examples)
        base = ModelSettings(model=model, model_endpoint=server.url, model_max_tokens=args.max_tokens)
        # warm the server (model load) outside the timings
        ModelClient(OpenAIServer(server.url, model)).ask(Request("warm up", max_tokens=2), "warm")

        import openai

        bare = openai.OpenAI(base_url=server.url, api_key="none")
        t0 = time.perf_counter()
        for ex in examples:
            req = questions.rewrite_request(ex, base)
            bare.chat.completions.create(model=model, messages=[{"role": "user", "content": req.prompt}], max_tokens=req.max_tokens, temperature=0, seed=0)
        t_bare = time.perf_counter() - t0
        print(f"{n} rewrite requests, tiny random Llama on transformers serve (CPU):")
        print(f"  bare openai client, one at a time: {t_bare:.2f} s ({n / t_bare:.1f} requests/s)")
        for conc in (1, 4):
            s = base.model_copy(update={"model_concurrency": conc, "model_cache": str(work / f"cache-{conc}.sqlite3")})
            exs, _ = load_shard_result(r)
            client = s.client()
            t0 = time.perf_counter()
            questions.rewrite_questions(exs, graphs, relations, client, s)
            t = time.perf_counter() - t0
            u = client.usage["rewrite"]
            print(f"  stage, {conc} in flight: {t:.2f} s ({n / t:.1f} answers/s; {u.calls} calls, {u.prompt_tokens}/{u.completion_tokens} tokens)")
        exs, _ = load_shard_result(r)
        s = base.model_copy(update={"model_concurrency": 4, "model_cache": str(work / "cache-4.sqlite3")})
        client = s.client()
        before = server.requests()
        t0 = time.perf_counter()
        questions.rewrite_questions(exs, graphs, relations, client, s)
        t = time.perf_counter() - t0
        print(f"  rerun from the cache: {t:.3f} s ({client.usage['rewrite'].cached} cached, {server.requests() - before} requests reached the server)")
    finally:
        server.stop()

    dead = f"http://127.0.0.1:{free_port()}/v1"
    print(f"a dead endpoint ({dead}):")
    for retries in (0, 1, 2):
        c = ModelClient(OpenAIServer(dead, "m", retries=retries), concurrency=1)
        t0 = time.perf_counter()
        e = c.ask(Request("x"), "x")
        print(f"  one call, {retries} retries: {time.perf_counter() - t0:.2f} s to fail ({e.reason}, {e.attempts} attempts)")
    for breaker, label in ((3, "breaker after 3"), (10**9, "no breaker")):
        c = ModelClient(OpenAIServer(dead, "m", retries=2), concurrency=1, breaker=breaker)
        t0 = time.perf_counter()
        c.map([Request(f"x{i}") for i in range(30)], "x")
        print(f"  30 requests, 2 retries, {label}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
