"""The records of a top-level JSON array, streamed: a fault costs its own record, not the rest of the file.

ijson (the C yajl backend) reads the array fast. Where it stops at a fault, the fault's record is found
by its brackets (`_spans`: a byte scanner that knows strings and escapes), parsed alone with Python's
``json`` (which also reads ``NaN`` and ``Infinity``, so those reach field validation instead of failing
the file), and the rest of the file is handed back to ijson. Only a fault in the brackets themselves can
swallow later records; then the fault says how many bytes it spans and about how many records those
held (from the mean record size read so far).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from pipeline.sources.base import SourceError

_STRUCTURE = re.compile(rb'["\\\[\]{},]')
_CHUNK = 1 << 20
_MAX_RECORD_BYTES = 64 << 20  # a "record" this long is the rest of a file whose brackets are broken


@dataclass(frozen=True)
class Fault:
    """A record of the array that is not valid JSON."""

    index: int  # its position in the array (0-based)
    offset: int  # the byte it starts at
    detail: str
    lost_bytes: int = 0  # bytes from here on that no record was read from (the brackets broke, or the file ends)
    later_records: int = 0  # about how many records those bytes held, besides this one (from the mean record size)
    in_record: bool = True  # False: bytes after the array's closing bracket
    head: bytes = b""  # the record's first bytes, where a reader may still find its id

    def describe(self, path: str | Path) -> str:
        if self.lost_bytes:
            lost = f"; the {self.lost_bytes} bytes from byte {self.offset} on were not read: about {self.later_records} more record(s) lost"
        else:
            lost = "; every later record was read"
        where = f"record #{self.index} (byte {self.offset})" if self.in_record else f"byte {self.offset}, after record #{self.index - 1}"
        return f"{path}: {where} is not valid JSON: {self.detail}{lost}"


def iter_array(path: str | Path) -> Iterator[tuple[int, Any] | Fault]:
    """(index, value) for each record of the top-level array of ``path``, a `Fault` for each one that does
    not parse. A file that is empty or whose top level is not an array is a `SourceError`."""
    path = Path(path)
    with open(path, "rb") as f:
        start = _array_start(f, path)
        index, pos = 0, start + 1  # pos: first byte after the '[' or the ',' before the next record
        key = None  # the first key of the records: where the brackets break, records are counted by it
        while True:
            f.seek(pos)
            n = 0
            try:
                for value in ijson.items(_Prefixed(f), "item", use_float=True):
                    if key is None and isinstance(value, dict) and value:
                        key = next(iter(value))
                    yield index, value
                    index, n = index + 1, n + 1
                return
            except ijson.JSONError as e:
                error = _first_line(e)
            spans = _spans(f, pos)
            last = None
            for _ in range(n):  # the records ijson read
                last = next(spans)
            span = next(spans, None)
            if span is None:  # the array closed after the last record ijson read: bytes follow it
                yield _rest(f, index, last[1] + 1, start, key, f"bytes after the array's closing bracket ({error})", in_record=False)
                return
            a, b, end = span
            a = _first_byte(f, a, b)
            if end is None:  # the record never closes: the file ends inside it
                yield _rest(f, index, a, start, key, f"{error} (its brackets do not close before the end of the file)")
                return
            value, why = _parse(f, a, b)
            yield (index, value) if why is None else Fault(index, a, why, head=_head(f, a))
            index += 1
            if end == b"]":
                f.seek(b + 1)
                if f.read(_CHUNK).strip():
                    yield _rest(f, index, b + 1, start, key, "bytes after the array's closing bracket", in_record=False)
                return
            pos = b + 1


def _rest(f: BinaryIO, index: int, offset: int, start: int, key: str | None, detail: str, in_record: bool = True) -> Fault:
    """A fault from ``offset`` to the end of the file, with about how many records it held besides the
    faulty one: the openings ``{"<key>":`` of records like those read before it (their first key), else
    the size over the mean size of the records before it."""
    size = f.seek(0, 2) - offset
    if key is not None:
        later = _openings(f, offset, key, own=in_record)
    else:
        mean = (offset - start) / index if index else 0
        later = max(round(size / mean) - in_record, 0) if mean else 0
    return Fault(index, offset, detail, size, later, in_record, _head(f, offset) if in_record else b"")


def _openings(f: BinaryIO, offset: int, key: str, own: bool) -> int:
    """How many records open with ``{"key":`` from ``offset`` on; with ``own``, one found within the first
    bytes is the faulty record's own opening, not a later record's."""
    pattern = re.compile(rb'\{\s*' + re.escape(json.dumps(key).encode()) + rb"\s*:")
    overlap = len(key) + 64
    f.seek(offset)
    n, tail, first, pos = 0, b"", None, offset
    while chunk := f.read(_CHUNK):
        data = tail + chunk
        base = pos - len(tail)
        for m in pattern.finditer(data):
            if m.end() > len(tail) or not tail:  # not already counted in the previous round
                n += 1
                first = base + m.start() if first is None else first
        tail = data[-overlap:]
        pos += len(chunk)
    if own and first is not None and first - offset < 64:
        n -= 1
    return n


def _first_byte(f: BinaryIO, a: int, b: int) -> int:
    """Where the element in bytes[a:b] starts: past the blanks after the comma."""
    f.seek(a)
    head = f.read(min(b - a, 4096))
    return a + len(head) - len(head.lstrip()) if head.strip() else a


def _head(f: BinaryIO, offset: int, n: int = 256) -> bytes:
    f.seek(offset)
    head = f.read(n)
    f.seek(offset)
    return head


def _array_start(f: BinaryIO, path: Path) -> int:
    head = f.read(4096)
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head  # a UTF-8 byte-order mark
    stripped = body.lstrip()
    if not stripped:
        if f.read(1) == b"" and len(head) < 4096:
            raise SourceError(f"{path}: the file is empty; expected a JSON array of records ([{{...}}, ...])")
        raise SourceError(f"{path}: starts with 4 KB of blanks; expected a JSON array of records")
    first = stripped[:1]
    if first != b"[":
        what = {b"{": "an object ({...})", b'"': "a string"}.get(first, f"{first.decode('latin-1')!r}")
        raise SourceError(f"{path}: the top level is {what}; expected a JSON array of records ([{{...}}, ...])")
    return len(head) - len(stripped)


class _Prefixed:
    """The file from its position on, behind a '[': ijson reads the rest of the array as an array."""

    def __init__(self, f: BinaryIO):
        self.f, self.sent = f, False

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson asks for 0 bytes to learn whether the file gives bytes or text
            return b""
        if not self.sent:
            self.sent = True
            return b"[" + self.f.read(max(n - 1, 0) if n > 0 else -1)
        return self.f.read(n)


def _spans(f: BinaryIO, pos: int) -> Iterator[tuple[int, int, bytes | None]]:
    """(start, stop, terminator) of each element of the array from byte ``pos``: the element is
    bytes[start:stop], ended by ',' or ']' (terminator) or by the end of the file (None)."""
    f.seek(pos)
    depth, in_string, skip, start, offset = 0, False, -1, pos, pos
    while chunk := f.read(_CHUNK):
        for m in _STRUCTURE.finditer(chunk):
            at = offset + m.start()
            if at == skip:  # the character after a backslash
                continue
            c = m.group()
            if in_string:
                if c == b"\\":
                    skip = at + 1
                elif c == b'"':
                    in_string = False
            elif c == b'"':
                in_string = True
            elif c in b"[{":
                depth += 1
            elif c in b"]}":
                if depth == 0 and c == b"]":
                    yield start, at, c
                    return
                depth = max(depth - 1, 0)
            elif c == b"," and depth == 0:
                yield start, at, c
                start = at + 1
        offset += len(chunk)
    yield start, offset, None


def _parse(f: BinaryIO, a: int, b: int) -> tuple[Any, str | None]:
    if b - a > _MAX_RECORD_BYTES:
        return None, f"a record of {b - a} bytes: the brackets are broken"
    f.seek(a)
    text = f.read(b - a)
    f.seek(b + 1)
    if not text.strip():
        return None, "an empty element (two commas in a row, or a comma before the closing bracket)"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bytes that are not UTF-8, nesting too deep
        return None, str(e) or type(e).__name__


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
