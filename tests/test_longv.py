"""LongV-EVAL: keyframes at the cuts, the published layout, bad videos recorded, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.schema import EDIT_KINDS, Clip, Subject, TrackPoint
from pipeline.longv import keyframes as kf
from pipeline.longv import prompts
from pipeline.longv.release import read_items, read_prompt_file
from pipeline.longv.steps import LongVConfig, discover, run_plain
from pipeline.longv.synthetic import VideoSpec, render
from pipeline.longv.video import VideoError, probe, write_video

SHORT = VideoSpec(seconds=10, width=480, height=270, cuts=2)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, dict]:
    """A folder with one short synthetic video (two cuts) and three bad files."""
    folder = tmp_path_factory.mktemp("videos")
    frames, truth = render(5, 1, SHORT)
    write_video(folder / "clip_a.mp4", frames, SHORT.fps, (SHORT.width, SHORT.height))
    import cv2

    cv2.VideoWriter(str(folder / "empty.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 24, (64, 64)).release()  # a valid container, zero frames
    (folder / "broken.mp4").write_bytes(b"\x00\x01 not a video " * 200)
    (folder / "notes.txt").write_text("a text file among the videos")
    return folder, truth


def test_window_means_equal_the_released_double_loop():
    rng = np.random.default_rng(0)
    heat = rng.uniform(0.3, 1.0, (18, 32)).astype(np.float32)
    size, stride = 32 // 16, 32 // 32
    slow = [heat[i : i + size, j : j + size].mean() for i in range(0, 18 - size + 1, stride) for j in range(0, 32 - size + 1, stride)]
    np.testing.assert_allclose(kf.window_means(heat, size, stride), slow, rtol=1e-6)


def test_cut_rule_by_hand():
    rule = kf.CutRule()
    heat = np.full((18, 32), 0.9)
    assert kf.similar_enough(heat, rule)
    heat[:] = 0.74  # mean below 0.75
    assert not kf.similar_enough(heat, rule)
    heat[:] = 0.95
    heat[4:6, 10:12] = 0.2  # one 2x2 window of mean 0.2 < 0.6, overall mean still 0.94
    assert heat.mean() > 0.75 and not kf.similar_enough(heat, rule)


def test_clip_cutter_follows_the_released_loop():
    """A direct transcription of AdaFlow's loop over precomputed heat-map verdicts gives the same begins."""
    rng = np.random.default_rng(1)
    frames = [np.full((36, 64, 3), rng.integers(0, 255, 3), np.uint8) for _ in range(3)]  # three flat 'places'
    seq = [0] * 5 + [1] * 7 + [2] * 1 + [0] * 6  # cuts at 5, 12, 13
    cutter = kf.ClipCutter(64, 36, kf.CutRule(max_frames=4))
    for i, s in enumerate(seq):
        cutter.push(i, frames[s])
    begins, cur, n = [0], 0, len(seq)
    while cur < n:  # run.py, "batch_size: auto", with similarity = same place
        for f in range(cur + 1, n):
            if seq[f] != seq[cur] or f - cur >= 4 - 1:
                begins.append(f)
                cur = f + 1
                if cur == n - 1:
                    cur += 1
                break
            if f == n - 1:
                cur = f + 1
        else:
            cur += 1
    assert cutter.begins == begins
    clips = cutter.clips()
    assert [c.start for c in clips] == begins and clips[-1].end == n - 1
    assert all(c.start <= c.keyframe <= c.end for c in clips)


def test_keyframes_land_at_the_scene_cuts(videos):
    folder, truth = videos
    info = probe(folder / "clip_a.mp4")
    cutter = kf.ClipCutter(info.width, info.height)
    from pipeline.longv.video import frames

    for i, f in frames(folder / "clip_a.mp4"):
        cutter.push(i, f)
    clips = cutter.clips()
    starts = [c.start for c in clips]
    assert truth["cuts"] and set(truth["cuts"]) <= set(starts), (truth["cuts"], starts)
    for c in clips:  # no clip spans a cut, and each keyframe lies in its clip
        assert not any(c.start < cut <= c.end for cut in truth["cuts"])
        assert c.start <= c.keyframe <= c.end
    assert len(clips) == len(truth["cuts"]) + 1  # a 10 s shot-wise static scene needs no extra clip


