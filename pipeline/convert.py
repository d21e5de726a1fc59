"""Move records between the release formats: MM-GCoT JSON, Arrow/Parquet releases, LLaVA JSON, and out to
the trainers teams use: LLaMA-Factory (ShareGPT + dataset_info.json) and TRL (messages + images Parquet).

``gcot convert IN --from mmgcot --to arrow --out OUT [--images ROOT]``. Images are optional: with
``--images ROOT`` each record's ``img`` path is read under ROOT and stored in the Parquet shards; without it
the ``image`` column is empty and ``img`` keeps the path.

Every output format carries ``rejections.jsonl``: each record that was not converted, and each file of the
input folder that could not be read at all (``unreadable_file``: malformed JSON, not a list, a broken Parquet
shard), with the file and the reason; the conversion goes on past them (``--strict`` stops at the first).
The output folder is guarded (`core.guard`): never a folder the tool did not write, never the input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from datasets.exceptions import DatasetGenerationError

from core.guard import OutputGuard
from core.schema import Example, Rejection
from core.shards import write_atomically
from pipeline.release import arrow, llamafactory, llava, mmgcot, trl
from pipeline.release.writer import fill_release

log = logging.getLogger(__name__)
FORMATS_IN = ("mmgcot", "arrow")
FORMATS_OUT = ("arrow", "llava", "mmgcot", "llamafactory", "trl")
KINDS = {"arrow": "converted release (arrow)", "llava": "converted set (llava)", "mmgcot": "converted set (mmgcot)",
         "llamafactory": "converted set (llamafactory)", "trl": "converted set (trl)"}


def input_files(path: Path, fmt: str) -> list[Path]:
    """The files a conversion reads: ``path`` itself, or the format's files in the folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted(path.glob("GCoT_dataset_*.json")) if fmt == "mmgcot" else sorted((path / "data").glob("*.parquet"))
    if not files:
        raise ValueError(f"{path}: no GCoT_dataset_<type>_<split>.json files" if fmt == "mmgcot" else f"{path}: no Parquet shards under data/")
    return files


def _read_file(f: Path, fmt: str, strict: bool) -> tuple[list[Example], list[Rejection]]:
    if fmt == "mmgcot":
        return mmgcot.read_dir(f, strict=strict)
    return arrow.read_examples([f]), []


def read(path: str | Path, fmt: str, strict: bool = False) -> tuple[list[Example], list[Rejection]]:
    """The records of every readable file; a file that cannot be read is one ``unreadable_file``
    rejection and the others are still read (``strict``: it stops the conversion)."""
    if fmt not in FORMATS_IN:
        raise ValueError(f"cannot read format {fmt!r}; choose from {', '.join(FORMATS_IN)}")
    path = Path(path)
    examples, rejections = [], []
    for f in input_files(path, fmt):
        try:
            e, r = _read_file(f, fmt, strict)
        except (ValueError, OSError, DatasetGenerationError) as err:  # malformed JSON, not a list, a broken shard
            cause = err.__cause__ if isinstance(err, DatasetGenerationError) and err.__cause__ else err  # datasets wraps pyarrow's error
            if strict:
                raise ValueError(str(cause) if str(f) in str(cause) else f"{f}: {cause}") from None
            detail = str(cause).removeprefix(f"{f}: ")
            log.warning("%s: not read (%s); the other files go on", f, detail)
            rejections.append(Rejection("convert", f.name, "unreadable_file", detail, str(f)))
            continue
        examples += e
        rejections += r
    return examples, rejections


def _image_bytes(source: str, images: str | Path | None):
    """Each example's image bytes: from the files under ``images`` if given, else from the source release's shards."""
    if images:
        root = Path(images)
        return lambda ex: (root / ex.image).read_bytes() if (root / ex.image).is_file() else None
    src = Path(source)
    files = sorted((src / "data").glob("*.parquet")) if src.is_dir() else [src] if src.suffix == ".parquet" else []
    stored = arrow.read_images(files) if files else {}
    return lambda ex: stored.get(ex.image)


def _write_rejections(rejections: list[Rejection], path: Path) -> None:
    path.write_text("".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejections))


def write(examples: list[Example], rejections: list[Rejection], out: str | Path, fmt: str, images: str | Path | None = None, source: str = "",
          strict: bool = False, guard: OutputGuard | None = None) -> Path:
    if fmt not in FORMATS_OUT:
        raise ValueError(f"cannot write format {fmt!r}; choose from {', '.join(FORMATS_OUT)}")
    guard = guard or OutputGuard(out, KINDS[fmt], [("the input being converted", source or None), ("the images folder", images)])
    if fmt in ("llamafactory", "trl"):  # the trainers' formats: each row checked; rejected ones join ``rejections`` (and rejections.jsonl)
        exporter, found = (llamafactory if fmt == "llamafactory" else trl), _image_bytes(source, images)

        def export(tmp: Path) -> None:
            new = exporter.write_dir(examples, tmp, found)
            if strict and new:  # before anything is swapped into place
                raise ValueError(f"{new[0].file}: record {new[0].id} rejected ({new[0].rule}): {new[0].detail}")
            rejections.extend(new)
            _write_rejections(rejections, tmp / "rejections.jsonl")
        return write_atomically(out, export, guard)
    if fmt == "mmgcot":
        def fill(tmp: Path) -> None:
            mmgcot.write_dir(examples, tmp)
            _write_rejections(rejections, tmp / "rejections.jsonl")
        return write_atomically(out, fill, guard)
    if fmt == "llava":
        def fill(tmp: Path) -> None:
            for split in dict.fromkeys(e.split for e in examples):
                llava.write_split([e for e in examples if e.split == split], tmp / f"{split}.json")
            _write_rejections(rejections, tmp / "rejections.jsonl")
        return write_atomically(out, fill, guard)
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
    return write_atomically(out, lambda tmp: fill_release(tmp, out_path, examples, rejections, len(examples) + len(rejections), meta, load_image, image_size), guard)


def convert(path: str | Path, src: str, dst: str, out: str | Path, images: str | Path | None = None, strict: bool = False, overwrite: bool = False) -> dict:
    """Read ``path`` in format ``src``, write ``out`` in ``dst``; the counts: records converted, records and
    files rejected (every input record is one or the other; an unreadable file counts once)."""
    if dst not in FORMATS_OUT:
        raise ValueError(f"cannot write format {dst!r}; choose from {', '.join(FORMATS_OUT)}")
    guard = OutputGuard(out, KINDS[dst], [("the input being converted", path), ("the images folder", images)], overwrite=overwrite)
    guard.check()  # before reading anything
    examples, rejections = read(path, src, strict=strict)
    read_rejections = len(rejections)
    written = write(examples, rejections, out, dst, images=images, source=str(path), strict=strict, guard=guard)  # the exports add theirs
    exported = len(examples) - (len(rejections) - read_rejections)  # a trainer's format may refuse records it read
    for r in rejections:
        if r.rule != "unreadable_file":  # logged when it was met
            log.warning("%s: record %s rejected (%s): %s", r.file, r.id, r.rule, r.detail)
    files = sum(1 for r in rejections if r.rule == "unreadable_file")
    return {"out": str(written), "records": exported, "rejected": len(rejections) - files, "files_rejected": files}
