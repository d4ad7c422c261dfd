"""The front-end: image in, tracked keypoints and relative pose out.

``FrontEnd.process(image, stamp) -> FrameResult`` runs detection, mutual-NN matching against
the reference frame (previous frame or keyframe), RANSAC two-view geometry with model
selection, track bookkeeping and the keyframe policy. It has no ROS dependency: the ROS node,
the CLI and the evaluation tools all call it the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .camera import Camera, CameraError
from .config import FrontEndConfig
from .features import create_detector
from .geometry import (UNKNOWN_VARIANCE, TwoViewResult, estimate_relative_pose, find_essential,
                       find_homography)
from .image import ImageError, to_gray_uint8
from .matching import Matcher
from .tracking import RotationAnchor, Tracker, TrackedFrame, TrackingStatus

log = logging.getLogger(__name__)

#: An estimate against a rotation anchor is used only when its model explains at least this
#: share of what the one-step estimate explains (as shares of their matches; chosen on the
#: validation scenarios, seed 1: docs/BENCHMARKS.md).
ANCHOR_INLIER_SHARE = 0.9


@dataclass
class FrameResult:
    """Everything the front-end knows about one frame.

    Attributes:
        index, stamp: frame counter since construction/reset and the image time (s).
        status: :class:`TrackingStatus`; ``message`` says why in words.
        keypoints: (N,2) float32 pixels (distorted, pixel-centre convention).
        keypoints_normalised: (N,2) undistorted normalised coordinates, or None without
            intrinsics.
        scores, descriptors: detector output aligned with ``keypoints``.
        track_ids, track_ages: persistent track id and frames tracked so far (0 = new).
        reference_index, reference_stamp: the frame the pose and ``matches`` refer to
            (-1 / NaN when there is none).
        matches: (M,2) int64 inlier pairs ``(i_reference, i_current)``.
        num_matches: mutual-NN matches before geometric verification.
        num_inliers, inlier_ratio: geometric inliers of the chosen model.
        model: two-view model used (see :class:`~dkp_slam.geometry.TwoViewResult`).
        R, t: relative pose ``T_ref_cur`` (pose of the current camera in the reference
            camera); ``t`` unit-norm, zeros when unobservable (LOW_PARALLAX). Identity/zeros
            when no pose was estimated (check ``status.tracked``).
        covariance: 6x6 covariance of ``(t, rotation)`` in ROS order; huge when unknown.
        parallax_px: median rotation-compensated flow of the inliers.
        T_world_cam: chained pose of this camera (first frame = identity), translation in
            units of one reference step (monocular scale unknown).
        is_keyframe: this frame became the keyframe.
        timings: milliseconds per stage: detect, match, geometry, track, total.
    """

    index: int
    stamp: float
    status: TrackingStatus
    message: str
    keypoints: np.ndarray
    keypoints_normalised: Optional[np.ndarray]
    scores: np.ndarray
    descriptors: np.ndarray
    track_ids: np.ndarray
    track_ages: np.ndarray
    reference_index: int = -1
    reference_stamp: float = float("nan")
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    num_matches: int = 0
    num_inliers: int = 0
    inlier_ratio: float = 0.0
    model: str = "none"
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    covariance: np.ndarray = field(default_factory=lambda: np.eye(6) * UNKNOWN_VARIANCE)
    parallax_px: float = float("nan")
    T_world_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    is_keyframe: bool = False
    timings: dict = field(default_factory=dict)

    @property
    def T_ref_cur(self) -> np.ndarray:
        """4x4 relative pose ``[R | t]``."""
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self.R, self.t
        return T


class FrontEnd:
    """Stateful monocular front-end.

    Args:
        config: :class:`FrontEndConfig` (defaults when None).
        camera: intrinsics; None runs homography-only (no R, t) and says so once in the log.
    """

    def __init__(self, config: FrontEndConfig | None = None, camera: Camera | None = None):
        self.config = config or FrontEndConfig()
        self.config.validate()
        # One torch device for the whole front-end: learned detectors and the matcher.
        self.detector = create_detector(self.config.detector, self.config.matcher.device)
        self.matcher = Matcher(self.config.matcher)
        self.tracker = Tracker(self.config.tracker)
        self.camera: Optional[Camera] = None
        self.set_camera(camera)
        self._index = 0

    # ------------------------------------------------------------------ state
    def set_camera(self, camera: Camera | None) -> None:
        """Set or change intrinsics (validated); the tracker restarts when they change."""
        if camera is not None:
            camera.validate()
        elif self.camera is None:
            log.info("no camera intrinsics: running homography-only (no relative pose)")
        changed = (camera is None) != (self.camera is None) or (
            camera is not None and self.camera is not None
            and camera.to_dict() != self.camera.to_dict())
        self.camera = camera
        if changed:
            self.tracker.reset()

    def reset(self) -> None:
        """Drop all tracks and references; the next frame initialises."""
        self.tracker.reset()

    def warm_up(self, width: int = 640, height: int = 480, frames: int = 3) -> float:
        """Run the whole pipeline on ``frames`` synthetic textured frames (the camera's size
        when it is known) so that the first real frame is answered at normal latency: lazy
        initialisation, backend start, kernel and memory-pool set-up happen here. The tracker
        then starts afresh; returns the seconds spent."""
        t0 = time.perf_counter()
        if self.camera is not None:
            width, height = self.camera.width, self.camera.height
        rng = np.random.default_rng(0)
        texture = cv2.GaussianBlur((rng.random((height, width + 4 * frames)) * 255).astype(
            np.float32), (0, 0), 2.0)
        texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        try:
            for k in range(frames):
                self.process(np.ascontiguousarray(texture[:, 4 * k:4 * k + width]), float(k))
        finally:
            self.tracker.reset()
            self._index = 0
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ main entry
    def process(self, image: np.ndarray, stamp: float, channel_order: str = "bgr"
                ) -> FrameResult:
        """Process one image taken at ``stamp`` seconds.

        Raises:
            ImageError: the image is unusable (see :func:`dkp_slam.image.to_gray_uint8`) or
                does not match the camera's size. The tracker state is left untouched.
        """
        t_start = time.perf_counter()
        if not np.isfinite(stamp):
            raise ImageError(f"timestamp must be finite, got {stamp}")
        gray = to_gray_uint8(image, channel_order)
        cam = self.camera
        if cam is not None and (gray.shape[1], gray.shape[0]) != (cam.width, cam.height):
            raise ImageError(f"image is {gray.shape[1]}x{gray.shape[0]} but the camera is "
                             f"{cam.width}x{cam.height}")
        timings = {}
        feats = self.detector(gray)
        t_det = time.perf_counter()
        timings["detect"] = (t_det - t_start) * 1e3

        kps = feats["keypoints"]
        undist = cam.undistort_pixels(kps) if cam is not None else kps.astype(np.float64)
        frame = TrackedFrame(self._index, float(stamp), kps, undist,
                             self.matcher.prepare(feats["descriptors"]),
                             np.zeros(0, np.int64), np.zeros(0, np.int32), np.eye(4))
        self._index += 1
        result = self._track(frame, feats, timings)
        if cam is not None:
            xy = (undist - [cam.cx, cam.cy]) / [cam.fx, cam.fy]
            result.keypoints_normalised = xy.astype(np.float32)
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return result

    # ------------------------------------------------------------------ internals
    def _track(self, frame: TrackedFrame, feats: dict, timings: dict) -> FrameResult:
        tr, gconf = self.tracker, self.config.geometry
        binary = feats["descriptors"].dtype == np.uint8
        ref, prev = tr.reference, tr.previous
        K = self.camera.K if self.camera is not None else None

        def finish(status: TrackingStatus, message: str, geo: TwoViewResult | None = None,
                   matches: np.ndarray | None = None, num_matches: int = 0) -> FrameResult:
            res = FrameResult(frame.index, frame.stamp, status, message, frame.keypoints, None,
                              feats["scores"], feats["descriptors"], frame.track_ids,
                              frame.track_ages, T_world_cam=frame.T_world_cam,
                              num_matches=num_matches, timings=timings)
            if ref is not None:
                res.reference_index, res.reference_stamp = ref.index, ref.stamp
            if geo is not None:
                res.model, res.parallax_px = geo.model, geo.parallax_px
                res.num_inliers = geo.num_inliers
                res.inlier_ratio = geo.num_inliers / max(num_matches, 1)
                res.matches = matches[geo.inliers] if matches is not None else res.matches
                if status.tracked and geo.R is not None:
                    res.R, res.t, res.covariance = geo.R, geo.t, geo.covariance
            return res

        enough = len(frame.keypoints) >= gconf.min_inliers
        if ref is None:
            t0 = time.perf_counter()
            is_keyframe = tr.start(frame, enough)
            timings.update(match=0.0, geometry=0.0,
                           track=(time.perf_counter() - t0) * 1e3)
            msg = ("reference frame set" if enough else
                   f"only {len(frame.keypoints)} keypoints; waiting for a textured frame")
            res = finish(TrackingStatus.INITIALISING, msg)
            res.is_keyframe = is_keyframe
            return res

        t0 = time.perf_counter()
        matches, _ = self.matcher.match(ref.descriptors, frame.descriptors, binary)
        t1 = time.perf_counter()
        R_world_ref = ref.T_world_cam[:3, :3]
        normal = (R_world_ref.T @ tr.plane_normal_world
                  if tr.plane_normal_world is not None else None)
        # The last known motion is a start for this one's (a car's turn does not stop between
        # frames): against the previous frame, or against the same keyframe.
        prior = None
        if tr.last_motion is not None and (tr.conf.reference == "previous"
                                           or tr.last_motion[0] == ref.index):
            prior = tr.last_motion[1:]
        geo = estimate_relative_pose(ref.undistorted[matches[:, 0]],
                                     frame.undistorted[matches[:, 1]], K, gconf, normal, prior)
        if geo.plane_normal is not None:
            tr.plane_normal_world = R_world_ref @ geo.plane_normal
        t2 = time.perf_counter()
        timings.update(match=(t1 - t0) * 1e3, geometry=(t2 - t1) * 1e3)

        ok = geo.model != "none" and geo.num_inliers >= gconf.min_inliers
        # Track ids follow verified matches to the previous frame.
        if ref is prev:
            prev_matches = matches[geo.inliers] if ok else np.zeros((0, 2), np.int64)
        else:
            prev_matches = self._verified_matches(prev, frame, binary, K)
        tr.assign_tracks(frame, prev_matches)

        if ok:
            tr.pose_found()
            T_rc = np.eye(4)
            if geo.R is not None:
                T_rc[:3, :3], T_rc[:3, 3] = geo.R, geo.t
            frame.T_world_cam = ref.T_world_cam @ T_rc
            if geo.model == "rotation":
                status, msg = (TrackingStatus.LOW_PARALLAX,
                               f"parallax {geo.parallax_px:.2f} px < {gconf.min_parallax_px} px: "
                               "rotation only, translation unobservable")
            elif geo.model != "homography_only" and not geo.translation_valid:
                why = (f"parallax {geo.parallax_px:.2f} px < {gconf.min_translation_parallax_px} px"
                       if geo.parallax_px < gconf.min_translation_parallax_px else
                       f"direction sigma {geo.direction_sigma_deg:.1f} deg > "
                       f"{gconf.max_direction_sigma_deg} deg")
                status, msg = (TrackingStatus.LOW_PARALLAX,
                               f"{why}: {geo.model} model's rotation, translation unknown")
            elif geo.model == "homography_only":
                status, msg = TrackingStatus.OK, "no intrinsics: homography only"
            else:
                status, msg = TrackingStatus.OK, f"{geo.model} model"
        else:
            frame.T_world_cam = prev.T_world_cam.copy() if prev is not None else np.eye(4)
            lost = tr.pose_failed()
            status = TrackingStatus.LOST if lost else TrackingStatus.FEW_MATCHES
            msg = (f"{geo.num_inliers} inliers of {len(matches)} matches "
                   f"(< {gconf.min_inliers})" + ("; reinitialising" if lost else ""))

        if (tr.conf.reference == "previous" and K is not None
                and tr.conf.rotation_anchor_parallax_px > 0):
            if status == TrackingStatus.LOW_PARALLAX:
                one_step_share = geo.num_inliers / max(len(matches), 1)
                t_anchor = time.perf_counter()
                anchored = self._anchored_rotation(frame, prev, binary, K, one_step_share,
                                                   geo.parallax_px)
                t_anchored = time.perf_counter()
                timings["geometry"] += (t_anchored - t_anchor) * 1e3
                t2 += t_anchored - t_anchor  # (the track stage's time leaves it out)
                if anchored is not None:
                    geo.R, rotation_covariance, anchor = anchored
                    geo.covariance = geo.covariance.copy()
                    geo.covariance[3:, :3] = geo.covariance[:3, 3:] = 0.0
                    geo.covariance[3:, 3:] = rotation_covariance
                    frame.T_world_cam = prev.T_world_cam.copy()
                    frame.T_world_cam[:3, :3] = prev.T_world_cam[:3, :3] @ geo.R
                    msg += f"; rotation measured against frame {anchor.index}"
            else:
                tr.rotation_anchors.clear()
        # A LOW_PARALLAX frame keeps the last known motion as the next frame's start: one step
        # too short to tell its direction does not make the motion before unknown.
        if status == TrackingStatus.OK and geo.R is not None and geo.translation_valid:
            tr.last_motion = (ref.index, geo.R, geo.t)
        elif status != TrackingStatus.LOW_PARALLAX:
            tr.last_motion = None
        res = finish(status, msg, geo, matches, len(matches))
        # Against the keyframe the geometry's parallax is the baseline accumulated since it,
        # and its inliers what is still seen of the keyframe.
        against_keyframe = ref is tr.keyframe and tr.conf.reference == "keyframe"
        parallax = geo.parallax_px if against_keyframe and np.isfinite(geo.parallax_px) \
            else None
        res.is_keyframe = tr.advance(frame, status.tracked, enough, parallax,
                                     geo.num_inliers if against_keyframe else None)
        timings["track"] = (time.perf_counter() - t2) * 1e3
        return res

    def _anchored_rotation(self, frame: TrackedFrame, prev: TrackedFrame, binary: bool,
                           K: np.ndarray, one_step_share: float, one_step_parallax_px: float
                           ) -> Optional[tuple[np.ndarray, np.ndarray, TrackedFrame]]:
        """Rotation from ``prev`` to ``frame`` as the difference of two rotations measured
        against one earlier frame, a rotation anchor, with enough parallax to both.

        Below a few pixels of parallax a small step and a small turn move the image alike, so
        a rotation estimated from one step carries the unknown step (bas-relief ambiguity).
        Against an anchor ``tracker.rotation_anchor_parallax_px`` or more away the
        translation's direction is observable and the rotation is not taken into it; what the
        two estimates share (the anchor's keypoints, its plane) cancels in their difference.
        The anchors are the frame before a stretch of LOW_PARALLAX frames, then every frame
        once the parallax to the newest anchor passes ``tracker.rotation_anchor_renew_px``;
        the older ones are dropped when a newer one serves, or when they are lost. An estimate
        against an anchor counts only when its model explains at least
        :data:`ANCHOR_INLIER_SHARE` times the share of matches that the one-step estimate
        explains (``one_step_share``): over a desk with objects on it, a homography that
        leaves the objects out is often chosen against an anchor, and its rotation is worse
        than the one-step one.

        Returns ``(R of T_prev_frame, its 3x3 covariance about prev's axes, the anchor)``, or
        None when no anchor has enough parallax yet (then the one-step rotation stands).
        """
        tr, gconf, c = self.tracker, self.config.geometry, self.tracker.conf
        anchors = tr.rotation_anchors
        if not anchors:
            anchors.append(RotationAnchor(prev))
        for i in range(len(anchors) - 1, -1, -1):
            anchor = anchors[i]
            if np.isfinite(one_step_parallax_px):
                anchor.parallax_bound_px += one_step_parallax_px
            if anchor.frame is prev or (anchor.R_to_previous is None and anchor.parallax_bound_px
                                        < c.rotation_anchor_parallax_px):
                continue  # (an anchor not serving yet is measured once it may have parallax)
            R_world_anchor = anchor.frame.T_world_cam[:3, :3]
            normal = (R_world_anchor.T @ tr.plane_normal_world
                      if tr.plane_normal_world is not None else None)
            m, _ = self.matcher.match(anchor.frame.descriptors, frame.descriptors, binary)
            geo = (estimate_relative_pose(anchor.frame.undistorted[m[:, 0]],
                                          frame.undistorted[m[:, 1]], K, gconf, normal)
                   if len(m) >= gconf.min_inliers else None)
            if geo is None or geo.R is None or geo.num_inliers < gconf.min_inliers:
                del anchors[:i + 1]  # lost: this anchor and the older ones
                return None
            R_prev, cov_prev = anchor.R_to_previous, anchor.rotation_covariance
            usable = (geo.model in ("essential", "homography")
                      and geo.parallax_px >= c.rotation_anchor_parallax_px
                      and geo.num_inliers >= ANCHOR_INLIER_SHARE * one_step_share * len(m))
            anchor.R_to_previous = geo.R if usable else None
            anchor.parallax_bound_px = geo.parallax_px
            anchor.rotation_covariance = geo.covariance[3:, 3:] if usable else None
            if usable and R_prev is not None:
                del anchors[:i]  # a newer anchor serves: the older ones are not needed
                if anchors[-1] is anchor and geo.parallax_px >= c.rotation_anchor_renew_px:
                    anchors.append(RotationAnchor(frame))
                R = R_prev.T @ geo.R
                cov = R_prev.T @ (cov_prev + geo.covariance[3:, 3:]) @ R_prev
                return R, cov, anchor.frame
        return None

    def _verified_matches(self, prev: TrackedFrame | None, frame: TrackedFrame, binary: bool,
                          K: np.ndarray | None) -> np.ndarray:
        """Matches to the previous frame that pass a RANSAC epipolar (or homography) check."""
        if prev is None:
            return np.zeros((0, 2), np.int64)
        m, _ = self.matcher.match(prev.descriptors, frame.descriptors, binary)
        p0, p1 = prev.undistorted[m[:, 0]], frame.undistorted[m[:, 1]]
        gconf = self.config.geometry
        _, inl = find_essential(p0, p1, K, gconf) if K is not None else find_homography(
            p0, p1, gconf)
        return m[inl]


__all__ = ["FrontEnd", "FrameResult", "TrackingStatus", "ImageError", "CameraError"]
