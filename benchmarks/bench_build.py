"""build-gcot throughput at MM-GCoT scale: 5,033 synthetic scene graphs, rendering excluded.

Prints examples/s of the whole build (ingest, chains, verification, release) called as plain
functions and as the Prefect flow (server started beforehand, outside the timing), their ratio, and
whether both wrote the same bytes. Targets (issue 2): >= 24,022 examples in <= 60 s; ratio <= 1.2.

    make bench            # or: .venv/bin/python benchmarks/bench_build.py --images 5033
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import env  # noqa: E402

env.apply()
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gcot-bench-prefect-")  # empty caches: no cached shards
os.environ.pop("PREFECT_API_URL", None)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5033, help="scene graphs (MM-GCoT has 5,033 images)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench-output"))
    a = ap.parse_args()

    from pipeline.sources.synthetic import write_synthetic_vg
    from pipeline.steps import BuildConfig, run_plain

    out = Path(a.out)
    work = out / "work"
    t = time.perf_counter()
    write_synthetic_vg(work / "sources" / f"synthetic-n{a.images}-s{a.seed}", a.images, a.seed)
    print(f"rendering (excluded): {time.perf_counter() - t:.1f} s")

    import shutil

    # Same folder name under two parents: the card names its folder, so the bytes can be compared.
    cfg = BuildConfig(images=a.images, seed=a.seed, out=str(out / "plain" / "gcot"), work_dir=str(work), overwrite=True)  # bench-output is ours to replace
    shutil.rmtree(cfg.results_dir(), ignore_errors=True)  # no finished shards from an earlier run
    t = time.perf_counter()
    s = run_plain(cfg)
    plain_s = time.perf_counter() - t

    from gcot.flows.serve import start_server, stop_server

    port = free_port()
    server = start_server("127.0.0.1", port)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        from gcot.flows.build_gcot import build_gcot

        shutil.rmtree(cfg.results_dir())  # the flow computes every shard too
        t = time.perf_counter()
        s2 = build_gcot(BuildConfig(images=a.images, seed=a.seed, out=str(out / "flow" / "gcot"), work_dir=str(work), overwrite=True))
        flow_s = time.perf_counter() - t
        t = time.perf_counter()
        build_gcot(BuildConfig(images=a.images, seed=a.seed, out=str(out / "flow" / "gcot"), work_dir=str(work), overwrite=True))
        cached_s = time.perf_counter() - t
    finally:
        stop_server(server)

    same = tree_digest(out / "plain" / "gcot") == tree_digest(out / "flow" / "gcot")
    n = s["examples"]
    print(f"\nbuild-gcot on {a.images} synthetic scene graphs (2-core CPU, rendering excluded)")
    print(f"  examples released      {n}  (target >= 24,022)  types {s['per_type']}")
    print(f"  plain functions        {plain_s:6.1f} s   {n / plain_s:8.0f} examples/s  (target <= 60 s)")
    print(f"  Prefect flow           {flow_s:6.1f} s   {s2['examples'] / flow_s:8.0f} examples/s")
    print(f"  flow / plain ratio     {flow_s / plain_s:6.2f}      (target <= 1.2)")
    print(f"  flow rerun, cached     {cached_s:6.1f} s   (shards from the cache)")
    print(f"  same bytes plain/flow  {same}")


if __name__ == "__main__":
    main()
