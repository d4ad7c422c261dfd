"""Evaluation of front-end output against ground truth: per-frame relative pose errors,
chained trajectories and the run summary printed by the CLI."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Optional

import numpy as np

from .compat import trapezoid
from .geometry import angle_between_deg, rotation_angle_deg
from .records import FrameRecord
from .tracking import TrackingStatus


def relative_pose_errors(records: list[FrameRecord], gt_poses: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation-direction errors (degrees) of each frame's relative pose.

    The ground-truth relative pose of frame ``i`` is ``inv(T_w_ref) @ T_w_i`` with ``ref`` the
    frame's reference. Rotation errors are computed for tracked frames (OK, LOW_PARALLAX);
    translation-direction errors only where a translation was reported (OK) and the true
    motion is not zero. Entries are NaN where not applicable.
    """
    n = len(records)
    rot = np.full(n, np.nan)
    tdir = np.full(n, np.nan)
    for k, r in enumerate(records):
        ref = r.reference_index
        if not r.status.tracked or ref < 0:
            continue
        T_ref, T_cur = gt_poses[ref], gt_poses[r.index]
        if not (np.all(np.isfinite(T_ref)) and np.all(np.isfinite(T_cur))):
            continue
        T_gt = np.linalg.inv(T_ref) @ T_cur
        rot[k] = rotation_angle_deg(r.R.T @ T_gt[:3, :3])
        if np.linalg.norm(r.t) > 0.5 and np.linalg.norm(T_gt[:3, 3]) > 1e-9:
            tdir[k] = angle_between_deg(r.t, T_gt[:3, 3])
    return rot, tdir


def gt_scaled_trajectory(records: list[FrameRecord], gt_poses: np.ndarray) -> np.ndarray:
    """Chain the relative poses with each step's translation scaled to the true length.

    Monocular scale is unobservable; borrowing the step lengths from the ground truth (a common
    way to show monocular VO) isolates rotation and direction errors. Frames without a pose
    repeat the previous pose. The chain starts at the first ground-truth pose.
    """
    n = len(records)
    out = np.tile(np.eye(4), (n, 1, 1))
    start = gt_poses[0] if np.all(np.isfinite(gt_poses[0])) else np.eye(4)
    for k, r in enumerate(records):
        i, ref = r.index, r.reference_index
        if k == 0 or ref < 0 or not r.status.tracked:
            out[k] = start if k == 0 else out[k - 1]
            continue
        step = np.eye(4)
        step[:3, :3] = r.R
        T_gt = np.linalg.inv(gt_poses[ref]) @ gt_poses[i]
        length = np.linalg.norm(T_gt[:3, 3]) if np.all(np.isfinite(T_gt)) else 0.0
        step[:3, 3] = r.t * length
        out[k] = out[_position(records, ref, k)] @ step
    return out


def _position(records: list[FrameRecord], frame_index: int, before: int) -> int:
    """Position in ``records`` of the frame with ``frame_index`` (searching backwards)."""
    for k in range(before - 1, -1, -1):
        if records[k].index == frame_index:
            return k
    return max(before - 1, 0)


def summarize(records: list[FrameRecord], gt_poses: Optional[np.ndarray], wall_time_s: float,
              detector: str, errors: Optional[tuple[np.ndarray, np.ndarray]] = None) -> dict:
    """The run summary (also written by ``--json``).

    Keys: ``frames``, ``fps`` (frames / wall time of processing), ``rot_err_median_deg``,
    ``rot_err_p90_deg``, ``tdir_err_median_deg``, ``tdir_err_p90_deg``, ``tracked_fraction``
    (frames with a pose among those after the first), ``status_counts``, ``model_counts``
    (the two-view model of each frame), ``keyframes``, ``keypoints_median``, ``inliers_median``, ``ms_per_frame`` (median total),
    ``ms_per_stage`` (median per stage), ``detector``; with ground truth also the keys of
    :func:`trajectory_metrics`. Error figures are NaN without ground truth.
    ``errors``: the output of :func:`relative_pose_errors`, when already computed.
    """
    n = len(records)
    statuses = [r.status for r in records]
    counts = {s.value: statuses.count(s) for s in TrackingStatus}
    after_first = records[1:]
    tracked = sum(r.status.tracked for r in after_first)
    out: dict[str, Any] = {
        "frames": n,
        "fps": n / wall_time_s if wall_time_s > 0 else float("nan"),
        "detector": detector,
        "tracked_fraction": tracked / len(after_first) if after_first else 0.0,
        "status_counts": counts,
        "model_counts": dict(Counter(r.model for r in records)),
        "keyframes": sum(bool(r.is_keyframe) for r in records),
        "keypoints_median": _median(r.keypoints for r in records),
        "inliers_median": _median(r.inliers for r in after_first),
        "ms_per_stage": {
            stage: _median(r.timings.get(stage, np.nan) for r in records)
            for stage in ("detect", "match", "geometry", "track", "total")
        },
    }
    out["ms_per_frame"] = out["ms_per_stage"]["total"]
    rot = tdir = np.full(0, np.nan)
    if gt_poses is not None:
        rot, tdir = errors if errors is not None else relative_pose_errors(records, gt_poses)
    out.update(
        rot_err_median_deg=_nanstat(rot, 50), rot_err_p90_deg=_nanstat(rot, 90),
        tdir_err_median_deg=_nanstat(tdir, 50), tdir_err_p90_deg=_nanstat(tdir, 90),
        frames_with_gt_error=int(np.isfinite(rot).sum()),
    )
    out.update(trajectory_metrics(records, gt_poses, (rot, tdir)) if gt_poses is not None
               else {k: float("nan") for k in TRAJECTORY_KEYS})
    return out


