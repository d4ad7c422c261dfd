"""Message <-> numpy conversions on real ROS 2 message classes (no DDS needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages not "
                                  "importable; install the `ros` extra")

from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dkp_slam.camera import Camera, CameraError  # noqa: E402
from dkp_slam.frontend import FrontEnd  # noqa: E402
from dkp_slam.image import ImageError, to_gray_uint8  # noqa: E402
from dkp_slam.ros.conversions import (IMAGE_ENCODINGS, array_to_image,  # noqa: E402
                                      camera_from_info, compressed_image_size,
                                      compressed_to_array, features_to_cloud, image_to_array,
                                      matrix_from_pose, odometry_msg, pose_from_matrix,
                                      relative_pose_msg, status_msg)
from dkp_slam.messages.pointcloud import decode_features  # noqa: E402
from dkp_slam.synthetic import make_synthetic_sequence  # noqa: E402

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _image(array: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """An Image message with ``pad`` extra bytes at the end of every row."""
    h, w = array.shape[:2]
    rows = array.reshape(h, -1)
    if array.dtype == np.uint16:
        rows = rows.astype(">u2" if big_endian else "<u2")
    raw = rows.view(np.uint8).reshape(h, -1)
    raw = np.concatenate([raw, np.zeros((h, pad), np.uint8)], 1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=big_endian,
                step=raw.shape[1])
    msg.data = raw.tobytes()
    return msg


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 6])
def test_raw_encodings_decode_to_the_same_grey_image(encoding, pad):
    expected = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)
    source = {"mono8": expected, "mono16": expected.astype(np.uint16) * 257,
              "rgb8": BGR[:, :, ::-1], "bgr8": BGR,
              "rgba8": np.dstack([BGR[:, :, ::-1], np.full((48, 64), 255, np.uint8)]),
              "bgra8": np.dstack([BGR, np.zeros((48, 64), np.uint8)])}[encoding]
    array, order = image_to_array(_image(np.ascontiguousarray(source), encoding, pad))
    assert array.shape[:2] == (48, 64) and array.dtype == IMAGE_ENCODINGS[encoding][0]
    np.testing.assert_array_equal(to_gray_uint8(array, order), expected)


def test_big_endian_mono16():
    img = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    array, _ = image_to_array(_image(img, "mono16", big_endian=True))
    np.testing.assert_array_equal(array, img)


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding"),
    (lambda m: setattr(m, "step", m.step - 1), "step"),
    (lambda m: setattr(m, "data", bytes(len(m.data) - 5)), "data has"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "data", b"")), "zero-size"),
    (lambda m: (setattr(m, "height", 100000), setattr(m, "width", 100000)), "max_image_pixels"),
])
def test_bad_raw_images_are_rejected_with_a_reason(mutate, reason):
    msg = _image(BGR, "bgr8")
    mutate(msg)
    with pytest.raises(ImageError, match=reason):
        image_to_array(msg, max_pixels=4096 * 4096)


@pytest.mark.parametrize("ext,fmt", [(".jpg", "jpeg"), (".png", "png"),
                                     (".png", "bgr8; png compressed bgr8")])
def test_compressed_images(ext, fmt):
    ok, buf = cv2.imencode(ext, BGR)
    assert ok and compressed_image_size(buf.tobytes()) == (64, 48)
    msg = CompressedImage(format=fmt)
    msg.data = buf.tobytes()
    array, order = compressed_to_array(msg)
    assert array.shape == (48, 64, 3) and order == "bgr"
    if ext == ".png":
        np.testing.assert_array_equal(array, BGR)


def test_bad_compressed_images_are_rejected():
    ok, buf = cv2.imencode(".jpg", BGR)
    for fmt, data, reason in [("jpeg", buf.tobytes()[:100], "corrupt"),
                              ("jpeg", b"", "no data"),
                              ("jpeg", b"not an image at all", "corrupt"),
                              ("16UC1; compressedDepth", buf.tobytes(), "unsupported"),
                              ("tiff", buf.tobytes(), "unsupported")]:
        msg = CompressedImage(format=fmt)
        msg.data = data
        with pytest.raises(ImageError, match=reason):
            compressed_to_array(msg)
    # A header announcing a huge image is refused before decoding.
    ok, png = cv2.imencode(".png", BGR)
    huge = bytearray(png.tobytes())
    huge[16:24] = (70000).to_bytes(4, "big") + (70000).to_bytes(4, "big")
    msg = CompressedImage(format="png")
    msg.data = bytes(huge)
    with pytest.raises(ImageError, match="max_image_pixels"):
        compressed_to_array(msg, max_pixels=4096 * 4096)


def _info(model: str, d: list[float], k=(500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0)):
    msg = CameraInfo(width=640, height=480, distortion_model=model, d=d)
    msg.k = list(k)
    msg.p = [450.0, 0.0, 300.0, 0.0, 0.0, 450.0, 230.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def test_camera_info_models():
    cam = camera_from_info(_info("plumb_bob", [0.1, -0.2, 0.001, 0.002, 0.05]))
    assert (cam.model, cam.fx, cam.fy, cam.cx, cam.cy) == ("radtan", 500.0, 510.0, 320.0, 240.0)
    rational = [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, -0.02, 0.03]
    cam = camera_from_info(_info("rational_polynomial", rational))
    assert cam.model == "radtan" and cam.dist.size == 8
    # The 8 ROS coefficients are OpenCV's k1 k2 p1 p2 k3 k4 k5 k6: same undistortion.
    uv = np.array([[10.0, 20.0], [600.0, 400.0]])
    expected = cv2.undistortPoints(uv.reshape(-1, 1, 2), cam.K, np.array(rational)).reshape(-1, 2)
    np.testing.assert_allclose(cam.undistort_points(uv), expected, atol=1e-6)
    assert camera_from_info(_info("equidistant", [0.01, 0.0, 0.0, 0.0])).model == "equidistant"
    assert camera_from_info(_info("plumb_bob", [0.0] * 5)).model == "none"
    assert camera_from_info(_info("", [])).model == "none"
    rect = camera_from_info(_info("plumb_bob", [0.1, 0, 0, 0, 0]), rectified=True)
    assert (rect.fx, rect.cx, rect.model) == (450.0, 300.0, "none")


def test_bad_camera_info():
    assert camera_from_info(_info("plumb_bob", [], k=[0.0] * 9)) is None  # uncalibrated
    with pytest.raises(CameraError, match="NaN"):
        camera_from_info(_info("plumb_bob", [], k=[float("nan")] + [0.0] * 8))
    with pytest.raises(CameraError, match="distortion_model"):
        camera_from_info(_info("weird_model", [0.1, 0, 0, 0, 0]))
    with pytest.raises(CameraError, match="coefficients"):
        camera_from_info(_info("equidistant", [0.1, 0.2]))
    with pytest.raises(CameraError, match="skew"):
        camera_from_info(_info("", [], k=(500, 3.0, 320, 0, 500, 240, 0, 0, 1)))
    bad = _info("", [])
    bad.width = 0
    with pytest.raises(CameraError, match="size"):
        camera_from_info(bad)
    bad = _info("", [])
    bad.binning_x = 2
    with pytest.raises(CameraError, match="binning"):
        camera_from_info(bad)


def test_pose_and_output_messages_from_a_real_frame():
    seq = make_synthetic_sequence(n_frames=3)
    fe = FrontEnd(camera=seq.camera)
    results = [fe.process(img, t) for t, img in seq]
    res = results[-1]
    assert res.status.tracked
    hdr = Header(frame_id="cam")
    cloud = features_to_cloud(res, hdr)
    dec = decode_features(cloud.data, cloud.fields, cloud.point_step, cloud.width,
                          cloud.height, cloud.is_bigendian)
    np.testing.assert_array_equal(dec.keypoints, res.keypoints)
    np.testing.assert_array_equal(dec.descriptors, res.descriptors)
    np.testing.assert_array_equal(dec.track_ids, res.track_ids)
    np.testing.assert_allclose(dec.normalised, res.keypoints_normalised)
    assert cloud.is_dense and cloud.row_step == cloud.point_step * cloud.width

    pose = relative_pose_msg(res, hdr)
    np.testing.assert_allclose(matrix_from_pose(pose.pose.pose), res.T_ref_cur, atol=1e-9)
    np.testing.assert_allclose(np.reshape(pose.pose.covariance, (6, 6)), res.covariance)
    p = pose.pose.pose.position
    assert abs(np.linalg.norm([p.x, p.y, p.z]) - 1.0) < 1e-9  # unit translation
    odom = odometry_msg(res.T_world_cam, np.eye(6), Header(frame_id="odom"), "cam")
    assert odom.child_frame_id == "cam"
    np.testing.assert_allclose(matrix_from_pose(odom.pose.pose), res.T_world_cam, atol=1e-9)
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.array([0.1, -0.2, 0.3]))[0]
    np.testing.assert_allclose(matrix_from_pose(pose_from_matrix(T)), T, atol=1e-12)
    assert '"x":null' in status_msg({"x": float("nan")}).data
    img = array_to_image(BGR, hdr)
    assert (img.encoding, img.step, len(img.data)) == ("bgr8", 64 * 3, BGR.size)


def test_homography_only_cloud_has_nan_normalised():
    seq = make_synthetic_sequence(n_frames=1)
    res = FrontEnd(camera=None).process(seq.load_image(0), 0.0)
    cloud = features_to_cloud(res, Header())
    assert not cloud.is_dense
    dec = decode_features(cloud.data, cloud.fields, cloud.point_step, cloud.width)
    assert np.isnan(dec.normalised).all() and len(dec) == len(res.keypoints)


def test_camera_round_trip_through_camera_info():
    from ros_harness import camera_info

    cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5, "radtan", [0.1, -0.05, 0.0, 0.0, 0.0])
    assert camera_from_info(camera_info(cam)).to_dict() == cam.to_dict()
