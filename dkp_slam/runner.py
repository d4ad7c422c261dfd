"""Run a :class:`~dkp_slam.sequence.Sequence` through the :class:`~dkp_slam.frontend.FrontEnd`
and write the standard outputs (summary, trajectories, plot, annotated frames)."""

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
from .evaluation import frame_record, gt_scaled_trajectory, summarize
from .frontend import FrontEnd
from .image import ImageError
from .sequence import Sequence
from .viz import TrackHistory, draw_frame, plot_trajectory


def run_sequence(sequence: Sequence, config: FrontEndConfig, output_dir: str | Path,
                 n_annotated: int = 4, progress: bool = True) -> dict:
    """Process every frame of ``sequence`` and write into ``output_dir``:

    - ``summary.json``: :func:`~dkp_slam.evaluation.summarize` plus the sequence and config;
    - ``frames.csv``: one row per frame (status, model, keypoints, matches, inliers, timings);
    - ``trajectory_tum.txt``: chained poses ``T_world_cam`` (TUM format, up to scale);
    - with ground truth: ``groundtruth_tum.txt`` and ``trajectory_gtscale_tum.txt`` (steps
      scaled to the true lengths), and the plot ``trajectory.png`` compares them;
    - ``frames/NNNNNN.png``: ``n_annotated`` evenly spaced frames with keypoints and tracks.

    Unreadable files and unusable images (:class:`~dkp_slam.image.ImageError`) are counted in
    the summary as ``skipped_frames`` (with reasons under ``skipped``) and do not stop the run.
    Returns the summary dict.
    """
    out = Path(output_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    frontend = FrontEnd(config, sequence.camera)
    n = len(sequence)
    annotate = set(np.linspace(1, n - 1, n_annotated).round().astype(int).tolist()) if n > 1 \
        else set()
    history = TrackHistory()
    records, skipped = [], []
    processing = 0.0
    for i in tqdm(range(n), desc=sequence.name, unit="frame", disable=not progress):
        stamp = float(sequence.stamps[i])
        try:
            image = sequence.load_image(i)
            t0 = time.perf_counter()
            result = frontend.process(image, stamp)
        except (ImageError, OSError) as err:  # unreadable file or unusable image: skip it
            skipped.append({"frame": i, "reason": str(err)})
            continue
        processing += time.perf_counter() - t0
        rec = frame_record(result)
        rec["sequence_index"] = i
        records.append(rec)
        history.add(result.track_ids, result.keypoints)
        if i in annotate:
            cv2.imwrite(str(out / "frames" / f"{i:06d}.png"), draw_frame(image, result, history))

    gt = None
    if sequence.gt_poses is not None and records:
        # The front-end numbers only the frames it accepted, so record k is frame index k.
        gt = sequence.gt_poses[[r["sequence_index"] for r in records]]
    summary = summarize(records, gt, processing, config.detector.name)
    summary.update(sequence=sequence.name, source=str(sequence.meta.get("path", "")),
                   skipped_frames=len(skipped), skipped=skipped[:20],
                   has_ground_truth=gt is not None, config=config.to_dict())
    _write_outputs(out, sequence, records, gt, summary)
    return summary


def _write_outputs(out: Path, sequence: Sequence, records: list[dict],
                   gt: Optional[np.ndarray], summary: dict) -> None:
    stamps = np.array([r["stamp"] for r in records])
    chained = np.array([r["T_world_cam"] for r in records]).reshape(-1, 4, 4)
    write_tum_trajectory(out / "trajectory_tum.txt", stamps, chained)
    with open(out / "frames.csv", "w") as f:
        f.write("frame,stamp,status,model,keypoints,matches,inliers,parallax_px,keyframe,"
                "detect_ms,match_ms,geometry_ms,track_ms,total_ms\n")
        for r in records:
            t = r["timings"]
            f.write(f"{r['sequence_index']},{r['stamp']:.9f},{r['status']},{r['model']},"
                    f"{r['keypoints']},{r['matches']},{r['inliers']},{r['parallax_px']:.3f},"
                    f"{int(r['is_keyframe'])}," + ",".join(
                        f"{t.get(k, math.nan):.3f}"
                        for k in ("detect", "match", "geometry", "track", "total")) + "\n")
    title = f"{sequence.name} - {summary['detector']}"
    if gt is not None and records:
        scaled = gt_scaled_trajectory(records, gt)
        write_tum_trajectory(out / "groundtruth_tum.txt", stamps, gt)
        write_tum_trajectory(out / "trajectory_gtscale_tum.txt", stamps, scaled)
        plot_trajectory(out / "trajectory.png", scaled, gt, title,
                        "estimate (step lengths from ground truth)")
    elif records:
        plot_trajectory(out / "trajectory.png", chained, None, title, "estimate (unit steps)")
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
        ("median rotation error", f"{summary['rot_err_median_deg']:.3f} deg"),
        ("median transl.-dir. error", f"{summary['tdir_err_median_deg']:.3f} deg"),
        ("pose AUC @5/10/20 deg", "{:.3f} / {:.3f} / {:.3f}".format(
            summary["pose_auc@5"], summary["pose_auc@10"], summary["pose_auc@20"])),
        ("ATE after Sim(3) [m]", f"{summary['ate_sim3_rmse_m']:.3f}"),
        ("median keypoints / inliers",
         f"{summary['keypoints_median']:.0f} / {summary['inliers_median']:.0f}"),
        ("ms per frame (median)", ", ".join(f"{k} {v:.1f}"
                                            for k, v in summary["ms_per_stage"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
