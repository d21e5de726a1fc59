"""Command line: ``python -m pipeline <command> --help``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from core import env

env.apply()

from gcot.flows import runners  # noqa: E402  (light: Prefect and Dask load only when a runner is made)

log = logging.getLogger("gcot")


def _print_summary(s: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(s, indent=2))
        return
    print(f"\nRelease written to {s['release']}")
    print(f"  examples: {s['examples']} over {s['images']} images")
    print("  per type: " + ", ".join(f"{k} {v}" for k, v in s["per_type"].items()))
    print("  per split: " + ", ".join(f"{k} {v}" for k, v in s["per_split"].items()))
    ok = s["candidates"] == s["examples"] + s["rejected"]
    print(f"  candidates {s['candidates']} = released {s['examples']} + rejected {s['rejected']}" + ("" if ok else "  (DOES NOT RECONCILE)"))
    if s["source_rejections"]:
        print(f"  source records rejected: {s['source_rejections']} (see rejections.jsonl)")
    print(f'  load: datasets.load_dataset("{s["release"]}", split="train")')


def _name_map(a: argparse.Namespace) -> dict | None:
    try:
        return json.loads(a.name_map) if a.name_map else {}
    except json.JSONDecodeError as e:
        print(f"error: --name-map is not a JSON object: {e}", file=sys.stderr)
        return None


def _build(a: argparse.Namespace, name: str, kwargs: dict, plain, flow_fn, errors: tuple) -> dict | None:
    """Shared by the build commands: ``--no-prefect`` calls the plain steps (``plain(kwargs)``),
    otherwise the flow runs with its tasks on the chosen runner. None after a printed error."""
    from pipeline.detect.detector import DetectorError

    if a.no_prefect and (a.runner != "threads" or a.dask_address):
        print("error: --runner/--dask-address need the Prefect flow; drop --no-prefect", file=sys.stderr)
        return None
    try:
        if a.no_prefect:
            return plain(kwargs)
        placement = runners.from_arguments(a)  # a bad choice or address: one line, before any server starts
        print(f"{name} runs as a Prefect flow; with no PREFECT_API_URL a temporary local server starts first (--no-prefect skips Prefect).", file=sys.stderr)
        return flow_fn()(**kwargs, **placement)
    except (DetectorError, ValueError, FileNotFoundError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def cmd_build(a: argparse.Namespace) -> int:
    from pipeline.sources.base import SourceError
    from pipeline.steps import BuildConfig, run_plain

    def flow_fn():
        from gcot.flows.build_gcot import build_gcot

        return build_gcot

    name_map = _name_map(a)
    if name_map is None:
        return 2
    kwargs = dict(source=a.source, images=a.images, seed=a.seed, out=a.out, shard_size=a.shard_size, strict=a.strict, work_dir=a.work_dir,
                  rewriter=a.rewriter, detector=a.detector, name_map=name_map, detector_conf=a.detector_conf)
    s = _build(a, "build-gcot", kwargs, lambda kw: run_plain(BuildConfig(**kw)), flow_fn, (SourceError,))
    if s is None:
        return 2
    _print_summary(s, a.json)
    return 0


def cmd_build_longv(a: argparse.Namespace) -> int:
    from pipeline.longv.steps import LongVConfig, run_plain
    from pipeline.longv.video import VideoError

    def flow_fn():
        from gcot.flows.build_longv import build_longv_eval

        return build_longv_eval

    name_map = _name_map(a)
    if name_map is None:
        return 2
    kwargs = dict(videos=a.videos, count=a.count, seconds=a.seconds, seed=a.seed, out=a.out, stride=a.stride, detector=a.detector,
                  name_map=name_map, detector_conf=a.detector_conf, rewriter=a.rewriter, strict=a.strict, work_dir=a.work_dir)
    s = _build(a, "build-longv-eval", kwargs, lambda kw: run_plain(LongVConfig(**kw)), flow_fn, (VideoError,))
    if s is None:
        return 2
    if a.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"\nRelease written to {s['release']}")
    print(f"  videos: {s['videos']} ({s['frames']} frames, {s['clips']} clips), prompts: {s['prompts']} ({s['prompt_words_mean']} words on average)")
    ok = s["candidates"] == s["videos"] + s["rejected"]
    print(f"  files {s['candidates']} = released {s['videos']} + rejected {s['rejected']}" + ("" if ok else "  (DOES NOT RECONCILE)"))
    if s["rejected"]:
        print("  rejected: " + ", ".join(f"{k} {v}" for k, v in s["rejections_by_rule"].items()) + " (see rejections.jsonl)")
    return 0


def cmd_longv_metrics(a: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.longv.metrics import load_backbone, video_consistency
    from pipeline.longv.video import VIDEO_EXTENSIONS, VideoError

    paths = []
    for v in a.videos:
        p = Path(v)
        paths += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS) if p.is_dir() else [p]
    try:
        sc = load_backbone(a.sc_backbone)
        oc = sc if a.oc_backbone == a.sc_backbone else load_backbone(a.oc_backbone)
        rows = [video_consistency(p, sc, oc, a.every, a.max_frames).__dict__ for p in paths]
    except (VideoError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no videos given", file=sys.stderr)
        return 2
    summary = {"videos": rows, "mean_sc": sum(r["sc"] for r in rows) / len(rows), "mean_oc": sum(r["oc"] for r in rows) / len(rows), "comparable_to_published": all(r["comparable"] for r in rows)}
    if a.json:
        print(json.dumps(summary, indent=2))
        return 0
    for r in rows:
        print(f"{r['video']}: SC {r['sc']:.4f} ({r['sc_backbone']})  OC {r['oc']:.4f} ({r['oc_backbone']})  frames {r['frames_used']}")
    print(f"mean: SC {summary['mean_sc']:.4f}  OC {summary['mean_oc']:.4f}")
    if not summary["comparable_to_published"]:
        print("note: an offline default backbone was used; these numbers are not comparable to the published CLIP/DINO values")
    return 0


def cmd_convert(a: argparse.Namespace) -> int:
    from pipeline.convert import convert

    try:
        s = convert(a.input, a.src, a.dst, a.out, images=a.images, strict=a.strict)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(s, indent=2))
    return 0


def _finite(x):
    """NaN (an undefined percentage) becomes null: JSON has no NaN."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def cmd_eval(a: argparse.Namespace) -> int:
    from pipeline.evaluation import official, report, strict
    from pipeline.evaluation.results import read_results

    try:
        records = read_results(a.results)
        if a.mode == "official":
            if a.box_format or a.synonyms:
                print("error: --box-format and --synonyms belong to --mode strict", file=sys.stderr)
                return 2
            r = {"mode": "official", "model_format": a.model_format or "llava", **official.evaluate(records, a.model_format or "llava", a.image_root)}
        else:
            synonyms = json.loads(open(a.synonyms).read()) if a.synonyms else None
            r = {"model_format": a.model_format, **strict.evaluate(records, a.model_format, a.box_format, a.image_root, synonyms, a.bootstrap, a.seed)}
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = _finite({"results": str(a.results), **r})
    if a.out:
        paths = report.write(r, a.out)
        print(f"report written: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    print(json.dumps(r, indent=None if a.json else 2) if a.json else report.markdown(r))
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from training.generate import RunConfig, run

    try:
        out = run(RunConfig(release=a.release, model=a.model, out=a.out, protocol=a.protocol, split=a.split, batch_size=a.batch_size, limit=a.limit, max_new_tokens=a.max_new_tokens, device=a.device))
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"results written to {out}\nevaluate: python -m pipeline eval-gcot --results {out} [--mode strict]", file=sys.stderr)
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from gcot.flows.serve import serve_local

    return serve_local(a.host, a.port, a.name, start_server=not a.no_server)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline", description="gcot-forge: build, convert, evaluate and serve grounded chain-of-thought data, and LongV-EVAL long-video edit prompts.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build-gcot", help="build a GCoT release from scene graphs", description="Build MM-GCoT-style examples from scene graphs, verify them and write a release (Parquet shards, MM-GCoT JSON, LLaVA conversations, data card).")
    b.add_argument("--source", default="synthetic", help="synthetic (embedded default: rendered scenes), vg:PATH (Visual Genome folder), coco:PATH (COCO instances JSON), images:PATH (unannotated images; the detector drafts the objects) [default: %(default)s]")
    b.add_argument("--images", type=int, default=300, help="synthetic: scenes to render; vg/coco: read at most this many images, 0 for all [default: %(default)s]")
    b.add_argument("--seed", type=int, default=0, help="seed of scenes, chains and splits; same seed, same bytes [default: %(default)s]")
    b.add_argument("--out", default="releases/demo", help="release folder, replaced atomically [default: %(default)s]")
    b.add_argument("--shard-size", type=int, default=250, help="images per shard (one Prefect task each) [default: %(default)s]")
    b.add_argument("--work-dir", default=None, help="where rendered scenes and scene-graph shards go [default: <out's parent>/.gcot-work]")
    b.add_argument("--rewriter", default="none", help="question rewriter [default: %(default)s]")
    b.add_argument("--detector", default=None, help="'default' (the shipped YOLO11n) or a path to Ultralytics detection weights: cross-checks every step box; an images:PATH source uses the default when not given")
    b.add_argument("--name-map", default=None, help='JSON object renaming detector classes to scene-graph nouns, e.g. \'{"person": "man"}\'')
    b.add_argument("--detector-conf", type=float, default=0.25, help="detection confidence threshold [default: %(default)s]")
    b.add_argument("--strict", action="store_true", help="stop at the first bad input record instead of recording it and going on")
    runners.add_arguments(b)
    b.add_argument("--no-prefect", action="store_true", help="call the steps as plain functions (no Prefect engine)")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("convert", help="convert records between release formats", description="Move records between MM-GCoT JSON, Arrow/Parquet releases and LLaVA conversations.")
    c.add_argument("input", help="MM-GCoT: a GCoT_dataset_<type>_<split>.json file or a folder of them; arrow: a release folder")
    c.add_argument("--from", dest="src", required=True, choices=["mmgcot", "arrow"], help="input format")
    c.add_argument("--to", dest="dst", required=True, choices=["arrow", "llava", "mmgcot"], help="output format")
    c.add_argument("--out", required=True, help="output folder (replaced atomically)")
    c.add_argument("--images", default=None, help="root under which each record's img path is found, to store image bytes in arrow output (optional)")
    c.add_argument("--strict", action="store_true", help="stop at the first malformed record")
    c.set_defaults(func=cmd_convert)

    e = sub.add_parser("eval-gcot", help="MM-GCoT consistency metrics of a results file", description="Answer accuracy, grounding accuracy (IoU > 0.5) and answer-grounding consistency CR/(CR+CM+WR) of a results file (JSON lines with text, gt_text, coor, gt_coor, img). --mode official reproduces the official script's numbers exactly; --mode strict is ours (robust parsing, explicit box formats, normalized answers, step-level grounding, per-type scores, bootstrap CIs).")
    e.add_argument("--results", required=True, help="results file, one JSON object a line")
    e.add_argument("--mode", choices=["official", "strict"], default="official", help="[default: %(default)s]")
    e.add_argument("--model-format", choices=["llava", "qwen", "internvl"], default=None, help="how the model writes boxes. official: llava = as it is, qwen = absolute-pixel xyxy, internvl = xyxy on 0-1000 [default: llava]. strict: llava = normalized xyxy, qwen and internvl as official [default: normalized xywh, as MM-GCoT]")
    e.add_argument("--box-format", choices=["xywh-norm", "xyxy-norm", "xyxy-abs", "xywh-abs", "xyxy-1000"], default=None, help="strict: say the predicted box format outright (overrides --model-format)")
    e.add_argument("--image-root", default=None, help="folder the records' img paths are relative to (needed for absolute-pixel boxes)")
    e.add_argument("--synonyms", default=None, help="strict: JSON object of extra answer synonyms, e.g. {\"timber\": \"wood\"}")
    e.add_argument("--bootstrap", type=int, default=1000, help="strict: bootstrap resamples for the 95%% CIs, 0 to skip [default: %(default)s]")
    e.add_argument("--seed", type=int, default=0, help="strict: bootstrap seed [default: %(default)s]")
    e.add_argument("--out", default=None, help="also write report.json, report.md and breakdown.png here")
    e.add_argument("--json", action="store_true", help="print one JSON object (answer_accuracy, grounding_accuracy, consistency in percent, unrounded)")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("run-gcot", help="run an image-text model on a release split, write a results file", description="Generate answers and boxes with a Hugging Face image-text-to-text model (local path; nothing is downloaded) on a release split, in one of the MM-GCoT protocols, and write a results file for eval-gcot. A tiny offline model: python training/tiny_llava.py --release DIR --out MODEL_DIR.")
    r.add_argument("--release", required=True, help="release folder (build-gcot or convert --to arrow with --images)")
    r.add_argument("--model", required=True, help="model folder (AutoModelForImageTextToText + AutoProcessor)")
    r.add_argument("--out", required=True, help="results file to write (JSON lines)")
    r.add_argument("--protocol", choices=["answer-first", "grounding-first", "gcot"], default="answer-first", help="[default: %(default)s]")
    r.add_argument("--split", default="test", help="[default: %(default)s]")
    r.add_argument("--batch-size", type=int, default=8, help="[default: %(default)s]")
    r.add_argument("--limit", type=int, default=None, help="only the first N samples")
    r.add_argument("--max-new-tokens", type=int, default=64, help="for answers and boxes; chains get 256 [default: %(default)s]")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... [default: %(default)s]")
    r.set_defaults(func=cmd_run)

    lv = sub.add_parser("build-longv-eval", help="build a LongV-EVAL release from long videos", description="Videos -> adaptive keyframes (AdaFlow's clip cutting) -> detector + ByteTrack subjects -> caption and three edit prompts (foreground, background, style) -> release in the LongV-EVAL layout with Parquet metadata and a data card.")
    lv.add_argument("--videos", default="synthetic", help="a folder of videos (.mp4 .mov .m4v .avi .mkv .webm), or 'synthetic' (embedded default: rendered one-minute videos) [default: %(default)s]")
    lv.add_argument("--count", type=int, default=3, help="synthetic: videos to render [default: %(default)s]")
    lv.add_argument("--seconds", type=float, default=60.0, help="synthetic: length of each video at 24 fps, 640x360 [default: %(default)s]")
    lv.add_argument("--seed", type=int, default=0, help="seed of the synthetic videos and of the prompt templates [default: %(default)s]")
    lv.add_argument("--out", default="releases/longv-demo", help="release folder, replaced atomically [default: %(default)s]")
    lv.add_argument("--stride", type=int, default=8, help="detect and track on every stride-th frame (keyframe selection sees every frame) [default: %(default)s]")
    lv.add_argument("--detector", default="default", help="'default' (the shipped YOLO11n, synthetic shapes) or a path to Ultralytics detection weights [default: %(default)s]")
    lv.add_argument("--name-map", default=None, help='JSON object renaming detector classes to nouns, e.g. \'{"person": "man"}\'')
    lv.add_argument("--detector-conf", type=float, default=0.25, help="detection confidence threshold [default: %(default)s]")
    lv.add_argument("--rewriter", default="none", help="prompt rewriter (the build-gcot rewriter interface) [default: %(default)s]")
    lv.add_argument("--work-dir", default=None, help="rendered videos and per-video results [default: <out's parent>/.gcot-work]")
    lv.add_argument("--strict", action="store_true", help="stop at the first bad video instead of recording it and going on")
    lv.add_argument("--no-prefect", action="store_true", help="run the steps as plain functions, without Prefect")
    runners.add_arguments(lv)
    lv.add_argument("--json", action="store_true", help="print the summary as JSON")
    lv.set_defaults(func=cmd_build_longv)

    m = sub.add_parser("longv-metrics", help="consistency metrics (SC, OC) of videos, e.g. edited LongV-EVAL videos", description="Semantic consistency (mean cosine of adjacent frames' CLIP image embeddings) and object consistency (the same over DINO CLS features) of each video. Backbones come from local checkpoints; the offline default 'pixels' is not comparable to published numbers.")
    m.add_argument("videos", nargs="+", help="video files or folders of videos")
    m.add_argument("--sc-backbone", default="pixels", help="clip:PATH (local CLIP checkpoint) or pixels [default: %(default)s]")
    m.add_argument("--oc-backbone", default="pixels", help="dino:PATH (local DINO/DINOv2 checkpoint) or pixels [default: %(default)s]")
    m.add_argument("--every", type=int, default=1, help="use every n-th frame [default: %(default)s, all frames]")
    m.add_argument("--max-frames", type=int, default=None, help="at most this many frames a video")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_longv_metrics)

    s = sub.add_parser("serve", help="start a local Prefect server and serve the build-gcot and build-longv-eval deployments", description="Start a local Prefect server (unless one answers) and serve the deployments build-gcot/<name> and build-longv-eval/<name>, so that `prefect deployment run build-gcot/<name>` (or build-longv-eval/<name>) works from another shell with PREFECT_API_URL set.")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=4200)
    s.add_argument("--name", default="local", help="deployment name [default: %(default)s]")
    s.add_argument("--no-server", action="store_true", help="use the server at PREFECT_API_URL instead of starting one")
    s.set_defaults(func=cmd_serve)

    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("core", "pipeline", "data_cards", "annotation", "training", "gcot"):
        logging.getLogger(name).setLevel(os.environ.get("GCOT_LOG_LEVEL", "INFO"))
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
