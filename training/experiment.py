"""MM-GCoT's headline experiment, reproduced small: does training on grounded chains raise
answer-grounding consistency?

    python training/experiment.py                     (make experiment)
    python training/experiment.py --steps 300 --out runs/gcot-experiment --overwrite

From one starting checkpoint (default: the shipped grounding model, `training/pretrain.py`) and one step
budget, fine-tune (a) on the release's plain answer rows and (b) on its GCoT rows (``_cot``), each with
`training/finetune.py` (same seed, same LoRA, same batches drawn from its own rows). Both run the whole
test split in the three protocols (answer-first, grounding-first, gcot), scored in official mode. The
table gives answer accuracy, grounding accuracy, consistency and step recall with 95 % bootstrap
intervals, and the paired difference (b) - (a) over the same test questions with its own interval.

Writes ``<out>/plain/`` and ``<out>/cot/`` (fine-tuning runs), ``results.json``, ``table.md`` and
``consistency.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import env  # noqa: E402

env.apply()

import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402

from core.cli import CommandFailed, ConfigCommand, single  # noqa: E402
from core.config import Config  # noqa: E402
from core.guard import OutputGuard, OutputRefused, prepare_run_folder  # noqa: E402
from training.generate import PROTOCOLS  # noqa: E402
from training.pretrain import SHIPPED  # noqa: E402

VARIANTS = {"plain": "(a) plain answer rows", "cot": "(b) GCoT rows (_cot)"}
METRICS = ("answer_accuracy", "grounding_accuracy", "consistency")
OWNED = ("plain", "cot", "results.json", "table.md", "consistency.png", "config.yaml")


class ExperimentConfig(Config):
    """Plain rows against GCoT rows, from the same start and step budget, on a release's test split."""

    data: str = Field("releases/demo", description="the release: its train split is fine-tuned on, its test split evaluated")
    model: str = Field(SHIPPED, description="the starting checkpoint of both variants (a local image-text-to-text checkpoint, or tiny)")
    out: str = Field("runs/gcot-experiment", description="the experiment folder: both fine-tuning runs, results.json, table.md, consistency.png")
    overwrite: bool = Field(False, description="replace the experiment already at --out (only one this tool wrote)")
    steps: int = Field(400, ge=1, description="optimizer steps of each variant (the same budget)")
    batch_size: int = Field(8, ge=1, description="conversations a step")
    lr: float = Field(1e-3, gt=0, description="learning rate of both variants")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    eval_limit: int = Field(100_000, ge=1, description="test samples evaluated (default: the whole split)")
    bootstrap: int = Field(2000, ge=100, description="bootstrap resamples of the intervals")
    seed: int = Field(0, description="seed of both fine-tuning runs and of the bootstrap")


class ExperimentCommand(ExperimentConfig, ConfigCommand):
    """Fine-tune one checkpoint on plain rows and on GCoT rows with the same budget, evaluate both on the
    test split in the three MM-GCoT protocols (official mode), print the table with 95 % intervals.

    Examples:
      gcot experiment
      gcot experiment --steps 300 --out runs/gcot-experiment --overwrite
    """

    CONFIG = ExperimentConfig

    def run(self) -> int:
        cfg = self.resolve()
        if cfg.model != "tiny" and not (Path(cfg.model) / "config.json").is_file():
            raise CommandFailed(f"{cfg.model}: no checkpoint there (no config.json); build the grounding model with `make pretrain`, or give --model PATH (or tiny)")
        inputs = [("the release", cfg.data)] + ([("the model", cfg.model)] if Path(cfg.model).exists() else [])
        guard = OutputGuard(cfg.out, "GCoT experiment", inputs, overwrite=cfg.overwrite, owned=OWNED)
        try:
            state = guard.check()
        except OutputRefused as e:
            raise CommandFailed(str(e)) from None
        prepare_run_folder(guard, state)
        print(run(cfg))
        return 0


