"""Render a release's data card (README.md with YAML metadata for `datasets` and the Hub)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from data_cards import plots

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["mb"] = lambda b: f"{b / 2**20:.1f} MB"
    env.filters["pct"] = lambda x: f"{100 * x:.1f} %"
    return env


def render_gcot_card(release: Path, stats: dict, meta: dict, sizes: dict) -> str:
    """Write plots under ``release/plots`` and return the card's text."""
    files = plots.render(stats, release / "plots")
    return _env().get_template("gcot_card.md.j2").render(stats=stats, meta=meta, sizes=sizes, plots=files)
