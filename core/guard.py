"""The output guard: a command writes a folder only where that cannot destroy what the tool did not write.

Every folder the tool writes (a release, a converted set, a reviewed release, a fine-tuning or efficiency
run) carries a marker, ``.gcot-forge.json``, naming its kind and, for a folder written whole, every file
in it. Before anything is moved, `OutputGuard.check` decides on the ``--out`` path:

- it does not exist, or is an empty folder: written;
- it holds our marker: replaced only with ``--overwrite``, and only when it holds nothing the marker does
  not account for (a user's notes dropped into a release are never deleted: the run is refused, naming them);
  a run folder (fine-tuning, efficiency) is continued with ``--resume``, and one that was only prepared (a
  base model put in it, no ``config.yaml`` yet) is written into as it is;
- it has no marker but looks like a release of ours from before the marker (``README.md``, ``stats.json``,
  ``rejections.jsonl`` and only names our release writers use): replaced only with ``--overwrite``, with a
  warning. Convert outputs and run folders of that time are not recognised: too little sets them apart;
- anything else (a file, a folder the tool did not write): refused, ``--overwrite`` or not;
- it is, holds or lies inside an input of the command (the source folder, an ``images:`` folder, a release
  being converted or pulled, a model being tuned): refused.

Every refusal is an `OutputRefused` (a ``ValueError``: the commands print it as one line) saying what was
found, that nothing was changed and what to do.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".gcot-forge.json"
TOOL = "gcot-forge"
# What the release writers put at the top of a release before releases carried the marker.
LEGACY_RELEASE_NAMES = frozenset({
    "README.md", "config.yaml", "data", "mmgcot", "llava", "plots", "rejections.jsonl", "review_queue.jsonl",
    "review_report.json", "stats.json", "videos", "foreground", "background", "style", "keyframes",
})
LEGACY_RELEASE_SIGNATURE = frozenset({"README.md", "stats.json", "rejections.jsonl"})
RUN_STARTED = "config.yaml"  # a run folder holds its resolved config from the run's first moment


class OutputRefused(ValueError):
    """The output path would destroy or mix with something: what was found and what to do."""


def _within(p: Path, root: Path) -> bool:
    return p == root or p.is_relative_to(root)


def _listing(folder: Path, names: Iterable[str] | None = None, limit: int = 5) -> str:
    names = sorted(names if names is not None else os.listdir(folder))
    shown = [n + ("/" if (folder / n).is_dir() and not (folder / n).is_symlink() else "") for n in names[:limit]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _file_above(path: Path) -> Path | None:
    """The nearest existing parent of ``path`` when it is a file, not a folder (nothing can be written there)."""
    parent = next((p for p in path.parents if p.exists()), None)
    return parent if parent is not None and not parent.is_dir() else None


def files_below(folder: Path) -> list[str]:
    """Every file (and symbolic link) below ``folder``, as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        out += [(base / n).as_posix() for n in filenames]
        out += [(base / n).as_posix() for n in dirnames if (Path(dirpath) / n).is_symlink()]  # not followed
    return sorted(p for p in out if p != MARKER)


