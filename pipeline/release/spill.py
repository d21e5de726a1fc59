"""An external sort of JSON lines: sorted runs spilled to disk, then one k-way merge.

The release is ordered by (split, image, id) across every shard of the source, and the review queue
by the detector's support: neither order may need all records in memory at once. ``SortedSpill``
keeps at most ``max_bytes`` of lines in memory, writes each full buffer as a sorted run, and
``merged()`` streams all of them back in order (``heapq.merge``), a bounded number of files open at a
time. The sort is stable, as ``list.sort`` is: records with equal keys come back in the order they
were added, so the result equals sorting everything in memory.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_BYTES = 32 * 2**20  # lines held before a run is spilled (the memory bound of one spill)
FAN_IN = 64  # runs merged at once; more are first merged in groups (file handles stay few)


class SortedSpill:
    """``add(record, line)`` in any order; ``merged()`` yields the records (parsed back from their lines)
    sorted by ``key(record)``, stable. ``line`` is the record's JSON text (``json.dumps(record)`` if
    not given); a record comes back as ``json.loads(line)``."""

    def __init__(self, folder: str | Path, key: Callable[[dict], object], max_bytes: int | None = None, fan_in: int | None = None):
        self.folder = Path(folder)
        self.key = key
        self.max_bytes = max_bytes or MAX_BYTES
        self.fan_in = max(2, fan_in or FAN_IN)
        self._buf: list[tuple[object, int, str]] = []
        self._bytes = 0
        self._runs: list[Path] = []
        self.count = 0

    def add(self, record: dict, line: str | None = None) -> None:
        line = json.dumps(record) if line is None else line.rstrip("\n")
        self._buf.append((self.key(record), len(self._buf), line))
        self._bytes += len(line)
        self.count += 1
        if self._bytes >= self.max_bytes:
            self._spill()

    def _new_run(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"run-{uuid.uuid4().hex[:12]}.jsonl"

    def _spill(self) -> None:
        if not self._buf:
            return
        self._buf.sort(key=lambda t: (t[0], t[1]))  # the add order breaks ties: stable
        path = self._new_run()
        with open(path, "w") as f:
            f.writelines(line + "\n" for _, _, line in self._buf)
        self._runs.append(path)
        self._buf, self._bytes = [], 0

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[dict, str]]:
        with open(path) as f:
            for line in f:
                yield json.loads(line), line

    def _merge(self, runs: list[Path]) -> Iterator[tuple[dict, str]]:
        # heapq.merge is stable across its inputs (equal keys: the earlier run first), so merging
        # runs in the order they were spilled keeps the add order of equal keys.
        return heapq.merge(*(self._read(p) for p in runs), key=lambda t: self.key(t[0]))

    def merged(self) -> Iterator[dict]:
        """Every record added, sorted; the runs are removed once read."""
        if not self._runs:  # everything still in memory: no file at all
            self._buf.sort(key=lambda t: (t[0], t[1]))
            buf, self._buf, self._bytes = self._buf, [], 0
            for _, _, line in buf:
                yield json.loads(line)
            return
        self._spill()
        runs = self._runs
        while len(runs) > self.fan_in:  # consecutive groups, so ties keep their order
            merged_runs = []
            for i in range(0, len(runs), self.fan_in):
                group, path = runs[i : i + self.fan_in], self._new_run()
                with open(path, "w") as f:
                    f.writelines(line for _, line in self._merge(group))
                for p in group:
                    p.unlink()
                merged_runs.append(path)
            runs = merged_runs
        self._runs = []
        try:
            for rec, _ in self._merge(runs):
                yield rec
        finally:
            for p in runs:
                p.unlink(missing_ok=True)
