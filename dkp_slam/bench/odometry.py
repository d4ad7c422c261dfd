"""Odometry benchmark: several detectors through the same front-end on one sequence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence as Seq

import numpy as np

from ..config import FrontEndConfig, file_tag, method_config
from ..runner import run_sequence
from ..sequence import Sequence

#: Summary keys reported per method (see :func:`dkp_slam.evaluation.summarize`).
ODOMETRY_METRICS = ("rot_err_median_deg", "tdir_err_median_deg", "rot_err_p90_deg",
                    "tdir_err_p90_deg", "pose_auc@5", "pose_auc@10", "pose_auc@20",
                    "ate_sim3_rmse_m", "rpe_rot_rmse_deg", "tracked_fraction",
                    "keypoints_median", "inliers_median", "ms_per_frame", "fps")


def bench_odometry(sequence: Sequence, methods: Seq[str], base: FrontEndConfig,
                   output_dir: str | Path, max_keypoints: int = 1000,
                   progress: bool = True) -> dict[str, dict]:
    """Run each detector over ``sequence`` with otherwise identical settings.

    Each method's full outputs go to ``output_dir/<sequence>_n<frames>_<method>_k<budget>/``
    (see :func:`dkp_slam.runner.run_sequence`); ``trajectories.png`` overlays the
    ground-truth-scaled trajectories. Returns ``{method: {metric: value}}``.
    """
    out = Path(output_dir)
    tag = f"{sequence.name}_n{len(sequence)}"
    results: dict[str, dict] = {}
    trajectories = {}
    for method in methods:
        conf = method_config(base, method, max_keypoints=max_keypoints)
        run_dir = out / f"{tag}_{file_tag(method)}_k{max_keypoints}"
        summary = run_sequence(sequence, conf, run_dir, n_annotated=2, progress=progress)
        results[method] = {k: summary[k] for k in ODOMETRY_METRICS}
        traj = run_dir / ("trajectory_gtscale_tum.txt" if summary["has_ground_truth"]
                          else "trajectory_tum.txt")
        trajectories[method] = np.loadtxt(traj, ndmin=2)[:, 1:4]
    gt_file = next(out.glob(f"{tag}_*_k{max_keypoints}/groundtruth_tum.txt"), None)
    _plot_overlay(out / f"trajectories_{tag}_k{max_keypoints}.png", trajectories,
                  np.loadtxt(gt_file, ndmin=2)[:, 1:4] if gt_file else None, sequence.name)
    return results


@dataclass(frozen=True)
class OdometryBenchTask:
    """:func:`bench_odometry` on one sequence as a fleet task (:func:`dkp_slam.fleet.run_fleet`):
    writes the sequence's runs and ``odometry.json`` into the task's folder and returns the
    results as ``metrics`` keyed ``"<method> / <metric>"``."""

    methods: tuple[str, ...]
    base: FrontEndConfig
    max_keypoints: int = 1000
    max_frames: int = 0
    start: int = 0
    step: int = 1

    def __call__(self, path: str, output: str) -> dict:
        from ..datasets import open_sequence
        from ..jsonable import jsonable

        sequence = open_sequence(path).select(self.start, self.step, self.max_frames)
        results = bench_odometry(sequence, self.methods, self.base, output, self.max_keypoints,
                                 progress=False)
        (Path(output) / "odometry.json").write_text(
            json.dumps(jsonable(results, non_finite_as_null=True), indent=1))
        return {"metrics": {f"{m} / {k}": v for m, r in results.items() for k, v in r.items()},
                "sequence": sequence.name, "frames": len(sequence)}


def _plot_overlay(path: Path, trajectories: dict[str, np.ndarray], gt, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = gt if gt is not None else next(iter(trajectories.values()))
    a, b = sorted(np.argsort(-np.ptp(ref, axis=0))[:2])
    fig, ax = plt.subplots(figsize=(6, 6))
    if gt is not None:
        ax.plot(gt[:, a], gt[:, b], "k-", lw=2, label="ground truth")
    for method, xyz in trajectories.items():
        ax.plot(xyz[:, a], xyz[:, b], lw=1, label=method)
    ax.set_xlabel("xyz"[a] + " [m]")
    ax.set_ylabel("xyz"[b] + " [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"{title} (step lengths from ground truth)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
