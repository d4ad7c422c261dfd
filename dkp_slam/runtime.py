"""Plain-Python machinery behind the node's worker thread (no ROS imports).

- :class:`FrameMailbox`: a small mailbox (``node.queue_depth`` items, 2 by default).
  Subscription callbacks put the newest message in and never block; the worker takes the
  oldest waiting one; a message pushed out before the worker took it is a dropped frame. The
  node therefore falls behind by at most ``queue_depth`` frames (``node.process_every_frame``
  raises the capacity to 1000 for evaluation).
- :class:`SequenceGaps`: frames lost before the callback, from publisher sequence numbers.
- :class:`NodeStats`: thread-safe counters, FPS and latency for ``/diagnostics`` and
  ``~/status``.

The odometry chaining is core logic in :mod:`dkp_slam.odometry`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Generic, Optional, TypeVar

import numpy as np

from .timeline import TIME_COUNTERS


T = TypeVar("T")


class FrameMailbox(Generic[T]):
    """Mailbox whose :meth:`put` never blocks: items wait in order and, when ``capacity``
    are waiting, a new one pushes out the oldest (with capacity 1 the newest replaces the
    one nobody took). The node's capacity is ``node.queue_depth``."""

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._cond = threading.Condition()
        self._items: deque[T] = deque()
        self._capacity = int(capacity)
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item`` as the newest; return True when an unconsumed item was dropped."""
        with self._cond:
            dropped = len(self._items) >= self._capacity
            if dropped:
                self._items.popleft()
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float) -> Optional[T]:
        """The oldest waiting item (the newest, with capacity 1), removing it; None after
        ``timeout`` seconds or on close."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """Wake a waiting :meth:`get`; later gets return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Items waiting (at most the capacity)."""
        with self._cond:
            return len(self._items)


class SequenceGaps:
    """Frames lost before the subscription callback, from gaps in each publisher's
    ``publication_sequence_number`` (DDS queue overwritten while the executor was busy, or
    best-effort samples lost in transport). Gaps before a publisher's first seen message are
    unknowable and not counted."""

    MAX_PUBLISHERS = 64

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def update(self, publisher: bytes, sequence: int) -> int:
        """Record ``sequence`` from ``publisher``; return how many were skipped since the last."""
        last = self._last.get(publisher)
        if last is None and len(self._last) >= self.MAX_PUBLISHERS:
            self._last.clear()
        self._last[publisher] = sequence
        return max(sequence - last - 1, 0) if last is not None else 0


class NodeStats:
    """Counters and rolling FPS / latency, safe to update from callbacks and the worker.

    Counters: ``received`` (images that reached the callback), ``processed``, ``dropped``
    (all frames not processed: ``dropped_busy + dropped_queue``), ``dropped_busy`` (pushed
    out of the full mailbox while the worker was busy), ``dropped_queue`` (lost before the callback,
    see :class:`SequenceGaps`), ``invalid_images``, ``invalid_camera_info``,
    ``waiting_for_camera_info`` (frames skipped before the first CameraInfo), ``errors``
    (unexpected exceptions while processing), and the stamp counters of
    :data:`dkp_slam.timeline.TIME_COUNTERS` (rejected stamps, time resets, frames the stamps
    show were lost before they reached the node).
    """

    COUNTERS = ("received", "processed", "dropped", "dropped_busy", "dropped_queue",
                "invalid_images", "invalid_camera_info", "waiting_for_camera_info", "errors",
                *TIME_COUNTERS)

    def __init__(self, window: int = 100) -> None:
        self._lock = threading.Lock()
        self.counters: Counter = Counter({k: 0 for k in self.COUNTERS})
        self.status_counts: Counter = Counter()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._process_ms: deque[float] = deque(maxlen=window)
        self._done: deque[float] = deque(maxlen=window)
        self.last: dict[str, Any] = {}
        self.last_problem: str = ""
        self.last_problem_time = float("-inf")
        self.last_error_time = float("-inf")

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def problem(self, name: str, reason: str, error: bool = False) -> None:
        """Count a rejected input (or an error, ``error=True``) and remember the reason."""
        with self._lock:
            self.counters[name] += 1
            self.last_problem = reason
            self.last_problem_time = time.monotonic()
            if error:
                self.last_error_time = self.last_problem_time

    def frame_done(self, status: str, latency_ms: float, process_ms: float,
                   last: dict[str, Any]) -> None:
        """Record one processed frame."""
        with self._lock:
            self.counters["processed"] += 1
            self.status_counts[status] += 1
            self._latency_ms.append(latency_ms)
            self._process_ms.append(process_ms)
            self._done.append(time.monotonic())
            self.last = dict(last)

    def snapshot(self, horizon_s: float = 5.0) -> dict[str, Any]:
        """Counters, FPS over the last ``horizon_s`` seconds, latency median / p90 (ms)."""
        with self._lock:
            now = time.monotonic()
            done = [t for t in self._done if now - t <= horizon_s]
            fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) >= 2 and \
                done[-1] > done[0] else 0.0
            lat = np.array(self._latency_ms) if self._latency_ms else np.zeros(0)
            proc = np.array(self._process_ms) if self._process_ms else np.zeros(0)
            return {
                **dict(self.counters),
                "fps": fps,
                "latency_ms_median": float(np.median(lat)) if lat.size else float("nan"),
                "latency_ms_p90": float(np.percentile(lat, 90)) if lat.size else float("nan"),
                "process_ms_median": float(np.median(proc)) if proc.size else float("nan"),
                "status_counts": dict(self.status_counts),
                "last": dict(self.last),
                "last_problem": self.last_problem,
                "problem_age_s": now - self.last_problem_time,
                "error_age_s": now - self.last_error_time,
                "idle_s": now - self._done[-1] if self._done else float("inf"),
            }


__all__ = ["FrameMailbox", "SequenceGaps", "NodeStats"]
