"""Run a :class:`~dkp_slam.sequence.Sequence` (or any :class:`~dkp_slam.sequence.FrameSource`,
such as a rosbag) through the :class:`~dkp_slam.frontend.FrontEnd` and write the standard
outputs (summary, trajectories, plot, annotated frames)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from .config import FrontEndConfig
from .datasets import write_tum_trajectory
from .evaluation import gt_scaled_trajectory, relative_pose_errors, summarize
from .frontend import FrontEnd
from .image import ImageError
from .jsonable import jsonable
from .odometry import OdometryChain
from .records import FrameRecord
from .sequence import FrameSource
from .viz import TrackHistory, draw_frame, plot_trajectory


def run_sequence(sequence: FrameSource, config: FrontEndConfig, output_dir: str | Path,
                 n_annotated: int = 4, progress: bool = True) -> dict:
    """Process every frame of ``sequence`` and write into ``output_dir``:

    - ``summary.json``: :func:`~dkp_slam.evaluation.summarize` plus the sequence, the input
      description (``input``: :meth:`~dkp_slam.sequence.FrameSource.describe`) and config;
    - ``frames.csv``: one row per frame (status, model, keypoints, matches, inliers, timings);
    - ``trajectory_tum.txt``: chained poses ``T_world_cam`` (TUM format, up to scale); not
      written, nor ``trajectory.png``, when the run was homography-only (no intrinsics: no
      pose, so no trajectory; ``homography_only`` in the summary);
    - with ground truth: ``groundtruth_tum.txt`` and ``trajectory_gtscale_tum.txt`` (steps
      scaled to the true lengths), and the plot ``trajectory.png`` compares them;
    - ``frames/NNNNNN.png``: ``n_annotated`` evenly spaced frames with keypoints and tracks.

    ``sequence`` is a :class:`~dkp_slam.sequence.Sequence` or any other
    :class:`~dkp_slam.sequence.FrameSource` (frames are consumed one at a time).
    Unreadable files and unusable images (:class:`~dkp_slam.image.ImageError`) are counted in
    the summary as ``skipped_frames`` (with reasons under ``skipped``) and do not stop the run;
    a frame with :attr:`~dkp_slam.sequence.Frame.restart` resets the tracker first (listed
    under ``restarts``).
    Returns the summary dict.
    """
    out = Path(output_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    frontend = FrontEnd(config, sequence.camera)
    n = len(sequence)
    annotate = set(np.linspace(1, n - 1, n_annotated).round().astype(int).tolist()) if n > 1 \
        else set()
    history = TrackHistory()
    records, skipped, restarts = [], [], []
    odometry = OdometryChain()  # the covariance the node publishes on ~/odometry
    processing = 0.0
    for frame in tqdm(sequence.frames(), total=n, desc=sequence.name, unit="frame",
                      disable=not progress):
        i = frame.index
        if frame.restart:  # a new time segment: nothing before it is a reference
            frontend.reset()
            odometry.restart()
            history = TrackHistory()
            restarts.append({"frame": i, "reason": frame.restart})
        try:
            image, order = frame.load()
            t0 = time.perf_counter()
            result = frontend.process(image, frame.stamp, order)
        except (ImageError, OSError) as err:  # unreadable file or unusable image: skip it
            skipped.append({"frame": i, "reason": str(err)})
            continue
        processing += time.perf_counter() - t0
        record = FrameRecord.from_result(result, sequence_index=i)
        record.odometry_covariance = odometry.update(result)[1]
        records.append(record)
        history.add(result.track_ids, result.keypoints)
        if i in annotate:
            cv2.imwrite(str(out / "frames" / f"{i:06d}.png"),
                        draw_frame(image, result, history, order))

    # The front-end numbers only the frames it accepted, so record k is frame index k.
    gt = sequence.ground_truth(records) if records else None
    errors = relative_pose_errors(records, gt) if gt is not None else None
    summary = summarize(records, gt, processing, config.detector.name, errors)
    info = sequence.describe()
    summary.update(sequence=sequence.name, source=str(info.get("path", "")),
                   skipped_frames=len(skipped), skipped=skipped[:20],
                   restarts=restarts[:20],
                   has_ground_truth=gt is not None, homography_only=frontend.camera is None,
                   input=info, config=config.to_dict())
    write_outputs(out, sequence.name, records, gt, summary, errors)
    return summary


def nothing_processed(summary: dict) -> Optional[str]:
    """The CLI's error line when a run processed no frame although the input had some (every
    one unreadable or rejected), with the first reasons; None otherwise. ``dkp-slam run`` and
    ``bag-eval`` then exit 1 after writing their outputs."""
    skipped = summary.get("skipped_frames", 0)
    if summary.get("frames", 0) or not skipped:
        return None
    reasons = "; ".join(dict.fromkeys(k["reason"] for k in summary.get("skipped", [])[:20]))
    return (f"none of the {skipped} frames could be processed (first reasons: {reasons[:500]}); "
            f"see {summary.get('sequence', '')} summary.json")


def write_outputs(out: Path, name: str, records: list[FrameRecord], gt: Optional[np.ndarray],
                  summary: dict, errors: Optional[tuple[np.ndarray, np.ndarray]] = None
                  ) -> None:
    """Write ``trajectory_tum.txt``, ``frames.csv``, the ground-truth files and
    ``trajectory.png`` (see :func:`run_sequence`) and ``summary.json`` for ``records``
    (:class:`~dkp_slam.records.FrameRecord` with ``sequence_index``); ``errors``
    (:func:`~dkp_slam.evaluation.relative_pose_errors`) fill the ``rot_err_deg`` and
    ``tdir_err_deg`` columns of ``frames.csv`` (empty without ground truth)."""
    stamps = np.array([r.stamp for r in records])
    chained = np.array([r.T_world_cam for r in records]).reshape(-1, 4, 4)
    homography_only = bool(summary.get("homography_only"))  # identity poses: no trajectory
    if not homography_only:
        write_tum_trajectory(out / "trajectory_tum.txt", stamps, chained)
    rot, tdir = errors if errors is not None else (np.full(len(records), np.nan),) * 2
    with open(out / "frames.csv", "w") as f:
        f.write("frame,stamp,status,model,keypoints,matches,inliers,parallax_px,keyframe,"
                "detect_ms,match_ms,geometry_ms,track_ms,total_ms,rot_err_deg,tdir_err_deg,"
                "odom_rot_sigma_deg\n")
        for j, r in enumerate(records):
            t = r.timings
            f.write(f"{r.sequence_index},{r.stamp:.9f},{r.status.value},{r.model},"
                    f"{r.keypoints},{r.matches},{r.inliers},{r.parallax_px:.3f},"
                    f"{int(r.is_keyframe)}," + ",".join(
                        f"{t.get(k, math.nan):.3f}"
                        for k in ("detect", "match", "geometry", "track", "total")) + "," +
                    ",".join("" if not np.isfinite(e) else f"{e:.6f}"
                             for e in (rot[j], tdir[j])) + "," +
                    ("" if not np.isfinite(r.odometry_rotation_sigma_deg)
                     else f"{r.odometry_rotation_sigma_deg:.6g}") + "\n")
    title = f"{name} - {summary['detector']}"
    if gt is not None and records:
        scaled = gt_scaled_trajectory(records, gt)
        write_tum_trajectory(out / "groundtruth_tum.txt", stamps, gt)
        write_tum_trajectory(out / "trajectory_gtscale_tum.txt", stamps, scaled)
        plot_trajectory(out / "trajectory.png", scaled, gt, title,
                        "estimate (step lengths from ground truth)")
    elif records and not homography_only:
        plot_trajectory(out / "trajectory.png", chained, None, title, "estimate (unit steps)")
    with open(out / "summary.json", "w") as f:
        json.dump(jsonable(summary), f, indent=2)


def format_summary(summary: dict) -> str:
    """Human-readable summary table."""
    rows = [
        ("frames", f"{summary['frames']}"),
        ("skipped frames", f"{summary.get('skipped_frames', 0)}"),
        ("FPS", f"{summary['fps']:.1f}"),
        ("detector", summary["detector"]),
        ("tracked fraction", f"{summary['tracked_fraction']:.3f}"),
        ("status counts", ", ".join(f"{k}={v}" for k, v in summary["status_counts"].items()
                                    if v)),
    ]
    if summary.get("homography_only"):
        rows.append(("pose", "none: homography-only (no intrinsics), so no relative pose and "
                             "no trajectory; give the camera with --calib FILE"))
    elif not summary.get("has_ground_truth", True):
        rows.append(("pose errors", "not computed: no ground truth"))
    else:
        def degrees(key: str, none: str) -> str:
            return none if math.isnan(summary[key]) else f"{summary[key]:.3f} deg"

        rows += [
            ("median rotation error", degrees("rot_err_median_deg", "- (no frame has a pose)")),
            ("median transl.-dir. error",
             degrees("tdir_err_median_deg", "- (no frame claims a translation)")),
            ("pose AUC @5/10/20 deg", "{:.3f} / {:.3f} / {:.3f}".format(
                summary["pose_auc@5"], summary["pose_auc@10"], summary["pose_auc@20"])),
            ("ATE after Sim(3) [m]",
             "- (not defined: the ground truth hardly moves)"
             if math.isnan(summary["ate_sim3_rmse_m"]) else f"{summary['ate_sim3_rmse_m']:.3f}")]
    rows += [
        ("median keypoints / inliers",
         f"{summary['keypoints_median']:.0f} / {summary['inliers_median']:.0f}"),
        ("ms per frame (median)", ", ".join(f"{k} {v:.1f}"
                                            for k, v in summary["ms_per_stage"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
