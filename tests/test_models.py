"""Models in the loop, against a real OpenAI-compatible server the tests start (`transformers serve`
on tiny local models built from configs: a text model and an image-text model) and in-process.

- a rewrite is requested, used and cached: a rerun makes no call (the server's own log agrees);
- a garbage answer (tiny random models write garbage) is turned down by the checks with its reason,
  and the release is the templates' release;
- the judge and the captioner get images; the summary lands in the card, stats.json and a Prefect
  artifact;
- a server that goes away mid-run: retries, then recorded failures, the run ends with templates,
  and a rerun asks again only what failed;
- no server where one is named: a one-line error before any work; a dead endpoint's retries and
  backoff, measured.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from pipeline.chains.relations import build_relation_graph
from pipeline.chains.sampler import ChainSampler
from pipeline.models import questions
from pipeline.models.client import ModelClient, Request
from pipeline.models.openai_server import OpenAIServer
from pipeline.models.settings import ModelSettings
from pipeline.steps import BuildConfig, run_plain
from pipeline.verify import verify_batch
from tests.model_server import ModelServer, random_text_model, random_vision_model, writer_model
from tests.ports import free_port
from tests.scenes import tabletop

GOOD = "Which color is the cube under that blue ball?"  # a rewrite of "What is the color of the cube under the blue ball?"
SMALL = dict(source="synthetic", images=4, seed=7, per_type={"attribute": 1, "judge": 1, "object": 1})
FAST = dict(model_max_tokens=10, model_concurrency=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {"text": str(random_text_model(root / "text")), "vision": str(random_vision_model(root / "vision")), "writer": str(writer_model(root / "writer", GOOD))}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ModelServer(tmp_path_factory.mktemp("server") / "serve.log").start()
    yield s
    s.stop()


def _table():
    g = tabletop()
    rg = build_relation_graph(g)
    exs, _ = ChainSampler().sample(g, rg, "vg/VG_100K/42.jpg", 0)
    kept, _ = verify_batch(exs, {g.image_id: g}, {g.image_id: rg})
    return kept, {g.image_id: g}, {g.image_id: rg}


def _mmgcot(release: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((release / "mmgcot").glob("*.json"))}


def _data_bytes(release: Path) -> dict[str, bytes]:
    return {str(p.relative_to(release)): p.read_bytes() for sub in ("data", "mmgcot", "llava") for p in sorted((release / sub).glob("*"))}


@pytest.mark.server
def test_a_rewrite_is_used_then_cached_and_the_rerun_makes_no_call(server, models, tmp_path):
    s = ModelSettings(model=models["writer"], model_endpoint=server.url, model_cache=str(tmp_path / "cache.sqlite3"), model_max_tokens=24)
    examples, graphs, relations = _table()
    before = server.requests()
    client = s.client()
    questions.rewrite_questions(examples, graphs, relations, client, s)
    used = [e for e in examples if e.provenance["rewrite.outcome"] == "used"]
    assert [(e.provenance["template_question"], e.question) for e in used] == [("What is the color of the cube under the blue ball?", GOOD)]
    p = used[0].provenance
    assert p["rewrite.model"].startswith(models["writer"]) and float(p["rewrite.latency_s"]) > 0 and int(p["rewrite.prompt_tokens"]) > 50 and p["rewrite.completion_tokens"] == "11"
    # the writer says the same to every prompt: elsewhere it drops what the template names
    kept = [e for e in examples if e not in used]
    assert kept and all(e.provenance["rewrite.outcome"] == "template_kept" and e.provenance["rewrite.reason"].startswith("drops_template_term") for e in kept)
    u = client.usage["rewrite"]
    assert (u.asked, u.calls, u.cached, u.failed) == (len(examples), len(examples), 0, 0) and server.requests() - before == len(examples)

    again, graphs, relations = _table()
    client = s.client()
    questions.rewrite_questions(again, graphs, relations, client, s)
    u = client.usage["rewrite"]
    assert (u.calls, u.cached) == (0, len(examples)) and server.requests() - before == len(examples)  # no request reached the server
    assert [(e.question, e.provenance) for e in again] == [(e.question, e.provenance) for e in examples]  # same answers, same provenance


@pytest.mark.server
def test_build_with_the_stages_on_garbage_is_turned_down_and_the_rerun_is_all_cached(server, models, tmp_path, monkeypatch, caplog):
    secret = "sk-test-0123456789-not-for-any-file"
    monkeypatch.setenv("GCOT_TEST_MODEL_KEY", secret)
    caplog.set_level(logging.DEBUG)  # every library's debug lines too (the openai client's request options)
    cfg = dict(SMALL, rewrite_questions=True, judge_answers=True, model=models["text"], vision_model=models["vision"], model_endpoint=server.url,
               model_api_key_env="GCOT_TEST_MODEL_KEY", model_cache=str(tmp_path / "cache.sqlite3"), **FAST)
    plain = run_plain(BuildConfig(**SMALL, out=str(tmp_path / "plain" / "rel"), work_dir=str(tmp_path / "w0")))
    before = server.requests()
    s = run_plain(BuildConfig(**cfg, out=str(tmp_path / "a" / "rel"), work_dir=str(tmp_path / "w1")))
    n = s["examples"]
    rewrite, judge = s["models"]["rewrite"], s["models"]["judge"]
    assert n == plain["examples"] > 0 and s["candidates"] == n + s["rejected"]
    assert (rewrite["asked"], rewrite["calls"], rewrite["cached"], rewrite["failed"]) == (n, n, 0, 0)
    assert rewrite["outcomes"] == {"template_kept": n} and sum(rewrite["rejected"].values()) == n  # garbage: every rewrite turned down, with its rule
    assert (judge["calls"], sum(judge["outcomes"].values())) == (n, n) and judge["prompt_tokens"] > rewrite["prompt_tokens"] / 20
    assert server.requests() - before == 2 * n
    rel = Path(s["release"])
    assert _mmgcot(rel) == _mmgcot(Path(plain["release"]))  # the templates were released
    stats = json.loads((rel / "stats.json").read_text())
    assert stats["models"] == s["models"]
    card = (rel / "README.md").read_text()
    assert "## Models in the loop" in card and f"| rewrite | `{models['text']}` | {n} | 0 | {n} | 0 |" in card
    assert all(f"`{rule}` {k}" in card for rule, k in rewrite["rejected"].items())
    queue = [json.loads(line) for line in (rel / "review_queue.jsonl").read_text().splitlines()]
    assert [q["judge"] for q in queue] == sorted((q["judge"] for q in queue), key=lambda v: v != "disagrees")  # disagreements first
    import datasets

    row = datasets.load_dataset(str(rel), split="train", cache_dir=str(tmp_path / "hf"))[0]
    prov = json.loads(row["provenance"])
    assert prov["rewrite.outcome"] == "template_kept" and prov["rewrite.reason"] and "rewrite.raw" in prov and prov["judge.outcome"] in ("agrees", "disagrees")

    # a rerun in a fresh work folder: every answer from the cache, no request, the same data bytes
    s2 = run_plain(BuildConfig(**cfg, out=str(tmp_path / "b" / "rel"), work_dir=str(tmp_path / "w2")))
    assert [(st["calls"], st["cached"]) for st in s2["models"].values()] == [(0, n), (0, n)]
    assert server.requests() - before == 2 * n
    assert _data_bytes(Path(s2["release"])) == _data_bytes(rel)
    # a rerun in the same work folder: the shards' model results are reused from disk
    s3 = run_plain(BuildConfig(**cfg, out=str(tmp_path / "c" / "rel"), work_dir=str(tmp_path / "w1")))
    assert [(st["reused"], st["asked"]) for st in s3["models"].values()] == [(n, 0), (n, 0)] and s3["models"]["rewrite"]["outcomes"] == {"template_kept": n}
    # the API key reached the client only: in no file the runs wrote, and in no log line
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] and secret not in caplog.text


@pytest.mark.slow
@pytest.mark.server
def test_a_server_stopped_mid_run_gives_retries_then_recorded_failures(models, tmp_path):
    srv = ModelServer(tmp_path / "serve.log").start()
    cfg = BuildConfig(**dict(SMALL, images=6), rewrite_questions=True, model=models["text"], model_endpoint=srv.url, model_retries=1, model_max_tokens=10,
                      model_concurrency=1, model_cache=str(tmp_path / "cache.sqlite3"), out=str(tmp_path / "a" / "rel"), work_dir=str(tmp_path / "w"))

    def stop_after(k: int):
        while srv.requests() < k:
            time.sleep(0.05)
        srv.stop()

    stopper = threading.Thread(target=stop_after, args=(4,))
    stopper.start()
    try:
        s = run_plain(cfg)
    finally:
        stopper.join()
        srv.stop()
    u = s["models"]["rewrite"]
    answered = u["asked"] - u["cached"] - u["failed"]  # failed: sent and failed, or not sent (endpoint down)
    assert answered >= 3 and u["failed"] >= 1 and u["outcomes"]["failed"] == u["failed"] and u["asked"] == s["examples"]
    assert u["retries"] >= 3  # each call that found no server was tried again once, until three in a row failed
    import datasets

    rows = datasets.load_dataset(str(Path(s["release"])), split="train", cache_dir=str(tmp_path / "hf")).to_list()
    reasons = [json.loads(r["provenance"]).get("rewrite.reason", "") for r in rows]
    assert any(r.startswith("connection_error") and "(2 attempts)" in r for r in reasons)
    assert any(r.startswith("endpoint_down") for r in reasons) or u["failed"] <= 3
    plain = run_plain(BuildConfig(**dict(SMALL, images=6), out=str(tmp_path / "plain" / "rel"), work_dir=str(tmp_path / "w0")))
    assert _mmgcot(Path(s["release"])) == _mmgcot(Path(plain["release"]))  # the run finished with its templates

    # the server is back: a rerun asks only what failed; what was answered comes from the cache
    srv = ModelServer(tmp_path / "serve2.log").start()
    try:
        again = run_plain(cfg.model_copy(update={"model_endpoint": srv.url, "out": str(tmp_path / "b" / "rel")}))
    finally:
        srv.stop()
    v = again["models"]["rewrite"]
    assert (v["cached"], v["calls"], v["failed"]) == (answered, u["failed"], 0) and srv.requests() == u["failed"]


@pytest.mark.server
def test_longv_flow_captions_from_keyframes_and_writes_prompts_through_the_server(server, models, prefect_harness, tmp_path):
    from prefect.artifacts import Artifact

    from gcot.flows.build_longv import build_longv_eval
    from pipeline.longv.release import read_items
    from pipeline.longv.steps import LongVConfig
    from pipeline.longv.synthetic import VideoSpec, render
    from pipeline.longv.video import write_video

    spec = VideoSpec(seconds=4, width=320, height=180, cuts=1)
    (tmp_path / "videos").mkdir()
    frames, _ = render(3, 0, spec)
    write_video(tmp_path / "videos" / "clip.mp4", frames, spec.fps, (spec.width, spec.height))
    base = dict(videos=str(tmp_path / "videos"), work_dir=str(tmp_path / "w"))
    plain = LongVConfig(**base, out=str(tmp_path / "plain" / "rel"))
    from pipeline.longv.steps import run_plain as longv_plain

    (template,) = read_items(longv_plain(plain)["release"])
    before = server.requests()
    cfg = LongVConfig(**base, out=str(tmp_path / "rel"), caption_videos=True, write_prompts=True, model=models["text"], vision_model=models["vision"],
                      model_endpoint=server.url, model_cache=str(tmp_path / "cache.sqlite3"), **FAST)
    s = build_longv_eval(cfg)
    (item,) = read_items(s["release"])
    cap, prm = s["models"]["caption"], s["models"]["prompts"]
    assert (cap["calls"], prm["calls"], server.requests() - before) == (1, 1, 2)
    assert int(item.provenance["caption.prompt_tokens"]) >= 16 * len(item.clips)  # every keyframe went in (16 image tokens each)
    assert cap["outcomes"] == {"template_kept": 1} and prm["outcomes"] == {"template_kept": 3} and sum(prm["rejected"].values()) == 3
    assert (item.caption, item.foreground, item.background, item.style) == (template.caption, template.foreground, template.background, template.style)
    assert item.provenance["caption.reason"] and all(item.provenance[f"{k}.reason"] for k in ("foreground", "background", "style"))
    card = (Path(s["release"]) / "README.md").read_text()
    assert "## Models in the loop" in card and "| caption |" in card and "| prompts |" in card
    rows = json.loads(Artifact.get("build-longv-eval-models").data)
    assert [(r["stage"], r["calls"]) for r in rows] == [("caption", 1), ("prompts", 1)]


@pytest.mark.server
def test_gcot_flow_publishes_the_summary_and_holds_a_concurrency_limit(server, models, prefect_harness, tmp_path):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client

    from gcot.flows.build_gcot import build_gcot

    cfg = BuildConfig(**SMALL, judge_answers=True, vision_model=models["vision"], model_endpoint=server.url, model_cache=str(tmp_path / "c.sqlite3"),
                      out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"), **FAST)
    s = build_gcot(cfg)
    rows = json.loads(Artifact.get("build-gcot-models").data)
    assert [(r["stage"], r["answers"], r["calls"]) for r in rows] == [("judge", s["examples"], s["examples"])]
    with get_client(sync_client=True) as c:
        limit = c.read_global_concurrency_limit_by_name(cfg.model_settings().limit_name())
    assert limit.limit == cfg.model_concurrency and limit.active_slots == 0  # created by the run, released by its tasks


def test_the_in_process_backend_runs_the_same_stages(models, tmp_path):
    # the accepted rewrite, in-process
    s = ModelSettings(model=models["writer"], model_cache=None, model_max_tokens=24)
    examples, graphs, relations = _table()
    client = s.client()
    questions.rewrite_questions(examples, graphs, relations, client, s)
    assert [e.question for e in examples if e.provenance["rewrite.outcome"] == "used"] == [GOOD]
    assert client.usage["rewrite"].calls == len(examples) and examples[0].provenance["rewrite.model"].startswith("local:writer@")
    # the whole build with both stages on local checkpoints
    out = run_plain(BuildConfig(**dict(SMALL, images=2), rewrite_questions=True, judge_answers=True, model=models["text"], vision_model=models["vision"],
                                out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"), **FAST))
    n = out["examples"]
    assert [(st["calls"], sum(st["outcomes"].values())) for st in out["models"].values()] == [(n, n), (n, n)]
    assert out["models"]["judge"]["model"].startswith("local:vision@") and out["models"]["rewrite"]["outcomes"] == {"template_kept": n}
    # a text checkpoint asked to look at an image: a recorded failure, not a crash
    text = ModelClient(s.model_copy(update={"model": models["text"]}).client().backend)
    (reply,) = text.map([Request("what is it?", images=(b"\x89PNG\r\n\x1a\n",))], "judge")
    assert reply.reason == "no_image_input"


def test_longv_stages_in_process(models, tmp_path):
    from pipeline.longv.release import read_items
    from pipeline.longv.steps import LongVConfig
    from pipeline.longv.steps import run_plain as longv_plain
    from pipeline.longv.synthetic import VideoSpec, render
    from pipeline.longv.video import write_video

    spec = VideoSpec(seconds=3, width=320, height=180, cuts=1)
    (tmp_path / "videos").mkdir()
    frames, _ = render(4, 0, spec)
    write_video(tmp_path / "videos" / "c.mp4", frames, spec.fps, (spec.width, spec.height))
    cfg = LongVConfig(videos=str(tmp_path / "videos"), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w"), caption_videos=True, write_prompts=True,
                      model=models["text"], vision_model=models["vision"], **FAST)
    s = longv_plain(cfg)
    (item,) = read_items(s["release"])
    assert item.provenance["caption.model"].startswith("local:vision@") and item.provenance["prompts.model"].startswith("local:text@")
    assert s["models"]["caption"]["calls"] == 1 and s["models"]["prompts"]["outcomes"] == {"template_kept": 3}
    again = longv_plain(cfg.model_copy(update={"overwrite": True}))  # the same work folder: the video's model result is reused, nothing asked
    assert [(u["reused"], u["asked"], u["model"]) for u in again["models"].values()] == [(1, 0, models["vision"]), (1, 0, models["text"])]
    assert again["models"]["prompts"]["outcomes"] == {"template_kept": 3} and read_items(again["release"]) == [item]


def test_no_server_where_one_is_named_is_an_error_before_any_work(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ValueError, match=f"nothing answers at {dead}"):
        run_plain(BuildConfig(**SMALL, rewrite_questions=True, model="m", model_endpoint=dead, out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    assert not (tmp_path / "w").exists()
    with pytest.raises(ValueError, match="no --model"):
        run_plain(BuildConfig(**SMALL, rewrite_questions=True, out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))
    with pytest.raises(ValueError, match="not a local checkpoint folder"):
        run_plain(BuildConfig(**SMALL, judge_answers=True, vision_model=str(tmp_path), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "w")))


def test_a_dead_endpoint_is_retried_with_backoff_then_the_breaker_opens(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = ModelClient(OpenAIServer(dead, "m", retries=2, timeout=5), concurrency=1, breaker=3)
    t0 = time.perf_counter()
    first = client.ask(Request("hi"), "rewrite")
    took = time.perf_counter() - t0
    assert first.reason == "connection_error" and first.attempts == 3 and dead in first.detail
    assert 0.5 * 0.75 + 1.0 * 0.75 <= took < 5  # the openai client's backoff: 0.5 s then 1 s, less up to 25 % jitter
    replies = client.map([Request(f"hi {i}") for i in range(5)], "rewrite")
    assert [r.reason for r in replies] == ["connection_error", "connection_error", "endpoint_down", "endpoint_down", "endpoint_down"]
    u = client.usage["rewrite"]
    assert (u.asked, u.calls, u.failed, u.retries) == (6, 3, 6, 6)


def test_the_cache_key_holds_every_parameter(tmp_path):
    r = Request("q", images=(b"img",), max_tokens=8)
    keys = {r.key("m"), r.key("m2"), Request("q2", images=(b"img",), max_tokens=8).key("m"), Request("q", images=(b"img2",), max_tokens=8).key("m"),
            Request("q", images=(b"img",), max_tokens=9).key("m"), Request("q", images=(b"img",), max_tokens=8, temperature=0.7).key("m"),
            Request("q", images=(b"img",), max_tokens=8, seed=1).key("m"), Request("q", images=(b"img",), max_tokens=8, schema={"type": "object"}).key("m")}
    assert len(keys) == 8 and r.key("m") == Request("q", images=(b"img",), max_tokens=8).key("m")
