"""Tests for dkp_slam.camera (validation, distortion round trips, scaling) and dkp_slam.image
(to_gray_uint8 conversion and rejection of unusable images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_data

from dkp_slam.camera import Camera, CameraError
from dkp_slam.image import ImageError, to_gray_uint8


def _points(n: int = 200, seed: int = 0) -> np.ndarray:
    """3D points in front of a 640x480, f=500 camera, filling most of the image."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(2.0, 8.0, n)
    x = rng.uniform(-0.55, 0.55, n) * z
    y = rng.uniform(-0.42, 0.42, n) * z
    return np.stack([x, y, z], 1)


# ====================================================================== Camera validation
@pytest.mark.parametrize("kwargs, text", [
    (dict(fx=float("nan")), "NaN"),
    (dict(fy=float("inf")), "NaN"),
    (dict(cx=float("nan")), "NaN"),
    (dict(fx=0.0), "positive"),
    (dict(fy=-500.0), "positive"),
    (dict(width=0), "size"),
    (dict(height=-3), "size"),
    (dict(model="pinhole_v2"), "unknown distortion model"),
    (dict(model="radtan", dist=[0.1, 0.01, 0.0]), "coefficients"),
    (dict(model="radtan", dist=[0.1, 0.01, 0.0, 0.0, 0.0, 0.0]), "coefficients"),
    (dict(model="equidistant", dist=[0.1, 0.01, 0.0]), "4 coefficients"),
    (dict(model="equidistant", dist=[0.1, 0.01, 0.0, 0.0, 0.0]), "4 coefficients"),
    (dict(model="radtan", dist=[0.1, float("nan"), 0.0, 0.0]), "NaN"),
])
def test_camera_rejects_bad_intrinsics(kwargs, text) -> None:
    args = dict(width=640, height=480, fx=500.0, fy=500.0, cx=319.5, cy=239.5)
    args.update(kwargs)
    with pytest.raises(CameraError, match=text):
        Camera(**args)


def test_camera_error_is_value_error_and_validate_rechecks() -> None:
    cam = Camera(640, 480, 500.0, 500.0, 320.0, 240.0)
    cam.fx = 0.0
    with pytest.raises(ValueError):
        cam.validate()


def test_camera_model_aliases_and_K() -> None:
    cam = Camera(640, 480, 500.0, 510.0, 320.0, 240.0, "plumb_bob", [0.1, 0.0, 0.0, 0.0, 0.0])
    assert cam.model == "radtan" and cam.has_distortion
    assert Camera(640, 480, 1, 1, 0, 0, "fisheye", [0, 0, 0, 0]).model == "equidistant"
    none = Camera(640, 480, 500.0, 510.0, 320.0, 240.0, "radtan", [0.0, 0.0, 0.0, 0.0])
    assert not none.has_distortion
    np.testing.assert_array_equal(cam.K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    assert cam.focal == pytest.approx(505.0)
    c2 = Camera.from_K(cam.K.ravel(), 640, 480)
    assert c2.model == "none" and (c2.fx, c2.fy, c2.cx, c2.cy) == (500, 510, 320, 240)


@pytest.mark.parametrize("model, dist", [
    ("radtan", [-0.28, 0.074, 2e-4, 1.8e-5]),
    ("radtan", [-0.1, 0.02, 1e-3, -5e-4, -0.003]),
    ("equidistant", [0.05, -0.01, 0.003, -0.0005]),
])
def test_project_then_undistort_points_round_trip(model, dist) -> None:
    cam = Camera(640, 480, 500.0, 495.0, 321.3, 238.7, model, dist)
    X = _points()
    uv = cam.project(X)
    # The distortion must actually move the pixels, or the round trip proves nothing.
    ideal = X[:, :2] / X[:, 2:3] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
    assert np.max(np.linalg.norm(uv - ideal, axis=1)) > 2.0
    xy = cam.undistort_points(uv)
    assert xy.shape == (len(X), 2)
    np.testing.assert_allclose(xy, X[:, :2] / X[:, 2:3], atol=1e-6)
    px = cam.undistort_pixels(uv)
    np.testing.assert_allclose(px, ideal, atol=1e-6 * 500)


def test_no_distortion_is_identity() -> None:
    cam = Camera(640, 480, 500.0, 480.0, 320.0, 240.0)
    rng = np.random.default_rng(1)
    uv = rng.uniform([0, 0], [640, 480], (50, 2))
    np.testing.assert_allclose(cam.undistort_pixels(uv), uv, atol=1e-12)
    xy = cam.undistort_points(uv)
    np.testing.assert_allclose(xy[:, 0], (uv[:, 0] - 320.0) / 500.0)
    np.testing.assert_allclose(xy[:, 1], (uv[:, 1] - 240.0) / 480.0)
    X = _points(30)
    np.testing.assert_allclose(cam.project(X),
                               X[:, :2] / X[:, 2:3] * [500.0, 480.0] + [320.0, 240.0])
    assert cam.undistort_points(np.zeros((0, 2))).shape == (0, 2)
    assert cam.undistort_pixels(np.zeros((0, 2))).shape == (0, 2)


def test_scaled_keeps_pixel_centres() -> None:
    cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5, "radtan", [-0.1, 0.01, 0.0, 0.0])
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    assert (half.fx, half.fy) == (250.0, 250.0)
    # The image centre (319.5, 239.5) of a 640x480 image maps to (159.5, 119.5) at half size.
    assert (half.cx, half.cy) == (159.5, 119.5)
    assert half.model == "radtan"
    np.testing.assert_array_equal(half.dist, cam.dist)
    assert half.dist is not cam.dist
    # Same ray -> pixel scaled about the pixel-centre convention.
    X = _points(20)
    np.testing.assert_allclose(half.project(X), (cam.project(X) + 0.5) * 0.5 - 0.5, atol=1e-9)
    aniso = cam.scaled(2.0, 0.5)
    assert (aniso.width, aniso.height, aniso.fx, aniso.fy) == (1280, 240, 1000.0, 250.0)


