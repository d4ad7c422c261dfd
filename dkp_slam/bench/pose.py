"""Relative-pose benchmark on image pairs with known intrinsics and ground-truth pose.

Input: the text format of the SuperGlue / LoFTR evaluations (``pairs_with_gt.txt``), one pair a
line::

    name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)

``name0`` / ``name1`` relative to the file's folder; ``rot0`` / ``rot1`` EXIF rotations (only 0
is supported: other values are an error); ``K0`` / ``K1`` row-major 3x3 intrinsics of the images
as stored (pixel-centre convention: the centre of the top-left pixel is ``(0, 0)``);
``T_0to1`` row-major 4x4 mapping points from camera-0 to camera-1 coordinates
(``X1 = R X0 + t``). Images are taken as undistorted.

Per pair and detector: keypoints on both grey images, the front-end's mutual-nearest-neighbour
matcher (``matcher.*``) and the front-end's two-view geometry (``geometry.*``:
:func:`dkp_slam.geometry.estimate_relative_pose`, GRIC model selection included). Errors are
those of the field: rotation error ``angle(R_est^T R_gt)``, translation-direction error the angle
between the unit translations, folded to ``min(e, 180 - e)`` as SuperGlue / LightGlue / LoFTR do
(the sign of an essential-matrix translation is ambiguous for them), pose error
``max(rotation, translation)``. A pair without a pose, or with a rotation-only answer while the
true translation is not zero, has pose error ``inf`` (a failure for the AUC) and no
translation error. Pose AUC@5/10/20 deg as in :func:`dkp_slam.evaluation.pose_auc`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..config import FrontEndConfig
from ..evaluation import pose_auc
from ..geometry import angle_between_deg, estimate_relative_pose, rotation_angle_deg
from ..matching import Matcher
from .pairs import read_gray

#: Metrics reported per method by ``dkp-slam bench pose``.
POSE_METRICS = ("pose_auc@5", "pose_auc@10", "pose_auc@20", "rot_err_median_deg",
                "tdir_err_median_deg", "failures", "essential", "homography", "rotation",
                "matches_median", "inliers_median", "ms_per_pair")


class PairsFileError(ValueError):
    """A pairs file that cannot be read (the line and the reason)."""


@dataclass
class PosePair:
    """Two images, their intrinsics and the ground-truth relative pose.

    Attributes:
        name0, name1: image paths as written in the pairs file.
        image0, image1: grey uint8 images.
        K0, K1: 3x3 float64 intrinsics (pixels, pixel-centre convention).
        T_0to1: 4x4 float64, maps camera-0 coordinates to camera-1 coordinates.
    """

    name0: str
    name1: str
    image0: np.ndarray
    image1: np.ndarray
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.name0} {self.name1}"


def load_pose_pairs(path: str | Path) -> list[PosePair]:
    """Read a ``pairs_with_gt.txt`` file and its images (see the module docstring).

    Raises:
        FileNotFoundError: the file or one of its images is missing or unreadable.
        PairsFileError: a line with the wrong number of values, non-numbers, a rotation other
            than 0, singular intrinsics or a transform that is not rigid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    pairs, cache = [], {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) != 38:
            raise PairsFileError(f"{where}: {len(fields)} values, expected 38 (name0 name1 "
                                 f"rot0 rot1 K0(9) K1(9) T_0to1(16))")
        try:
            values = np.array([float(v) for v in fields[2:]], dtype=np.float64)
        except ValueError as err:
            raise PairsFileError(f"{where}: {err}") from None
        if not np.all(np.isfinite(values)):
            raise PairsFileError(f"{where}: values that are not finite")
        if values[0] != 0 or values[1] != 0:
            raise PairsFileError(f"{where}: EXIF rotations {fields[2]} {fields[3]}: only 0 "
                                 f"is supported")
        K0, K1 = values[2:11].reshape(3, 3), values[11:20].reshape(3, 3)
        T = values[20:36].reshape(4, 4)
        for name, K in (("K0", K0), ("K1", K1)):
            if abs(np.linalg.det(K)) < 1e-9 or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise PairsFileError(f"{where}: {name} is not a camera matrix: {K.tolist()}")
        R = T[:3, :3]
        if (np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0
                or np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-9):
            raise PairsFileError(f"{where}: T_0to1 is not a rigid transform")
        images = []
        for name in fields[:2]:
            if name not in cache:
                cache[name] = read_gray(path.parent / name)
            images.append(cache[name])
        pairs.append(PosePair(fields[0], fields[1], images[0], images[1], K0, K1, T))
    if not pairs:
        raise PairsFileError(f"{path}: no pairs")
    return pairs


