"""The per-frame record, and the node's ``~/status`` message built from it.

:class:`FrameRecord` is what is kept of a processed frame for evaluation and reports (no
keypoints or descriptors): ``dkp-slam run`` and ``bag-eval`` collect one per frame from
``FrontEnd.process`` (:meth:`FrameRecord.from_result`), the node publishes it on ``~/status``
(:class:`StatusReport`), and ``bag-eval`` reads the node's recordings back into the same type
(:meth:`StatusReport.from_json`, with the poses from the pose topics).

``~/status`` JSON, version :data:`STATUS_VERSION` (docs/ROS.md, "~/status"): one flat object
with ``schema`` (:data:`STATUS_SCHEMA`), ``version``, ``status`` (a :class:`NodeStatus`),
``message``, ``stamp`` (image time in s, or null), the node's counters, and for a processed
frame the keys of :meth:`FrameRecord.to_json` plus ``frame_id`` and ``latency_ms``. NaN is written
as null. A message without ``schema`` is the version 0 layout of recordings made before the
version field existed: the same keys, read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import numpy as np

from .tracking import TrackingStatus

STATUS_SCHEMA = "dkp_slam/status"
STATUS_VERSION = 1


_TRACKING_VALUES = frozenset(s.value for s in TrackingStatus)


class NodeStatus(str, Enum):
    """Every ``status`` the node reports on ``~/status``: the tracking states of a processed
    frame (:class:`~dkp_slam.tracking.TrackingStatus`) and the states of an input that was
    not processed."""

    INITIALISING = TrackingStatus.INITIALISING.value
    OK = TrackingStatus.OK.value
    LOW_PARALLAX = TrackingStatus.LOW_PARALLAX.value
    FEW_MATCHES = TrackingStatus.FEW_MATCHES.value
    LOST = TrackingStatus.LOST.value
    #: an image arrived before the first valid CameraInfo (``node.camera.source: camera_info``)
    WAITING_FOR_CAMERA_INFO = "WAITING_FOR_CAMERA_INFO"
    #: an input was rejected (encoding, size, corrupt data, invalid CameraInfo, stamps)
    INPUT_ERROR = "INPUT_ERROR"
    #: processing raised an unexpected exception (counted as ``errors``)
    ERROR = "ERROR"
    #: time jumped back beyond ``node.time.reset_backwards_s``: tracking restarts with this
    #: frame, which is processed next (counted as ``stamp_resets``)
    TIME_RESET = "TIME_RESET"

    @property
    def frame_processed(self) -> bool:
        return self.value in _TRACKING_VALUES


@dataclass
class FrameRecord:
    """One processed frame.

    Attributes:
        index: frame counter of the front-end (since construction or reset).
        stamp: image time (s).
        status: tracking state.
        message: why, in words.
        model: two-view model used (``essential``, ``homography``, ``rotation``,
            ``homography_only``, ``none``).
        keypoints, matches, inliers: counts (mutual-NN matches before, inliers after the
            geometric check).
        inlier_ratio: inliers / matches.
        parallax_px: median rotation-compensated flow of the inliers.
        reference_index, reference_stamp: the frame the pose refers to (-1 / NaN if none).
        is_keyframe: this frame became the keyframe.
        timings: milliseconds per stage (detect, match, geometry, track, total).
        R, t: relative pose ``T_ref_cur`` (unit ``t``; zeros when unobservable).
        T_world_cam: chained pose, first frame = identity, unit steps.
        sequence_index: index of the frame in its sequence or bag (-1 if not known).
        odometry_covariance: 6x6 covariance of the chained pose in ROS order (translation,
            rotation), as :class:`~dkp_slam.odometry.OdometryChain` accumulates it for the
            node's ``~/odometry``; None where not computed.
    """

    index: int
    stamp: float
    status: TrackingStatus
    message: str = ""
    model: str = "none"
    keypoints: int = 0
    matches: int = 0
    inliers: int = 0
    inlier_ratio: float = 0.0
    parallax_px: float = 0.0
    reference_index: int = -1
    reference_stamp: float = math.nan
    is_keyframe: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    T_world_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    sequence_index: int = -1
    odometry_covariance: Optional[np.ndarray] = None

    @property
    def odometry_rotation_sigma_deg(self) -> float:
        """RMS standard deviation of the chained rotation (deg), NaN if unknown."""
        if self.odometry_covariance is None:
            return math.nan
        return math.degrees(math.sqrt(max(np.trace(self.odometry_covariance[3:, 3:]), 0) / 3))

    @property
    def tracked(self) -> bool:
        return self.status.tracked

    @classmethod
    def from_result(cls, result: Any, sequence_index: int = -1) -> "FrameRecord":
        """The record of a :class:`~dkp_slam.frontend.FrameResult`."""
        return cls(
            index=int(result.index), stamp=float(result.stamp), status=result.status,
            message=result.message, model=result.model, keypoints=int(len(result.keypoints)),
            matches=int(result.num_matches), inliers=int(result.num_inliers),
            inlier_ratio=float(result.inlier_ratio), parallax_px=float(result.parallax_px),
            reference_index=int(result.reference_index),
            reference_stamp=float(result.reference_stamp), is_keyframe=bool(result.is_keyframe),
            timings=dict(result.timings), R=np.asarray(result.R, dtype=np.float64),
            t=np.asarray(result.t, dtype=np.float64),
            T_world_cam=np.asarray(result.T_world_cam, dtype=np.float64),
            sequence_index=sequence_index)

    def to_json(self) -> dict[str, Any]:
        """The frame's keys of the ``~/status`` JSON (no poses: those are on the pose topics)."""
        return {"index": self.index, "status": self.status.value, "message": self.message,
                "tracked": self.tracked, "model": self.model, "keypoints": self.keypoints,
                "matches": self.matches, "inliers": self.inliers,
                "inlier_ratio": self.inlier_ratio, "parallax_px": self.parallax_px,
                "reference_index": self.reference_index, "reference_stamp": self.reference_stamp,
                "is_keyframe": self.is_keyframe, "timings_ms": dict(self.timings)}