def test_to_dict_round_trip() -> None:
    cam = Camera(752, 480, 458.6, 457.3, 367.2, 248.4, "radtan", [-0.28, 0.07, 2e-4, 2e-5])
    assert Camera(**cam.to_dict()).to_dict() == cam.to_dict()


# ====================================================================== to_gray_uint8
def _textured(h: int = 64, w: int = 80, channels: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def test_gray_uint8_passthrough() -> None:
    img = _textured()
    out = to_gray_uint8(img)
    assert out.dtype == np.uint8 and out.shape == img.shape and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, img)
    out1 = to_gray_uint8(img[:, :, None])
    np.testing.assert_array_equal(out1, img)


@pytest.mark.parametrize("channels, order, code", [
    (3, "bgr", cv2.COLOR_BGR2GRAY),
    (3, "rgb", cv2.COLOR_RGB2GRAY),
    (4, "bgr", cv2.COLOR_BGRA2GRAY),
    (4, "rgb", cv2.COLOR_RGBA2GRAY),
])
def test_colour_conversion_matches_cv2(channels, order, code) -> None:
    img = _textured(channels=channels)
    out = to_gray_uint8(img, order)
    assert out.shape == img.shape[:2] and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.cvtColor(img, code))


def test_channel_order_matters() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 2] = 255  # red in BGR, blue in RGB
    assert to_gray_uint8(img, "bgr")[0, 0] == cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[0, 0]
    assert to_gray_uint8(img, "bgr")[0, 0] != to_gray_uint8(img, "rgb")[0, 0]
    with pytest.raises(ImageError, match="channel_order"):
        to_gray_uint8(img, "bgra")


def test_uint16_scaled_to_uint8() -> None:
    img = np.array([[0, 257, 65535, 32896]], np.uint16).repeat(16, 0).repeat(4, 1)
    out = to_gray_uint8(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, ::4], [0, 1, 255, 128])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_scaled_and_clipped(dtype) -> None:
    img = np.array([[0.0, 0.5, 1.0, -0.3, 1.7, 0.2]], dtype).repeat(16, 0).repeat(3, 1)
    out = to_gray_uint8(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, ::3], [0, 128, 255, 0, 255, 51])


def test_float_colour_image() -> None:
    img8 = _textured(channels=3)
    out = to_gray_uint8(img8.astype(np.float32) / 255.0)
    ref = cv2.cvtColor(img8, cv2.COLOR_BGR2GRAY)
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_non_contiguous_input() -> None:
    img = _textured(64, 160)
    view = img[:, ::2]
    assert not view.flags["C_CONTIGUOUS"]
    out = to_gray_uint8(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, view)
    colour = _textured(64, 160, 3)
    cview = colour[::2, ::2]
    out = to_gray_uint8(cview)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, cv2.cvtColor(np.ascontiguousarray(cview),
                                                    cv2.COLOR_BGR2GRAY))
    # A channel-reversed view (negative strides) also works.
    out = to_gray_uint8(colour[:, :, ::-1], "rgb")
    np.testing.assert_array_equal(out, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))


