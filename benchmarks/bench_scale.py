"""build-gcot throughput on a local Dask cluster: 1 worker process against 2, same input.

2,000 synthetic scene graphs (rendering excluded), shards of 250 images (the default: 8 shard tasks).
Each cluster is started and its workers have imported the pipeline before the clock starts, the
Prefect server too, and an untimed small build warms the flow's process (imports, plot fonts); each
count of workers runs --repeat times, alternating, and the best time counts.
The timed run is the whole flow: ingest and the release writing run in the flow's process, only the
shards are distributed, so the ratio is bounded by that serial part. The machine has 2 cores (shared),
so 2 workers can at best halve the shard time.

    make bench            # or: .venv/bin/python benchmarks/bench_scale.py --images 2000
"""

from __future__ import annotations

import argparse
import os
import shutil
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

from bench_build import free_port, tree_digest  # noqa: E402


def _warm() -> None:
    import prefect.task_engine  # noqa: F401

    import pipeline.steps  # noqa: F401  the imports a shard task needs, before the clock starts


def _phases(flow_run_id) -> dict[str, float]:
    """Wall time of each stage of one flow run, from its task runs (first start to last end)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as c:
        runs = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    spans: dict[str, list] = {}
    for r in runs:
        name = r.task_key.rsplit("-", 1)[0]  # the task's function ("build_shard-1f2e..."): run names say the shard
        if r.start_time and r.end_time:
            lo, hi = spans.get(name, (r.start_time, r.end_time))
            spans[name] = (min(lo, r.start_time), max(hi, r.end_time))
    return {k: (hi - lo).total_seconds() for k, (lo, hi) in spans.items()} | {k: float("nan") for k in ("ingest_source", "build_shard", "write_release") if k not in spans}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench-output" / "scale"))
    a = ap.parse_args()

    import logging

    from distributed import Client, LocalCluster

    from gcot.flows.runners import LOCAL_CLUSTER
    from gcot.flows.serve import start_server, stop_server
    from pipeline.sources.synthetic import write_synthetic_vg

    logging.getLogger("distributed").setLevel(logging.WARNING)
    out = Path(a.out)
    work = out / "work"
    t = time.perf_counter()
    write_synthetic_vg(work / "sources" / f"synthetic-n{a.images}-s{a.seed}", a.images, a.seed)
    print(f"rendering (excluded): {time.perf_counter() - t:.1f} s")

    port = free_port()
    server = start_server("127.0.0.1", port)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    timings, summaries, phases = {}, {}, {}
    try:
        from gcot.flows.build_gcot import build_gcot
        from pipeline.steps import BuildConfig

        clusters = {n: LocalCluster(n_workers=n, **LOCAL_CLUSTER) for n in (1, 2)}
        try:
            for cluster in clusters.values():
                with Client(cluster) as client:
                    client.run(_warm)
            build_gcot(BuildConfig(images=100, seed=a.seed, out=str(out / "warm" / "gcot"), work_dir=str(out / "warm-work"), overwrite=True, runner="dask", dask_address=clusters[1].scheduler_address))
            for _ in range(a.repeat):
                for n, cluster in clusters.items():
                    shutil.rmtree(work / "shard_results", ignore_errors=True)  # every shard computed
                    t = time.perf_counter()
                    state = build_gcot(BuildConfig(images=a.images, seed=a.seed, shard_size=a.shard_size, out=str(out / f"workers-{n}" / "gcot"), work_dir=str(work), overwrite=True,
                                                   runner="dask", dask_address=cluster.scheduler_address), return_state=True)
                    took = time.perf_counter() - t
                    if took < timings.get(n, float("inf")):
                        timings[n], summaries[n], phases[n] = took, state.result(), _phases(state.state_details.flow_run_id)
        finally:
            for cluster in clusters.values():
                cluster.close()
    finally:
        stop_server(server)

    same = tree_digest(out / "workers-1" / "gcot") == tree_digest(out / "workers-2" / "gcot")
    shards = -(-a.images // a.shard_size)
    print(f"\nbuild-gcot on a local Dask cluster: {a.images} synthetic scene graphs, {shards} shards ({os.cpu_count()}-core CPU, shared; rendering excluded; best of {a.repeat})")
    for n in (1, 2):
        print(f"  {n} worker{'s' if n > 1 else ' '}  {timings[n]:6.1f} s   {summaries[n]['examples'] / timings[n]:8.0f} examples/s")
    print(f"  2 / 1 workers throughput ratio   {timings[1] / timings[2]:.2f}")
    for n in (1, 2):
        p = phases[n]
        print(f"  {n} worker{'s' if n > 1 else ' '} phases: ingest {p['ingest_source']:.1f} s, shards {p['build_shard']:.1f} s (first start to last end), release {p['write_release']:.1f} s")
    print(f"  2 / 1 workers shard-phase ratio  {phases[1]['build_shard'] / phases[2]['build_shard']:.2f}")
    print(f"  same bytes 1 and 2 workers       {same}")


if __name__ == "__main__":
    main()
