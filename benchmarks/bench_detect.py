"""Pre-annotation throughput: the pipeline's detect step against raw ``YOLO.predict``.

Same images (synthetic scenes), same weights, image size and batch. The pipeline's step also reads
the shard, measures colours and writes the detections; the ratio raw-time / pipeline-time says how
much of the raw speed survives (target >= 0.9).

    .venv/bin/python benchmarks/bench_detect.py [--images 256 --batch 16]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()

    from pipeline.detect.detections import detect_shard, get_detector
    from pipeline.sources.synthetic import write_synthetic_vg
    from pipeline.steps import BuildConfig, ingest

    work = Path(tempfile.mkdtemp(prefix="gcot-bench-detect-"))
    root = write_synthetic_vg(work / "vg", a.images, seed=31)
    ing = ingest(BuildConfig(source=f"vg:{root}", shard_size=a.images, out=str(work / "rel"), work_dir=str(work / "w")))
    det = get_detector("default")
    det.batch = a.batch
    paths = sorted(str(p) for p in (root / "VG_100K").glob("*.jpg"))
    det.model.predict(paths[: a.batch], imgsz=det.imgsz, batch=a.batch, device="cpu", verbose=False)  # warm-up

    raw, ours = [], []
    for _ in range(3):
        t = time.perf_counter()
        for _r in det.model.predict(paths, imgsz=det.imgsz, conf=det.conf, iou=det.iou, batch=a.batch, device="cpu", stream=True, verbose=False):
            pass
        raw.append(time.perf_counter() - t)
        out = work / "det"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        detect_shard(ing.shards[0], ing.digests[0], ing.source_root, "default", {}, det.conf, out)
        ours.append(time.perf_counter() - t)
    r, o = min(raw), min(ours)
    print(f"\npre-annotation of {a.images} synthetic images, batch {a.batch}, imgsz {det.imgsz}, 2-core CPU (best of 3)")
    print(f"  raw YOLO.predict   {r:6.2f} s   {a.images / r:6.1f} images/s")
    print(f"  pipeline step      {o:6.2f} s   {a.images / o:6.1f} images/s  (read shard, detect, colours, write)")
    print(f"  ratio raw / ours   {r / o:6.2f}      (target >= 0.9)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
