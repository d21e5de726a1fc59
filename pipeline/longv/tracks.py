"""Subjects of a video: our detector on every `stride`-th frame, Ultralytics' ByteTrack across them.

Detection runs batched (`Detector.results`); the tracker is Ultralytics' own `BYTETracker` with its
shipped ``bytetrack.yaml``, fed the detections of the sampled frames in order. Detector boxes
(absolute ``xyxy``) become normalized ``xywh`` here, at the border. A track's colour is the most
frequent colour name measured from its boxes' pixels (`pipeline.detect.colors`). Tracks seen on
fewer than `MIN_POINTS` sampled frames are dropped as flicker; the rest are ranked by presence
(the sum of their box areas over the sampled frames): the first is the video's main subject.

The camera's motion comes from phase correlation of consecutive sampled frames (grey, 160 px wide):
the horizontal shift, summed inside each clip, says whether the camera pans.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import cv2
import numpy as np

from core.boxes import from_abs_xyxy, quantize
from core.schema import Clip, Subject, TrackPoint
from pipeline.detect import colors
from pipeline.detect.detector import Detector

MIN_POINTS = 3
PAN_FRACTION = 0.1  # a clip pans when its content shifts by more than this fraction of the width


def _tracker():
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

    return BYTETracker(IterableSimpleNamespace(**YAML.load(ROOT / "cfg" / "trackers" / "bytetrack.yaml")))


class SubjectTracker:
    """Feed (frame index, BGR frame) batches in order; `subjects()` at the end."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.tracker = _tracker()
        self.points: dict[int, list[TrackPoint]] = defaultdict(list)
        self.votes: dict[int, Counter] = defaultdict(Counter)
        self.nouns: dict[int, Counter] = defaultdict(Counter)
        self.conf: dict[int, list[float]] = defaultdict(list)

    def feed(self, batch: list[tuple[int, np.ndarray]]) -> None:
        if not batch:
            return
        for (index, bgr), result in zip(batch, self.detector.results([f for _, f in batch])):
            H, W = bgr.shape[:2]
            rows = self.tracker.update(result.boxes.cpu().numpy(), bgr)
            rgb = None
            for x1, y1, x2, y2, tid, score, cls, _ in rows.tolist():
                tid = int(tid)
                box = quantize(from_abs_xyxy(max(0.0, x1), max(0.0, y1), min(float(W), x2), min(float(H), y2), W, H))
                if box[2] <= 0 or box[3] <= 0:
                    continue
                rgb = bgr[..., ::-1] if rgb is None else rgb
                self.points[tid].append(TrackPoint(index, box))
                self.votes[tid][colors.measure(rgb, box)] += 1
                self.nouns[tid][self.detector.noun(int(cls))[0]] += 1
                self.conf[tid].append(float(score))

    def subjects(self) -> list[Subject]:
        out = []
        for tid, pts in self.points.items():
            if len(pts) < MIN_POINTS:
                continue
            color = max(self.votes[tid].items(), key=lambda kv: (kv[1], str(kv[0])))[0]
            name = max(self.nouns[tid].items(), key=lambda kv: (kv[1], kv[0]))[0]
            out.append(Subject(tid, name, color, round(float(np.mean(self.conf[tid])), 4), pts))
        return sorted(out, key=lambda s: (-presence(s), s.track_id))


def presence(s: Subject) -> float:
    return sum(p.box[2] * p.box[3] for p in s.points)


class GlobalMotion:
    """Horizontal shift between consecutive sampled frames (fraction of the width)."""

    WIDTH = 160

    def __init__(self):
        self.prev: tuple[int, np.ndarray] | None = None
        self.shifts: list[tuple[int, int, float]] = []  # (frame a, frame b, dx / width)
        self.window = None

    def feed(self, index: int, bgr: np.ndarray) -> None:
        h, w = bgr.shape[:2]
        gray = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (self.WIDTH, max(8, round(self.WIDTH * h / w))), interpolation=cv2.INTER_AREA)
        gray = gray.astype(np.float32)
        if self.window is None:
            self.window = cv2.createHanningWindow(gray.shape[::-1], cv2.CV_32F)
        if self.prev is not None:
            (dx, _), _ = cv2.phaseCorrelate(self.prev[1], gray, self.window)
            self.shifts.append((self.prev[0], index, dx / self.WIDTH))
        self.prev = (index, gray)

    def camera(self, clips: list[Clip], frames: int) -> str:
        """'static', 'pans left', 'pans right' or 'pans left and right' (clips covering >= 20 %)."""
        moved: Counter = Counter()
        for c in clips:
            total = sum(dx for a, b, dx in self.shifts if c.start <= a and b <= c.end)
            if abs(total) > PAN_FRACTION:
                moved["right" if total < 0 else "left"] += c.end - c.start + 1  # content left = camera right
        dirs = sorted(d for d, n in moved.items() if n >= 0.2 * frames)
        return "static" if not dirs else "pans " + " and ".join(dirs)
