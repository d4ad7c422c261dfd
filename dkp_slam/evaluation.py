"""Evaluation of front-end output against ground truth: per-frame relative pose errors,
chained trajectories and the run summary printed by the CLI."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from .geometry import angle_between_deg, rotation_angle_deg
from .tracking import TrackingStatus


def frame_record(result: Any) -> dict:
    """The light per-frame record kept for evaluation (no keypoints or descriptors)."""
    return {
        "index": result.index,
        "stamp": result.stamp,
        "status": result.status.value,
        "model": result.model,
        "reference_index": result.reference_index,
        "keypoints": int(len(result.keypoints)),
        "matches": int(result.num_matches),
        "inliers": int(result.num_inliers),
        "parallax_px": float(result.parallax_px),
        "R": np.asarray(result.R, dtype=np.float64),
        "t": np.asarray(result.t, dtype=np.float64),
        "T_world_cam": np.asarray(result.T_world_cam, dtype=np.float64),
        "is_keyframe": bool(result.is_keyframe),
        "timings": dict(result.timings),
    }


def relative_pose_errors(records: list[dict], gt_poses: np.ndarray
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
        ref = r["reference_index"]
        if not TrackingStatus(r["status"]).tracked or ref < 0:
            continue
        T_ref, T_cur = gt_poses[ref], gt_poses[r["index"]]
        if not (np.all(np.isfinite(T_ref)) and np.all(np.isfinite(T_cur))):
            continue
        T_gt = np.linalg.inv(T_ref) @ T_cur
        rot[k] = rotation_angle_deg(r["R"].T @ T_gt[:3, :3])
        if np.linalg.norm(r["t"]) > 0.5 and np.linalg.norm(T_gt[:3, 3]) > 1e-9:
            tdir[k] = angle_between_deg(r["t"], T_gt[:3, 3])
    return rot, tdir


def gt_scaled_trajectory(records: list[dict], gt_poses: np.ndarray) -> np.ndarray:
    """Chain the relative poses with each step's translation scaled to the true length.

    Monocular scale is unobservable; borrowing the step lengths from the ground truth (a common
    way to show monocular VO) isolates rotation and direction errors. Frames without a pose
    repeat the previous pose. The chain starts at the first ground-truth pose.
    """
    n = len(records)
    out = np.tile(np.eye(4), (n, 1, 1))
    start = gt_poses[0] if np.all(np.isfinite(gt_poses[0])) else np.eye(4)
    for k, r in enumerate(records):
        i, ref = r["index"], r["reference_index"]
        if k == 0 or ref < 0 or not TrackingStatus(r["status"]).tracked:
            out[k] = start if k == 0 else out[k - 1]
            continue
        step = np.eye(4)
        step[:3, :3] = r["R"]
        T_gt = np.linalg.inv(gt_poses[ref]) @ gt_poses[i]
        length = np.linalg.norm(T_gt[:3, 3]) if np.all(np.isfinite(T_gt)) else 0.0
        step[:3, 3] = r["t"] * length
        out[k] = out[_position(records, ref, k)] @ step
    return out


def _position(records: list[dict], frame_index: int, before: int) -> int:
    """Position in ``records`` of the frame with ``frame_index`` (searching backwards)."""
    for k in range(before - 1, -1, -1):
        if records[k]["index"] == frame_index:
            return k
    return max(before - 1, 0)


def summarize(records: list[dict], gt_poses: Optional[np.ndarray], wall_time_s: float,
              detector: str) -> dict:
    """The run summary (also written by ``--json``).

    Keys: ``frames``, ``fps`` (frames / wall time of processing), ``rot_err_median_deg``,
    ``rot_err_p90_deg``, ``tdir_err_median_deg``, ``tdir_err_p90_deg`` (NaN without ground
    truth), ``tracked_fraction`` (frames with a pose among those after the first),
    ``status_counts``, ``keypoints_median``, ``inliers_median``, ``ms_per_frame`` (median per
    stage) and ``detector``.
    """
    n = len(records)
    statuses = [r["status"] for r in records]
    counts = {s.value: statuses.count(s.value) for s in TrackingStatus}
    after_first = records[1:]
    tracked = sum(TrackingStatus(r["status"]).tracked for r in after_first)
    out: dict[str, Any] = {
        "frames": n,
        "fps": n / wall_time_s if wall_time_s > 0 else float("nan"),
        "detector": detector,
        "tracked_fraction": tracked / len(after_first) if after_first else 0.0,
        "status_counts": counts,
        "keypoints_median": _median(r["keypoints"] for r in records),
        "inliers_median": _median(r["inliers"] for r in after_first),
        "ms_per_frame": {
            stage: _median(r["timings"].get(stage, np.nan) for r in records)
            for stage in ("detect", "match", "geometry", "track", "total")
        },
    }
    rot = tdir = np.full(0, np.nan)
    if gt_poses is not None:
        rot, tdir = relative_pose_errors(records, gt_poses)
    out.update(
        rot_err_median_deg=_nanstat(rot, 50), rot_err_p90_deg=_nanstat(rot, 90),
        tdir_err_median_deg=_nanstat(tdir, 50), tdir_err_p90_deg=_nanstat(tdir, 90),
        frames_with_gt_error=int(np.isfinite(rot).sum()),
    )
    return out


def _median(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmedian(v)) if v.size and np.any(np.isfinite(v)) else float("nan")


def _nanstat(v: np.ndarray, q: float) -> float:
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if v.size else float("nan")
