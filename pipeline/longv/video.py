"""Reading videos (OpenCV), with one clear error for each way a file can be bad.

A file is a video when its extension is one of `VIDEO_EXTENSIONS`, OpenCV opens it, it reports a
positive frame rate and its first frame decodes. `probe` checks all of that and names the file in
`VideoError`; the flow records the reason and goes on with the other videos.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")


class VideoError(ValueError):
    def __init__(self, path: Path | str, rule: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.rule, self.detail = str(path), rule, detail


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    frames: int  # as the container reports it; the decoded count is what the release records
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _mp4_media_bytes(path: Path) -> int | None:
    """Bytes of media data in an ISO-BMFF (.mp4/.mov) file's top-level ``mdat`` boxes; None if the
    file is not one. Tells an empty container (zero frames) from a corrupt file."""
    total, seen_ftyp = 0, False
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                return None
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            body = size - 8
            if size == 1:
                body = int.from_bytes(f.read(8), "big") - 16
            elif size == 0:
                body = path.stat().st_size - f.tell()
            if body < 0 or not kind.isalnum() and kind != b"free":
                return None
            seen_ftyp |= kind == b"ftyp"
            total += body if kind == b"mdat" else 0
            f.seek(body, 1)
    return total if seen_ftyp else None


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        if _mp4_media_bytes(path) == 0:
            raise VideoError(path, "no_frames", "the container holds no frames (zero frames)")
        raise VideoError(path, "unreadable_video", "OpenCV cannot open it as a video (corrupt, truncated or not a video)")
    return cap


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoError(path, "not_a_video", f"extension {path.suffix or '(none)'!r} is not a video's ({', '.join(VIDEO_EXTENSIONS)})")
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoError(path, "unreadable_video", "empty file")
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = cap.read()
    finally:
        cap.release()
    if not ok or first is None:
        raise VideoError(path, "no_frames", "no frame decodes (zero frames)")
    if not fps > 0:
        raise VideoError(path, "unreadable_video", "the container reports no frame rate")
    return VideoInfo(str(path), fps, max(frames, 1), int(first.shape[1]), int(first.shape[0]))


def frames(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of every frame, decoded once, in order."""
    cap = _open(Path(path))
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield i, frame
            i += 1
    finally:
        cap.release()


def read_frames(path: str | Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The BGR frames at ``indices`` (seeking; OpenCV decodes from the previous keyframe)."""
    cap = _open(Path(path))
    out: dict[int, np.ndarray] = {}
    try:
        for i in sorted(set(indices)):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if ok:
                out[i] = frame
    finally:
        cap.release()
    return out


def write_video(path: str | Path, frames_bgr, fps: float, size: tuple[int, int]) -> int:
    """Encode BGR frames as MPEG-4 Part 2 in an .mp4 (OpenCV's built-in encoder); returns frames written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise VideoError(path, "unwritable_video", "OpenCV cannot write an mp4 here")
    n = 0
    try:
        for f in frames_bgr:
            writer.write(f)
            n += 1
    finally:
        writer.release()
    return n