def test_input_not_modified() -> None:
    img = np.full((32, 32), 0.5, np.float32)
    before = img.copy()
    to_gray_uint8(img)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("image, text", [
    (np.zeros((0, 0), np.uint8), "empty"),
    (np.zeros((0, 640, 3), np.uint8), "empty"),
    (np.zeros((1, 1), np.uint8), "smaller"),
    (np.zeros((480, 1), np.uint8), "smaller"),
    (np.zeros((1, 640, 3), np.uint8), "smaller"),
    (np.zeros((15, 640), np.uint8), "smaller"),
    (np.zeros((64, 64, 2), np.uint8), "shape"),
    (np.zeros((64, 64, 5), np.uint8), "shape"),
    (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
    (np.zeros(640, np.uint8), "shape"),
    (np.zeros((64, 64), np.int32), "dtype"),
    (np.zeros((64, 64), bool), "dtype"),
    (np.zeros((64, 64), np.int8), "dtype"),
    (np.zeros((64, 64), np.complex64), "dtype"),
    (np.zeros((17000, 17), np.uint8), "larger"),
    (np.zeros((20, 17000), np.uint8), "larger"),
])
def test_unusable_images_raise(image, text) -> None:
    with pytest.raises(ImageError, match=text):
        to_gray_uint8(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_float_raises(bad, dtype) -> None:
    img = np.full((32, 32), 0.5, dtype)
    img[5, 7] = bad
    with pytest.raises(ImageError, match="NaN or inf"):
        to_gray_uint8(img)


def test_not_an_array_raises() -> None:
    with pytest.raises(ImageError, match="numpy array"):
        to_gray_uint8([[0] * 32] * 32)
    with pytest.raises(ImageError, match="numpy array"):
        to_gray_uint8(None)


def test_image_error_is_value_error() -> None:
    assert issubclass(ImageError, ValueError)


@pytest.mark.parametrize("args, words", [
    (dict(cx=1e7), "principal point"),
    (dict(cy=-5.0), "principal point"),
    (dict(fx=1e-3, fy=1e-3), "fx=0.001 is outside"),
    (dict(fx=1e6, fy=1e6), "outside [64, 32000]"),
    (dict(fy=50_000 / 7), "fx/fy"),
    # OpenCV 4.6's undistortPoints stops before converging here (round trip misses), 5.x
    # converges to a tiny radius (scale check): either way the distortion is named
    (dict(model="radtan", dist=[1e6, 0, 0, 0, 0]), "radtan distortion [1000000.0, 0.0"),
    (dict(model="radtan", dist=[-0.5, 0, 0, 0, 0]), "not invertible"),
])
def test_implausible_intrinsics_are_named(args, words):
    base = dict(width=640, height=480, fx=500.0, fy=500.0, cx=320.0, cy=240.0)
    problem = Camera(**{**base, **args}).implausible()
    assert problem is not None and words in problem, problem


@pytest.mark.parametrize("camera", [
    Camera(1226, 370, 707.09, 707.09, 601.89, 183.11),  # KITTI
    Camera(752, 480, 458.654, 457.296, 367.215, 248.375, "radtan",
           [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05]),  # EuRoC
    Camera(640, 480, 517.3, 516.5, 318.6, 255.3, "radtan",
           [0.2624, -0.9531, -0.0054, 0.0026, 1.1633]),  # TUM fr1
    Camera(640, 480, 300.0, 300.0, 320.0, 240.0, "equidistant", [-0.01, 0.05, -0.04, 0.01]),
    Camera(640, 480, 400.0, 400.0, 320.0, 240.0, "radtan",
           [2.0, 0.5, 0.0, 0.0, 0.01, 2.3, 0.7, 0.05]),  # rational, strong
])
def test_real_cameras_are_plausible(camera):
    assert camera.implausible() is None


def _damaged_jpeg(seed: int = 0) -> tuple[np.ndarray, bytes]:
    image = cv2.imread(str(shared_data("homography", "oxford", "graf", "1.png")))
    data = bytearray(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    mid = len(data) // 2
    data[mid:mid + 400] = np.random.default_rng(seed).integers(0, 256, 400, np.uint8).tobytes()
    return image, bytes(data)


@pytest.mark.parametrize("seed", range(4))
def test_damaged_jpeg_is_an_image_error_not_grey_blocks(seed):
    from dkp_slam.image import ImageError, decode_compressed

    image, damaged = _damaged_jpeg(seed)
    assert cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(ImageError, match="libjpeg: Corrupt JPEG data"):
        decode_compressed(damaged)
    good = cv2.imencode(".jpg", image)[1]
    assert decode_compressed(good).shape == image.shape
    png = cv2.imencode(".png", image)[1]
    np.testing.assert_array_equal(decode_compressed(png), image)


def test_stderr_of_other_writers_is_kept_during_a_decode(capfd):
    import os

    from dkp_slam.image import _stderr_captured

    with _stderr_captured() as lines:
        os.write(2, b"from C\n")
    assert lines == ["from C"]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
