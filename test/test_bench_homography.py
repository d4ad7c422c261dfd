"""Known-answer tests of the homography benchmark (dkp_slam.bench.pairs / .homography)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import shared_data
from dkp_slam.bench.homography import (SUMMARY_KEYS, aggregate, average_precision,
                                       evaluate_detector, evaluate_pair, repeatability)
from dkp_slam.bench.pairs import (HomographyPair, load_hpatches, scale_matrix,
                                  synthetic_pairs)
from dkp_slam.config import DetectorConfig
from dkp_slam.features import create_detector
from dkp_slam.geometry import apply_homography
from dkp_slam.matching import Matcher, descriptor_distances

SHAPE = (240, 320)
#: A mild perspective homography that keeps the central part of a 240x320 image in view.
H_PERSP = np.array([[0.95, 0.08, 12.0], [-0.05, 1.02, 6.0], [1.5e-4, -1e-4, 1.0]])


def _grid_keypoints(shape=SHAPE, step=16, margin=40) -> np.ndarray:
    h, w = shape
    u, v = np.meshgrid(np.arange(margin, w - margin, step), np.arange(margin, h - margin, step))
    return np.stack([u.ravel(), v.ravel()], 1).astype(np.float64)


def _unit_desc(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _feats(kp: np.ndarray, desc: np.ndarray) -> dict:
    return {"keypoints": np.asarray(kp, np.float32), "scores": np.ones(len(kp), np.float32),
            "descriptors": desc}


def _pair(H: np.ndarray, shape0=SHAPE, shape1=SHAPE) -> HomographyPair:
    return HomographyPair(np.zeros(shape0, np.uint8), np.zeros(shape1, np.uint8),
                          np.asarray(H, np.float64), "test", "test")


def _blob_image(shape, centre, sigma=3.0, background=None) -> np.ndarray:
    h, w = shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    img = 200.0 * np.exp(-((u - centre[0]) ** 2 + (v - centre[1]) ** 2) / (2 * sigma ** 2))
    if background is not None:
        img = img + background
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _centroid(img: np.ndarray, around: np.ndarray, radius: int = 12) -> np.ndarray:
    """Intensity-weighted centroid in a window around a position (pixel-centre coords)."""
    x0, y0 = np.rint(around).astype(int)
    win = img[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].astype(np.float64)
    win = np.clip(win - np.median(img), 0, None)
    v, u = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return np.array([(win * u).sum(), (win * v).sum()]) / win.sum()


# ====================================================================== perfect detector
@pytest.mark.parametrize("H", [np.eye(3), H_PERSP], ids=["identity", "perspective"])
@pytest.mark.parametrize("binary", [False, True], ids=["float", "binary"])
def test_perfect_detector(H: np.ndarray, binary: bool) -> None:
    kp0 = _grid_keypoints()
    kp1 = apply_homography(H, kp0)
    assert np.all((kp1 > 0) & (kp1 < np.array(SHAPE[::-1]) - 1))  # all in the shared region
    if binary:
        desc = np.random.default_rng(1).integers(0, 256, (len(kp0), 32), dtype=np.uint8)
    else:
        desc = _unit_desc(len(kp0))
    res = evaluate_pair(_feats(kp0, desc), _feats(kp1, desc.copy()), _pair(H), Matcher())
    assert res["num_matches"] == len(kp0)
    assert res["repeatability"] == 1.0
    assert res["mle"] == pytest.approx(0.0, abs=1e-3)  # float32 keypoints
    for t in range(1, 11):
        assert res[f"mma@{t}"] == 1.0
    assert res["ms"] == 1.0
    assert res["hom_error"] < 0.05
    assert res["hom_acc@1"] == res["hom_acc@3"] == res["hom_acc@5"] == 1.0
    assert res["nn_map"] == pytest.approx(1.0)
    summary = aggregate([res, res])
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["pairs"] == 2 and summary["keypoints_mean"] == len(kp0)
    assert summary["hom_acc@1"] == 1.0 and summary["nn_map"] == pytest.approx(1.0)


def test_known_shift_two_pixels() -> None:
    """Every image1 keypoint is 2 px off the true warp (translation (5, 3))."""
    H = np.array([[1.0, 0, 5], [0, 1, 3], [0, 0, 1]])
    kp0 = _grid_keypoints(step=20)
    kp1 = kp0 + [5, 3] + [1.2, 1.6]  # |(1.2, 1.6)| = 2
    desc = _unit_desc(len(kp0))
    res = evaluate_pair(_feats(kp0, desc), _feats(kp1, desc), _pair(H), eps=3.0)
    assert res["mma@1"] == 0.0
    for t in range(3, 11):
        assert res[f"mma@{t}"] == 1.0
    assert res["repeatability"] == 1.0
    assert res["mle"] == pytest.approx(2.0, abs=1e-4)
    assert res["ms"] == 1.0
    assert res["nn_map"] == pytest.approx(1.0)
    res1 = evaluate_pair(_feats(kp0, desc), _feats(kp1, desc), _pair(H), eps=1.0)
    assert res1["repeatability"] == 0.0 and math.isnan(res1["mle"])
    assert res1["ms"] == 0.0 and math.isnan(res1["nn_map"])  # no ground-truth correspondence
    # the estimated homography is the shifted one: corner error 2 px
    assert res["hom_error"] == pytest.approx(2.0, abs=0.05)
    assert res["hom_acc@1"] == 0.0 and res["hom_acc@3"] == 1.0


def test_keypoints_outside_shared_region_are_excluded() -> None:
    """Translation by 160 px in a 320-wide image: the right half of image0 leaves image1 and
    the left half of image1 has no source in image0."""
    H = np.array([[1.0, 0, 160], [0, 1, 0], [0, 0, 1]])
    kp0 = _grid_keypoints(step=20, margin=20)
    inside = kp0[:, 0] + 160 < SHAPE[1] - 0.5
    assert 0.3 < inside.mean() < 0.7
    kp1_true = kp0[inside] + [160, 0]
    kp1_extra = kp0[kp0[:, 0] < 140] + [3.5, 7.5]  # left half of image1: maps outside image0
    kp1 = np.vstack([kp1_true, kp1_extra])
    desc0 = _unit_desc(len(kp0), seed=0)
    desc1 = np.vstack([desc0[inside], _unit_desc(len(kp1_extra), seed=7)])
    res = evaluate_pair(_feats(kp0, desc0), _feats(kp1, desc1), _pair(H))
    n = int(inside.sum())
    assert res["num_shared0"] == n and res["num_shared1"] == len(kp1_true)
    assert res["repeatability"] == 1.0
    assert res["mle"] == pytest.approx(0.0, abs=1e-4)
    assert res["ms"] == 1.0
    assert res["nn_map"] == pytest.approx(1.0)
    # counting every keypoint instead would give (n + n) / (n0 + n1)
    assert res["repeatability"] > 2 * n / (len(kp0) + len(kp1)) + 0.2

    # Border case: image0 keypoint (160.5, 30) warps just outside image1 (320.5 > 319.5); the
    # image1 keypoint (318.5, 30), 2 px from that warp, is shared but has no shared partner.
    kp0b = np.vstack([kp0, [[160.5, 30.0]]])
    kp1b = np.vstack([kp1, [[318.5, 30.0]]])
    res = evaluate_pair(_feats(kp0b, _unit_desc(len(kp0b), seed=0)),
                        _feats(kp1b, np.vstack([desc1, _unit_desc(1, seed=9)])), _pair(H))
    assert res["num_shared0"] == n and res["num_shared1"] == n + 1
    assert res["repeatability"] == pytest.approx(2 * n / (2 * n + 1))
    assert res["ms"] == pytest.approx(0.5 * (1 + n / (n + 1)))


def test_hand_computed_small_example() -> None:
    """4 keypoints in image0, 5 in image1 (H = identity, 100x100 images).

    kp1[0] is exact, kp1[1] is 1 px off (both correct at 3 px); kp1[2], kp1[3] lie 10 px from
    their image0 counterparts and kp1[4] is isolated. Descriptors pair i0 = i1 for i < 4.
    repeatability = (2 + 2) / (4 + 5); MLE = (0 + 1 + 0 + 1) / 4; 4 matches, 2 correct:
    MMA@3 = 0.5; MS = (2/4 + 2/5) / 2 = 0.45.
    """
    kp0 = np.array([[20, 20], [80, 20], [20, 80], [80, 80]], np.float64)
    kp1 = np.array([[20, 20], [80, 21], [30, 80], [80, 70], [50, 50]], np.float64)
    desc = np.eye(8, dtype=np.float32)
    pair = _pair(np.eye(3), (100, 100), (100, 100))
    res = evaluate_pair(_feats(kp0, desc[:4]), _feats(kp1, desc[:5]), pair)
    assert res["repeatability"] == pytest.approx(4 / 9)
    assert res["mle"] == pytest.approx(0.5)
    assert res["num_matches"] == 4
    assert res["mma@1"] == pytest.approx(0.5) and res["mma@3"] == pytest.approx(0.5)
    assert res["mma@9"] == pytest.approx(0.5) and res["mma@10"] == pytest.approx(1.0)
    assert res["ms"] == pytest.approx(0.45)
    # 2 queries have a correspondence and both nearest neighbours are right
    assert res["nn_map"] == pytest.approx(1.0)
    rep = repeatability(kp0, kp1, np.eye(3), (100, 100), (100, 100), eps=3.0)
    assert (rep["num_repeated0"], rep["num_repeated1"]) == (2, 2)
    assert (rep["num_shared0"], rep["num_shared1"]) == (4, 5)


def test_nn_map_penalises_wrong_nearest_neighbour() -> None:
    """Two queries with a correspondence; query 1's nearest descriptor is the wrong keypoint
    and is ranked first: PR points (P=0, R=0), (P=1/2, R=1/2) -> AP = 0.25."""
    kp0 = np.array([[20, 20], [80, 20]], np.float64)
    kp1 = np.array([[20, 20], [80, 20], [50, 70]], np.float64)
    desc0 = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    c = np.cos(0.3)
    desc1 = np.array([[c, 0, np.sqrt(1 - c * c)], [0, 0, 1], [0, 1, 0]], np.float32)
    res = evaluate_pair(_feats(kp0, desc0), _feats(kp1, desc1),
                        _pair(np.eye(3), (100, 100), (100, 100)))
    assert res["nn_map"] == pytest.approx(0.25)


# ====================================================================== average precision
def test_average_precision_hand_computed() -> None:
    """Distances 0.1, 0.2, 0.2, 0.4, 0.5 with labels 1, 0, 1, 0, 1 and 4 positives in all.
    Thresholds: 0.1 -> P 1, R 1/4; 0.2 -> P 2/3, R 2/4; 0.4 -> P 1/2, R 2/4; 0.5 -> P 3/5,
    R 3/4. AP = 1/4 * 1 + 1/4 * 2/3 + 0 + 1/4 * 3/5."""
    d = np.array([0.1, 0.2, 0.2, 0.4, 0.5])
    pos = np.array([1, 0, 1, 0, 1], bool)
    expected = 0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 3 / 5
    assert average_precision(d, pos, 4) == pytest.approx(expected)
    perm = np.array([4, 2, 0, 3, 1])  # input order does not matter, ties included
    assert average_precision(d[perm], pos[perm], 4) == pytest.approx(expected)
    swapped = np.array([2, 1, 0, 3, 4])  # positive listed first within the 0.2 tie
    assert average_precision(d[swapped], pos[swapped], 4) == pytest.approx(expected)
    # default denominator: the positives present -> recall reaches 1
    assert average_precision(d, pos) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5)
    assert average_precision(d[pos], pos[pos]) == 1.0
    assert average_precision(d[~pos], pos[~pos], 3) == 0.0
    assert math.isnan(average_precision(d, np.zeros(5, bool)))


def test_descriptor_distances_match_matcher() -> None:
    rng = np.random.default_rng(3)
    b0 = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    b1 = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    ham = descriptor_distances(b0, b1)
    ref = np.unpackbits(b0[:, None, :] ^ b1[None, :, :], axis=2).sum(2)
    np.testing.assert_array_equal(ham, ref)
    f0, f1 = _unit_desc(20, seed=1), _unit_desc(30, seed=2)
    np.testing.assert_allclose(descriptor_distances(f0, f1),
                               np.linalg.norm(f0[:, None] - f1[None], axis=2), atol=1e-5)
    m = Matcher()
    matches, dist = m.match(m.prepare(f0), m.prepare(f1), False)
    np.testing.assert_allclose(dist, descriptor_distances(f0, f1)[matches[:, 0], matches[:, 1]],
                               atol=1e-4)


# ====================================================================== pairs
def _write_scene(folder, img1, imgs, Hs) -> None:
    folder.mkdir(parents=True)
    assert cv2.imwrite(str(folder / "1.png"), img1)
    for k, (img, H) in enumerate(zip(imgs, Hs), start=2):
        # colour .ppm, as HPatches ships
        assert cv2.imwrite(str(folder / f"{k}.ppm"), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        np.savetxt(folder / f"H_1_{k}", H)


def test_load_hpatches_resize_keeps_homography_consistent(tmp_path) -> None:
    shape = (300, 400)
    p = np.array([130.0, 140.0])
    rng = np.random.default_rng(0)
    bg = rng.uniform(0, 10, shape)
    img1 = _blob_image(shape, p, sigma=4.0, background=bg)
    H = np.array([[0.9, 0.1, 40.0], [-0.08, 1.05, 10.0], [2e-4, 1e-4, 1.0]])
    img2 = cv2.warpPerspective(img1, H, (200, 180))  # smaller than image 1
    _write_scene(tmp_path / "scene_a", img1, [img2], [H])
    (tmp_path / "not_a_scene").mkdir()

    full = load_hpatches(tmp_path)
    assert [q.name for q in full] == ["scene_a/1-2"] and full[0].scene == "scene_a"
    np.testing.assert_allclose(full[0].H_0_1, H)
    assert full[0].image1.shape == (180, 200) and full[0].image0.dtype == np.uint8

    # image 1 is halved, image 2 already fits and is left alone
    small = load_hpatches(tmp_path, scenes=["scene_a"], resize_max=200)[0]
    assert small.image0.shape == (150, 200) and small.image1.shape == (180, 200)
    np.testing.assert_array_equal(small.image1, full[0].image1)
    S0 = scale_matrix(0.5, 0.5)
    pts = rng.uniform(0, 300, (10, 2))
    np.testing.assert_allclose(apply_homography(small.H_0_1, apply_homography(S0, pts)), apply_homography(H, pts),
                               atol=1e-9)
    # the blob, located in both images, is mapped by the adjusted homography
    c0 = _centroid(small.image0, apply_homography(S0, p[None])[0], radius=6)
    np.testing.assert_allclose(c0, apply_homography(S0, p[None])[0], atol=0.1)
    c1 = _centroid(small.image1, apply_homography(H, p[None])[0], radius=10)
    np.testing.assert_allclose(c1, apply_homography(H, p[None])[0], atol=0.1)
    np.testing.assert_allclose(apply_homography(small.H_0_1, c0[None])[0], c1, atol=0.15)
    # the naive scaling p -> p * s would be off by about half a pixel here
    naive = H @ np.linalg.inv(np.diag([0.5, 0.5, 1]))
    assert np.linalg.norm(apply_homography(naive, c0[None])[0] - c1) > 0.4
    with pytest.raises(FileNotFoundError):
        load_hpatches(tmp_path, scenes=["missing"])


def test_load_hpatches_oxford() -> None:
    root = shared_data("homography", "oxford")
    pairs = load_hpatches(root, scenes=["graf", "wall"], resize_max=480)
    assert len(pairs) == 10 and pairs[0].name == "graf/1-2" and pairs[-1].scene == "wall"
    assert all(max(q.image0.shape) <= 480 and q.image0.ndim == 2 for q in pairs)
    # graf 1-2 warped by H agrees with image 2 (normalised cross-correlation)
    q = pairs[0]
    h, w = q.image1.shape
    warped = cv2.warpPerspective(q.image0.astype(np.float32), q.H_0_1, (w, h))
    valid = cv2.warpPerspective(np.ones_like(q.image0, np.float32), q.H_0_1, (w, h)) > 0.99
    a, b = warped[valid] - warped[valid].mean(), q.image1[valid] - q.image1[valid].mean()
    assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.8


@pytest.fixture(name="photo_folder")
def photo_folder_fixture(tmp_path):
    """Two textured 200x240 photographs, one with a Gaussian marker at (120, 100)."""
    rng = np.random.default_rng(5)
    for i in range(2):
        tex = cv2.GaussianBlur(rng.uniform(0, 40, (200, 240)).astype(np.float32), (0, 0), 2)
        cv2.imwrite(str(tmp_path / f"p{i}.png"), _blob_image((200, 240), (120, 100), 3.0, tex))
    return tmp_path


def test_synthetic_pairs_deterministic(photo_folder) -> None:
    a = synthetic_pairs(photo_folder, 4, seed=3)
    b = synthetic_pairs(photo_folder, 4, seed=3)
    c = synthetic_pairs(photo_folder, 4, seed=4)
    assert [p.name for p in a] == [p.name for p in b]
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.image0, q.image0)
        np.testing.assert_array_equal(p.image1, q.image1)
        np.testing.assert_array_equal(p.H_0_1, q.H_0_1)
    assert not all(np.allclose(p.H_0_1, q.H_0_1) for p, q in zip(a, c))
    for p in a:
        assert p.image0.shape == p.image1.shape == (200, 240) and p.image1.dtype == np.uint8
        assert not np.allclose(p.H_0_1, np.eye(3)) and p.H_0_1[2, 2] == 1.0
    sized = synthetic_pairs(photo_folder, 1, seed=3, size=(100, 120))
    assert sized[0].image0.shape == sized[0].image1.shape == (100, 120)


def test_synthetic_pairs_homography_maps_content(photo_folder) -> None:
    marker = np.array([120.0, 100.0])
    clean = synthetic_pairs(photo_folder, 6, seed=11, photometric=False)
    noisy = synthetic_pairs(photo_folder, 6, seed=11)
    for p, q in zip(clean, noisy):
        np.testing.assert_array_equal(p.H_0_1, q.H_0_1)  # geometry independent of photometry
        target = apply_homography(p.H_0_1, marker[None])[0]
        np.testing.assert_allclose(_centroid(p.image1, target), target, atol=0.3)
        h, w = p.image0.shape
        np.testing.assert_array_equal(
            p.image1, cv2.warpPerspective(p.image0, p.H_0_1, (w, h), flags=cv2.INTER_LINEAR))
        assert not np.array_equal(p.image1, q.image1)
        # most of image0 stays in view
        u, v = np.meshgrid(np.arange(0, w, 8), np.arange(0, h, 8))
        pts = apply_homography(p.H_0_1, np.stack([u.ravel(), v.ravel()], 1))
        assert np.mean((pts[:, 0] > -0.5) & (pts[:, 0] < w - 0.5)
                       & (pts[:, 1] > -0.5) & (pts[:, 1] < h - 0.5)) >= 0.55


def test_synthetic_pairs_bsds_orb() -> None:
    folder = shared_data("train", "bsds500", "val")
    pairs = synthetic_pairs(folder, 4, seed=0)
    assert len(pairs) == 4
    assert all(q.image0.shape in ((321, 481), (481, 321)) for q in pairs)
    res = evaluate_detector(create_detector(DetectorConfig(name="orb", max_keypoints=500)),
                            pairs)
    assert 0.2 < res["repeatability"] <= 1 and 0 < res["mma@3"] <= 1


# ====================================================================== real run
def test_orb_on_oxford() -> None:
    root = shared_data("homography", "oxford")
    pairs = load_hpatches(root, scenes=["graf", "boat"])
    det = create_detector(DetectorConfig(name="orb", max_keypoints=1000))
    res = evaluate_detector(det, pairs)
    assert set(res) == set(SUMMARY_KEYS) | {"ms_per_image", "per_scene"}
    assert res["pairs"] == 10 and 900 <= res["keypoints_mean"] <= 1000
    per_scene = res["per_scene"]
    assert set(per_scene) == {"graf", "boat"} and per_scene["graf"]["pairs"] == 5
    for key in ("mma@3", "repeatability"):  # the pairs are split evenly: the mean of the means
        assert res[key] == pytest.approx((per_scene["graf"][key] + per_scene["boat"][key]) / 2)
    assert 0.3 < res["repeatability"] < 0.9
    assert 0.0 < res["mle"] < 3.0
    assert 0.0 < res["mma@3"] <= 1.0
    assert all(res[f"mma@{t}"] <= res[f"mma@{t + 1}"] for t in range(1, 10))
    assert 0.0 < res["ms"] < 1.0 and 0.0 < res["nn_map"] <= 1.0
    assert res["hom_acc@1"] <= res["hom_acc@3"] <= res["hom_acc@5"] and res["hom_acc@5"] > 0
    assert res["ms_per_image"] > 0 and res["matches_mean"] > 50
