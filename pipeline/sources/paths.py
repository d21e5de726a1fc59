"""Image paths read from a source's files stay inside the source folder.

A path from a file (a VG ``url`` or ``image_id``, a COCO ``file_name``) is joined to the source root only
when it is relative and its ``..`` parts do not climb out of the root (else ``path_outside_source``), and
it is released as that normalized relative path, so the release's ``img`` never escapes the folder a
consumer joins it with. A symlink whose target lies outside the root is refused
(``symlink_outside_source``) unless the build was given ``--follow-symlinks``.
"""

from __future__ import annotations

import os
import posixpath
from functools import lru_cache
from pathlib import Path


def confine(root: Path, rel: str, follow_symlinks: bool) -> tuple[str, tuple[str, str] | None]:
    """(the normalized relative path, None) or (rel, (rule, detail)) for a path outside the root."""
    if not rel or "\x00" in rel:
        return rel, ("path_outside_source", f"image path {rel!r} is empty or holds a NUL byte")
    clean = posixpath.normpath(rel.replace("\\", "/"))
    if posixpath.isabs(clean) or clean == ".." or clean.startswith("../") or clean == "." or _drive(clean):
        return rel, ("path_outside_source", f"image path {rel!r} lies outside the source folder {root}")
    if not follow_symlinks and leaves_root(root, root / clean):
        return rel, ("symlink_outside_source", symlink_detail(root, root / clean))
    return clean, None


def _drive(p: str) -> bool:  # "C:/..." from a file written on Windows
    return len(p) >= 2 and p[0].isalpha() and p[1] == ":" and (len(p) == 2 or p[2] == "/")


def symlink_detail(root: Path, path: Path) -> str:
    return f"{path} leads through a symlink to {os.path.realpath(path)}, outside the source folder {root} (--follow-symlinks follows it)"


def leaves_root(root: Path, path: Path) -> bool:
    """Whether ``path`` (under ``root``) resolves outside it through a symlink."""
    real, top = os.path.realpath(path), _real(str(root))
    return real != top and not real.startswith(top.rstrip(os.sep) + os.sep)


@lru_cache(maxsize=64)
def _real(root: str) -> str:  # once per source, not once per image
    return os.path.realpath(root)
