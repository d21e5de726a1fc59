"""build-gcot at Visual Genome scale: 20,000 and 100,000 scene graphs, wall time and peak memory.

The scenes have Visual Genome's object and relationship counts per image with small images
(`vg_scale_scenes.py`; writing them is excluded from the timing). Each size is one `gcot build`
command in a process of its own, measured from outside: wall time, examples/s, and the peak RSS of
the whole process tree (the build and, with a Dask cluster, its workers; sampled from /proc every
0.2 s) beside the largest single process's peak (getrusage of the reaped children). The Prefect
server runs beside the build, outside the measurement. Targets (issue 21): the peak at 100,000
within 1.2x of the peak at 20,000 and <= 3 GB; wall time at 100,000 <= 5.5x the time at 20,000 and
<= 15 minutes, on 2 cores.

    make bench            # or: .venv/bin/python benchmarks/bench_vg_scale.py --images 20000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import env  # noqa: E402

env.apply()
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gcot-bench-prefect-")  # empty caches: no cached shards
os.environ.pop("PREFECT_API_URL", None)

from benchmarks.bench_build import free_port  # noqa: E402
from benchmarks.vg_scale_scenes import write_vg_scale_scenes  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> dict[int, int]:
    """RSS in bytes of ``root`` and every process below it, from /proc."""
    parent, rss = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * PAGE
            parent[int(d)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    tree, todo = set(), [root]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += [c for c, pp in parent.items() if pp == p and c not in tree]
    return {p: rss[p] for p in tree if p in rss}


def measure(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; wall time, the peak of the tree's summed RSS, the largest process's peak."""
    peak = {"tree": 0, "processes": 0, "build": 0, "others": 0}
    t = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                rss = _tree_rss(proc.pid)
                peak["tree"] = max(peak["tree"], sum(rss.values()))
                peak["processes"] = max(peak["processes"], len(rss))
                peak["build"] = max(peak["build"], rss.get(proc.pid, 0))
                peak["others"] = max([peak["others"]] + [v for p, v in rss.items() if p != proc.pid])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        done.set()
        sampler.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return {"wall": wall, "tree_rss": peak["tree"], "processes": peak["processes"], "build_rss": peak["build"], "worker_rss": peak["others"],
            "max_rss": usage.ru_maxrss * 1024, "cpu": usage.ru_utime + usage.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[20000, 100000], help="scene graphs of each run")
    ap.add_argument("--runner", choices=["plain", "processes", "dask"], default="dask", help="plain: --no-prefect (one process, shards one after another); else the flow's shard runner")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench-output" / "vg-scale"))
    a = ap.parse_args()

    out = Path(a.out)
    sources = {}
    for n in a.images:
        t = time.perf_counter()
        sources[n] = write_vg_scale_scenes(out / "sources" / f"vg-scale-n{n}-s{a.seed}", n, a.seed)
        print(f"scenes for {n} (excluded): {time.perf_counter() - t:.0f} s", flush=True)

    server = None
    if a.runner != "plain":
        from gcot.flows.serve import start_server

        port = free_port()
        server = start_server("127.0.0.1", port)
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    runs = {}
    try:
        for n in a.images:
            rel, work = out / f"n{n}" / "gcot", out / f"n{n}" / "work"
            shutil.rmtree(out / f"n{n}", ignore_errors=True)  # every shard computed, no old release
            cmd = [sys.executable, "-m", "gcot", "build", "--source", f"vg:{sources[n]}", "--seed", str(a.seed), "--out", str(rel), "--work-dir", str(work)]
            cmd += ["--no-prefect"] if a.runner == "plain" else ["--runner", a.runner, "--workers", str(a.workers)]
            m = measure(cmd, out / f"n{n}.log")
            m["examples"] = json.loads((rel / "stats.json").read_text())["examples"]
            runs[n] = m
            print(f"  {n:>7} scene graphs  {m['wall']:7.1f} s  {m['examples'] / m['wall']:6.0f} examples/s  peak RSS {m['tree_rss'] / 2**30:5.2f} GB"
                  f" (largest process {m['max_rss'] / 2**30:.2f} GB)", flush=True)
    finally:
        if server is not None:
            from gcot.flows.serve import stop_server

            stop_server(server)

    runner = "--no-prefect" if a.runner == "plain" else f"--runner {a.runner} --workers {a.workers}"
    print(f"\nbuild-gcot at Visual Genome density ({runner}; {os.cpu_count()}-core CPU, shared with other work; scene writing excluded)")
    print("  scene graphs  examples   wall s  examples/s   peak RSS: tree  build process  largest worker  largest (rusage)  CPU s")
    for n, m in runs.items():
        print(f"  {n:>12}  {m['examples']:>8}  {m['wall']:7.1f}  {m['examples'] / m['wall']:10.0f}  {m['tree_rss'] / 2**30:11.2f} GB  {m['build_rss'] / 2**30:10.2f} GB"
              f"  {m['worker_rss'] / 2**30:11.2f} GB  {m['max_rss'] / 2**30:13.2f} GB  {m['cpu']:5.0f}")
    if len(runs) >= 2:
        (lo, a_), (hi, b_) = min(runs.items()), max(runs.items())
        print(f"  {hi} / {lo}: wall {b_['wall'] / a_['wall']:.2f}x (target <= 5.5x, {hi // lo}x the images), peak RSS {b_['tree_rss'] / a_['tree_rss']:.2f}x (target <= 1.2x)")
        print(f"  {hi}: wall {b_['wall'] / 60:.1f} min (target <= 15), peak RSS {b_['tree_rss'] / 2**30:.2f} GB (target <= 3)")


if __name__ == "__main__":
    main()
