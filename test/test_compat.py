"""The compatibility functions (dkp_slam/compat.py) and the behaviours that differ between the
supported OpenCV / numpy versions. CI runs this file in the pip environment (OpenCV 5, numpy 2)
and in the distribution one (Debian's OpenCV 4.6, numpy 1.24): the expected values are the same."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dkp_slam.camera import Camera
from dkp_slam.compat import trapezoid, undistort_points_iter
from dkp_slam.config import GeometryConfig
from dkp_slam.geometry import (_pose_from_homography, angle_between_deg, find_homography,
                               polish_essential, rotation_angle_deg, sampson_residuals, skew,
                               so3_exp, to_normalised)
from dkp_slam.ros.decode import compressed_image_complete


def test_trapezoid():
    assert trapezoid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 3.0])) == pytest.approx(2.5)


@pytest.mark.parametrize("model,dist", [
    ("radtan", [-0.28, 0.07, 1e-4, -2e-4, 0.0]),                      # plumb_bob
    ("radtan", [-0.3, 0.1, 1e-4, 1e-4, -0.01, 0.01, 0.002, 0.0005]),  # rational_polynomial
    ("equidistant", [-0.01, 0.05, -0.08, 0.04]),                      # fisheye
])
def test_undistortion_inverts_projection(model, dist):
    """Camera.undistort_points (undistort_points_iter on radtan) inverts Camera.project to 1e-9
    in normalised units, on any OpenCV: the same keypoints in both environments."""
    cam = Camera(752, 480, 458.6, 457.3, 367.2, 248.4, model, np.array(dist))
    rng = np.random.default_rng(0)
    xy = rng.uniform([-0.6, -0.45], [0.6, 0.45], (500, 2))
    uv = cam.project(np.hstack([xy, np.ones((500, 1))]))
    np.testing.assert_allclose(cam.undistort_points(uv), xy, atol=1e-9)


def test_undistort_points_iter_matches_opencv_default_at_5_iterations():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    dist = np.array([-0.2, 0.05, 0.0, 0.0, 0.0])
    pts = np.array([[[10.0, 20.0]], [[600.0, 400.0]], [[320.0, 240.0]]])
    crit = (cv2.TERM_CRITERIA_COUNT, 5, 0.0)  # OpenCV's default solver: 5 iterations
    np.testing.assert_allclose(undistort_points_iter(pts, K, dist, crit),
                               cv2.undistortPoints(pts, K, dist), atol=1e-12)


def _plane_scene(R: np.ndarray, t: np.ndarray, K: np.ndarray, n: int = 300, seed: int = 5):
    rng = np.random.default_rng(seed)
    X0 = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-1.5, 1.5, n), np.full(n, 5.0)])
    X0[:, 2] += 0.3 * X0[:, 0]  # a tilted plane
    X1 = (X0 - t) @ R  # camera 1 at (R, t) in camera 0
    proj = lambda X: (X[:, :2] / X[:, 2:]) * K[0, 0] + K[:2, 2]  # noqa: E731
    return proj(X0) + rng.normal(0, 0.3, (n, 2)), proj(X1) + rng.normal(0, 0.3, (n, 2))


def test_homography_decomposition_is_chosen_by_visibility_alone():
    """Of the decompositions of a plane-induced H, the visibility test leaves the true one without
    help from the 5-point pose (it failed silently on pixel coordinates before)."""
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    R, t = so3_exp([0.02, -0.04, 0.01]), np.array([0.8, 0.1, 0.2])
    p0, p1 = _plane_scene(R, t, K)
    H, inl = find_homography(p0, p1, GeometryConfig())
    R_est, t_est = _pose_from_homography(H, K, p0[inl], p1[inl], None, None)
    assert rotation_angle_deg(R_est.T @ R) < 0.3 and angle_between_deg(t_est, t) < 3.0


def test_polish_essential_reaches_the_noise_floor():
    """The polishing step used where OpenCV's USAC has no final polisher (OpenCV < 4.7) lowers
    the Sampson cost of a perturbed E and recovers the true inliers."""
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.uniform(-3, 3, 400), rng.uniform(-2, 2, 400), rng.uniform(4, 12, 400)])
    R, t = so3_exp([0.03, -0.06, 0.02]), np.array([0.5, 0.1, 0.3])
    X1 = (X - t) @ R
    p0 = (X[:, :2] / X[:, 2:]) * 500 + [320, 240] + rng.normal(0, 0.5, (400, 2))
    p1 = (X1[:, :2] / X1[:, 2:]) * 500 + [320, 240] + rng.normal(0, 0.5, (400, 2))
    p1[:60] = rng.uniform([0, 0], [640, 480], (60, 2))  # 15 % outliers
    x0, x1 = to_normalised(p0, K), to_normalised(p1, K)
    R10, t10 = R.T, -R.T @ t  # x1 ~ R10 x0 + t10
    E_true = skew(t10) @ R10
    E_off = skew(t10 + [0.02, -0.01, 0.0]) @ so3_exp([0.002, 0.0, 0.0]) @ R10
    start = np.abs(sampson_residuals(x0, x1, E_off)) < 4.0 / 500  # a coarse RANSAC mask
    E_pol, inl = polish_essential(E_off, x0, x1, start, 1.0 / 500)
    cost = lambda E: np.median(np.abs(sampson_residuals(x0[60:], x1[60:], E)))  # noqa: E731
    assert cost(E_pol) < 0.5 * cost(E_off)
    assert cost(E_pol) <= 1.05 * cost(E_true)
    assert inl[60:].mean() > 0.95 and inl[:60].mean() < 0.1


def test_truncated_compressed_images_are_detected():
    image = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, image)[1].tobytes()
        assert compressed_image_complete(data)
        assert compressed_image_complete(data + b"\x00" * 16)  # padding after the end marker
        assert not compressed_image_complete(data[:len(data) // 2])
