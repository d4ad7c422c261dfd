"""VINS-Fusion's feature message: the tracked features of one frame in the layout VINS-Mono's
``feature_tracker`` publishes and its estimator (and VINS-Fusion's, and the DL-VINS-style
systems built on them) reads. No ROS import: the ROS layer only copies these arrays into a
``sensor_msgs/PointCloud`` (:func:`dkp_slam.ros.conversions.vins_features_msg`).

Layout (one message per frame, one entry per feature; ``sensor_msgs/PointCloud``):

============ ======================================================================
``points[i]`` ``geometry_msgs/Point32`` ``(x, y, 1)``: undistorted normalised coordinates
              ``((u - cx) / fx, (v - cy) / fy)`` after undistortion; ``z`` is exactly 1
channel 0     ``id``: ``feature_id * NUM_OF_CAM + camera_id``; here one camera, so the track
              id (modulo 2**24, where float32 still holds every integer exactly)
channel 1     ``u``: pixel column in the distorted image (pixel-centre convention)
channel 2     ``v``: pixel row
channel 3     ``velocity_x``: ``dx / dt`` on the normalised plane (1/s) since the previous frame
channel 4     ``velocity_y``: ``dy / dt``
============ ======================================================================

As VINS-Mono's tracker does, only features tracked in at least two frames are sent (its
``track_cnt > 1``: our ``track_age >= 1``), a feature's velocity is 0 when it was not in the
previous frame, and the channels are read by position (their names, ``id``, ``u``, ``v``,
``velocity_x``, ``velocity_y``, are for people). The estimator reads it as
:func:`decode_vins_features` does (``estimator_node.cpp``: ``v = channels[0].values[i] + 0.5``,
``feature_id = v / NUM_OF_CAM``, ``camera_id = v % NUM_OF_CAM``, ``ROS_ASSERT(z == 1)``).
Without intrinsics there are no normalised coordinates: nothing can be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

#: Channel names in the order the estimator reads them.
VINS_CHANNELS = ("id", "u", "v", "velocity_x", "velocity_y")
#: Track ids are sent modulo this: every integer below it is exact in float32.
VINS_ID_MODULUS = 1 << 24


@dataclass
class VinsFeatures:
    """One frame's feature message as arrays (what goes into the ``PointCloud``).

    Attributes:
        stamp: image time (s).
        points: (N,3) float32 ``(x, y, 1)``.
        channels: (5,N) float32, rows in the order of :data:`VINS_CHANNELS`.
    """

    stamp: float
    points: np.ndarray
    channels: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


class VinsFeatureTracks:
    """Builds each frame's :class:`VinsFeatures` from the front-end's frames, keeping the
    previous frame's normalised positions for the velocities.

    Args:
        camera_id: this camera's index in the estimator (``id = track * num_cameras +
            camera_id``).
        num_cameras: the estimator's ``NUM_OF_CAM``.
    """

    def __init__(self, camera_id: int = 0, num_cameras: int = 1) -> None:
        if not 0 <= camera_id < num_cameras:
            raise ValueError(f"camera_id {camera_id} not in [0, {num_cameras})")
        self.camera_id, self.num_cameras = int(camera_id), int(num_cameras)
        # the previous frame: stamp, track ids, normalised points
        self._previous: Optional[tuple[float, np.ndarray, np.ndarray]] = None

    def reset(self) -> None:
        """Forget the previous frame (after a restart of the tracker: its ids start again)."""
        self._previous = None

    def update(self, result: Any) -> Optional[VinsFeatures]:
        """The message for a :class:`~dkp_slam.frontend.FrameResult`, or None when there are
        no normalised coordinates (no intrinsics). Track ids follow matches to the previous
        frame whatever the pose's status, so a feature tracked in two frames is sent even
        when the pose was not found (as VINS' optical-flow tracker does)."""
        xy = result.keypoints_normalised
        if xy is None:
            self._previous = None
            return None
        ids = np.asarray(result.track_ids, dtype=np.int64).reshape(-1)
        ages = np.asarray(result.track_ages, dtype=np.int64).reshape(-1)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        stamp = float(result.stamp)
        previous, self._previous = self._previous, (stamp, ids, xy)
        keep = ages >= 1
        ids, xy, uv = ids[keep], xy[keep], np.asarray(result.keypoints)[keep]
        velocity = np.zeros_like(xy)
        if previous is not None and stamp > previous[0]:
            # track ids are unique within a frame: match them to the previous frame's
            _, here, there = np.intersect1d(ids, previous[1], assume_unique=True,
                                            return_indices=True)
            velocity[here] = (xy[here] - previous[2][there]) / (stamp - previous[0])
        wire_id = (ids % VINS_ID_MODULUS) * self.num_cameras + self.camera_id
        points = np.column_stack([xy, np.ones(len(xy))]).astype(np.float32)
        channels = np.vstack([wire_id, uv[:, 0], uv[:, 1], velocity[:, 0],
                              velocity[:, 1]]).astype(np.float32).reshape(5, -1)
        return VinsFeatures(stamp, points, channels)


@dataclass
class VinsObservation:
    """One feature as VINS' estimator sees it."""

    feature_id: int
    camera_id: int
    x: float
    y: float
    z: float
    p_u: float
    p_v: float
    velocity_x: float
    velocity_y: float


def decode_vins_features(points: Sequence[Any], channels: Sequence[Any],
                         num_cameras: int = 1) -> list[VinsObservation]:
    """Read a feature message the way VINS-Mono's estimator does (``estimator_node.cpp``):
    ``points`` are objects with ``x, y, z`` (``geometry_msgs/Point32``) or rows of an
    (N,3) array, ``channels`` objects with ``values`` (``sensor_msgs/ChannelFloat32``) or
    rows of a (5,N) array.

    Raises:
        ValueError: fewer than five channels, a channel of another length than ``points``,
            or a point with ``z != 1`` (the estimator's ``ROS_ASSERT(z == 1)``).
    """
    def values(channel: Any) -> Sequence[float]:
        return channel.values if hasattr(channel, "values") else channel

    if len(channels) < 5:
        raise ValueError(f"a VINS feature message has 5 channels, got {len(channels)}")
    cols = [values(c) for c in channels[:5]]
    if any(len(c) != len(points) for c in cols):
        raise ValueError(f"channel lengths {[len(c) for c in cols]} != {len(points)} points")
    out = []
    for i, p in enumerate(points):
        x, y, z = (p.x, p.y, p.z) if hasattr(p, "x") else (p[0], p[1], p[2])
        if z != 1:
            raise ValueError(f"point {i}: z = {z}, the estimator asserts z == 1")
        v = int(cols[0][i] + 0.5)
        out.append(VinsObservation(v // num_cameras, v % num_cameras, float(x), float(y),
                                   float(z), float(cols[1][i]), float(cols[2][i]),
                                   float(cols[3][i]), float(cols[4][i])))
    return out


__all__ = ["VINS_CHANNELS", "VINS_ID_MODULUS", "VinsFeatures", "VinsFeatureTracks",
           "VinsObservation", "decode_vins_features"]
