"""The compatibility functions (dkp_slam/compat.py) and the behaviours that differ between the
supported OpenCV / numpy versions. CI runs the suite in the pip environment (OpenCV 5, numpy 2)
and in the distribution one (Debian's OpenCV 4.6, numpy 1.24): the expected values are the same.
The essential-matrix polishing and the homography visibility test are in test_core_geometry.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dkp_slam.camera import Camera
from dkp_slam.compat import trapezoid, undistort_points_iter
from dkp_slam.messages.decode import compressed_image_complete


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


def test_truncated_compressed_images_are_detected():
    image = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, image)[1].tobytes()
        assert compressed_image_complete(data)
        assert compressed_image_complete(data + b"\x00" * 16)  # padding after the end marker
        assert not compressed_image_complete(data[:len(data) // 2])
