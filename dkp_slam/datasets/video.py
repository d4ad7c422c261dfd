"""A video file (OpenCV ``VideoCapture``), read frame by frame in order."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from .common import VIDEO_EXTENSIONS, PathLike, SequenceFormat, require


class _VideoReader:
    """Lazy frame access to a video file with one cached ``cv2.VideoCapture``.

    Sequential reads just decode the next frame; a backwards jump or a long forward jump seeks
    with ``CAP_PROP_POS_FRAMES`` (slower, and only as exact as the container allows).
    """

    #: forward gaps up to this many frames are skipped with grab() rather than a seek
    MAX_GRAB_SKIP = 32

    def __init__(self, path: Path, n_frames: int) -> None:
        self.path = path
        self.n_frames = n_frames
        self._cap: Optional[cv2.VideoCapture] = None
        self._next = 0  # index of the frame the next read() returns
        self._lock = threading.Lock()

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise IOError(f"cannot open video {self.path}")
        self._next = 0
        return cap

    def __call__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame index {i} out of range [0, {self.n_frames})")
        with self._lock:
            if self._cap is None:
                self._cap = self._open()
            cap = self._cap
            if i != self._next:
                if self._next < i <= self._next + self.MAX_GRAB_SKIP:
                    while self._next < i:
                        if not cap.grab():
                            break
                        self._next += 1
                elif i == 0:
                    cap.release()
                    self._cap = cap = self._open()
                else:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                    self._next = i
            ok, frame = cap.read() if self._next == i else (False, None)
            if not ok or frame is None:
                # leave the capture in a known state for the next call
                cap.release()
                self._cap = None
                raise IOError(f"cannot read frame {i} of video {self.path}")
            self._next = i + 1
            return frame

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None


def load_video(path: PathLike, fps: float = 10.0, exact_stamps: bool = False,
               name: Optional[str] = None) -> Sequence:
    """A video file as a sequence, decoded lazily through one cached ``cv2.VideoCapture``.

    By default the frame count and frame rate come from the container (``CAP_PROP_FRAME_COUNT``,
    ``CAP_PROP_FPS``; ``fps`` is the fallback when the container has none) and stamps are
    ``i / fps``. With ``exact_stamps=True``, or when the container reports no frame count, the
    file is scanned once with ``grab()`` (no frames kept) and stamps are the
    ``CAP_PROP_POS_MSEC`` of each frame, which handles variable frame rates. Images are BGR
    uint8 HxWx3 as OpenCV decodes them. Reading frames in order is fast; random access seeks.

    Raises:
        FileNotFoundError: the file does not exist.
        IOError: OpenCV cannot open the file.
        ValueError: the video has no frames.
    """
    path = Path(path)
    require(path, "video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise IOError(f"cannot open video {path} with OpenCV (codec or backend missing?)")
    try:
        c_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        c_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        use_fps = c_fps if np.isfinite(c_fps) and 0 < c_fps < 1000 else float(fps)
        if not use_fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if exact_stamps or c_count <= 0:
            ms = []
            while cap.grab():
                ms.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
            n = len(ms)
            stamps = np.asarray(ms, dtype=np.float64) / 1000.0
            # Some backends report 0 (or garbage) throughout: fall back to frame / fps.
            if n > 1 and (not np.all(np.isfinite(stamps)) or np.any(np.diff(stamps) <= 0)):
                stamps = np.arange(n, dtype=np.float64) / use_fps
                stamps_src = "frame/fps"
            else:
                stamps_src = "CAP_PROP_POS_MSEC"
        else:
            n = c_count
            stamps = np.arange(n, dtype=np.float64) / use_fps
            stamps_src = "frame/fps"
    finally:
        cap.release()
    if n == 0:
        raise ValueError(f"video {path} contains no frames")
    reader = _VideoReader(path, n)
    return Sequence(
        name=name or path.stem,
        stamps=stamps,
        load_image=reader,
        camera=None,
        gt_poses=None,
        meta={"format": "video", "path": str(path), "fps": use_fps, "width": width,
              "height": height, "stamps_from": stamps_src, "reader": reader},
    )


SEQUENCE_FORMATS.register("video", SequenceFormat(
    "video", f"a video file ({', '.join(VIDEO_EXTENSIONS)})",
    lambda p: p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS,
    lambda p, fps: load_video(p, fps=fps)))