def finetune_config(cfg: ExperimentConfig, rows: str):
    from training.finetune import FinetuneConfig

    return FinetuneConfig(
        data=cfg.data, model=cfg.model, out=str(Path(cfg.out) / rows), overwrite=True, max_steps=cfg.steps, batch_size=cfg.batch_size,
        lr=cfg.lr, warmup_steps=min(20, cfg.steps // 10), lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, modules_to_save=["lm_head", "projector"],
        box_format="normalized", rows=rows, protocols=list(PROTOCOLS), eval_limit=cfg.eval_limit, save_every=cfg.steps, seed=cfg.seed,
    )


def sample_scores(path: Path) -> tuple[np.ndarray, np.ndarray, list, int]:
    """Per test sample (official mode): answer right, box IoU > 0.5; the question ids, in file order; and
    how many lines would stop the official script (a box of more than four numbers): scored as a missed
    box here, and counted, since the official script gives no number at all for such a file."""
    from pipeline.evaluation import official
    from pipeline.evaluation.results import read_results

    recs = read_results(path)
    correct, grounded, crashes = [], [], 0
    for r in recs:
        try:
            s = official.score_sample(r)
            correct.append(s.answer_correct)
            grounded.append(s.grounded)
        except official.OfficialScriptWouldFail:
            crashes += 1
            correct.append(official.answer_correct(r["text"], r["gt_text"]))
            grounded.append(False)
    return np.array(correct, dtype=bool), np.array(grounded, dtype=bool), [r["question_id"] for r in recs], crashes


def paired_bootstrap(a: tuple, b: tuple, samples: int, seed: int) -> dict:
    """Each variant's metrics with 95 % intervals, and (b) - (a) over the same resampled questions
    (`strict.resampled` with one seed draws the same resamples for both)."""
    from pipeline.evaluation import strict

    if len(a[0]) != len(b[0]):
        raise ValueError(f"a paired bootstrap needs the same questions: {len(a[0])} results against {len(b[0])}")
    ra, rb = strict.resampled(*a, samples, seed), strict.resampled(*b, samples, seed)
    ma, mb = strict.metrics(*a), strict.metrics(*b)

    def ci(v):
        interval = strict.percentile_ci(v)
        return None if interval is None else [round(x, 2) for x in interval]

    return {name: {"plain_ci95": ci(ra[name]), "cot_ci95": ci(rb[name]), "diff": round(float(mb[name] - ma[name]), 2), "diff_ci95": ci(rb[name] - ra[name])}
            for name in METRICS}


def step_recall(path: Path) -> float | None:
    from pipeline.evaluation import strict
    from pipeline.evaluation.results import read_results

    steps = strict.evaluate(read_results(path), bootstrap=0).get("steps")
    return None if not steps else round(steps["recall"], 1)


def run(cfg: ExperimentConfig) -> Path:
    from pipeline.evaluation import strict
    from training.finetune import train

    out = Path(cfg.out)
    (out / "config.yaml").write_text(cfg.to_yaml(f"resolved config; rerun: gcot experiment --config {out / 'config.yaml'}", exclude=("overwrite",)))
    for rows in VARIANTS:
        train(finetune_config(cfg, rows))
    results: dict = {"config": cfg.model_dump(mode="json", exclude={"overwrite"}), "protocols": {}}
    for protocol in PROTOCOLS:
        runs = {rows: sample_scores(out / rows / "eval" / f"{protocol}.jsonl") for rows in VARIANTS}
        if runs["plain"][2] != runs["cot"][2]:
            raise ValueError(f"{protocol}: the two variants were evaluated on different questions")
        entry = {"n": len(runs["plain"][2]), "paired": paired_bootstrap(runs["plain"][:2], runs["cot"][:2], cfg.bootstrap, cfg.seed)}
        for rows in VARIANTS:
            m = strict.metrics(*runs[rows][:2])
            entry[rows] = {name: round(float(m[name]), 2) for name in METRICS}
            entry[rows]["official_would_fail"] = runs[rows][3]
            entry[rows]["step_recall"] = step_recall(out / rows / "eval" / f"{protocol}.jsonl") if protocol == "gcot" else None
        results["protocols"][protocol] = entry
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "table.md").write_text(table(results))
    plot(results, out / "consistency.png")
    return out / "table.md"


def _cell(value, ci) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def table(results: dict) -> str:
    c = results["config"]
    lines = [
        f"# Plain rows against GCoT rows ({c['steps']} steps each from `{c['model']}`, test split of `{c['data']}`, official mode)",
        "",
        "| protocol | training rows | answer acc. | grounding acc. | consistency | step recall |",
        "|---|---|---|---|---|---|",
    ]
    for protocol, e in results["protocols"].items():
        for rows, label in VARIANTS.items():
            m, p = e[rows], e["paired"]
            cells = [_cell(m[k], p[k][f"{rows}_ci95"]) for k in METRICS]
            lines.append(f"| {protocol} (n={e['n']}) | {label} | {' | '.join(cells)} | {_cell(m['step_recall'], None)} |")
        p = e["paired"]
        lines.append(f"| {protocol} | (b) - (a) | " + " | ".join(_cell(p[k]["diff"], p[k]["diff_ci95"]) for k in METRICS) + " | |")
    lines += ["", "95 % percentile bootstrap intervals in brackets; (b) - (a) resamples the same test questions for both variants."]
    crashes = {f"{p} {rows}": e[rows]["official_would_fail"] for p, e in results["protocols"].items() for rows in VARIANTS if e[rows]["official_would_fail"]}
    if crashes:
        lines.append("Lines with a box of more than four numbers (the official script stops on them; scored here as missed boxes): "
                     + ", ".join(f"{k} {v}" for k, v in crashes.items()) + ".")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(results["protocols"])
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.38
    for k, (rows, label) in enumerate(VARIANTS.items()):
        vals = [results["protocols"][p][rows]["consistency"] for p in protocols]
        cis = [results["protocols"][p]["paired"]["consistency"][f"{rows}_ci95"] or [v, v] for p, v in zip(protocols, vals)]
        err = np.array([[v - lo for v, (lo, _) in zip(vals, cis)], [hi - v for v, (_, hi) in zip(vals, cis)]])
        ax.bar(np.arange(len(protocols)) + (k - 0.5) * width, vals, width, yerr=err, capsize=3, label=label)
    ax.set_xticks(np.arange(len(protocols)), protocols)
    ax.set_ylabel("answer-grounding consistency (%)")
    ax.set_title("Consistency after fine-tuning, 95 % intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return single(ExperimentCommand, "python training/experiment.py", argv)


if __name__ == "__main__":
    sys.exit(main())
