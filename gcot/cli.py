"""The `gcot` command: every command of the project, each generated from its config model.

    gcot --help                 the commands
    gcot build --help           every field of the command, with its description
    gcot build --config releases/demo/config.yaml      a release built again from its stored config

``python -m pipeline ...`` is an alias (its old command names too: build-gcot, build-longv-eval,
eval-gcot, run-gcot), as are ``python training/finetune.py``, ``python -m training.efficiency`` and
``python -m annotation``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from core import env

env.apply()

from pydantic_settings import CliPositionalArg, CliSubCommand  # noqa: E402

from annotation.cli import Review  # noqa: E402
from core.cli import Command, CommandFailed, ConfigCommand, Root, run  # noqa: E402
from gcot.scale import Scale  # noqa: E402
from pipeline.detect.train import DetectorGroup  # noqa: E402
from pipeline.evaluation.box_formats import NAMES as BOX_FORMATS  # noqa: E402
from pipeline.longv.steps import LongVConfig  # noqa: E402
from pipeline.steps import BuildConfig  # noqa: E402
from training.efficiency.cli import EfficiencyCommand  # noqa: E402
from training.experiment import ExperimentCommand  # noqa: E402
from training.finetune import FinetuneCommand  # noqa: E402
from training.generate import RunCommand  # noqa: E402
from training.pretrain import PretrainCommand  # noqa: E402
from training.tiny_llava import TinyModelCommand  # noqa: E402

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
    if r := s.get("records"):
        held = f"the source holds {r['held']}, read {r['read']}" + (f" (--limit {r['limit']})" if r["limit"] else "")
        print(f"  records: {held} = released {r['released']} + rejected {r['rejected']}" + ("" if r["reconciles"] else "  (DOES NOT RECONCILE)"))
        if r["lost_in_malformed_json"]:
            print(f"  about {r['lost_in_malformed_json']} more record(s) lie in an unreadable part of a malformed JSON file (see malformed_json in rejections.jsonl)")
    _print_models(s)
    print(f'  load: datasets.load_dataset("{s["release"]}", split="train")')


def _print_models(s: dict) -> None:
    for stage, u in s.get("models", {}).items():
        outcomes = ", ".join(f"{k} {n}" for k, n in u["outcomes"].items()) or "-"
        print(f"  model stage {stage} ({u['model']}): {u['asked']} answers needed, {u['cached']} from the cache, {u['calls']} calls, {u['failed']} failed; {outcomes}")


def _build(cfg, prefect: bool, flow_fn, plain, errors: tuple) -> dict:
    """Shared by the build commands: without Prefect the plain steps, otherwise the flow (its tasks
    on the chosen runner)."""
    from gcot.flows import runners
    from pipeline.detect.detector import DetectorError

    if not prefect and (cfg.runner != "threads" or cfg.dask_address):
        raise CommandFailed("--runner/--dask-address need the Prefect flow; drop --no-prefect")
    try:
        if not prefect:
            return plain(cfg)
        runners.make_task_runner(cfg.runner, cfg.dask_address, cfg.workers)  # a bad choice or address: one line, before any server starts
        if cfg.out:
            cfg.check_output()  # a refused output: one line, before any server starts
        from gcot.flows.ephemeral import quiet_user_errors, start_temporary_server

        print("runs as a Prefect flow; with no PREFECT_API_URL a temporary local server starts first (--no-prefect skips Prefect).", file=sys.stderr)
        quiet_user_errors()
        start_temporary_server()  # stops with this command, even a killed one
        return flow_fn()(cfg)
    except (DetectorError, ValueError, FileNotFoundError, *errors) as e:
        raise CommandFailed(str(e)) from None


class FlowOptions(ConfigCommand):
    """The command-line fields of a build: how it runs and how it reports, not what it builds."""

    prefect: bool = Field(True, description="run as a Prefect flow (--no-prefect calls the steps as plain functions)")
    as_json: bool = Field(False, alias="json", description="print the summary as JSON")


class BuildCommand(BuildConfig, FlowOptions):
    """Build MM-GCoT-style examples from scene graphs, verify them and write a release (Parquet shards,
    MM-GCoT JSON, LLaVA conversations, data card, config.yaml).

    Examples:
      gcot build --source synthetic --images 300 --seed 7 --out releases/demo
      gcot build --source vg:/data/visual_genome --out releases/vg --runner dask --workers 4
      gcot build --config releases/demo/config.yaml --out releases/demo-again
    """

    CONFIG = BuildConfig
    def run(self) -> int:
        from pipeline.sources.base import SourceError
        from pipeline.steps import run_plain

        def flow():
            from gcot.flows.build_gcot import build_gcot

            return build_gcot

        s = _build(self.resolve(), self.prefect, flow, run_plain, (SourceError,))
        _print_summary(s, self.as_json)
        return 0


class BuildLongVCommand(LongVConfig, FlowOptions):
    """Videos -> adaptive keyframes (AdaFlow's clip cutting) -> detector + ByteTrack subjects -> caption
    and three edit prompts (foreground, background, style) -> a LongV-EVAL release with Parquet metadata,
    a data card and config.yaml.

    Examples:
      gcot build-longv --videos synthetic --count 3 --seed 0 --out releases/longv-demo
      gcot build-longv --videos /data/videos --detector /models/yolo11s.pt --out releases/longv
    """

    CONFIG = LongVConfig
    def run(self) -> int:
        from pipeline.longv.steps import run_plain
        from pipeline.longv.video import VideoError

        def flow():
            from gcot.flows.build_longv import build_longv_eval

            return build_longv_eval

        s = _build(self.resolve(), self.prefect, flow, run_plain, (VideoError,))
        if self.as_json:
            print(json.dumps(s, indent=2))
            return 0
        print(f"\nRelease written to {s['release']}")
        print(f"  videos: {s['videos']} ({s['frames']} frames, {s['clips']} clips), prompts: {s['prompts']} ({s['prompt_words_mean']} words on average)")
        ok = s["candidates"] == s["videos"] + s["rejected"]
        print(f"  files {s['candidates']} = released {s['videos']} + rejected {s['rejected']}" + ("" if ok else "  (DOES NOT RECONCILE)"))
        if s["rejected"]:
            print("  rejected: " + ", ".join(f"{k} {v}" for k, v in s["rejections_by_rule"].items()) + " (see rejections.jsonl)")
        _print_models(s)
        return 0


class ConvertCommand(Command):
    """Move records between MM-GCoT JSON, Arrow/Parquet releases and LLaVA conversations, or export a release
    for LLaMA-Factory or TRL.

    Examples:
      gcot convert path/to/mmgcot_dir --from mmgcot --to arrow --out releases/mmgcot-test --images /data
      gcot convert releases/demo --from arrow --to llava --out /tmp/llava
      gcot convert releases/demo --from arrow --to llamafactory --out exports/demo-llamafactory
    """

    input: CliPositionalArg[str] = Field(description="MM-GCoT: a GCoT_dataset_<type>_<split>.json file or a folder of them; arrow: a release folder")
    src: Literal["mmgcot", "arrow"] = Field(alias="from", description="input format")
    dst: Literal["arrow", "llava", "mmgcot", "llamafactory", "trl"] = Field(alias="to", description="output format (llamafactory: ShareGPT JSON + dataset_info.json + images/; trl: messages + images Parquet)")
    out: str = Field(description="output folder (replaced atomically): a new folder, or one this tool wrote with --overwrite")
    overwrite: bool = Field(False, description="replace the folder already at --out (only one this tool wrote; never the input or a folder it did not write)")
    images: str | None = Field(None, description="root under which each record's img path is found, to store image bytes in arrow output")
    strict: bool = Field(False, description="stop at the first malformed record or unreadable file (otherwise each is recorded in rejections.jsonl and the rest converted)")

    def run(self) -> int:
        from pipeline.convert import convert

        try:
            s = convert(self.input, self.src, self.dst, self.out, images=self.images, strict=self.strict, overwrite=self.overwrite)
        except (ValueError, FileNotFoundError) as e:
            raise CommandFailed(str(e)) from None
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


class EvalCommand(Command):
    """Answer accuracy, grounding accuracy (IoU > 0.5) and answer-grounding consistency CR/(CR+CM+WR) of a
    results file (JSON lines with text, gt_text, coor, gt_coor, img). --mode official reproduces the
    official script's numbers exactly; --mode strict is ours (robust parsing, explicit box formats,
    normalized answers, step-level grounding, per-type scores, bootstrap CIs).

    Examples:
      gcot eval --results results.jsonl --json
      gcot eval --results results.jsonl --mode strict --out report/
    """

    results: str = Field(description="results file, one JSON object a line")
    mode: Literal["official", "strict"] = Field("official", description="official: the official eval.py to the bit; strict: ours")
    model_format: Literal["llava", "qwen", "internvl"] | None = Field(None, description="how the model writes boxes. official: llava = as it is, qwen = absolute-pixel xyxy, internvl = xyxy on 0-1000 (default llava). strict: llava = normalized xyxy, qwen and internvl as official (default: normalized xywh, as MM-GCoT)")
    box_format: Literal[BOX_FORMATS] | None = Field(None, description="strict: the predicted box format outright (overrides --model-format and each line's own box_format, which run-model writes)")
    image_root: str | None = Field(None, description="folder the records' img paths are relative to (needed for absolute-pixel boxes)")
    synonyms: str | None = Field(None, description='strict: a JSON file of extra answer synonyms, e.g. {"timber": "wood"}')
    bootstrap: int = Field(1000, ge=0, description="strict: bootstrap resamples for the 95% CIs, 0 to skip")
    seed: int = Field(0, description="strict: bootstrap seed")
    out: str | None = Field(None, description="also write report.json, report.md and breakdown.png into this folder (a new one, or one this tool wrote with --overwrite)")
    overwrite: bool = Field(False, description="replace the report folder already at --out (only one this tool wrote)")
    as_json: bool = Field(False, alias="json", description="print one JSON object (answer_accuracy, grounding_accuracy, consistency in percent, unrounded)")

    def run(self) -> int:
        from core.guard import OutputGuard
        from core.shards import write_atomically
        from pipeline.evaluation import official, report, strict
        from pipeline.evaluation.results import read_results

        guard = OutputGuard(self.out, "gcot eval report", [("the results file", self.results), ("the image root", self.image_root)], overwrite=self.overwrite) if self.out else None
        try:
            if guard:
                guard.check()  # before the evaluation: a refused folder costs nothing
            records = read_results(self.results)
            if self.mode == "official":
                if self.box_format or self.synonyms:
                    raise CommandFailed("--box-format and --synonyms belong to --mode strict")
                r = {"mode": "official", "model_format": self.model_format or "llava", **official.evaluate(records, self.model_format or "llava", self.image_root)}
            else:
                synonyms = json.loads(Path(self.synonyms).read_text()) if self.synonyms else None
                r = {"model_format": self.model_format, **strict.evaluate(records, self.model_format, self.box_format, self.image_root, synonyms, self.bootstrap, self.seed)}
        except (ValueError, FileNotFoundError, OSError) as e:
            raise CommandFailed(str(e)) from None
        r = _finite({"results": str(self.results), **r})
        if guard:
            try:
                out = write_atomically(self.out, lambda tmp: report.write(r, tmp), guard)
            except ValueError as e:  # the folder changed meanwhile (OutputRefused)
                raise CommandFailed(str(e)) from None
            print(f"report written: {', '.join(str(out / n) for n in report.NAMES.values())}", file=sys.stderr)
        print(json.dumps(r) if self.as_json else report.markdown(r))
        return 0


class LongVMetricsCommand(Command):
    """Semantic consistency (mean cosine of adjacent frames' CLIP image embeddings) and object consistency
    (the same over DINO CLS features) of each video. Backbones come from local checkpoints; the offline
    default 'pixels' is not comparable to published numbers.

    Example:
      gcot longv-metrics releases/longv-demo/videos --sc-backbone clip:/models/clip --oc-backbone dino:/models/dinov2
    """

    videos: CliPositionalArg[list[str]] = Field(description="video files or folders of videos")
    sc_backbone: str = Field("pixels", description="clip:PATH (a local CLIP checkpoint) or pixels")
    oc_backbone: str = Field("pixels", description="dino:PATH (a local DINO/DINOv2 checkpoint) or pixels")
    every: int = Field(1, ge=1, description="use every n-th frame (1: all frames)")
    max_frames: int | None = Field(None, description="at most this many frames a video")
    as_json: bool = Field(False, alias="json", description="print JSON")

    def run(self) -> int:
        from pipeline.longv.metrics import load_backbone, video_consistency
        from pipeline.longv.video import VIDEO_EXTENSIONS, VideoError

        paths = []
        for v in self.videos:
            p = Path(v)
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS) if p.is_dir() else [p]
        try:
            sc = load_backbone(self.sc_backbone)
            oc = sc if self.oc_backbone == self.sc_backbone else load_backbone(self.oc_backbone)
            rows = [video_consistency(p, sc, oc, self.every, self.max_frames).__dict__ for p in paths]
        except (VideoError, ValueError, FileNotFoundError, OSError) as e:
            raise CommandFailed(str(e)) from None
        if not rows:
            raise CommandFailed("no videos given")
        summary = {"videos": rows, "mean_sc": sum(r["sc"] for r in rows) / len(rows), "mean_oc": sum(r["oc"] for r in rows) / len(rows),
                   "comparable_to_published": all(r["comparable"] for r in rows)}
        if self.as_json:
            print(json.dumps(summary, indent=2))
            return 0
        for r in rows:
            print(f"{r['video']}: SC {r['sc']:.4f} ({r['sc_backbone']})  OC {r['oc']:.4f} ({r['oc_backbone']})  frames {r['frames_used']}")
        print(f"mean: SC {summary['mean_sc']:.4f}  OC {summary['mean_oc']:.4f}")
        if not summary["comparable_to_published"]:
            print("note: an offline default backbone was used; these numbers are not comparable to the published CLIP/DINO values")
        return 0


class ServeCommand(Command):
    """Start a local Prefect server (unless one answers) and serve the deployments build-gcot/<name> and
    build-longv-eval/<name>, so that `prefect deployment run build-gcot/<name>` works from another shell
    (export PREFECT_API_URL=http://127.0.0.1:4200/api there first).

    Example:
      gcot serve --name local
    """

    host: str = Field("127.0.0.1", description="the Prefect server's host")
    port: int = Field(4200, description="the Prefect server's port")
    name: str = Field("local", description="deployment name")
    server: bool = Field(True, description="start a Prefect server (--no-server: use the one at PREFECT_API_URL)")

    def run(self) -> int:
        from gcot.flows.serve import serve_local

        return serve_local(self.host, self.port, self.name, start_server=self.server)


class Gcot(Root, cli_prog_name="gcot"):
    """gcot-forge: build, review, release, evaluate and train on grounded chain-of-thought data, and
    LongV-EVAL long-video edit prompts. `gcot COMMAND --help` describes every field of a command."""

    build: CliSubCommand[BuildCommand] = Field(description="build a GCoT release from scene graphs (the build-gcot flow)")
    build_longv: CliSubCommand[BuildLongVCommand] = Field(description="build a LongV-EVAL release from long videos (the build-longv-eval flow)")
    convert: CliSubCommand[ConvertCommand] = Field(description="convert records between MM-GCoT JSON, Arrow/Parquet releases and LLaVA conversations")
    eval: CliSubCommand[EvalCommand] = Field(description="the MM-GCoT consistency metrics of a results file")
    run_model: CliSubCommand[RunCommand] = Field(description="run an image-text model on a release split and write a results file")
    review: CliSubCommand[Review] = Field(description="Label Studio review: serve, push a release, pull the reviews into a new release")
    finetune: CliSubCommand[FinetuneCommand] = Field(description="fine-tune an image-text model on a release with PEFT LoRA (training/finetune.py)")
    pretrain: CliSubCommand[PretrainCommand] = Field(description="pretrain the offline grounding model on synthetic scenes (training/pretrain.py, make pretrain)")
    experiment: CliSubCommand[ExperimentCommand] = Field(description="MM-GCoT's experiment: fine-tune on plain rows vs GCoT rows, evaluate both (training/experiment.py, make experiment)")
    efficiency: CliSubCommand[EfficiencyCommand] = Field(description="an efficiency stage (fitprune, gprune, dyvte, gamma-mod, roe, flashsloth) on a fine-tuned model")
    tiny_model: CliSubCommand[TinyModelCommand] = Field(description="build the tiny offline LLaVA-style model (tokenizer trained on a release's train split)")
    detector: CliSubCommand[DetectorGroup] = Field(description="the shipped detector: train it on synthetic scenes")
    longv_metrics: CliSubCommand[LongVMetricsCommand] = Field(description="consistency metrics (SC, OC) of videos")
    serve: CliSubCommand[ServeCommand] = Field(description="a local Prefect server and the build-gcot / build-longv-eval deployments")
    scale: CliSubCommand[Scale] = Field(description="the scale-out profile: PostgreSQL, a Prefect server on it, a work pool and its workers, Label Studio on it")


# What `python -m pipeline` took before the one command.
OLD_NAMES = {"build-gcot": "build", "build-longv-eval": "build-longv", "eval-gcot": "eval", "run-gcot": "run-model"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in OLD_NAMES:
        argv[0] = OLD_NAMES[argv[0]]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("core", "pipeline", "data_cards", "annotation", "training", "gcot"):
        logging.getLogger(name).setLevel(os.environ.get("GCOT_LOG_LEVEL", "INFO"))
    return run(Gcot, argv)


if __name__ == "__main__":
    sys.exit(main())
