"""Put a folder written aside into place with no moment without one at the path, and clear what runs that
died left beside it.

A folder is written into an aside folder ``.NAME.tmp-XXXXXXXX`` next to ``NAME``, then swapped in. Where
``NAME`` exists, the swap is Linux's ``renameat2(RENAME_EXCHANGE)``: the two paths trade places in one
step, so a reader finds the old folder or the new one, never nothing; the old one, now at the aside name,
is removed after. Where the system or file system lacks the exchange (another OS, some network file
systems), two renames do it, with a moment between them when nothing is at the path.

An aside folder is locked (``flock``) by the process writing it while that process lives: the lock goes
with the process however it dies (SIGKILL included). So the next write beside the same path removes the
aside folders no live process holds (``clean_stale``): those of runs that crashed or were killed. Creating
an aside folder and locking it happen under a short lock on the parent folder, so that cleaning never
takes a folder another run has just made and not yet locked.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (AttributeError, OSError):  # no renameat2 in this C library (not Linux, or an old one)
    _renameat2 = None


class NoExchange(OSError):
    """This system or file system cannot exchange two paths in one step."""


def _rename2(a: Path, b: Path, flags: int) -> None:
    if _renameat2 is None:
        raise NoExchange(errno.ENOSYS, "renameat2 is not available", str(a))
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) != 0:
        e = ctypes.get_errno()
        raise (NoExchange if e in _UNSUPPORTED else OSError)(e, os.strerror(e), str(a), None, str(b))


def exchange(a: str | Path, b: str | Path) -> None:
    """Trade the places of two existing paths in one step (`NoExchange` where that cannot be done)."""
    _rename2(Path(a), Path(b), _RENAME_EXCHANGE)


def replace_folder(new: str | Path, out: str | Path, atomic: bool = True) -> None:
    """Put the folder ``new`` at ``out``. An existing ``out`` is exchanged with it in one step, then
    removed from where ``new`` was; ``atomic=False`` (or no exchange on this system) moves the old folder
    aside first, leaving a moment with nothing at ``out``."""
    new, out = Path(new), Path(out)
    if not os.path.lexists(out):
        try:
            _rename2(new, out, _RENAME_NOREPLACE)  # never onto something that appeared meanwhile
        except NoExchange:
            os.rename(new, out)
        return
    if atomic:
        try:
            exchange(new, out)
        except NoExchange:
            log.debug("%s: no atomic exchange here; two renames", out)
        else:
            _remove(new)  # the old folder, now at the aside name
            return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    os.rename(new, out)
    _remove(old)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _aside_pattern(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.(tmp|old)-[0-9a-f]{{8}}$")


@contextmanager
def _locked(path: Path, blocking: bool = True):
    """An exclusive ``flock`` on a folder, held inside the block (yields False if not blocking and taken)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def aside_folder(out: str | Path):
    """A fresh, locked aside folder beside ``out`` (``.NAME.tmp-XXXXXXXX``), yielded; the lock is held
    until the block ends. The folder itself is the caller's to move or remove."""
    out = Path(out)
    with _locked(out.parent):
        tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield tmp
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def clean_stale(out: str | Path) -> tuple[list[str], list[str]]:
    """Remove the aside folders of ``out`` that no live process holds (left by runs that died); returns
    (removed, in use by a running process). Only folders named as this module names them are touched."""
    out = Path(out)
    if not out.parent.is_dir():
        return [], []
    pattern = _aside_pattern(out.name)
    removed, busy = [], []
    with _locked(out.parent):
        for p in sorted(out.parent.iterdir()):
            if not pattern.match(p.name) or p.is_symlink() or not p.is_dir():
                continue
            with _locked(p, blocking=False) as free:
                if not free:
                    busy.append(p.name)
                    continue
                size = _size(p)
                _remove(p)
            removed.append(p.name)
            log.warning("%s: removed %s (%.1f MB), left by an earlier run that did not finish", out.parent, p.name, size / 2**20)
    for name in busy:
        log.info("%s: %s belongs to a run still going; left alone", out.parent, name)
    return removed, busy
