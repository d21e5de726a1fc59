"""Render a release's data card (README.md with YAML metadata for `datasets` and the Hub)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from data_cards import plots, quality

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["mb"] = lambda b: f"{b / 2**20:.1f} MB"
    env.filters["pct"] = lambda x: f"{100 * x:.1f} %"
    return env


def render_gcot_card(release: Path, stats: dict, meta: dict, sizes: dict) -> str:
    """Write plots under ``release/plots`` and return the card's text."""
    files = plots.render(stats, release / "plots")
    files["quality"] = quality.render_plot(stats["quality"], release / "plots")
    return _env().get_template("gcot_card.md.j2").render(stats=stats, meta=meta, sizes=sizes, plots=files)


def render_longv_card(release: Path, items: list, stats: dict, meta: dict) -> str:
    """LongV-EVAL card: plots of clips and keyframes under ``release/plots``; returns the text."""
    files = plots.render_longv(items, release, release / "plots")
    return _env().get_template("longv_card.md.j2").render(items=items, stats=stats, meta=meta, plots=files)
