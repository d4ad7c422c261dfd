"""Detector/descriptor benchmark on image pairs related by a known homography.

The usual HPatches-style protocol: a detector is run on both images of every
:class:`~dkp_slam.bench.pairs.HomographyPair`, its descriptors are matched by mutual nearest
neighbours (:class:`dkp_slam.matching.Matcher`), and the result is scored against the
ground-truth homography ``H = H_0_1``. Keypoint budgets are the caller's (the detector's own
``max_keypoints``); nothing here re-selects keypoints.

Definitions (per pair; ``eps`` = 3 px unless told; "within t" means distance ``<= t``; all
distances are measured in image1 pixels after warping image0 keypoints by ``H``, or in image0
pixels after warping image1 keypoints by ``H^-1``):

- *shared region*: keypoint ``i`` of image0 is shared when ``H x0_i`` lies inside image1,
  keypoint ``j`` of image1 when ``H^-1 x1_j`` lies inside image0; "inside" a W x H image means
  ``-0.5 <= u < W - 0.5`` and ``-0.5 <= v < H - 0.5`` (the area covered by its pixels).
- ``repeatability``: with ``n0``, ``n1`` the shared keypoint counts, ``c0`` the number of
  shared image0 keypoints whose warp has a shared image1 keypoint within ``eps``, ``c1`` the
  same from image1 to image0: ``(c0 + c1) / (n0 + n1)`` (NaN when ``n0 + n1 = 0``).
- ``mle`` (mean localisation error): mean of the nearest-neighbour distances counted in ``c0``
  and ``c1`` (both directions pooled; NaN when ``c0 + c1 = 0``).
- ``mma@t``, t = 1..10 px: share of the mutual-nearest-neighbour matches ``(i, j)`` with
  ``||H x0_i - x1_j|| <= t`` (all matches count; 0 when there are no matches).
- ``ms`` (matching score): ``(m0 / n0 + m1 / n1) / 2`` where ``m0`` counts matches whose
  image0 keypoint is shared and ``||H x0_i - x1_j|| <= eps``, ``m1`` matches whose image1
  keypoint is shared and ``||H^-1 x1_j - x0_i|| <= eps`` (a term is 0 when its ``n`` is 0).
- ``hom_error``: homography from all matches by ``cv2.findHomography`` with
  ``cv2.USAC_MAGSAC``, 3 px threshold, confidence 0.9999, at most 10000 iterations
  (:func:`dkp_slam.geometry.find_homography`); error = mean over the 4 image0 corners
  ``(0,0), (W-1,0), (W-1,H-1), (0,H-1)`` of ``||H_est c - H c||``; ``inf`` when fewer than 4
  matches or the estimation fails. ``hom_acc@t`` (t = 1, 3, 5) is 1 when ``hom_error <= t``.
- ``nn_map``: average precision of nearest-neighbour retrieval. Queries are the shared image0
  keypoints that have a ground-truth correspondence (some image1 keypoint within ``eps`` of
  ``H x0_i``); each query's nearest neighbour among *all* image1 descriptors is a detection
  scored by its descriptor distance, positive when that neighbour is within ``eps`` of
  ``H x0_i``. Thresholding the distance gives a precision-recall curve with recall normalised
  by the number of queries; AP is its step-wise area (:func:`average_precision`). NaN when
  there are no queries.

:func:`aggregate` averages every per-pair metric over pairs (NaN pairs left out), so
``hom_acc@t`` is the share of pairs whose corner error is within ``t``.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..config import DetectorConfig, GeometryConfig
from ..geometry import apply_homography, find_homography
from ..matching import Matcher, descriptor_distances
from ..warps import inside_image
from .pairs import HomographyPair

#: Pixel thresholds of the mean matching accuracy.
MMA_THRESHOLDS: tuple[int, ...] = tuple(range(1, 11))
#: Corner-error thresholds (pixels) of the homography estimation accuracy.
HOM_THRESHOLDS: tuple[int, ...] = (1, 3, 5)
#: Keys of :func:`aggregate`, in report order.
SUMMARY_KEYS: tuple[str, ...] = (
    ("repeatability", "mle") + tuple(f"mma@{t}" for t in MMA_THRESHOLDS) + ("ms",)
    + tuple(f"hom_acc@{t}" for t in HOM_THRESHOLDS) + ("nn_map", "pairs", "keypoints_mean",
                                                       "matches_mean")
)

#: Robust estimation used for ``hom_error``: USAC MAGSAC++, 3 px.
HOMOGRAPHY_RANSAC = GeometryConfig(ransac_method="magsac", ransac_threshold_px=3.0,
                                   ransac_confidence=0.9999, ransac_max_iters=10000)

Features = Mapping[str, np.ndarray]
DetectorFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


# ====================================================================== geometry helpers
def shared_masks(kp0: np.ndarray, kp1: np.ndarray, H_0_1: np.ndarray, shape0: Sequence[int],
                 shape1: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Warped keypoints and shared-region masks.

    Returns:
        ``(kp0_in_1, kp1_in_0, shared0, shared1)``: image0 keypoints warped by ``H_0_1``,
        image1 keypoints warped by its inverse, and the boolean masks of the keypoints whose
        warp lands inside the other image.
    """
    w01 = apply_homography(H_0_1, kp0)
    w10 = apply_homography(np.linalg.inv(H_0_1), kp1)
    return w01, w10, inside_image(w01, shape1), inside_image(w10, shape0)


