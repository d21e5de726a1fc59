"""Push and pull times for 10,000 review tasks against a real Label Studio server (SQLite).

Builds a synthetic release of about 10,000 examples, starts Label Studio in a temporary folder,
pushes every example as a pre-annotated task, annotates 200 of them through the API, and pulls
(reading every task and writing the reviewed release). Targets: push <= 60 s, pull <= 30 s.

    .venv/bin/python benchmarks/bench_review.py [--examples 10000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import env  # noqa: E402

env.apply()

from benchmarks.bench_build import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000)
    a = ap.parse_args()
    from annotation.review import pull, push
    from annotation.server import LabelStudioServer
    from pipeline.release.arrow import read_examples
    from pipeline.steps import BuildConfig, run_plain

    work = Path(tempfile.mkdtemp(prefix="gcot-bench-review-"))
    images = int(a.examples / 5.9) + 1  # ~6 examples an image
    run_plain(BuildConfig(images=images, seed=41, out=str(work / "rel"), work_dir=str(work / "w")))
    n = len(read_examples(sorted((work / "rel" / "data").glob("*.parquet"))))
    srv = LabelStudioServer(work / "ls", work / "ls" / "files", port=free_port()).start()
    try:
        client = srv.client()
        t = time.perf_counter()
        p = push(work / "rel", client, srv.files_root)
        push_s = time.perf_counter() - t
        tasks = list(client.tasks.list(project=p.project_id, page_size=200))[:200]
        for task in tasks:
            client.annotations.create(id=task.id, result=[{"id": "v", "from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": ["accept"]}}])
        t = time.perf_counter()
        r = pull(work / "rel", client, work / "reviewed")
        pull_s = time.perf_counter() - t
    finally:
        srv.stop()
    print(f"\nLabel Studio review of {n} tasks (SQLite, 2-core CPU)")
    print(f"  push   {push_s:6.1f} s  {n / push_s:7.0f} tasks/s  (target <= 60 s; images exported, tasks with predictions)")
    print(f"  pull   {pull_s:6.1f} s  {n / pull_s:7.0f} tasks/s  (target <= 30 s; every task read, reviewed release written)")
    print(f"  pulled: accepted {r.accepted}, fixed {r.fixed}, rejected {r.rejected}, open {r.open}; reconciles {r.reconciles}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