def test_bad_videos_have_a_reason(videos):
    folder, _ = videos
    with pytest.raises(VideoError, match="zero frames") as e:
        probe(folder / "empty.mp4")
    assert e.value.rule == "no_frames"
    with pytest.raises(VideoError, match="cannot open") as e:
        probe(folder / "broken.mp4")
    assert e.value.rule == "unreadable_video"
    with pytest.raises(VideoError, match="not a video") as e:
        probe(folder / "notes.txt")
    found = discover(LongVConfig(videos=str(folder)))
    assert [Path(v).name for v in found.videos] == ["broken.mp4", "clip_a.mp4", "empty.mp4"]
    assert [(r.id, r.rule) for r in found.rejections] == [("notes.txt", "not_a_video")]
    with pytest.raises(VideoError):
        discover(LongVConfig(videos=str(folder), strict=True))


def _subject(name, color, start, end, tid=1):
    return Subject(tid, name, color, 0.9, [TrackPoint(0, start), TrackPoint(40, end)])


def test_a_folder_of_only_bad_videos_gives_a_release_of_its_rejections(videos, tmp_path):
    folder, _ = videos
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("empty.mp4", "broken.mp4", "notes.txt"):
        (bad / name).write_bytes((folder / name).read_bytes())
    s = run_plain(LongVConfig(videos=str(bad), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work")))
    assert s["videos"] == 0 and s["rejected"] == 3 and s["candidates"] == s["videos"] + s["rejected"]
    rel = Path(s["release"])
    rej = [json.loads(line) for line in (rel / "rejections.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["rule"]) for r in rej) == [("broken.mp4", "unreadable_video"), ("empty.mp4", "no_frames"), ("notes.txt", "not_a_video")]
    assert all(r["file"] == str(bad / r["id"]) for r in rej)
    card = (rel / "README.md").read_text()
    assert "| videos | 0 |" in card and "No video of the source was released" in card and "| rejected videos | 3 (" in card
    assert read_items(rel) == [] and not (rel / "plots" / "clips.png").exists()
    with pytest.raises(VideoError, match=r"notes.txt: extension '.txt' is not a video's") as e:  # --strict: the first bad file stops it
        run_plain(LongVConfig(videos=str(bad), out=str(tmp_path / "strict"), work_dir=str(tmp_path / "work"), strict=True))
    assert e.value.rule == "not_a_video" and not (tmp_path / "strict").exists()


def test_an_empty_videos_folder_is_a_clear_error(tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / ".DS_Store").write_text("")  # hidden files are not videos, nor anything else
    with pytest.raises(VideoError, match="none: the folder holds no file: nothing to build a release from") as e:
        run_plain(LongVConfig(videos=str(tmp_path / "none"), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work")))
    assert e.value.rule == "empty_folder" and not (tmp_path / "rel").exists()


def test_prompts_follow_the_published_form():
    longest = _subject("cylinder", "purple", (0.1, 0.5, 0.1, 0.1), (0.7, 0.5, 0.1, 0.1))
    second = _subject("cylinder", "orange", (0.5, 0.5, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1), 2)
    seen_styles = set()
    for vid in range(60):
        d = prompts.draft(f"{vid:05d}", 0, [longest, second], "purple")
        seen_styles.add(d["style_name"])
        for kind in EDIT_KINDS:
            assert 0 < prompts.words(d[kind]) <= prompts.MAX_WORDS, d[kind]
        assert d["style_name"].lower() in d["style"].lower()
        assert "slides right" in d["background"]  # the main subject's motion, from its track
    assert seen_styles == set(prompts.STYLES)  # every published style is reachable
    assert prompts.draft("00001", 0, [longest], "gray") == prompts.draft("00001", 0, [longest], "gray")
    generic = prompts.draft("00001", 0, [], "gray")
    assert all(prompts.words(generic[k]) <= 15 for k in EDIT_KINDS)


def test_prompt_failures_catch_what_a_rewriter_breaks(videos, tmp_path):
    from core.schema import LongVItem

    item = LongVItem("x", "videos/x.mp4", "x.mp4", 1.0, 24.0, 24, 64, 36, [Clip(0, 23, 5)], [], "static", "c",
                     "A cat.", "A dog " + "runs " * 15, 'Comic-style "cat".', "comic")
    rules = [r for r, _ in prompts.prompt_failures(item)]
    assert rules == ["background_too_long", "style_not_one_line"]
    item.style, item.style_name = "Watercolor cat.", "comic"
    assert "style_not_named" in [r for r, _ in prompts.prompt_failures(item)]


def test_plain_build_writes_the_published_layout_and_is_deterministic(videos, tmp_path):
    folder, truth = videos
    cfg = LongVConfig(videos=str(folder), out=str(tmp_path / "a" / "rel"), work_dir=str(tmp_path / "work_a"))
    s = run_plain(cfg)
    rel = Path(s["release"])
    assert s["videos"] == 1 and s["rejected"] == 3 and s["candidates"] == 4
    rej = [json.loads(line) for line in (rel / "rejections.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["rule"]) for r in rej) == [("broken.mp4", "unreadable_video"), ("empty.mp4", "no_frames"), ("notes.txt", "not_a_video")]
    assert all(r["detail"] and r["file"] for r in rej)
    # the published layout: videos/ID.mp4 and one quoted prompt per kind
    assert (rel / "videos" / "clip_a.mp4").read_bytes() == (folder / "clip_a.mp4").read_bytes()
    for kind in EDIT_KINDS:
        text = (rel / kind / "clip_a.txt").read_text()
        assert text.startswith('"') and text.rstrip("\n").endswith('"') and text.count("\n") == 1
        assert prompts.words(read_prompt_file(rel / kind / "clip_a.txt")) <= 15
    table = pq.read_table(rel / "data" / "longv-eval.parquet")
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(rel / "data" / "longv-eval.parquet"), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds[0]["id"] == "clip_a" and ds[0]["keyframes"] == [c["keyframe"] for c in ds[0]["clips"]]
    assert {"id", "duration", "fps", "frames", "keyframes", "subjects", "caption", "foreground", "background", "style", "review_status"} <= set(table.column_names)
    (item,) = read_items(rel)
    assert item.frames == 240 and item.fps == 24 and item.duration == 10.0
    assert set(truth["cuts"]) <= {c.start for c in item.clips}
    assert sorted(int(p.stem) for p in (rel / "keyframes" / "clip_a").glob("*.jpg")) == item.keyframes
    assert item.provenance["stride"] == "8" and item.provenance["drafted_by"].startswith("gcot-yolo11n.pt@")
    cast = {f"{c['color']} {c['name']}" for c in truth["cast"]}
    assert item.subjects and item.subjects[0].label in cast  # the detector + tracker found a real cast member
    assert item.review.status == "pending" and (rel / "README.md").is_file() and (rel / "plots" / "clips.png").is_file()
    # same inputs, same bytes (fresh work folder: nothing reused)
    s2 = run_plain(LongVConfig(videos=str(folder), out=str(tmp_path / "b" / "rel"), work_dir=str(tmp_path / "work_b")))
    rel2 = Path(s2["release"])
    assert (rel2 / "README.md").read_text() == (rel / "README.md").read_text()
    for f in sorted(p.relative_to(rel) for p in rel.rglob("*") if p.is_file()):
        assert (rel2 / f).read_bytes() == (rel / f).read_bytes(), f


def test_flow_runs_the_short_video_end_to_end(videos, prefect_harness, tmp_path):
    from gcot.flows.build_longv import build_longv_eval

    folder, truth = videos
    s = build_longv_eval(LongVConfig(videos=str(folder), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work")))
    assert s["videos"] == 1 and s["rejected"] == 3 and s["candidates"] == s["videos"] + s["rejected"]
    (item,) = read_items(s["release"])
    assert set(truth["cuts"]) <= {c.start for c in item.clips}
    # the run page: the summary lists each rejection rule with an example, the progress reached 100 %
    from prefect.artifacts import Artifact

    summary = Artifact.get("build-longv-eval-summary").data
    rejected = [json.loads(line) for line in (Path(s["release"]) / "rejections.jsonl").read_text().splitlines()]
    assert all(f"`{r['rule']}`" in summary for r in rejected) and rejected[0]["id"] in summary and s["release"] in summary
    assert Artifact.get("build-longv-eval-progress").data == 100.0
    # a rerun reads every finished video from its result file
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "longv_results").glob("*.json")}
    s2 = build_longv_eval(LongVConfig(videos=str(folder), out=str(tmp_path / "rel"), work_dir=str(tmp_path / "work"), overwrite=True))  # replacing: --overwrite
    assert s2 == s and {p: p.stat().st_mtime_ns for p in before} == before


def _tiny_clip(path: Path) -> Path:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_consistency_metrics_by_hand(tmp_path):
    from pipeline.longv import metrics

    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 255, (36, 64, 3), dtype=np.uint8) for _ in range(2))
    write_video(tmp_path / "still.mp4", (a.copy() for _ in range(6)), 24, (64, 36))
    write_video(tmp_path / "flicker.mp4", (a if i % 2 == 0 else b for i in range(6)), 24, (64, 36))
    px = metrics.PixelBackbone()
    assert metrics.video_consistency(tmp_path / "still.mp4", px, px).sc == pytest.approx(1.0, abs=1e-5)
    # flicker: every adjacent pair is (a, b): SC is the cosine of the two decoded frames' embeddings
    from pipeline.longv.video import frames

    decoded = [f[..., ::-1].copy() for _, f in frames(tmp_path / "flicker.mp4")]
    e = px.embed(decoded)
    direct = np.mean([float(e[i] @ e[i + 1]) for i in range(5)])
    r = metrics.video_consistency(tmp_path / "flicker.mp4", px, px)
    assert r.sc == pytest.approx(direct, abs=1e-6) and r.sc < 0.99 and not r.comparable

    clip = metrics.load_backbone(f"clip:{_tiny_clip(tmp_path / 'clip')}")
    emb = clip.embed(decoded)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    r = metrics.video_consistency(tmp_path / "flicker.mp4", clip, px)
    assert r.sc == pytest.approx(np.mean([float(emb[i] @ emb[i + 1]) for i in range(5)]), abs=1e-5)
    assert r.sc_backbone == "clip:clip" and not r.comparable  # OC still came from the offline default
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        metrics.load_backbone("dino:/no/such/checkpoint")
    with pytest.raises(ValueError, match="pixels"):
        metrics.load_backbone("resnet")


def test_an_mpeg4_part2_video_is_served_to_the_browser_as_h264(tmp_path):
    import cv2

    from annotation.longv_review import serve_playable
    from pipeline.longv.video import codec, frames

    src = tmp_path / "old.mp4"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 24, (64, 48))
    for i in range(10):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    assert codec(src) not in ("h264", "avc1")  # OpenCV reports MPEG-4 Part 2 as fmp4
    serve_playable(src, tmp_path / "served" / "old.mp4")
    out = tmp_path / "served" / "old.mp4"
    assert codec(out) in ("h264", "avc1") and len(list(frames(out))) == 10
    serve_playable(out, tmp_path / "again.mp4")  # already playable: copied byte for byte
    assert (tmp_path / "again.mp4").read_bytes() == out.read_bytes()


@pytest.mark.slow  # kept out of the default run's 15 minutes (make test-all runs it)
def test_flow_on_a_local_dask_cluster_writes_the_same_bytes(videos, prefect_harness, tmp_path):
    from gcot.flows.build_longv import build_longv_eval

    folder, _ = videos
    threads = build_longv_eval(LongVConfig(videos=str(folder), out=str(tmp_path / "t" / "rel"), work_dir=str(tmp_path / "work_t")))
    dask = build_longv_eval(LongVConfig(videos=str(folder), out=str(tmp_path / "d" / "rel"), work_dir=str(tmp_path / "work_d"), runner="dask", workers=2))
    a, b = Path(threads["release"]), Path(dask["release"])
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
