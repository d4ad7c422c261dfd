"""Drawing: annotated frames (keypoints + tracks) and trajectory plots. Used by the CLI and,
later, the ROS node's debug image."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .image import to_gray_uint8


class TrackHistory:
    """The last few frames' (track ids, keypoints), to draw each track's recent path."""

    def __init__(self, length: int = 8):
        self.frames: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=length)

    def add(self, track_ids: np.ndarray, keypoints: np.ndarray) -> None:
        order = np.argsort(track_ids)
        self.frames.append((track_ids[order], keypoints[order]))

    def paths(self, track_ids: np.ndarray) -> list[np.ndarray]:
        """For each id, its positions over the stored frames, oldest first (missing skipped)."""
        out = [[] for _ in track_ids]
        for ids, kps in self.frames:
            pos = np.searchsorted(ids, track_ids)
            pos = np.clip(pos, 0, max(len(ids) - 1, 0))
            hit = (ids[pos] == track_ids) if len(ids) else np.zeros(len(track_ids), bool)
            for k in np.flatnonzero(hit):
                out[k].append(kps[pos[k]])
        return [np.array(p) for p in out]


def draw_frame(image: np.ndarray, result, history: Optional[TrackHistory] = None,
               channel_order: str = "bgr") -> np.ndarray:
    """BGR image with keypoints coloured by track age (blue new -> red old), recent track
    paths, and a status line."""
    canvas = cv2.cvtColor(to_gray_uint8(image, channel_order), cv2.COLOR_GRAY2BGR)
    kps = np.asarray(result.keypoints)
    ages = np.asarray(result.track_ages)
    if history is not None and len(kps):
        for path in history.paths(np.asarray(result.track_ids)):
            if len(path) >= 2:
                cv2.polylines(canvas, [np.round(path).astype(np.int32)], False, (0, 200, 0), 1,
                              cv2.LINE_AA)
    for (u, v), age in zip(kps, ages):
        a = min(int(age), 10) / 10.0
        color = (int(255 * (1 - a)), 0, int(255 * a))
        cv2.circle(canvas, (int(round(u)), int(round(v))), 2, color, -1, cv2.LINE_AA)
    text = (f"#{result.index} {result.status.value} kp={len(kps)} "
            f"inl={result.num_inliers}/{result.num_matches} {result.model}")
    cv2.putText(canvas, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1,
                cv2.LINE_AA)
    return canvas


def plot_trajectory(path: str | Path, estimate: np.ndarray, ground_truth: Optional[np.ndarray],
                    title: str, estimate_label: str = "estimate") -> None:
    """Top view of camera positions (N,4,4 poses) on the two axes with the largest extent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = estimate[:, :3, 3]
    ref = ground_truth[:, :3, 3] if ground_truth is not None else est
    finite = np.all(np.isfinite(ref), axis=1)
    spread = np.ptp(ref[finite], axis=0) if finite.any() else np.ptp(est, axis=0)
    a, b = sorted(np.argsort(-spread)[:2])
    names = "xyz"
    fig, ax = plt.subplots(figsize=(6, 6))
    if ground_truth is not None:
        ax.plot(ref[finite, a], ref[finite, b], "k-", lw=2, label="ground truth")
    ax.plot(est[:, a], est[:, b], "r.-", ms=2, lw=1, label=estimate_label)
    ax.plot(est[0, a], est[0, b], "go", label="start")
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    _finish(fig, ax, path, title)


def plot_series(path: str | Path, x: np.ndarray, series: dict[str, np.ndarray], xlabel: str,
                ylabel: str, title: str, log_y: bool = False) -> None:
    """Line plot of one or more ``series`` (label -> values) over ``x``; NaNs leave gaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, y in series.items():
        ax.plot(x, y, ".-", ms=2, lw=0.8, label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _finish(fig, ax, path, title)


def _finish(fig, ax, path: str | Path, title: str) -> None:
    """Grid, legend and title, then save (110 dpi) and close the figure."""
    import matplotlib.pyplot as plt

    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
