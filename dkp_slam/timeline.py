"""The time policy for camera frames, the same in the node and the offline tools (no ROS
imports).

Every frame's stamp (``sec``, ``nanosec`` of its header, or a bag's receive time) goes through
:meth:`StampPolicy.check` before the frame is decoded. The verdicts:

- ``accept``: the stamp is after the last accepted one.
- ``invalid`` (counter ``stamp_invalid``): negative ``sec``, ``nanosec`` outside
  ``[0, 1e9)``, or exactly 0 after other stamps. A *first* stamp of 0 is accepted: datasets'
  clocks (KITTI, synthetic sequences, bags made from them) start there; a driver that never
  stamps has every later frame rejected as a duplicate. With ``time.restamp_zero`` the callers
  give frames stamped 0 the time they were received (:func:`restamped`) before the check.
- ``duplicate`` (``stamp_duplicate``): the last accepted frame's stamp again.
- ``backwards`` (``stamp_backwards``): before the last accepted stamp by less than
  ``time.reset_backwards_s``: out-of-order delivery or a glitch; the frame is rejected.
- ``restart`` (``stamp_resets``): before the last accepted stamp by ``time.reset_backwards_s``
  or more: a bag looping, a camera or simulator restarting. The frame is accepted, the tracker
  is reset and a new *time segment* begins (like tf2, which clears its buffer on a jump back in
  time). Within a segment, accepted stamps strictly increase, so odometry stamps never go
  backwards; the jump back between two segments is announced (log line, ``~/status``, counter)
  before the first frame of the new segment is published.

Rejected frames are never processed. The policy also estimates the camera's frame period
(median of the last accepted intervals) and counts frames that never arrived
(``frames_missing_upstream``): an interval of ``n`` periods, ``n >= time.gap_periods``, means
``round(n) - 1`` frames were lost before this process (a driver dropping, transport losses).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .settings import RUNTIME, setting

NS_PER_S = 1_000_000_000
#: Added to the reasons for frames stamped 0.
ZERO_HINT = (" (the driver does not stamp its images? node.time.restamp_zero:=true stamps them "
             "with the receive time)")

#: Verdicts of :meth:`StampPolicy.check`.
ACCEPT, INVALID, DUPLICATE, BACKWARDS, RESTART = ("accept", "invalid", "duplicate", "backwards",
                                                  "restart")
#: Counter of each verdict that is not a plain accept.
VERDICT_COUNTERS = {INVALID: "stamp_invalid", DUPLICATE: "stamp_duplicate",
                    BACKWARDS: "stamp_backwards", RESTART: "stamp_resets"}
#: Every counter the policy keeps (in this order in diagnostics and summaries).
TIME_COUNTERS = ("stamp_invalid", "stamp_duplicate", "stamp_backwards", "stamp_resets",
                 "frames_missing_upstream")


@dataclass
class TimeConfig:
    """Checks of image stamps (see :mod:`dkp_slam.timeline`)."""

    reset_backwards_s: float = setting(
        1.0, "a stamp this many seconds or more before the previous frame's is a restart of the "
        "source (a bag looping, a camera restarting): the tracker resets and a new time segment "
        "begins; a smaller step back is rejected as stamp_backwards", range=(0.0, 1e9),
        policy=RUNTIME)
    restamp_zero: bool = setting(
        False, "frames stamped 0 (a driver that does not stamp) get the time they were "
        "received (node: its clock; bag-eval: the bag's receive time) instead of being rejected "
        "(a first stamp of 0, where datasets' clocks start, is accepted either way)",
        policy=RUNTIME)
    gap_periods: float = setting(
        1.8, "an interval between arriving stamps of at least this many frame periods (the "
        "median of recent intervals) counts the frames in between as frames_missing_upstream",
        range=(1.1, 1000.0), policy=RUNTIME)


@dataclass(frozen=True)
class StampCheck:
    """What :meth:`StampPolicy.check` decided for one stamp.

    Attributes:
        verdict: :data:`ACCEPT`, :data:`INVALID`, :data:`DUPLICATE`, :data:`BACKWARDS` or
            :data:`RESTART` (accepted too: the tracker must be reset first).
        stamp_ns: the stamp in integer nanoseconds (meaningless when invalid).
        reason: one sentence for logs and ``~/status``; empty when accepted.
        missing: frames lost upstream just before this one (accepted frames only).
    """

    verdict: str
    stamp_ns: int
    reason: str = ""
    missing: int = 0

    @property
    def accepted(self) -> bool:
        """The frame is to be processed (after a reset for :data:`RESTART`)."""
        return self.verdict in (ACCEPT, RESTART)

    @property
    def counter(self) -> Optional[str]:
        """The counter of the verdict (None for a plain accept)."""
        return VERDICT_COUNTERS.get(self.verdict)

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns / NS_PER_S


class StampPolicy:
    """Classify the stamps of one image stream (not thread-safe: one caller)."""

    #: Accepted intervals kept for the frame-period estimate, and needed before it is used.
    WINDOW, MIN_INTERVALS = 30, 5

    def __init__(self, config: Optional[TimeConfig] = None) -> None:
        self.config = config if config is not None else TimeConfig()
        self.last_ns: Optional[int] = None
        self.segment = 0  #: incremented by each accepted restart
        self._intervals: deque[int] = deque(maxlen=self.WINDOW)

    @property
    def period_s(self) -> float:
        """Median of the recent accepted intervals (s); NaN before enough frames."""
        if len(self._intervals) < self.MIN_INTERVALS:
            return float("nan")
        return float(np.median(np.asarray(self._intervals, dtype=np.int64))) / NS_PER_S

    def check(self, sec: int, nanosec: int) -> StampCheck:
        """Classify a stamp; accepted stamps (and restarts) become the new last stamp."""
        sec, nanosec = int(sec), int(nanosec)
        if sec < 0 or not 0 <= nanosec < NS_PER_S:
            return StampCheck(INVALID, sec * NS_PER_S + nanosec,
                              f"invalid stamp sec={sec} nanosec={nanosec} (needs sec >= 0 and "
                              f"0 <= nanosec < 1e9): frame skipped")
        stamp_ns = sec * NS_PER_S + nanosec
        last = self.last_ns
        if last is None:
            self.last_ns = stamp_ns
            return StampCheck(ACCEPT, stamp_ns)
        if stamp_ns == last:
            return StampCheck(DUPLICATE, stamp_ns, f"stamp {_s(stamp_ns)} repeats the previous "
                                                   f"frame's: frame skipped" + (
                                                       ZERO_HINT if stamp_ns == 0 else ""))
        if stamp_ns == 0:
            return StampCheck(INVALID, 0, "stamp is 0 after stamped frames: frame skipped"
                                          + ZERO_HINT)
        if stamp_ns < last:
            back_s = (last - stamp_ns) / NS_PER_S
            if back_s < self.config.reset_backwards_s:
                return StampCheck(BACKWARDS, stamp_ns,
                                  f"stamp {_s(stamp_ns)} goes back {back_s:.3f} s from the "
                                  f"previous frame's {_s(last)}: frame skipped")
            self.last_ns = stamp_ns
            self.segment += 1
            self._intervals.clear()
            return StampCheck(RESTART, stamp_ns,
                              f"time jumped back {back_s:.3f} s (from {_s(last)} to "
                              f"{_s(stamp_ns)}; a bag looping or a source restarting): tracking "
                              f"restarts, time segment {self.segment} begins")
        missing = 0
        period = self.period_s
        interval = stamp_ns - last
        if np.isfinite(period) and period > 0:
            periods = interval / NS_PER_S / period
            if periods >= self.config.gap_periods:
                missing = int(round(periods)) - 1
        if missing == 0:  # a gap is not a period: keep the estimate clean
            self._intervals.append(interval)
        self.last_ns = stamp_ns
        return StampCheck(ACCEPT, stamp_ns, missing=missing)


def restamped(sec: int, nanosec: int, received_ns: int, config: TimeConfig) -> tuple[int, int]:
    """``(sec, nanosec)`` to check and publish: the receive time for a stamp of 0 when
    ``config.restamp_zero``, else the stamp itself."""
    if config.restamp_zero and sec == 0 and nanosec == 0:
        return divmod(int(received_ns), NS_PER_S)
    return int(sec), int(nanosec)


def _s(stamp_ns: int) -> str:
    return f"{stamp_ns // NS_PER_S}.{stamp_ns % NS_PER_S:09d}"


__all__ = ["TimeConfig", "StampCheck", "StampPolicy", "restamped", "TIME_COUNTERS", "VERDICT_COUNTERS",
           "ACCEPT", "INVALID", "DUPLICATE", "BACKWARDS", "RESTART"]
