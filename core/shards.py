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
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path

from core.schema import SceneGraph


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


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(out: str | Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a fresh folder beside ``out``, then swap it into place."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        fill(tmp)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_scene_graphs(path: str | Path) -> list[SceneGraph]:
    """A scene-graph shard: one ``SceneGraph`` a JSON line."""
    return [SceneGraph.from_dict(json.loads(line)) for line in Path(path).read_text().splitlines() if line]
