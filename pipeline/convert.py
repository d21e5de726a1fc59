"""Move records between the release formats: MM-GCoT JSON, Arrow/Parquet releases, LLaVA JSON, and out to
the trainers teams use: LLaMA-Factory (ShareGPT + dataset_info.json) and TRL (messages + images Parquet).

``python -m pipeline convert IN --from mmgcot --to arrow --out OUT [--images ROOT]``. Images are
optional: with ``--images ROOT`` each record's ``img`` path is read under ROOT and stored in the
Parquet shards; without it the ``image`` column is empty and ``img`` keeps the path.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.schema import Example, Rejection
from core.shards import write_atomically
from pipeline.release import arrow, llamafactory, llava, mmgcot, trl
from pipeline.release.writer import fill_release

log = logging.getLogger(__name__)
FORMATS_IN = ("mmgcot", "arrow")
FORMATS_OUT = ("arrow", "llava", "mmgcot", "llamafactory", "trl")


def read(path: str | Path, fmt: str, strict: bool = False) -> tuple[list[Example], list[Rejection]]:
    path = Path(path)
    if fmt == "mmgcot":
        return mmgcot.read_dir(path, strict=strict)
    if fmt == "arrow":
        files = sorted((path / "data").glob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"{path}: no Parquet shards under data/")
        return arrow.read_examples(files), []
    raise ValueError(f"cannot read format {fmt!r}; choose from {', '.join(FORMATS_IN)}")


def _image_bytes(source: str, images: str | Path | None):
    """Each example's image bytes: from the files under ``images`` if given, else from the source release's shards."""
    if images:
        root = Path(images)
        return lambda ex: (root / ex.image).read_bytes() if (root / ex.image).is_file() else None
    src = Path(source)
    files = sorted((src / "data").glob("*.parquet")) if src.is_dir() else [src] if src.suffix == ".parquet" else []
    stored = arrow.read_images(files) if files else {}
    return lambda ex: stored.get(ex.image)


def write(examples: list[Example], rejections: list[Rejection], out: str | Path, fmt: str, images: str | Path | None = None, source: str = "",
          strict: bool = False) -> Path:
    if fmt in ("llamafactory", "trl"):  # the trainers' formats: each row checked; rejected ones join ``rejections`` (and rejections.jsonl)
        exporter, found = (llamafactory if fmt == "llamafactory" else trl), _image_bytes(source, images)

        def export(tmp: Path) -> None:
            new = exporter.write_dir(examples, tmp, found)
            if strict and new:  # before anything is swapped into place
                raise ValueError(f"{new[0].file}: record {new[0].id} rejected ({new[0].rule}): {new[0].detail}")
            if new:
                (tmp / "rejections.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in new))
            rejections.extend(new)
        return write_atomically(out, export)
    if fmt == "mmgcot":
        return write_atomically(out, lambda tmp: mmgcot.write_dir(examples, tmp))
    if fmt == "llava":
        def fill(tmp: Path) -> None:
            for split in dict.fromkeys(e.split for e in examples):
                llava.write_split([e for e in examples if e.split == split], tmp / f"{split}.json")
        return write_atomically(out, fill)
    if fmt == "arrow":
        root = Path(images) if images else None

        def load_image(ex: Example) -> bytes | None:
            if root is None:
                return None
            f = root / ex.image
            if not f.is_file():
                raise FileNotFoundError(f"image {f} of record {ex.id} not found under --images {root}")
            return f.read_bytes()

        def image_size(ex: Example) -> int:
            return (root / ex.image).stat().st_size if root is not None and (root / ex.image).is_file() else 0

        meta = {"name": f"GCoT records converted from {source}", "source": source, "seed": "-", "command": f"python -m pipeline convert {source} --to arrow --out {Path(out).name}"}
        out_path = Path(out).resolve()
        return write_atomically(out, lambda tmp: fill_release(tmp, out_path, examples, rejections, len(examples) + len(rejections), meta, load_image, image_size))
    raise ValueError(f"cannot write format {fmt!r}; choose from {', '.join(FORMATS_OUT)}")


def convert(path: str | Path, src: str, dst: str, out: str | Path, images: str | Path | None = None, strict: bool = False) -> dict:
    examples, rejections = read(path, src, strict=strict)
    written = write(examples, rejections, out, dst, images=images, source=str(path), strict=strict)
    for r in rejections:
        log.warning("%s: record %s rejected (%s): %s", r.file, r.id, r.rule, r.detail)
    return {"out": str(written), "records": len(examples), "rejected": len(rejections)}