def pose_errors(R_est: Optional[np.ndarray], t_est: Optional[np.ndarray],
                T_0to1: np.ndarray) -> tuple[float, float]:
    """``(rotation error, translation-direction error)`` in degrees of an estimate in the
    project's convention (``R_est``, ``t_est``: pose of camera 1 in camera 0, i.e. mapping
    camera-1 to camera-0 coordinates) against ``T_0to1`` (camera 0 -> camera 1). The
    translation error is folded to ``min(e, 180 - e)`` (module docstring) and NaN when
    ``t_est`` is missing or zero (translation unknown); both NaN without ``R_est``."""
    if R_est is None:
        return math.nan, math.nan
    R_gt = T_0to1[:3, :3].T  # the inverse of T_0to1: camera 1 -> camera 0
    t_gt = -R_gt @ T_0to1[:3, 3]
    rot = rotation_angle_deg(R_est.T @ R_gt)
    if t_est is None or np.linalg.norm(t_est) < 0.5 or np.linalg.norm(t_gt) < 1e-12:
        return rot, math.nan
    tdir = angle_between_deg(t_est, t_gt)
    return rot, min(tdir, 180.0 - tdir)


def evaluate_pose_pairs(detector, pairs: Sequence[PosePair], config: FrontEndConfig,
                        progress: bool = False) -> dict[str, Any]:
    """Run ``detector`` (grey uint8 image -> ``{"keypoints", "scores", "descriptors"}``) and
    the front-end's matcher and geometry on every pair; return the :data:`POSE_METRICS` and
    ``pairs``: per-pair rows (name, model, errors, matches, inliers)."""
    matcher = Matcher(config.matcher)
    detector(pairs[0].image0)  # lazy initialisation outside the timing
    feats: dict[int, tuple[np.ndarray, Any, bool]] = {}
    times, rows = [], []

    def features(image: np.ndarray) -> tuple[np.ndarray, Any, bool]:
        if id(image) not in feats:
            out = detector(image)
            desc = np.asarray(out["descriptors"])
            feats[id(image)] = (np.asarray(out["keypoints"], dtype=np.float64).reshape(-1, 2),
                                matcher.prepare(desc), desc.dtype == np.uint8)
        return feats[id(image)]

    for k, pair in enumerate(pairs):
        t0 = time.perf_counter()
        kp0, d0, binary = features(pair.image0)
        kp1, d1, _ = features(pair.image1)
        matches, _ = matcher.match(d0, d1, binary)
        p0, p1 = kp0[matches[:, 0]], kp1[matches[:, 1]]
        # Both images in the pixels of camera 0, so that one K serves the geometry.
        if not np.array_equal(pair.K0, pair.K1):
            h = np.c_[p1, np.ones(len(p1))] @ (pair.K0 @ np.linalg.inv(pair.K1)).T
            p1 = h[:, :2] / h[:, 2:]
        result = estimate_relative_pose(p0, p1, pair.K0, config.geometry)
        times.append(time.perf_counter() - t0)
        rot, tdir = pose_errors(result.R, result.t, pair.T_0to1)
        error = max(rot, tdir) if not (math.isnan(rot) or math.isnan(tdir)) else math.inf
        rows.append({"pair": pair.name, "model": result.model, "rot_err_deg": rot,
                     "tdir_err_deg": tdir, "pose_err_deg": error, "matches": len(matches),
                     "inliers": result.num_inliers})
        if progress:
            print(f"[{k + 1}/{len(pairs)}] {pair.name}: {result.model}, R {rot:.2f} deg, "
                  f"t {tdir:.2f} deg, {result.num_inliers}/{len(matches)} inliers",
                  file=sys.stderr, flush=True)
    models = Counter(r["model"] for r in rows)
    auc = pose_auc(np.array([r["pose_err_deg"] for r in rows]))

    def median(key: str) -> float:
        values = [r[key] for r in rows if not math.isnan(r[key])]
        return float(np.median(values)) if values else math.nan

    return {"pose_auc@5": auc[0], "pose_auc@10": auc[1], "pose_auc@20": auc[2],
            "rot_err_median_deg": median("rot_err_deg"),
            "tdir_err_median_deg": median("tdir_err_deg"),
            "failures": sum(math.isinf(r["pose_err_deg"]) for r in rows),
            "essential": models["essential"], "homography": models["homography"],
            "rotation": models["rotation"], "matches_median": median("matches"),
            "inliers_median": median("inliers"),
            "ms_per_pair": 1000.0 * float(np.mean(times)), "pairs": rows}


def bench_pose(path: str | Path, methods: Sequence[str], base: FrontEndConfig,
               max_keypoints: int = 1000, progress: bool = False
               ) -> tuple[dict[str, dict], str]:
    """:func:`evaluate_pose_pairs` for each detector id on the pairs of ``path``; returns
    ``({method: metrics}, label)``, the label naming the data (its folder) and pair count."""
    from ..features import create_method_detector

    pairs = load_pose_pairs(path)
    results = {}
    for method in methods:
        detector = create_method_detector(base.detector, method, max_keypoints)
        results[method] = evaluate_pose_pairs(detector, pairs, base, progress)
    return results, f"{Path(path).resolve().parent.name}_n{len(pairs)}"


__all__ = ["POSE_METRICS", "PairsFileError", "PosePair", "load_pose_pairs", "pose_errors",
           "evaluate_pose_pairs", "bench_pose"]
