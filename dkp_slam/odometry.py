"""Odometry from the front-end's frames: ``T_odom_cam`` with a chained covariance, continuous
across restarts of the front-end. Used alike by the ROS node (``~/odometry``), ``dkp-slam run``
and ``bag-eval`` (the ``odom_*`` columns of ``frames.csv``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import numpy as np

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


__all__ = ["OdometryChain"]
