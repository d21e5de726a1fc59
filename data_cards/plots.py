"""PNG plots for the data card (matplotlib, headless, no timestamps in the files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_META = {"Software": None}  # keep the PNG bytes free of version strings: same data, same file
TYPE_COLORS = {"attribute": "#4C72B0", "judge": "#DD8452", "object": "#55A868"}


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=_META)
    plt.close(fig)
    return path.name


def render(stats: dict, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}

    fig, ax = plt.subplots(figsize=(6, 3.2))
    splits = [s for s, c in stats["per_split_type"].items() if sum(c.values())]
    bottom = [0] * len(splits)
    for t, color in TYPE_COLORS.items():
        vals = [stats["per_split_type"][s][t] for s in splits]
        ax.bar(splits, vals, bottom=bottom, label=t, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("examples")
    ax.set_title("Examples per split and question type")
    ax.legend()
    files["types"] = _save(fig, out / "types_per_split.png")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    lengths = sorted({k for c in stats["steps_per_chain"].values() for k in c})
    width = 0.27
    for i, (t, color) in enumerate(TYPE_COLORS.items()):
        c = stats["steps_per_chain"][t]
        ax.bar([x + (i - 1) * width for x in lengths], [c.get(k, 0) for k in lengths], width, label=t, color=color)
    ax.set_xticks(lengths)
    ax.set_xlabel("steps per chain")
    ax.set_ylabel("examples")
    ax.set_title("Chain length")
    ax.legend()
    files["steps"] = _save(fig, out / "steps_per_chain.png")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (t, color) in zip(axes, TYPE_COLORS.items()):
        top = list(stats["answers"][t].items())[:12]
        ax.barh([a for a, _ in top][::-1], [n for _, n in top][::-1], color=color)
        ax.set_title(f"{t} answers")
    files["answers"] = _save(fig, out / "answers.png")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = stats["box_area_bins"]
    labels = [f"{bins[i]:g}-{bins[i + 1]:g}" for i in range(len(bins) - 1)]
    ax.bar(labels, stats["box_area_hist"], color="#8172B3")
    ax.set_xlabel("box area (fraction of the image)")
    ax.set_ylabel("step boxes")
    ax.set_title("Box sizes")
    files["boxes"] = _save(fig, out / "box_sizes.png")
    return files


def render_longv(items: list, release: Path, out: Path) -> dict[str, str]:
    """A timeline of each video's clips and keyframes, and a contact sheet of the keyframes."""

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if not items:
        return files
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(items)))
    palette = ("#4C72B0", "#DD8452")
    for row, item in enumerate(items):
        for k, c in enumerate(item.clips):
            ax.barh(row, (c.end - c.start + 1) / item.fps, left=c.start / item.fps, color=palette[k % 2], height=0.6)
            ax.plot([c.keyframe / item.fps], [row], marker="v", color="black", markersize=5)
    ax.set_yticks(range(len(items)), [i.id for i in items])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (bars: clips; triangles: keyframes)")
    ax.set_title("Adaptive clips and keyframes per video")
    files["clips"] = _save(fig, out / "clips.png")

    sheet = keyframe_sheet(items, release / "keyframes")
    if sheet is not None:
        sheet.save(out / "keyframes.png", optimize=False)
        files["keyframes"] = "keyframes.png"
    return files


SHEET_VIDEOS, SHEET_FRAMES = 12, 8  # the sheet shows the first 8 keyframes of the first 12 videos
CELL = (160, 90)  # each keyframe is fitted into a cell this size, its aspect kept
GAP, LABEL = 6, 70  # white space between cells; the column of video ids


def keyframe_sheet(items: list, keyframes_dir: Path):
    """A contact sheet: one row per video (its id on the left), each keyframe in its own cell with a
    gap around it and its frame number under it, so that neighbouring keyframes of one shot never read
    as one wide picture, and every frame keeps its aspect ratio. None when no keyframe exists."""
    from PIL import Image, ImageDraw, ImageFont

    rows = [(item.id, sorted((keyframes_dir / item.id).glob("*.jpg"))[:SHEET_FRAMES]) for item in items[:SHEET_VIDEOS]]
    rows = [(vid, paths) for vid, paths in rows if paths]
    if not rows:
        return None
    font = ImageFont.load_default()
    cw, ch = CELL
    row_h = ch + 14 + GAP  # the cell, its frame number, the gap
    columns = max(len(paths) for _, paths in rows)
    sheet = Image.new("RGB", (LABEL + columns * (cw + GAP), GAP + len(rows) * row_h), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (vid, paths) in enumerate(rows):
        y = GAP + r * row_h
        draw.text((GAP, y + ch // 2 - 6), vid, fill="black", font=font)
        for k, path in enumerate(paths):
            x = LABEL + k * (cw + GAP)
            with Image.open(path) as im:
                thumb = im.convert("RGB")
            thumb.thumbnail(CELL, Image.Resampling.LANCZOS)  # fits the cell, aspect kept
            sheet.paste(thumb, (x + (cw - thumb.width) // 2, y + (ch - thumb.height) // 2))
            draw.text((x, y + ch + 1), f"frame {int(path.stem)}", fill="dimgray", font=font)
    return sheet
