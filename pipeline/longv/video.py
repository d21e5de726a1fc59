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


BROWSER_CODECS = ("avc1", "h264", "vp09", "vp80", "av01")  # what Label Studio's player (a browser) decodes


def write_video(path: str | Path, frames_bgr, fps: float, size: tuple[int, int], crf: int = 20) -> int:
    """Encode BGR frames as H.264 (libx264, yuv420p, +faststart) in an .mp4 with PyAV; returns the
    frames written. Deterministic: the same frames give the same bytes. A browser plays it, which
    the MPEG-4 Part 2 that OpenCV's wheels can write would not."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    n = 0
    try:
        with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as box:
            stream = box.add_stream("libx264", rate=round(fps) if float(fps).is_integer() else fps, options={"preset": "veryfast", "crf": str(crf)})
            stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"  # 4:2:0 needs even sides
            for f in frames_bgr:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: stream.height, : stream.width]), format="bgr24")
                box.mux(stream.encode(frame))
                n += 1
            box.mux(stream.encode())
    except av.FFmpegError as e:
        raise VideoError(path, "unwritable_video", f"cannot encode H.264 here ({e})") from e
    return n


def codec(path: str | Path) -> str:
    """The video stream's codec tag as OpenCV reports it (e.g. 'avc1', 'mp4v')."""
    cap = _open(Path(path))
    try:
        tag = int(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()
    return "".join(chr((tag >> 8 * i) & 0xFF) for i in range(4)).strip("\x00").lower()
