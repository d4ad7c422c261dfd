"""Robustness curves: matching and homography accuracy against in-plane rotation and zoom.

Each photograph ``image0`` of a folder (grey, native size) is warped by one pure transformation
about its centre ``c = ((W - 1) / 2, (H - 1) / 2)`` (pixel-centre convention), into a canvas of
the same size (bilinear, black outside), with no photometric change, so that a curve shows the
geometry alone:

- ``rotation`` by ``a`` degrees: ``H_0_1 = T(c) R(a) T(-c)`` (counter-clockwise on screen for
  positive ``a``; image rows point down);
- ``scale`` by ``s``: ``H_0_1 = T(c) diag(s, s) T(-c)``; ``s > 1`` zooms in (image1 shows the
  central ``1/s`` of image0), ``s < 1`` zooms out.

Every pair is scored by :func:`dkp_slam.bench.homography.evaluate_pair` (the HPatches-style
metrics of ``bench homography``); each photograph's ``image0`` is detected once per method.
Results: ``{method: {"rotation": {a: metrics}, "scale": {s: metrics}}}`` with the metrics of
:func:`~dkp_slam.bench.homography.aggregate` over the photographs at that value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from ..config import DetectorConfig
from .homography import evaluate_detector
from .pairs import HomographyPair, list_photos, read_gray

#: Default sweeps: in-plane rotation 0-180 deg, zoom 0.25x-4x (log-spaced, sqrt(2) steps).
DEFAULT_ROTATIONS: tuple[float, ...] = tuple(float(a) for a in range(0, 181, 15))
DEFAULT_SCALES: tuple[float, ...] = tuple(round(2.0 ** (k / 2), 3) for k in range(-4, 5))
#: The metrics a curve shows.
CURVE_METRICS: tuple[str, ...] = ("mma@3", "hom_acc@3", "repeatability")
SWEEPS: tuple[str, ...] = ("rotation", "scale")


def centred_transform(kind: str, value: float, shape: Sequence[int]) -> np.ndarray:
    """3x3 homography of a rotation by ``value`` degrees (``kind="rotation"``) or a zoom by
    ``value`` (``kind="scale"``) about the centre of an image of ``shape`` (H, W)."""
    h, w = int(shape[0]), int(shape[1])
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    if kind == "rotation":
        a = math.radians(value)
        # image rows point down, so a positive (counter-clockwise on screen) angle is -a here
        A = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    elif kind == "scale":
        if value <= 0:
            raise ValueError(f"scale must be > 0, got {value}")
        A = np.eye(2) * float(value)
    else:
        raise ValueError(f"unknown sweep {kind!r}; use one of {SWEEPS}")
    H = np.eye(3)
    H[:2, :2] = A
    H[:2, 2] = c - A @ c
    return H


def sweep_pairs(images: Sequence[tuple[str, np.ndarray]], kind: str, value: float
                ) -> list[HomographyPair]:
    """One pair per ``(name, image0)``: ``image0`` and its warp by :func:`centred_transform`.
    The ``image0`` arrays are shared, not copied (features are cached by identity)."""
    pairs = []
    for name, img0 in images:
        H = centred_transform(kind, value, img0.shape[:2])
        img1 = cv2.warpPerspective(img0, H, (img0.shape[1], img0.shape[0]),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=0)
        pairs.append(HomographyPair(img0, img1, H, f"{kind}{value:g}/{name}", f"{kind}{value:g}"))
    return pairs


def bench_robustness(folder: str, methods: Sequence[str], max_keypoints: int = 1000,
                     photo_range: Optional[tuple[int, int]] = None, n_photos: int = 20,
                     rotations: Sequence[float] = DEFAULT_ROTATIONS,
                     scales: Sequence[float] = DEFAULT_SCALES,
                     base: Optional[DetectorConfig] = None, progress: bool = False
                     ) -> tuple[dict[str, dict[str, dict[float, dict[str, float]]]], str]:
    """Accuracy of each detector against rotation and zoom.

    Args:
        folder: photographs (non-recursive); the first ``n_photos`` of the sorted list, or of
            ``photo_range`` of it, are used.
        methods: detector ids; ``base`` supplies their other options (e.g. ``dkp.weights``).
        rotations, scales: the sweep values (empty: that sweep is skipped).

    Returns:
        ``({method: {"rotation": {angle: metrics}, "scale": {s: metrics}}}, label)``, the
        label naming the data and the settings (used in output file names).
    """
    from ..features import create_method_detector

    files = list_photos(folder, photo_range)[:max(1, int(n_photos))]
    images = [(p.stem, read_gray(p)) for p in files]
    base = base or DetectorConfig()
    results: dict[str, dict[str, dict[float, dict[str, float]]]] = {}
    for method in methods:
        detector = create_method_detector(base, method, max_keypoints)
        cache: dict[int, Any] = {}
        per_kind: dict[str, dict[float, dict[str, float]]] = {}
        for kind, values in (("rotation", rotations), ("scale", scales)):
            if not values:
                continue
            per_kind[kind] = {}
            for value in values:
                pairs = sweep_pairs(images, kind, float(value))
                per_kind[kind][float(value)] = evaluate_detector(
                    detector, pairs, feature_cache=cache, warmup=0 if cache else 1)
                if progress:
                    r = per_kind[kind][float(value)]
                    print(f"{method} {kind} {value:g}: mma@3 {r['mma@3']:.3f} "
                          f"hom_acc@3 {r['hom_acc@3']:.3f}", flush=True)
        results[method] = per_kind
    root = Path(folder)
    subset = f"_p{photo_range[0]}-{photo_range[1]}" if photo_range else ""
    return results, f"{root.parent.name}-{root.name}{subset}_n{len(images)}"


def robustness_tables(results: dict[str, dict[str, dict[float, dict[str, float]]]],
                      metric: str = "mma@3") -> str:
    """Markdown: for each sweep, one row per method, one column per value of ``metric``."""
    from .report import format_value

    blocks = []
    for kind in SWEEPS:
        values = sorted({v for r in results.values() for v in r.get(kind, {})})
        if not values:
            continue
        unit = " deg" if kind == "rotation" else "x"
        lines = [f"{kind} ({metric})", "",
                 "| method | " + " | ".join(f"{v:g}{unit}" for v in values) + " |",
                 "|---|" + "---|" * len(values)]
        for method, r in results.items():
            cells = [format_value(r.get(kind, {}).get(v, {}).get(metric, math.nan))
                     for v in values]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_robustness(path: Path, results: dict[str, dict[str, dict[float, dict[str, float]]]],
                    title: str) -> None:
    """One figure: a row per sweep, a column per :data:`CURVE_METRICS`, a curve per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in SWEEPS if any(k in r for r in results.values())]
    fig, axes = plt.subplots(len(kinds), len(CURVE_METRICS),
                             figsize=(4.2 * len(CURVE_METRICS), 3.4 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for col, metric in enumerate(CURVE_METRICS):
            ax = axes[row][col]
            for method, r in results.items():
                pts = sorted(r.get(kind, {}).items())
                ax.plot([v for v, _ in pts], [m[metric] for _, m in pts], marker="o", ms=3,
                        label=method)
            if kind == "scale":
                ax.set_xscale("log", base=2)
            ax.set_xlabel("in-plane rotation [deg]" if kind == "rotation" else "zoom factor")
            ax.set_ylabel(metric)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["bench_robustness", "centred_transform", "sweep_pairs", "robustness_tables",
           "plot_robustness", "DEFAULT_ROTATIONS", "DEFAULT_SCALES", "CURVE_METRICS", "SWEEPS"]
