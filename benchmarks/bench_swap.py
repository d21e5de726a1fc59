"""How often a reader finds no release at the path while releases are swapped in: the atomic exchange
(renameat2 RENAME_EXCHANGE, `core.swap`) against the two renames it replaced. A reader process looks for
the release's README.md in a tight loop while this process swaps small releases in; the target is 0 misses
for the exchange (tests/test_swap.py asserts it).

    .venv/bin/python benchmarks/bench_swap.py [--swaps 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.swap import replace_folder  # noqa: E402

READER = """
import os, sys
path, stop = sys.argv[1], sys.argv[2]
misses = looks = 0
while not os.path.exists(stop):
    looks += 1
    misses += not os.path.isfile(os.path.join(path, "README.md"))
print(misses, looks)
"""


def measure(root: Path, swaps: int, atomic: bool) -> tuple[int, int, float]:
    out, stop = root / "rel", root / "stop"
    out.mkdir()
    (out / "README.md").write_text("0")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out), str(stop)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    t = time.perf_counter()
    for i in range(swaps):
        new = root / f".rel.tmp-{i:08x}"
        new.mkdir()
        (new / "README.md").write_text(str(i))
        replace_folder(new, out, atomic=atomic)
    seconds = time.perf_counter() - t
    stop.touch()
    misses, looks = map(int, reader.communicate()[0].split())
    return misses, looks, seconds / swaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swaps", type=int, default=2000)
    args = ap.parse_args()
    for atomic, name in ((True, "exchange (renameat2)"), (False, "two renames")):
        with tempfile.TemporaryDirectory() as d:
            misses, looks, per = measure(Path(d), args.swaps, atomic)
        print(f"{name:22s} {args.swaps} swaps: {misses} of {looks} looks found no release ({1e6 * misses / max(1, looks):.1f} per million); {1e6 * per:.0f} us a swap")


if __name__ == "__main__":
    main()