def marker_text(kind: str, files: list[str] | None) -> str:
    """The marker's bytes: the kind and, for a folder written whole, its files (same files, same bytes)."""
    body = {"tool": TOOL, "kind": kind, **({"files": files} if files is not None else {})}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def write_marker(folder: Path, kind: str, manifest: bool = True) -> None:
    """Mark ``folder`` as written by this tool; ``manifest``: list every file now in it (written last)."""
    (folder / MARKER).write_text(marker_text(kind, files_below(folder) if manifest else None))


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` if it holds one of ours; None if it holds none; raises if it is not ours."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("tool") != TOOL or not isinstance(data.get("kind"), str):
        raise OutputRefused(f"{folder}: its {MARKER} is not one this tool writes; nothing was changed. Remove the folder yourself, or choose another.")
    return data


class OutputGuard:
    """Where a command may write its folder ``out``.

    ``kind`` names what is written ("gcot release", "fine-tuning run", ...); ``inputs`` are (role, path)
    pairs the command reads; ``owned`` are glob patterns of the top-level names a run folder (one written
    in place, without a file list in its marker) may hold.
    """

    def __init__(self, out: str | Path, kind: str, inputs: Iterable[tuple[str, str | Path | None]] = (), overwrite: bool = False,
                 owned: tuple[str, ...] | None = None, flag: str = "--out"):
        self.out = Path(out).expanduser().resolve()  # symbolic links followed: the folder a write replaces
        self.kind, self.overwrite, self.owned, self.flag = kind, overwrite, owned, flag
        self.inputs = [(role, Path(p).expanduser().resolve()) for role, p in inputs if p]

    def __repr__(self) -> str:
        return f"OutputGuard({str(self.out)!r}, {self.kind!r}, overwrite={self.overwrite})"

    def _refuse(self, what: str, todo: str) -> OutputRefused:
        return OutputRefused(f"{self.flag} {self.out} {what}. Nothing was changed; {todo}.")

    def check_inputs(self) -> None:
        for role, p in self.inputs:
            if self.out == p:
                raise self._refuse(f"is {role}, which this command reads: the {self.kind} would replace it", "choose a folder outside it")
            if _within(p, self.out):
                raise self._refuse(f"holds {role} ({p}), which this command reads: replacing {self.out} would delete it", f"choose a folder that does not hold {p}")
            if _within(self.out, p):
                raise self._refuse(f"lies inside {role} ({p}), which this command reads: the {self.kind} would mix with it and a later run would read it back",
                                   f"choose a folder outside {p}")

    def check_work_dir(self, work: str | Path, flag: str = "--work-dir") -> None:
        """A work folder (caches, rendered scenes) may lie inside neither an input (a later run would read
        it as input) nor the output (replacing the output would delete it)."""
        work = Path(work).expanduser().resolve()
        for role, p in self.inputs:
            if _within(work, p):
                raise OutputRefused(f"{flag} {work} lies inside {role} ({p}), which this command reads: a later run would read the work files as input. "
                                    f"Nothing was changed; choose a work folder outside {p}.")
        if _within(work, self.out):
            raise OutputRefused(f"{flag} {work} lies inside {self.flag} {self.out}: writing the {self.kind} would delete it. "
                                f"Nothing was changed; choose a work folder outside {self.out}.")

    def check(self, resume: bool = False) -> str:
        """What ``out`` holds: "absent", "empty", "ours" or "legacy" (an old release of ours, --overwrite
        given); raises `OutputRefused` where writing there is not allowed. ``resume``: a run folder is to be
        continued in place (no --overwrite needed, nothing replaced)."""
        self.check_inputs()
        out = self.out
        blocker = _file_above(out)
        if blocker is not None:
            raise self._refuse(f"lies under {blocker}, which is a file", "choose a folder path")
        if os.path.lexists(out) and not out.exists():
            raise self._refuse("is a broken symbolic link", "remove the link or choose another folder")
        if not out.exists():
            if resume:
                raise self._refuse(f"does not exist: there is no {self.kind} to resume", "drop --resume to start one")
            return "absent"
        if not out.is_dir():
            raise self._refuse("is a file, not a folder", f"give {self.flag} a new folder (or one this tool wrote)")
        names = sorted(os.listdir(out))
        if not names:
            if resume:
                raise self._refuse(f"is empty: there is no {self.kind} to resume", "drop --resume to start one")
            return "empty"
        marker = read_marker(out)
        if resume and self.overwrite:
            raise self._refuse("was given with both --resume and --overwrite", "pass one: --resume continues the run, --overwrite replaces it")
        if marker is not None:
            foreign = self._foreign(marker)
            if foreign:
                raise self._refuse(f"holds a {marker['kind']} written by this tool, and files it did not write ({_listing(out, foreign)})",
                                   f"move them out of {out}, or choose another folder")
            started = self.owned is None or RUN_STARTED in names  # a run folder prepared (a base model put in it) but no run yet
            if started and not (self.overwrite or resume):
                raise self._refuse(f"already holds a {marker['kind']} written by this tool", "pass --overwrite to replace it, or choose another folder")
            return "ours"
        if self._looks_like_legacy(names):
            if not (self.overwrite or resume):
                raise self._refuse(f"looks like a {self.kind} written by an earlier version of this tool (before folders carried {MARKER}): it holds {_listing(out, names)}",
                                   "pass --overwrite to replace it (you will be warned), or choose another folder")
            log.warning("%s: no %s marker, but it holds only what an earlier version wrote (%s); %s it", out, MARKER, _listing(out, names), "continuing" if resume else "replacing")
            return "legacy"
        raise self._refuse(f"is a folder this tool did not write (it holds {_listing(out, names)})",
                           f"the tool only replaces folders it wrote itself (they carry {MARKER}), --overwrite or not: choose a new folder, or empty this one yourself")

    def _foreign(self, marker: dict) -> list[str]:
        """What ``out`` holds that the marker does not account for."""
        files = marker.get("files")
        if files is not None:
            listed = set(files)
            return [f for f in files_below(self.out) if f not in listed]
        owned = self.owned or ()
        return [n for n in sorted(os.listdir(self.out)) if n != MARKER and not any(fnmatch.fnmatchcase(n, pat) for pat in owned)]

    def _looks_like_legacy(self, names: list[str]) -> bool:
        if self.owned is not None:  # a run folder: its config.yaml and only what a run writes
            return RUN_STARTED in names and all(any(fnmatch.fnmatchcase(n, pat) for pat in self.owned) for n in names)
        return LEGACY_RELEASE_SIGNATURE <= set(names) <= LEGACY_RELEASE_NAMES


def check_output_file(out: str | Path, kind: str, inputs: Iterable[tuple[str, str | Path | None]] = (), overwrite: bool = False,
                      flag: str = "--out", beside: tuple[str, ...] = ()) -> Path:
    """Where a command may write one file (a results file, detector weights): not a folder, not an input
    nor inside an input folder, and an existing file only with ``--overwrite`` (a file carries no marker,
    so its name is all there is to go by). ``beside``: names the command also writes next to it
    (a weights file's metrics.json), held to the same rule. Returns the resolved path."""
    out = Path(out).expanduser().resolve()
    for role, p in ((r, Path(p).expanduser().resolve()) for r, p in inputs if p):
        if out == p or _within(out, p):
            raise OutputRefused(f"{flag} {out} {'is' if out == p else 'lies inside'} {role} ({p}), which this command reads. Nothing was changed; choose a path outside it.")
    blocker = _file_above(out)
    if blocker is not None:
        raise OutputRefused(f"{flag} {out} lies under {blocker}, which is a file. Nothing was changed; choose another path.")
    if out.is_dir():
        raise OutputRefused(f"{flag} {out} is a folder; the {kind} is one file. Nothing was changed; give {flag} a file path.")
    taken = [f for f in (out, *(out.parent / n for n in beside)) if os.path.lexists(f)]
    if taken and not overwrite:
        names = ", ".join(str(f) for f in taken)
        raise OutputRefused(f"{flag} {out}: {names} already exist{'s' if len(taken) == 1 else ''}. Nothing was changed; pass --overwrite to replace "
                            f"{'it' if len(taken) == 1 else 'them'}, or choose another path.")
    return out


def prepare_run_folder(guard: OutputGuard, state: str) -> Path:
    """Make ``guard.out`` ready for a run written in place (fine-tuning, efficiency), after ``guard.check``
    gave ``state``: a new or empty folder gets the marker; a run replaced with --overwrite is exchanged for a
    fresh marked folder in one step, then removed (`core.swap`); a resumed run keeps its files."""
    from core.swap import aside_folder, clean_stale, replace_folder

    out = guard.out
    if state in ("absent", "empty"):
        out.mkdir(parents=True, exist_ok=True)
    elif guard.overwrite:
        clean_stale(out)
        with aside_folder(out) as fresh:
            try:
                write_marker(fresh, guard.kind, manifest=False)
                replace_folder(fresh, out)
            except BaseException:
                shutil.rmtree(fresh, ignore_errors=True)
                raise
        return out
    write_marker(out, guard.kind, manifest=False)
    return out