class StatusFormatError(ValueError):
    """A ``~/status`` message that is not one (not JSON, not an object, unknown status or a
    newer version)."""


@dataclass
class StatusReport:
    """One ``~/status`` message.

    Attributes:
        status: what happened to the input.
        message: why, in words.
        stamp: image time (s), or None when the input had none.
        counters: the node's counters (received, processed, dropped, ...).
        frame: the processed frame (None for an input that was not processed).
        frame_id: camera frame of the outputs (processed frames).
        latency_ms: image received -> outputs published (processed frames).
        version: the JSON layout version it was read from (0: before the field existed).
    """

    status: NodeStatus
    message: str = ""
    stamp: Optional[float] = None
    counters: dict[str, int] = field(default_factory=dict)
    frame: Optional[FrameRecord] = None
    frame_id: str = ""
    latency_ms: Optional[float] = None
    version: int = STATUS_VERSION

    @classmethod
    def for_frame(cls, record: FrameRecord, frame_id: str, latency_ms: float,
                  counters: dict[str, int]) -> "StatusReport":
        return cls(NodeStatus(record.status.value), record.message, record.stamp,
                   dict(counters), record, frame_id, latency_ms)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (NaN values are left to the encoder, which writes null)."""
        data: dict[str, Any] = {"schema": STATUS_SCHEMA, "version": STATUS_VERSION,
                                "status": self.status.value, "message": self.message}
        if self.stamp is not None:
            data["stamp"] = self.stamp
        if self.frame is not None:
            data.update(self.frame.to_json(), frame_id=self.frame_id,
                        latency_ms=self.latency_ms)
        data.update(self.counters)
        return data

    @classmethod
    def from_json(cls, data: Any, counter_names: tuple[str, ...] = ()) -> "StatusReport":
        """Read a decoded ``~/status`` object (version 0 or :data:`STATUS_VERSION`).

        The frame's poses are not in the message: ``frame.R`` / ``t`` / ``T_world_cam`` stay
        at identity until taken from the pose topics.

        Raises:
            StatusFormatError: not a status object of a known version.
        """
        if not isinstance(data, dict):
            raise StatusFormatError(f"~/status: expected a JSON object, got {type(data).__name__}")
        version = data.get("version", 0)  # no "schema" nor "version": recorded before them
        if data.get("schema", STATUS_SCHEMA) != STATUS_SCHEMA or version not in (0,
                                                                                STATUS_VERSION):
            raise StatusFormatError(f"~/status: schema {data.get('schema')!r} version "
                                    f"{data.get('version')!r} is not readable here "
                                    f"(version {STATUS_VERSION} of {STATUS_SCHEMA})")
        try:
            status = NodeStatus(data.get("status"))
        except (ValueError, TypeError):
            raise StatusFormatError(f"~/status: unknown status {data.get('status')!r}") from None
        try:
            return cls._read(data, status, counter_names, int(version))
        except (TypeError, ValueError, AttributeError, OverflowError) as err:
            raise StatusFormatError(f"~/status: a field of the wrong type: {err}") from None

    @classmethod
    def _read(cls, data: dict, status: NodeStatus, counter_names: tuple[str, ...],
              version: int) -> "StatusReport":
        stamp = _number(data.get("stamp"), None)
        frame = None
        if status.frame_processed and "index" in data and stamp is not None:
            frame = FrameRecord(
                index=int(data["index"]), stamp=stamp, status=TrackingStatus(status.value),
                message=str(data.get("message", "")), model=str(data.get("model", "")),
                keypoints=int(data.get("keypoints") or 0), matches=int(data.get("matches") or 0),
                inliers=int(data.get("inliers") or 0),
                inlier_ratio=_number(data.get("inlier_ratio"), 0.0),
                parallax_px=_number(data.get("parallax_px"), 0.0),
                reference_index=int(_number(data.get("reference_index"), -1)),
                reference_stamp=_number(data.get("reference_stamp"), math.nan),
                is_keyframe=bool(data.get("is_keyframe", False)),
                timings={k: float(v) for k, v in (data.get("timings_ms") or {}).items()
                         if v is not None})
        counters = {k: int(data[k]) for k in counter_names if isinstance(data.get(k), int)}
        return cls(status, str(data.get("message", "")), stamp, counters, frame,
                   str(data.get("frame_id", "")), _number(data.get("latency_ms"), None),
                   version)


def _number(value: Any, default: Any) -> Any:
    """``value`` as a float, ``default`` for None / NaN / non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return float(value)


__all__ = ["FrameRecord", "StatusReport", "NodeStatus", "StatusFormatError",
           "STATUS_SCHEMA", "STATUS_VERSION"]
