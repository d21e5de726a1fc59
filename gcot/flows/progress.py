"""What a build's flow run shows while it runs: one progress artifact moved through the run's phases,
and log lines through Prefect's run logger (the run page's Logs tab; `prefect deployment run --watch`).

The steps are plain functions that know nothing of Prefect; while a long step runs in the flow's
process (ingest: rendering scenes, reading the source), the tqdm bars it already draws are relayed to
the run's log and progress every few seconds.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from tqdm import tqdm

RELAY_SECONDS = 3.0  # a long step's bars reach the log this often (a 600-image ingest is ~20 s)


class RunProgress:
    """The run's progress artifact. ``phases`` maps each phase, in order, to the percent the run has
    reached when it ends (``{"ingest": 30, "shards": 95, "release": 100}``)."""

    def __init__(self, key: str, description: str, phases: dict[str, float]):
        self.log = get_run_logger()
        self.phases = phases
        self.percent = 0.0
        self.id = create_progress_artifact(0.0, key=key, description=description)

    def update(self, phase: str, fraction: float) -> None:
        """``fraction`` (0 to 1) of ``phase`` done; the artifact only moves forward."""
        names = list(self.phases)
        start = self.phases[names[names.index(phase) - 1]] if names.index(phase) else 0.0
        percent = round(start + (self.phases[phase] - start) * min(max(fraction, 0.0), 1.0), 1)
        if percent > self.percent:
            self.percent = percent
            update_progress_artifact(self.id, percent)

    @contextmanager
    def relay_bars(self, phase: str) -> Iterator[None]:
        """While the block runs, log its live tqdm bars every RELAY_SECONDS and move ``phase`` by the
        newest bar that knows its total (a bar without one, such as a streamed source, is only logged)."""
        stop = threading.Event()

        def relay() -> None:
            last: dict[int, int] = {}
            while not stop.wait(RELAY_SECONDS):
                with tqdm.get_lock():
                    bars = [b for b in list(tqdm._instances) if not b.disable]  # tqdm's own monitor reads the same set
                for b in bars:
                    if last.get(id(b)) != b.n:
                        last[id(b)] = b.n
                        self.log.info("%s: %d%s %s", b.desc or phase, b.n, f" of {b.total}" if b.total else "", b.unit)
                sized = [b for b in bars if b.total]
                if sized:
                    self.update(phase, sized[-1].n / sized[-1].total)

        # the thread runs in a copy of this context: the run's logger and its API settings go with it
        thread = threading.Thread(target=contextvars.copy_context().run, args=(relay,), daemon=True, name=f"progress-{phase}")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.update(phase, 1.0)

    def collect(self, futures: Sequence, phase: str, describe: Callable[[int, Any], str]) -> list:
        """The futures' results in submission order; as each finishes, ``describe(its 1-based number,
        its result)`` is logged and ``phase`` moves on."""
        number = {f: i for i, f in enumerate(futures)}
        results: list = [None] * len(futures)
        for done, f in enumerate(as_completed(list(futures)), 1):
            i = number[f]
            results[i] = f.result()
            self.log.info(describe(i + 1, results[i]))
            self.update(phase, done / len(futures))
        self.update(phase, 1.0)
        return results