def _nn_dist(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each query (N,2) to its nearest point (M,2); ``inf`` when M = 0."""
    if len(queries) == 0:
        return np.zeros(0)
    if len(points) == 0:
        return np.full(len(queries), np.inf)
    d, _ = cKDTree(points).query(queries, k=1)
    return np.asarray(d, dtype=np.float64)


def repeatability(kp0: np.ndarray, kp1: np.ndarray, H_0_1: np.ndarray, shape0: Sequence[int],
                  shape1: Sequence[int], eps: float = 3.0) -> dict[str, float]:
    """Symmetric repeatability and mean localisation error (see module docstring).

    Returns:
        dict with ``repeatability``, ``mle``, ``num_shared0``, ``num_shared1``,
        ``num_repeated0`` (c0) and ``num_repeated1`` (c1).
    """
    kp0 = np.asarray(kp0, np.float64).reshape(-1, 2)
    kp1 = np.asarray(kp1, np.float64).reshape(-1, 2)
    w01, w10, s0, s1 = shared_masks(kp0, kp1, H_0_1, shape0, shape1)
    d0 = _nn_dist(w01[s0], kp1[s1])  # shared image0 kps (in image1) -> shared image1 kps
    d1 = _nn_dist(w10[s1], kp0[s0])  # shared image1 kps (in image0) -> shared image0 kps
    ok0, ok1 = d0 <= eps, d1 <= eps
    n0, n1, c0, c1 = int(s0.sum()), int(s1.sum()), int(ok0.sum()), int(ok1.sum())
    rep = (c0 + c1) / (n0 + n1) if n0 + n1 > 0 else math.nan
    mle = float((d0[ok0].sum() + d1[ok1].sum()) / (c0 + c1)) if c0 + c1 > 0 else math.nan
    return {"repeatability": float(rep), "mle": mle, "num_shared0": n0, "num_shared1": n1,
            "num_repeated0": c0, "num_repeated1": c1}


def corner_error(H_est: Optional[np.ndarray], H_true: np.ndarray, shape0: Sequence[int]
                 ) -> float:
    """Mean distance (px) between the 4 corners ``(0,0), (W-1,0), (W-1,H-1), (0,H-1)`` of
    image0 mapped by ``H_est`` and by ``H_true``; ``inf`` when ``H_est`` is None/non-finite."""
    if H_est is None or not np.all(np.isfinite(H_est)):
        return math.inf
    h, w = int(shape0[0]), int(shape0[1])
    c = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    err = np.linalg.norm(apply_homography(np.asarray(H_est, np.float64), c)
                         - apply_homography(H_true, c), axis=1)
    e = float(err.mean())
    return e if np.isfinite(e) else math.inf


# ====================================================================== descriptor helpers
def average_precision(distances: np.ndarray, positive: np.ndarray,
                      num_positives: Optional[int] = None) -> float:
    """Average precision of detections ranked by increasing ``distances``.

    The precision-recall curve is obtained by thresholding the distance at each distinct
    value ``d``: precision = positives with distance ``<= d`` / detections with distance
    ``<= d``, recall = positives with distance ``<= d`` / ``num_positives``. AP is the
    step-wise area ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds in increasing
    order (``R_0 = 0``; no interpolation). Tied distances enter together, so the result does
    not depend on the input order.

    Args:
        distances: (N,) detection distances (lower = more confident).
        positive: (N,) bool, whether each detection is correct.
        num_positives: recall denominator (default: ``positive.sum()``); detections that can
            never be found lower the reachable recall and thus the AP.

    Returns:
        AP in [0, 1]; NaN when ``num_positives`` is 0.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    total = int(pos.sum()) if num_positives is None else int(num_positives)
    if total <= 0:
        return math.nan
    if d.size == 0:
        return 0.0
    order = np.argsort(d, kind="stable")
    d, pos = d[order], pos[order]
    tp = np.cumsum(pos)
    n = np.arange(1, len(d) + 1)
    last = np.r_[np.flatnonzero(np.diff(d) != 0), len(d) - 1]  # last index of each tie group
    precision = tp[last] / n[last]
    recall = tp[last] / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def nn_map(kp0: np.ndarray, kp1: np.ndarray, desc0: np.ndarray, desc1: np.ndarray,
           H_0_1: np.ndarray, shape0: Sequence[int], shape1: Sequence[int], eps: float = 3.0
           ) -> float:
    """Nearest-neighbour mAP (see module docstring); NaN when no keypoint has a ground-truth
    correspondence."""
    kp0 = np.asarray(kp0, np.float64).reshape(-1, 2)
    kp1 = np.asarray(kp1, np.float64).reshape(-1, 2)
    w01, _, s0, _ = shared_masks(kp0, kp1, H_0_1, shape0, shape1)
    query = np.flatnonzero(s0)
    query = query[_nn_dist(w01[query], kp1) <= eps]
    if len(query) == 0:
        return math.nan
    dist = descriptor_distances(np.asarray(desc0)[query], desc1)
    nn = dist.argmin(axis=1)
    nn_d = dist[np.arange(len(query)), nn]
    correct = np.linalg.norm(w01[query] - kp1[nn], axis=1) <= eps
    return average_precision(nn_d, correct, len(query))


# ====================================================================== per pair / aggregate
def match_features(feats0: Features, feats1: Features, matcher: Optional[Matcher] = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mutual-nearest-neighbour matches ``(M,2)`` and distances of two feature dicts."""
    matcher = matcher or Matcher()
    d0, d1 = np.asarray(feats0["descriptors"]), np.asarray(feats1["descriptors"])
    binary = d0.dtype == np.uint8
    return matcher.match(matcher.prepare(d0), matcher.prepare(d1), binary)


def evaluate_pair(feats0: Features, feats1: Features, pair: HomographyPair,
                  matcher: Optional[Matcher] = None, eps: float = 3.0,
                  matches: Optional[np.ndarray] = None,
                  ransac: GeometryConfig = HOMOGRAPHY_RANSAC) -> dict[str, Any]:
    """All metrics of one pair (definitions in the module docstring).

    Args:
        feats0, feats1: detector outputs for ``pair.image0`` / ``pair.image1`` (``keypoints``
            (N,2) pixels, ``descriptors`` (N,D) float or (N,B) packed uint8).
        pair: the images' shapes and the ground-truth ``H_0_1``.
        matcher: mutual-NN matcher (default :class:`~dkp_slam.matching.Matcher` on CPU);
            ignored when ``matches`` is given.
        eps: correctness threshold (px) of repeatability, MLE, MS and NN mAP.
        matches: precomputed (M,2) index pairs ``(i0, i1)``.
        ransac: robust estimator settings for ``hom_error``.

    Returns:
        the metrics (``repeatability``, ``mle``, ``mma@1..10``, ``ms``, ``hom_error``,
        ``hom_acc@1/3/5``, ``nn_map``) plus ``num_keypoints0/1``, ``num_shared0/1``,
        ``num_matches``, ``name`` and ``scene``.
    """
    kp0 = np.asarray(feats0["keypoints"], np.float64).reshape(-1, 2)
    kp1 = np.asarray(feats1["keypoints"], np.float64).reshape(-1, 2)
    H = np.asarray(pair.H_0_1, np.float64)
    shape0, shape1 = pair.image0.shape[:2], pair.image1.shape[:2]
    if matches is None:
        matches, _ = match_features(feats0, feats1, matcher)
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)

    res: dict[str, Any] = {"name": pair.name, "scene": pair.scene}
    rep = repeatability(kp0, kp1, H, shape0, shape1, eps)
    res["repeatability"], res["mle"] = rep["repeatability"], rep["mle"]

    w01, w10, s0, s1 = shared_masks(kp0, kp1, H, shape0, shape1)
    i0, i1 = matches[:, 0], matches[:, 1]
    err01 = np.linalg.norm(w01[i0] - kp1[i1], axis=1)  # inf for points sent to infinity
    err10 = np.linalg.norm(w10[i1] - kp0[i0], axis=1)
    m = len(matches)
    for t in MMA_THRESHOLDS:
        res[f"mma@{t}"] = float(np.mean(err01 <= t)) if m else 0.0
    n0, n1 = int(s0.sum()), int(s1.sum())
    m0 = int(np.sum(s0[i0] & (err01 <= eps)))
    m1 = int(np.sum(s1[i1] & (err10 <= eps)))
    res["ms"] = 0.5 * (m0 / max(n0, 1) + m1 / max(n1, 1))

    H_est = None
    if m >= 4:
        H_est, _ = find_homography(kp0[i0].astype(np.float32), kp1[i1].astype(np.float32),
                                   ransac)
    err = corner_error(H_est, H, shape0)
    res["hom_error"] = err
    for t in HOM_THRESHOLDS:
        res[f"hom_acc@{t}"] = float(err <= t)

    res["nn_map"] = nn_map(kp0, kp1, feats0["descriptors"], feats1["descriptors"], H, shape0,
                           shape1, eps)
    res.update(num_keypoints0=len(kp0), num_keypoints1=len(kp1), num_shared0=n0,
               num_shared1=n1, num_matches=m)
    return res


def _nanmean(values: Iterable[float]) -> float:
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0 or np.all(np.isnan(a)):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(a))


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean over pairs of each per-pair metric from :func:`evaluate_pair`.

    NaN values (undefined for a pair) are left out of the means. Returns exactly the keys of
    :data:`SUMMARY_KEYS`: ``repeatability``, ``mle``, ``mma@1`` .. ``mma@10``, ``ms``,
    ``hom_acc@1/3/5`` (share of pairs whose corner error is within 1/3/5 px), ``nn_map``,
    ``pairs`` (count), ``keypoints_mean`` (mean keypoints per image) and ``matches_mean``
    (mean mutual-NN matches per pair).
    """
    out: dict[str, float] = {}
    for key in SUMMARY_KEYS[:-3]:
        out[key] = _nanmean(r[key] for r in results)
    out["pairs"] = len(results)
    out["keypoints_mean"] = _nanmean(0.5 * (r["num_keypoints0"] + r["num_keypoints1"])
                                     for r in results)
    out["matches_mean"] = _nanmean(r["num_matches"] for r in results)
    return out


def evaluate_detector(detector: DetectorFn, pairs: Sequence[HomographyPair],
                      matcher: Optional[Matcher] = None, progress: bool = False,
                      eps: float = 3.0, warmup: int = 1,
                      feature_cache: Optional[dict] = None) -> dict[str, Any]:
    """Run ``detector`` on every pair and :func:`aggregate` the :func:`evaluate_pair` results.

    Args:
        detector: any callable ``grey uint8 image -> {"keypoints", "scores", "descriptors"}``
            (e.g. :func:`dkp_slam.features.create_detector`); its budget is the benchmark's.
        pairs: the pairs; an ``image0`` array shared by several pairs (as
            :func:`~dkp_slam.bench.pairs.load_hpatches` returns) is detected once.
        matcher: mutual-NN matcher (default: CPU :class:`~dkp_slam.matching.Matcher`).
        progress: print one line per pair to stderr.
        eps: correctness threshold (px), see :func:`evaluate_pair`.
        warmup: untimed detector calls on the first image before timing (lazy initialisation,
            CUDA context, ...).
        feature_cache: a dict to keep the features of each ``image0`` array in across calls
            (several pair sets sharing their first images, as in ``bench robustness``); by
            default a new one per call.

    Returns:
        :func:`aggregate` of the pairs plus ``ms_per_image``: mean wall-clock detection time
        per detector call in milliseconds (``time.perf_counter``), and, when the pairs come
        from several scenes, ``per_scene``: ``{scene: aggregate of its pairs}``.
    """
    matcher = matcher or Matcher()
    if pairs and warmup > 0:
        for _ in range(warmup):
            detector(pairs[0].image0)
    cache: dict[int, tuple[np.ndarray, Mapping[str, np.ndarray], Any]] = (
        {} if feature_cache is None else feature_cache)
    times: list[float] = []

    def detect(image: np.ndarray) -> tuple[Mapping[str, np.ndarray], Any]:
        t0 = time.perf_counter()
        feats = detector(image)
        times.append(time.perf_counter() - t0)
        return feats, matcher.prepare(np.asarray(feats["descriptors"]))

    results = []
    for k, pair in enumerate(pairs):
        hit = cache.get(id(pair.image0))
        if hit is None or hit[0] is not pair.image0:
            feats0, prep0 = detect(pair.image0)
            cache[id(pair.image0)] = (pair.image0, feats0, prep0)  # keeps the array alive
        else:
            _, feats0, prep0 = hit
        feats1, prep1 = detect(pair.image1)
        binary = np.asarray(feats0["descriptors"]).dtype == np.uint8
        matches, _ = matcher.match(prep0, prep1, binary)
        res = evaluate_pair(feats0, feats1, pair, eps=eps, matches=matches)
        results.append(res)
        if progress:
            print(f"[{k + 1}/{len(pairs)}] {pair.name}: rep {res['repeatability']:.3f} "
                  f"mma@3 {res['mma@3']:.3f} hom_err {res['hom_error']:.2f} "
                  f"matches {res['num_matches']}", file=sys.stderr, flush=True)
    out: dict[str, Any] = aggregate(results)
    out["ms_per_image"] = 1000.0 * float(np.mean(times)) if times else math.nan
    scenes = sorted({r["scene"] for r in results})
    if len(scenes) > 1:
        out["per_scene"] = {s: aggregate([r for r in results if r["scene"] == s])
                            for s in scenes}
    return out


#: Metrics reported per method by ``dkp-slam bench homography``.
METRIC_KEYS = ("repeatability", "mle", "mma@1", "mma@3", "mma@5", "ms", "hom_acc@1",
               "hom_acc@3", "hom_acc@5", "nn_map", "keypoints_mean", "ms_per_image")


def load_pairs(path: str, n_pairs: int = 100, seed: int = 0,
               resize_max: Optional[int] = None, scenes: Optional[Sequence[str]] = None,
               photo_range: Optional[tuple[int, int]] = None
               ) -> tuple[list[HomographyPair], str]:
    """HPatches-layout scenes when ``path`` holds scene folders with ``H_1_k`` files (only
    ``scenes`` when given), else ``n_pairs`` synthetic pairs from the photos in ``path``
    (only those in ``photo_range`` of the sorted list when given). Returns (pairs, label) with
    a label that names the data and its settings (used in output file names)."""
    from pathlib import Path

    from .pairs import load_hpatches, synthetic_pairs

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark data folder not found: {root}")
    if any(d.is_dir() and (d / "H_1_2").is_file() for d in root.iterdir()):
        label = (root.name + (f"-{'-'.join(scenes)}" if scenes else "")
                 + (f"_r{resize_max}" if resize_max else ""))
        return load_hpatches(root, scenes=scenes, resize_max=resize_max), label
    if scenes:
        raise ValueError(f"--scenes needs an HPatches-layout folder; {root} holds photographs")
    pairs = synthetic_pairs(root, n_pairs, seed=seed, photo_range=photo_range)
    subset = f"_p{photo_range[0]}-{photo_range[1]}" if photo_range else ""
    return pairs, f"{root.parent.name}-{root.name}{subset}_synth{n_pairs}_s{seed}"


def bench_homography(path: str, methods: Sequence[str], max_keypoints: int = 1000,
                     n_pairs: int = 100, seed: int = 0, resize_max: Optional[int] = None,
                     progress: bool = False, base: Optional[DetectorConfig] = None,
                     scenes: Optional[Sequence[str]] = None,
                     photo_range: Optional[tuple[int, int]] = None
                     ) -> tuple[dict[str, dict], str]:
    """:func:`evaluate_detector` for each method on the pairs of :func:`load_pairs`
    (``scenes`` / ``photo_range`` select a split, see there).

    ``base`` supplies the other detector options (e.g. ``dkp.weights``); its name and budget
    are replaced by each method's (a detector id, optionally with its own options:
    :func:`dkp_slam.config.method_overrides`) and ``max_keypoints``.

    Returns ``({method: {metric: value}}, data label)``.
    """
    from ..features import create_method_detector

    pairs, label = load_pairs(path, n_pairs, seed, resize_max, scenes, photo_range)
    results = {}
    base = base or DetectorConfig()
    for method in methods:
        detector = create_method_detector(base, method, max_keypoints)
        results[method] = evaluate_detector(detector, pairs, progress=progress)
    return results, label


__all__ = ["evaluate_pair", "aggregate", "evaluate_detector", "repeatability", "nn_map",
           "average_precision", "corner_error", "shared_masks",
           "inside_image", "match_features", "MMA_THRESHOLDS", "HOM_THRESHOLDS", "SUMMARY_KEYS",
           "HOMOGRAPHY_RANSAC", "METRIC_KEYS", "load_pairs", "bench_homography"]
