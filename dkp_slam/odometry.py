"""Odometry from the front-end's frames: ``T_odom_cam`` with a chained covariance, continuous
across restarts of the front-end. Used alike by the ROS node (``~/odometry``), ``dkp-slam run``
and ``bag-eval`` (the ``odom_*`` columns of ``frames.csv``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import numpy as np
from scipy.spatial.transform import Rotation

from .geometry import UNKNOWN_VARIANCE


class OdometryChain:
    """``T_odom_cam`` from :attr:`FrameResult.T_world_cam`, continuous across restarts.

    The core chains relative poses from its first frame (identity); after ``reset()`` or a new
    FrontEnd it starts again at identity. The chain composes with the last pose published so
    the odometry never jumps (REP-105). The covariance is a first-order accumulation in the
    odom frame, ``C_cur = C_ref + J C_rel J^T`` with ``J = diag(R_odom_ref, R_odom_ref)``
    (correlations and lever arms ignored; translations are in units of one step: the scale is
    unknown); it becomes :data:`~dkp_slam.geometry.UNKNOWN_VARIANCE` after an untracked
    frame or a restart, since the motion across that gap was never measured.
    """

    #: Covariances kept for frames that may still serve as a reference.
    KEEP = 64

    def __init__(self) -> None:
        self.offset = np.eye(4)
        self.last_pose = np.eye(4)
        self.last_covariance = np.zeros((6, 6))
        self._cov: OrderedDict[int, np.ndarray] = OrderedDict()
        self._keyframe: Optional[tuple[int, np.ndarray]] = None
        self._gap = False

    def restart(self) -> None:
        """The front-end restarted: continue from the last pose, with an unknown gap."""
        self.offset = self.last_pose.copy()
        self._cov.clear()
        self._keyframe = None
        self._gap = True

    def update(self, result: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(T_odom_cam 4x4, covariance 6x6 in ROS order)`` for a FrameResult."""
        pose = self.offset @ result.T_world_cam
        unknown = np.eye(6) * UNKNOWN_VARIANCE
        if result.reference_index < 0:
            cov = unknown if self._gap else np.zeros((6, 6))
        elif not result.status.tracked:
            cov = unknown
        else:
            base = self._lookup(result.reference_index)
            T_ref_cur = result.T_ref_cur
            T_world_ref = result.T_world_cam @ np.linalg.inv(T_ref_cur)
            R = (self.offset @ T_world_ref)[:3, :3]
            J = np.zeros((6, 6))
            J[:3, :3] = J[3:, 3:] = R
            cov = (unknown if base is None else base) + J @ result.covariance @ J.T
        cov = 0.5 * (cov + cov.T)
        self._cov[result.index] = cov
        while len(self._cov) > self.KEEP:
            self._cov.popitem(last=False)
        if result.is_keyframe:
            self._keyframe = (result.index, cov)
        self.last_pose, self.last_covariance = pose, cov
        return pose, cov

    def _lookup(self, index: int) -> Optional[np.ndarray]:
        if index in self._cov:
            return self._cov[index]
        if self._keyframe is not None and self._keyframe[0] == index:
            return self._keyframe[1]
        return None


class AngularVelocity:
    """The camera's angular velocity between consecutive frames, with its covariance: the
    twist a fusion back-end (``robot_localization``) can use from monocular odometry, whose
    rotation is measured but whose translation has no scale.

    ``omega = rotvec(R_prev_cur) / dt`` in rad/s; the rotation axis is the same in both
    cameras, so it is expressed in the current camera frame (the ``child_frame_id`` of the
    odometry). ``R_prev_cur`` is the frame's own relative rotation when its reference is the
    previous frame (covariance ``C_rot / dt^2``, ``C_rot`` the rotation block of its relative
    pose covariance), or ``R_ref_prev^T R_ref_cur`` when both were measured against the same
    keyframe (covariances added: their correlation through the keyframe is ignored). Anything
    else (no pose, a restart, time not increasing) is reported as unknown: zero with
    :data:`~dkp_slam.geometry.UNKNOWN_VARIANCE`.
    """

    def __init__(self) -> None:
        # the previous frame: index, stamp, reference index, R_ref_cur and its covariance
        self._last: Optional[tuple[int, float, int, Optional[np.ndarray], np.ndarray]] = None

    def reset(self) -> None:
        """The front-end restarted: frame indices start again."""
        self._last = None

    def update(self, result: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(omega (3,), covariance (3,3))`` for a FrameResult."""
        cov_rot = np.asarray(result.covariance, dtype=np.float64)[3:, 3:]
        measured = (result.status.tracked and result.R is not None
                    and bool(np.all(np.isfinite(cov_rot)))
                    and float(np.max(np.diag(cov_rot))) < UNKNOWN_VARIANCE)
        R_ref_cur = np.asarray(result.R, dtype=np.float64) if measured else None
        last = self._last
        self._last = (result.index, float(result.stamp), result.reference_index, R_ref_cur,
                      cov_rot)
        unknown = np.zeros(3), np.eye(3) * UNKNOWN_VARIANCE
        if not measured or last is None or not result.stamp > last[1]:
            return unknown
        dt = float(result.stamp) - last[1]
        if result.reference_index == last[0]:
            R_prev_cur, cov = R_ref_cur, cov_rot
        elif result.reference_index == last[2] and last[3] is not None:
            R_prev_cur, cov = last[3].T @ R_ref_cur, cov_rot + last[4]
        else:
            return unknown
        omega = Rotation.from_matrix(R_prev_cur).as_rotvec() / dt
        return omega, 0.5 * (cov + cov.T) / dt ** 2


__all__ = ["AngularVelocity", "OdometryChain"]
