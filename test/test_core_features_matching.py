"""Tests for keypoint selection (dkp_slam.features.base), the OpenCV detectors on a real image,
and the mutual-nearest-neighbour matcher (dkp_slam.matching)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import shared_data
from dkp_slam.config import DetectorConfig, GeometryConfig, MatcherConfig
from dkp_slam.features import DETECTORS, create_detector, select_keypoints
from dkp_slam.features.base import bucket, nms_mask
from dkp_slam.geometry import find_homography
from dkp_slam.matching import Matcher

SHAPE = (480, 640)


def _conf(**kw) -> DetectorConfig:
    return DetectorConfig(**kw)


# ====================================================================== select_keypoints
def test_select_empty() -> None:
    idx = select_keypoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), SHAPE, _conf())
    assert idx.shape == (0,) and idx.dtype == np.int64


def test_select_border_removal() -> None:
    kp = np.array([[7.9, 100], [8.0, 100], [631.0, 100], [631.1, 100], [300, 7.5], [300, 8],
                   [300, 471], [300, 471.5], [320, 240], [-3, 50], [700, 50]], np.float32)
    scores = np.ones(len(kp), np.float32)
    idx = select_keypoints(kp, scores, SHAPE, _conf(border=8))
    assert sorted(idx.tolist()) == [1, 2, 5, 6, 8]
    # border 0 keeps everything inside the image, never what lies outside it
    idx = select_keypoints(kp, scores, SHAPE, _conf(border=0))
    assert sorted(idx.tolist()) == [0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_select_score_threshold_and_non_finite_scores() -> None:
    kp = np.array([[100, 100], [200, 100], [300, 100], [400, 100]], np.float32)
    scores = np.array([0.5, 0.05, np.nan, np.inf], np.float32)
    idx = select_keypoints(kp, scores, SHAPE, _conf(score_threshold=0.1))
    assert sorted(idx.tolist()) == [0]
    idx = select_keypoints(kp, scores, SHAPE, _conf(score_threshold=0.0))
    assert sorted(idx.tolist()) == [0, 1]


def test_select_budget_keeps_strongest() -> None:
    rng = np.random.default_rng(0)
    kp = rng.uniform([20, 20], [620, 460], (500, 2)).astype(np.float32)
    scores = rng.permutation(500).astype(np.float32) + 1
    idx = select_keypoints(kp, scores, SHAPE, _conf(max_keypoints=50))
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert sorted(scores[idx].tolist()) == list(range(451, 501))
    # fewer candidates than the budget: all kept
    assert len(select_keypoints(kp[:30], scores[:30], SHAPE, _conf(max_keypoints=50))) == 30


def test_nms_keeps_stronger_of_close_pair_and_far_ones() -> None:
    kp = np.array([[100, 100], [103, 101],  # close pair: the second one is stronger
                   [300, 300], [300.4, 300.3],  # same pixel after rounding: first stronger
                   [500, 200], [520, 200]], np.float32)  # far apart: both kept
    scores = np.array([1.0, 2.0, 5.0, 4.0, 1.0, 1.0], np.float32)
    idx = select_keypoints(kp, scores, SHAPE, _conf(nms_radius=4))
    assert sorted(idx.tolist()) == [1, 2, 4, 5]
    # radius 0 disables NMS
    assert len(select_keypoints(kp, scores, SHAPE, _conf(nms_radius=0))) == 6
    # radius smaller than the distance keeps the pair (window is (2r+1)^2, Chebyshev distance)
    assert sorted(select_keypoints(kp, scores, SHAPE, _conf(nms_radius=2)).tolist()) == [
        0, 1, 2, 4, 5]


def test_nms_mask_equal_scores_one_survives() -> None:
    kp = np.array([[50, 50], [51, 50], [52, 50]], np.float64)
    mask = nms_mask(kp, np.ones(3, np.float32), SHAPE, 3)
    assert mask.sum() == 1
    assert mask[0]  # ties broken by candidate order: earlier wins


def test_nms_result_has_no_close_pairs() -> None:
    rng = np.random.default_rng(3)
    kp = rng.uniform([10, 10], [630, 470], (3000, 2))
    scores = rng.random(3000).astype(np.float32)
    r = 5
    keep = nms_mask(kp, scores, SHAPE, r)
    pts = np.rint(kp[keep])
    d = np.abs(pts[:, None, :] - pts[None, :, :]).max(-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > r
    # Each suppressed keypoint has a stronger kept-or-not neighbour within r.
    sup = np.flatnonzero(~keep)[:200]
    allr = np.rint(kp)
    for i in sup:
        near = np.abs(allr - allr[i]).max(1) <= r
        assert scores[near].max() >= scores[i] and near.sum() > 1


def test_bucketing_spreads_over_cells() -> None:
    rng = np.random.default_rng(1)
    corner = rng.uniform([10, 10], [150, 110], (200, 2))  # top-left cell, strong
    few = np.array([[500, 60], [600, 80], [100, 400], [550, 420], [400, 300]], float)  # weak
    kp = np.vstack([corner, few]).astype(np.float32)
    scores = np.concatenate([rng.uniform(10, 20, 200), np.full(5, 0.5)]).astype(np.float32)
    few_idx = set(range(200, 205))
    # Without bucketing only the strong corner keypoints survive the budget.
    plain = select_keypoints(kp, scores, SHAPE, _conf(max_keypoints=40))
    assert not few_idx & set(plain.tolist())
    # With a 2x2 grid every cell first gets its share (10): the weak ones elsewhere are kept.
    idx = select_keypoints(kp, scores, SHAPE, _conf(max_keypoints=40, grid_rows=2, grid_cols=2))
    assert len(idx) == 40 and len(set(idx.tolist())) == 40
    assert few_idx <= set(idx.tolist())
    # The remaining budget goes to the strongest of the corner.
    corner_kept = sorted(set(idx.tolist()) - few_idx)
    assert len(corner_kept) == 35
    top35 = np.argsort(-scores[:200])[:35]
    assert set(corner_kept) == set(top35.tolist())


def test_bucket_quota_per_cell() -> None:
    # 4x4 grid, 16 keypoints per cell with distinct scores, budget 32 -> exactly 2 per cell.
    gy, gx = np.mgrid[0:16, 0:16]
    kp = np.stack([gx.ravel() * 40 + 5, gy.ravel() * 30 + 5], 1).astype(np.float64)
    scores = np.random.default_rng(2).random(len(kp)).astype(np.float32)
    chosen = bucket(kp, scores, SHAPE, 4, 4, 32)
    assert len(chosen) == 32
    cells = (kp[chosen, 1] * 4 // 480) * 4 + (kp[chosen, 0] * 4 // 640)
    assert np.bincount(cells.astype(int), minlength=16).tolist() == [2] * 16


# ====================================================================== detectors (real image)
@pytest.fixture(scope="module")
def graf() -> np.ndarray:
    path = shared_data("homography", "oxford", "graf", "1.png")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None and img.dtype == np.uint8
    return img


@pytest.mark.parametrize("name, dim, dtype", [("orb", 32, np.uint8), ("sift", 128, np.float32)])
def test_detector_on_real_image(graf, name, dim, dtype) -> None:
    budget = 500
    det = create_detector(_conf(name=name, max_keypoints=budget, border=8))
    assert isinstance(det, DETECTORS[name])
    assert det.binary == (name == "orb") and det.descriptor_size == dim
    out = det(graf)
    kp, sc, desc = out["keypoints"], out["scores"], out["descriptors"]
    n = len(kp)
    assert 0.8 * budget <= n <= budget
    assert kp.shape == (n, 2) and kp.dtype == np.float32
    assert sc.shape == (n,) and sc.dtype == np.float32
    assert desc.shape == (n, dim) and desc.dtype == dtype
    assert all(a.flags["C_CONTIGUOUS"] for a in (kp, sc, desc))
    assert np.all(np.diff(sc) <= 0), "keypoints must be sorted by decreasing score"
    h, w = graf.shape
    assert np.all(kp[:, 0] >= 8) and np.all(kp[:, 0] <= w - 1 - 8)
    assert np.all(kp[:, 1] >= 8) and np.all(kp[:, 1] <= h - 1 - 8)
    if dtype == np.float32:
        np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)
    # Descriptors belong to their keypoints: recomputing with OpenCV at the same keypoint
    # gives the same descriptor as the detector returned for it.
    if name == "orb":
        cv_kps = det.cv.detect(graf, None)
        by_pt = {(round(k.pt[0], 3), round(k.pt[1], 3)): k for k in cv_kps}
        picks = [by_pt[(round(float(u), 3), round(float(v), 3))] for u, v in kp[:20]]
        for i, k in enumerate(picks):
            k.class_id = i
        picks, ref = det.cv.compute(graf, picks)  # may reorder the keypoints
        order = [k.class_id for k in picks]
        assert sorted(order) == list(range(20))
        np.testing.assert_array_equal(ref, desc[order])
    # Deterministic.
    again = det(graf)
    np.testing.assert_array_equal(again["keypoints"], kp)


def test_detector_nms_and_grid_on_real_image(graf) -> None:
    det = create_detector(_conf(name="orb", max_keypoints=400, nms_radius=6, grid_rows=4,
                                grid_cols=4))
    out = det(graf)
    kp = out["keypoints"]
    assert 0 < len(kp) <= 400
    pts = np.rint(kp.astype(np.float64))
    d = np.abs(pts[:, None] - pts[None]).max(-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 6
    h, w = graf.shape
    cells = (np.clip(kp[:, 1] * 4 // h, 0, 3) * 4 + np.clip(kp[:, 0] * 4 // w, 0, 3)).astype(int)
    assert np.count_nonzero(np.bincount(cells, minlength=16)) >= 14


def test_detector_on_blank_image_returns_empty() -> None:
    for name, dim in (("orb", 32), ("sift", 128)):
        out = create_detector(_conf(name=name))(np.full((120, 160), 128, np.uint8))
        assert out["keypoints"].shape == (0, 2)
        assert out["scores"].shape == (0,)
        assert out["descriptors"].shape == (0, dim)


def test_create_detector_unknown_name() -> None:
    conf = _conf()
    conf.name = "superpoint_v9"
    with pytest.raises(ValueError, match="superpoint_v9"):
        create_detector(conf)


# ====================================================================== matcher
def _binary(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _float(n: int, d: int = 128, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _flip_bits(desc: np.ndarray, row: int, k: int, rng) -> None:
    bits = np.unpackbits(desc[row])
    pos = rng.choice(bits.size, k, replace=False)
    bits[pos] ^= 1
    desc[row] = np.packbits(bits)


def _popcount_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.bitwise_xor(a, b), axis=1).sum(1)


@pytest.mark.parametrize("kind", ["binary", "float"])
def test_identity_and_permutation(kind) -> None:
    m = Matcher()
    desc = _binary(300) if kind == "binary" else _float(300)
    binary = kind == "binary"
    d = m.prepare(desc)
    matches, dist = m.match(d, d, binary)
    np.testing.assert_array_equal(matches, np.stack([np.arange(300)] * 2, 1))
    assert matches.dtype == np.int64 and dist.dtype == np.float32
    np.testing.assert_allclose(dist, 0.0, atol=1e-3)
    perm = np.random.default_rng(5).permutation(300)
    matches, _ = m.match(d, m.prepare(desc[perm]), binary)
    # desc[perm][j] == desc[perm[j]], so query i matches j with perm[j] == i.
    inv = np.argsort(perm)
    np.testing.assert_array_equal(matches[:, 0], np.arange(300))
    np.testing.assert_array_equal(matches[:, 1], inv)


def test_prepare_binary_is_pm_one() -> None:
    t = Matcher().prepare(_binary(4))
    assert t.dtype == torch.int8 and t.shape == (4, 256)  # CPU: exact int8 product
    assert set(torch.unique(t).tolist()) == {-1, 1}


def test_binary_int8_product_equals_float_product() -> None:
    """The int8 path (CPU) gives exactly the float32 path's matches and Hamming distances,
    also for set sizes that are not multiples of anything (5 x 777)."""
    a, b = _binary(5, seed=11), _binary(777, seed=12)
    b[:5] = a  # exact duplicates: distance 0
    m_int = Matcher()
    m_float = Matcher()
    m_float._int8 = False
    ra = m_int.match(m_int.prepare(a), m_int.prepare(b), True)
    rf = m_float.match(m_float.prepare(a), m_float.prepare(b), True)
    assert m_float.prepare(a).dtype == torch.float32
    np.testing.assert_array_equal(ra[0], rf[0])
    np.testing.assert_array_equal(ra[1], rf[1])
    assert np.all(ra[1] == 0) and len(ra[0]) == 5
    np.testing.assert_array_equal(
        m_int.distance_matrix(m_int.prepare(a), m_int.prepare(b), True),
        m_float.distance_matrix(m_float.prepare(a), m_float.prepare(b), True))


def test_hamming_distances_equal_popcount() -> None:
    rng = np.random.default_rng(2)
    a = _binary(200, seed=3)
    b = a.copy()
    flips = rng.integers(0, 60, 200)
    for i, k in enumerate(flips):
        _flip_bits(b, i, int(k), rng)
    m = Matcher()
    matches, dist = m.match(m.prepare(a), m.prepare(b), True)
    assert len(matches) > 150
    ref = _popcount_distance(a[matches[:, 0]], b[matches[:, 1]])
    np.testing.assert_array_equal(dist, ref.astype(np.float32))
    # Correct pairs (near-duplicates) are what matched.
    np.testing.assert_array_equal(matches[:, 0], matches[:, 1])


def test_float_distances_are_l2() -> None:
    a = _float(100, seed=1)
    b = a + np.random.default_rng(4).normal(scale=0.03, size=a.shape).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    m = Matcher()
    matches, dist = m.match(m.prepare(a), m.prepare(b), False)
    np.testing.assert_array_equal(matches[:, 0], matches[:, 1])
    ref = np.linalg.norm(a[matches[:, 0]] - b[matches[:, 1]], axis=1)
    np.testing.assert_allclose(dist, ref, atol=1e-3)


def test_mutual_check_removes_one_sided_matches() -> None:
    a = _float(3, d=8, seed=0)
    # b has two copies close to a[0]; only the closer one is a mutual match for a[0].
    b = np.stack([a[0] * 0.9 + a[1] * 0.1, a[0], a[2]])
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    m = Matcher()
    matches, _ = m.match(m.prepare(a), m.prepare(b), False)
    pairs = {tuple(p) for p in matches.tolist()}
    assert (0, 1) in pairs and (2, 2) in pairs
    assert all(j != 0 for _, j in pairs)


def test_max_hamming_filter() -> None:
    rng = np.random.default_rng(7)
    a = _binary(100, seed=8)
    b = a.copy()
    flips = np.arange(100) % 40  # 0..39 bits flipped
    for i, k in enumerate(flips):
        _flip_bits(b, i, int(k), rng)
    pa, pb = Matcher().prepare(a), Matcher().prepare(b)
    all_m, _ = Matcher().match(pa, pb, True)
    assert len(all_m) == 100
    m = Matcher(MatcherConfig(max_hamming=10))
    matches, dist = m.match(pa, pb, True)
    np.testing.assert_array_equal(matches[:, 0], np.flatnonzero(flips <= 10))
    assert dist.max() <= 10
    # max_hamming is ignored for float descriptors, max_distance for binary ones.
    fa = _float(50)
    mf = Matcher(MatcherConfig(max_hamming=1))
    assert len(mf.match(mf.prepare(fa), mf.prepare(fa + 0.01), False)[0]) == 50
    mb = Matcher(MatcherConfig(max_distance=0.01))
    assert len(mb.match(pa, pb, True)[0]) == 100


def test_max_distance_filter() -> None:
    rng = np.random.default_rng(9)
    a = _float(60, d=64, seed=10)
    noise = np.linspace(0.0, 0.6, 60)[:, None]
    b = a + rng.normal(size=a.shape).astype(np.float32) * noise.astype(np.float32) / 8.0
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    true = np.linalg.norm(a - b, axis=1)
    m = Matcher(MatcherConfig(max_distance=0.3))
    matches, dist = m.match(m.prepare(a), m.prepare(b), False)
    assert np.all(dist <= 0.3)
    expected = np.flatnonzero(true <= 0.3)
    assert 10 < len(expected) < 60
    np.testing.assert_array_equal(matches[:, 0], expected)


def test_ratio_filter() -> None:
    a = _float(50, d=32, seed=11)
    rng = np.random.default_rng(12)
    # Perturb every descriptor by e orthogonal to it: normalise(a + e) is the match. For a[0]
    # .. a[4] add the distractor normalise(a - e), exactly as far away: ambiguous, the ratio
    # test must drop them.
    e = rng.normal(scale=0.03, size=a.shape).astype(np.float32)
    e -= np.sum(e * a, axis=1, keepdims=True) * a
    b = (a + e) / np.linalg.norm(a + e, axis=1, keepdims=True)
    distract = (a[:5] - e[:5]) / np.linalg.norm(a[:5] - e[:5], axis=1, keepdims=True)
    b = np.vstack([b, distract])
    pa, pb = Matcher().prepare(a), Matcher().prepare(b)
    assert set(range(5)) <= set(Matcher().match(pa, pb, False)[0][:, 0].tolist())
    m = Matcher(MatcherConfig(ratio=0.8))
    matches, _ = m.match(pa, pb, False)
    kept = set(matches[:, 0].tolist())
    assert not kept & set(range(5))
    assert kept == set(range(5, 50))
    # A single candidate in the other set: the ratio test cannot apply, the match stays.
    one = Matcher(MatcherConfig(ratio=0.5))
    mm, _ = one.match(one.prepare(a[:3]), one.prepare(a[1:2]), False)
    assert mm.tolist() == [[1, 0]]


def test_ratio_filter_binary() -> None:
    rng = np.random.default_rng(13)
    a = _binary(40, seed=14)
    b = a.copy()
    for i in range(40):
        _flip_bits(b, i, 4, rng)
    dup = a[:3].copy()
    for i in range(3):
        _flip_bits(dup, i, 5, rng)
    b = np.vstack([b, dup])
    m = Matcher(MatcherConfig(ratio=0.7))
    matches, _ = m.match(m.prepare(a), m.prepare(b), True)
    assert set(matches[:, 0].tolist()) == set(range(3, 40))


def test_empty_inputs() -> None:
    m = Matcher()
    e = m.prepare(np.zeros((0, 32), np.uint8))
    d = m.prepare(_binary(10))
    for x, y in ((e, d), (d, e), (e, e)):
        matches, dist = m.match(x, y, True)
        assert matches.shape == (0, 2) and matches.dtype == np.int64
        assert dist.shape == (0,) and dist.dtype == np.float32
    ef = m.prepare(np.zeros((0, 128), np.float32))
    assert m.match(ef, m.prepare(_float(5)), False)[0].shape == (0, 2)


def test_mismatched_dimensions_raise() -> None:
    m = Matcher()
    with pytest.raises(ValueError, match="differ"):
        m.match(m.prepare(_float(10, 128)), m.prepare(_float(10, 64)), False)
    with pytest.raises(ValueError, match="differ"):
        m.match(m.prepare(_binary(10)), m.prepare(_float(10, 128)), True)
    with pytest.raises(ValueError):
        m.prepare(np.zeros(32, np.uint8))


def test_cuda_device_requires_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA"):
        Matcher(MatcherConfig(device="cuda"))


# ====================================================================== real image homography
def test_orb_matches_recover_known_homography(graf) -> None:
    h, w = graf.shape
    H_true = np.array([[0.95, 0.08, 25.0], [-0.06, 0.97, 18.0], [2e-5, -3e-5, 1.0]])
    warped = cv2.warpPerspective(graf, H_true, (w, h), flags=cv2.INTER_LINEAR)
    det = create_detector(_conf(name="orb", max_keypoints=1500))
    f0, f1 = det(graf), det(warped)
    m = Matcher()
    matches, _ = m.match(m.prepare(f0["descriptors"]), m.prepare(f1["descriptors"]), True)
    assert len(matches) > 300
    p0 = f0["keypoints"][matches[:, 0]].astype(np.float64)
    p1 = f1["keypoints"][matches[:, 1]].astype(np.float64)
    H, inliers = find_homography(p0, p1, GeometryConfig(ransac_threshold_px=2.0))
    assert H is not None and inliers.sum() > 200
    assert H[2, 2] == pytest.approx(1.0)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float)
    est = corners @ H.T
    ref = corners @ H_true.T
    err = np.linalg.norm(est[:, :2] / est[:, 2:] - ref[:, :2] / ref[:, 2:], axis=1)
    assert err.max() < 2.0, err
    # Most inlier matches agree with the true homography.
    q = np.hstack([p0, np.ones((len(p0), 1))]) @ H_true.T
    true_err = np.linalg.norm(q[:, :2] / q[:, 2:] - p1, axis=1)
    assert np.mean(true_err[inliers] < 3.0) > 0.95
