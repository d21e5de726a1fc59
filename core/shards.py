"""Shard I/O every build shares: code digests for cache keys, atomic file and folder writes, JSON lines.

A finished shard is a set of files plus a marker written last; a reader trusts a shard only when its
marker exists. Everything here writes aside and renames, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

from core.guard import OutputGuard, write_marker
from core.schema import SceneGraph
from core.swap import aside_folder, clean_stale, replace_folder


@cache
def code_digest(*modules: str) -> str:
    """A digest of the source of the given modules or packages (every ``.py`` under a package).

    A domain's shard keys name the modules its shards' results depend on, so editing the CLI or another
    domain does not invalidate finished shards."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"code_digest: no module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
        for p in files:
            h.update(str(p.relative_to(origin.parent)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def write_text_atomic(path: Path, text: str) -> None:
    """Write aside, then rename: a distributed scheduler may run a shard twice (a worker presumed
    lost, then back), and a reader must never see a half-written file of either run."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_atomically(out: str | Path, fill: Callable[[Path], None], guard: OutputGuard | None = None) -> Path:
    """Call ``fill(tmp)`` on a fresh aside folder beside ``out``, mark it as ours, then swap it into place.

    ``guard`` says whether ``out`` may be written (`core.guard`; default: only a new or empty folder). It is
    asked before anything is written and again just before the swap; aside folders of earlier runs that died
    are removed first (`core.swap`). A crash leaves the previous folder at ``out`` as it was."""
    guard = guard or OutputGuard(out, "folder")
    if Path(out).expanduser().resolve() != guard.out:
        raise ValueError(f"write_atomically: {out} is not the guarded {guard.out}")
    out = guard.out
    guard.check()
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    with aside_folder(out) as tmp:
        try:
            fill(tmp)
            write_marker(tmp, guard.kind)
            guard.check()  # again: the path may have changed while the folder was written
            replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def load_scene_graphs(path: str | Path) -> list[SceneGraph]:
    """A scene-graph shard: one ``SceneGraph`` a JSON line."""
    return [SceneGraph.from_dict(json.loads(line)) for line in Path(path).read_text().splitlines() if line]
