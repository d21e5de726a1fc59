"""build-longv-eval speed on a one-minute 640x360 video at 24 fps, as a multiple of real time.

The video is the embedded synthetic default (rendered beforehand, excluded). Timed: the Prefect flow
(server started beforehand, outside the timing) from discovery to the written release, with the
detector loaded inside the timing; and, inside that, the per-video analysis alone (decoding every
frame, keyframe clip cutting on every frame, detection + ByteTrack on every 8th frame, camera
motion, prompts). Target (issue 7): >= 3x real time on 2 cores, detection included at stride 8
(3 detections a second of video).

    make bench      # or: .venv/bin/python benchmarks/bench_longv.py [--stride 8] [--seconds 60]
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
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gcot-bench-prefect-")
os.environ.pop("PREFECT_API_URL", None)

from benchmarks.bench_build import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--stride", type=int, default=8, help="detect on every n-th frame")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench-output" / "longv"))
    a = ap.parse_args()

    from pipeline.detect.detector import Detector
    from pipeline.longv.steps import LongVConfig, analyse
    from pipeline.longv.synthetic import VideoSpec, write_synthetic_videos
    from pipeline.longv.video import probe, read_frames

    out = Path(a.out)
    t = time.perf_counter()
    root = write_synthetic_videos(out / "input", 1, a.seed, VideoSpec(seconds=a.seconds))
    video = root / "videos" / "00001.mp4"
    info = probe(video)
    print(f"rendering (excluded): {time.perf_counter() - t:.1f} s; {video.name}: {info.width}x{info.height}, {info.fps:g} fps, {info.frames} frames")

    cfg = LongVConfig(videos=str(root / "videos"), out=str(out / "release"), work_dir=str(out / "work"), stride=a.stride, seed=a.seed, overwrite=True)
    detector = Detector(cfg.weights())
    list(detector.results(list(read_frames(video, list(range(16))).values())))  # warm-up: the first batch sets Ultralytics up
    t = time.perf_counter()
    item, _ = analyse(video, "00001", cfg, detector)
    analysis_s = time.perf_counter() - t

    from gcot.flows.serve import start_server, stop_server

    port = free_port()
    server = start_server("127.0.0.1", port)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        from gcot.flows.build_longv import build_longv_eval

        shutil.rmtree(cfg.results_dir(), ignore_errors=True)  # nothing reused
        t = time.perf_counter()
        s = build_longv_eval(cfg)
        flow_s = time.perf_counter() - t
    finally:
        stop_server(server)
    d = info.frames / info.fps
    print(f"\nbuild-longv-eval on one {d:.0f} s {info.width}x{info.height} video, {os.cpu_count()} CPU cores, detection every {a.stride} frames")
    print(f"  clips {len(item.clips)}, subjects {len(item.subjects)}, camera {item.camera!r}; released videos {s['videos']}")
    print(f"  analysis only (warm detector)   {analysis_s:6.1f} s   {d / analysis_s:5.1f}x real time")
    print(f"  Prefect flow, end to end        {flow_s:6.1f} s   {d / flow_s:5.1f}x real time  (target >= 3x; detector load and release included)")


if __name__ == "__main__":
    main()
