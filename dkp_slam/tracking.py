"""Track bookkeeping, keyframe policy and the per-frame tracking status.

The tracker is told, for each frame, which of its keypoints matched which keypoints of the
previous frame (geometrically verified). It assigns persistent track ids (a keypoint matched to
a tracked keypoint inherits its id, every other keypoint starts a new track, so keypoints are
replenished as tracks die: each frame is detected afresh up to the keypoint budget), ages
(frames tracked so far) and decides keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

import numpy as np

from .config import TrackerConfig


class TrackingStatus(str, Enum):
    """Explicit per-frame state, published as is."""

    #: no reference frame yet: first frame, after reset(), or while frames have too few
    #: keypoints. After LOST the lost frame itself becomes the new reference.
    INITIALISING = "INITIALISING"
    OK = "OK"  #: pose estimated with an observable translation direction
    LOW_PARALLAX = "LOW_PARALLAX"  #: rotation only: too little parallax for a translation
    FEW_MATCHES = "FEW_MATCHES"  #: too few geometric inliers this frame; pose not estimated
    LOST = "LOST"  #: ``lost_after`` failures in a row; the tracker reinitialised

    @property
    def tracked(self) -> bool:
        """True when the frame has a pose relative to its reference."""
        return self in (TrackingStatus.OK, TrackingStatus.LOW_PARALLAX)


@dataclass
class TrackedFrame:
    """What the tracker keeps of a frame that may serve as a reference later."""

    index: int
    stamp: float
    keypoints: np.ndarray  # (N,2) distorted pixels
    undistorted: np.ndarray  # (N,2) undistorted pixels (== keypoints without intrinsics)
    descriptors: object  # matcher-prepared tensor
    track_ids: np.ndarray  # (N,) int64
    track_ages: np.ndarray  # (N,) int32
    T_world_cam: np.ndarray  # 4x4, chained, up to scale


@dataclass
class RotationAnchor:
    """A frame that the rotation of slow frames is measured against (``reference:
    previous``): its rotation to the previous frame, when that had enough parallax to it."""

    frame: TrackedFrame
    R_to_previous: Optional[np.ndarray] = None  # R of T_anchor_previous
    rotation_covariance: Optional[np.ndarray] = None  # 3x3, about the anchor's axes (rad^2)
    #: The parallax last measured to the anchor plus the one-step parallaxes since: an upper
    #: estimate of the parallax now, so a static camera does not measure it every frame.
    parallax_bound_px: float = 0.0


class Tracker:
    """Track ids, the reference / keyframe policy and the failure counter behind the LOST
    status. The front-end reports what happened to each frame (:meth:`start`,
    :meth:`pose_found`, :meth:`pose_failed`, :meth:`advance`); the tracker alone decides
    which frames are kept as references."""

    def __init__(self, conf: TrackerConfig | None = None):
        self.conf = conf or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next frame initialises."""
        self.previous: Optional[TrackedFrame] = None
        self.keyframe: Optional[TrackedFrame] = None
        # What survival is measured against: the keyframe's tracks (or inliers) in the first
        # frame after it (a detector finds many keypoints that are never matched at all).
        self._keyframe_support: Optional[int] = None
        #: Unit normal (world frame) of the plane the last homography pose was found on: it
        #: tells the two decompositions of the next plane's homography apart.
        self.plane_normal_world: Optional[np.ndarray] = None
        #: Frames the rotation of LOW_PARALLAX frames is measured against with ``reference:
        #: previous``, oldest first (see :meth:`dkp_slam.frontend.FrontEnd`); emptied by any
        #: frame that is not LOW_PARALLAX.
        self.rotation_anchors: list[RotationAnchor] = []
        #: ``(reference index, R, t)``: the motion of the last frame whose translation was
        #: known (status OK), a start for the next frame's pose; kept over LOW_PARALLAX
        #: frames, None after any other status.
        self.last_motion: Optional[tuple[int, np.ndarray, np.ndarray]] = None
        self.failures = 0
        self._next_id = 0

    @property
    def reference(self) -> Optional[TrackedFrame]:
        """The frame the next pose is estimated against."""
        return self.keyframe if self.conf.reference == "keyframe" else self.previous

    def new_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def assign_tracks(self, frame: TrackedFrame, prev_matches: np.ndarray) -> None:
        """Fill ``frame.track_ids/track_ages`` from verified matches ``(i_prev, i_cur)`` to the
        previous frame; unmatched keypoints start new tracks."""
        n = len(frame.keypoints)
        ids = np.full(n, -1, dtype=np.int64)
        ages = np.zeros(n, dtype=np.int32)
        if self.previous is not None and len(prev_matches):
            ids[prev_matches[:, 1]] = self.previous.track_ids[prev_matches[:, 0]]
            ages[prev_matches[:, 1]] = self.previous.track_ages[prev_matches[:, 0]] + 1
        fresh = ids < 0
        ids[fresh] = self.new_ids(int(fresh.sum()))
        frame.track_ids, frame.track_ages = ids, ages

    def keyframe_needed(self, frame: TrackedFrame, parallax_px: Optional[float] = None,
                        keyframe_inliers: Optional[int] = None) -> bool:
        """Keyframe policy: parallax, survival or time since the keyframe.

        When the pose was estimated against the keyframe, ``parallax_px`` is the geometry's
        rotation-compensated flow between them and ``keyframe_inliers`` its inlier count. A
        rotation, or a translation too small to be told from one, therefore keeps the
        keyframe: the baseline accumulates until the translation is observable. Survival is
        the inlier count against the keyframe over that of the first frame after it. Without
        them (``tracker.reference: previous``) the median raw flow of the tracks common to
        the keyframe and ``frame`` stands in for the parallax (rotation then counts), and the
        common tracks over those of the first frame after the keyframe for the survival."""
        kf = self.keyframe
        if kf is None:
            return True
        c = self.conf
        common, i_kf, i_cur = np.intersect1d(kf.track_ids, frame.track_ids, assume_unique=True,
                                             return_indices=True)
        support = len(common) if keyframe_inliers is None else int(keyframe_inliers)
        if self._keyframe_support is None:
            self._keyframe_support = support
        survival = support / max(self._keyframe_support, 1)
        if survival < c.keyframe_min_track_ratio:
            return True
        if parallax_px is None and len(common):
            parallax_px = float(np.median(np.linalg.norm(
                frame.keypoints[i_cur] - kf.keypoints[i_kf], axis=1)))
        if parallax_px is not None and parallax_px > c.keyframe_parallax_px:
            return True
        return c.keyframe_max_interval_s > 0 and (
            frame.stamp - kf.stamp >= c.keyframe_max_interval_s)

    def start(self, frame: TrackedFrame, usable: bool) -> bool:
        """A frame without a reference: all its keypoints start new tracks; a ``usable`` one
        (enough keypoints) becomes the previous frame and the keyframe. Returns whether it
        became the keyframe."""
        self.assign_tracks(frame, np.zeros((0, 2), np.int64))
        if usable:
            self.previous = self.keyframe = frame
            self._keyframe_support = None
        return usable

    def pose_found(self) -> None:
        """The frame got a pose: the failure count restarts."""
        self.failures = 0

    def pose_failed(self) -> bool:
        """Count a frame without a pose; True when it makes the tracker LOST, which drops the
        keyframe (the next usable frame becomes the reference) and restarts the count."""
        self.failures += 1
        lost = self.failures >= self.conf.lost_after
        if lost:
            self.keyframe = None
            self.failures = 0
        return lost

    def advance(self, frame: TrackedFrame, tracked: bool, usable: bool,
                parallax_px: Optional[float] = None,
                keyframe_inliers: Optional[int] = None) -> bool:
        """After a frame with a reference: a ``usable`` frame becomes the previous frame, and
        the keyframe when there is none or (``tracked``) the keyframe policy asks for one
        (``parallax_px``, ``keyframe_inliers``: see :meth:`keyframe_needed`). Returns
        whether it became the keyframe."""
        if not usable:
            return False
        new_keyframe = self.keyframe is None or (tracked and self.keyframe_needed(
            frame, parallax_px, keyframe_inliers))
        if new_keyframe:
            self.keyframe = frame
            self._keyframe_support = None
        self.previous = frame
        return new_keyframe