#: Keys added by :func:`trajectory_metrics`.
TRAJECTORY_KEYS = ("pose_auc@5", "pose_auc@10", "pose_auc@20", "ate_sim3_rmse_m",
                   "rpe_rot_rmse_deg", "rpe_trans_rmse_m")


def pose_auc(errors_deg: np.ndarray, thresholds: tuple[float, ...] = (5.0, 10.0, 20.0)
             ) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    ``errors_deg`` holds one pose error per pair (use ``inf`` for failures); recall at error
    ``e`` is the share of pairs with error <= e. This is the relative-pose AUC of the
    SuperGlue/LightGlue evaluations.
    """
    errors = np.sort(np.asarray(errors_deg, dtype=np.float64))
    n = len(errors)
    if n == 0:
        return [float("nan")] * len(thresholds)
    recall = np.arange(1, n + 1) / n
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    aucs = []
    for t in thresholds:
        last = int(np.searchsorted(errors, t))
        e = np.concatenate([errors[:last], [t]])
        r = np.concatenate([recall[:last], [recall[last - 1]]])
        aucs.append(trapezoid(r, e) / t)
    return aucs


def trajectory_metrics(records: list[FrameRecord], gt_poses: np.ndarray,
                       errors: Optional[tuple[np.ndarray, np.ndarray]] = None) -> dict:
    """Pose AUC and evo's ATE / RPE for a run with ground truth.

    - ``pose_auc@5/10/20``: AUC of the per-frame pose error ``max(rotation error,
      translation-direction error)``; frames without a pose count as failures (inf), and so do
      frames that report no translation while the true one is not zero.
    - ``ate_sim3_rmse_m``: RMSE of camera positions after a Sim(3) (Umeyama, with scale)
      alignment of the chained unit-step trajectory to the ground truth (NaN when the ground
      truth is degenerate for alignment, e.g. a static camera).
    - ``rpe_rot_rmse_deg``: RMSE of the frame-to-frame relative rotation error.
    - ``rpe_trans_rmse_m``: RMSE of the frame-to-frame relative translation error of the chain
      whose step lengths come from the ground truth (isolates direction errors; monocular scale
      is unobservable).

    ``errors``: the output of :func:`relative_pose_errors`, when already computed.
    """
    rot, tdir = errors if errors is not None else relative_pose_errors(records, gt_poses)
    valid_gt = np.array([np.all(np.isfinite(gt_poses[r.index])) for r in records])
    pose_err = np.full(len(records), np.inf)
    moving = np.array([_true_step(records, gt_poses, k) > 1e-3 for k in range(len(records))])
    ok = np.isfinite(rot)
    pose_err[ok] = np.where(moving[ok], np.fmax(rot[ok], np.nan_to_num(tdir[ok], nan=np.inf)),
                            rot[ok])
    considered = valid_gt.copy()
    considered[0] = False  # the first frame has no reference
    out = dict(zip(("pose_auc@5", "pose_auc@10", "pose_auc@20"), pose_auc(pose_err[considered])))
    out.update(ate_sim3_rmse_m=float("nan"), rpe_rot_rmse_deg=float("nan"),
               rpe_trans_rmse_m=float("nan"))
    if valid_gt.sum() < 3:
        return out
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D

    stamps = np.array([r.stamp for r in records])[valid_gt]
    ref = PoseTrajectory3D(poses_se3=list(gt_poses[valid_gt]), timestamps=stamps)
    chained = np.array([r.T_world_cam for r in records])[valid_gt]
    scaled = gt_scaled_trajectory(records, gt_poses)[valid_gt]
    aligned = align_sim3(chained, gt_poses[valid_gt])
    if aligned is not None:  # evo's APE translation_part: RMSE of the position differences
        err = np.linalg.norm(aligned[:, :3, 3] - gt_poses[valid_gt][:, :3, 3], axis=1)
        out["ate_sim3_rmse_m"] = float(np.sqrt(np.mean(err ** 2)))
    gt_chain = PoseTrajectory3D(poses_se3=list(scaled), timestamps=stamps)
    for key, relation in (("rpe_rot_rmse_deg", metrics.PoseRelation.rotation_angle_deg),
                          ("rpe_trans_rmse_m", metrics.PoseRelation.translation_part)):
        rpe = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames)
        rpe.process_data((ref, gt_chain))
        out[key] = float(rpe.get_statistic(metrics.StatisticsType.rmse))
    return out


def align_sim3(est_poses: np.ndarray, gt_poses: np.ndarray) -> Optional[np.ndarray]:
    """``est_poses`` (N,4,4) after the Sim(3) (Umeyama, with scale; evo) alignment of their
    positions to ``gt_poses`` (N,4,4, all finite); None when the ground truth is degenerate
    for the alignment (e.g. a static camera) or N < 3."""
    if len(est_poses) < 3:
        return None
    from evo.core.geometry import GeometryException
    from evo.core.trajectory import PosePath3D

    ref = PosePath3D(poses_se3=list(gt_poses))
    est = PosePath3D(poses_se3=list(est_poses))
    try:
        est.align(ref, correct_scale=True)
    except GeometryException:
        return None
    return np.array(est.poses_se3)


def _true_step(records: list[FrameRecord], gt_poses: np.ndarray, k: int) -> float:
    """Length of the true motion between record ``k`` and its reference (NaN if unknown)."""
    ref = records[k].reference_index
    if ref < 0:
        return float("nan")
    d = gt_poses[records[k].index][:3, 3] - gt_poses[ref][:3, 3]
    return float(np.linalg.norm(d)) if np.all(np.isfinite(d)) else float("nan")


def _median(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmedian(v)) if v.size and np.any(np.isfinite(v)) else float("nan")


def _nanstat(v: np.ndarray, q: float) -> float:
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if v.size else float("nan")
