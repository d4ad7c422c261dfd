"""Fuzz tests (Hypothesis) of every decoder of outside input: each raises only its documented
error type, never another exception, whatever the bytes and field values.

- ``sensor_msgs/Image`` -> :func:`dkp_slam.messages.decode.image_to_array`: ImageError;
- ``sensor_msgs/CompressedImage`` -> :func:`~dkp_slam.messages.decode.compressed_to_array`
  (random bytes, and real JPEG / PNG files damaged, truncated or with bytes flipped): ImageError;
- ``sensor_msgs/CameraInfo`` -> :func:`~dkp_slam.messages.decode.camera_from_info`: CameraError;
- ``sensor_msgs/PointCloud2`` (``~/features``) -> :func:`dkp_slam.messages.pointcloud.
  decode_features`: ValueError;
- the parameters file -> :meth:`dkp_slam.config.FrontEndConfig.from_yaml` and
  :meth:`dkp_slam.interface.NodeConfig.from_flat`: ConfigError;
- the per-frame record (``~/status`` JSON) -> :meth:`dkp_slam.records.StatusReport.from_json`:
  StatusFormatError.

The messages are the real ROS 2 message classes (rclpy), so every generated value is one DDS
could deliver. Examples are derandomised (the same ones on every run, no example database) and
have no deadline, so the result does not depend on the machine or its load; run with
``HYPOTHESIS_PROFILE=fuzz-long`` for a longer search with fresh examples.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
sensor_msgs = pytest.importorskip("sensor_msgs.msg")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dkp_slam.camera import CameraError  # noqa: E402
from dkp_slam.config import ConfigError, FrontEndConfig  # noqa: E402
from dkp_slam.image import ImageError  # noqa: E402
from dkp_slam.interface import NodeConfig  # noqa: E402
from dkp_slam.messages.decode import (camera_from_info, compressed_to_array,  # noqa: E402
                                      image_to_array)
from dkp_slam.messages.pointcloud import decode_features  # noqa: E402
from dkp_slam.records import StatusFormatError, StatusReport  # noqa: E402
from dkp_slam.runtime import NodeStats  # noqa: E402

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz-long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

Image, CompressedImage = sensor_msgs.Image, sensor_msgs.CompressedImage
CameraInfo, PointCloud2, PointField = (sensor_msgs.CameraInfo, sensor_msgs.PointCloud2,
                                       sensor_msgs.PointField)
UINT32 = st.integers(0, 2**32 - 1)
SMALL = st.integers(0, 64)
ENCODINGS = st.sampled_from(["mono8", "mono16", "bgr8", "rgb8", "bgra8", "rgba8", "8UC1",
                             "16UC1", "8UC3", "32FC1", "yuv422", "bayer_rggb8", "", "MONO8"])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


# ---------------------------------------------------------------------- Image
@given(encoding=ENCODINGS | st.text(max_size=12), height=SMALL | UINT32, width=SMALL | UINT32,
       step=SMALL | st.integers(0, 4096) | UINT32, bigendian=st.integers(0, 255),
       data=st.binary(max_size=20000))
def test_image_decoder_raises_only_image_error(encoding, height, width, step, bigendian, data):
    msg = Image(encoding=encoding, height=height, width=width, step=step,
                is_bigendian=bigendian, data=data)
    try:
        array, order = image_to_array(msg, max_pixels=1 << 22)
    except ImageError:
        return
    assert array.shape[:2] == (height, width) and order in ("bgr", "rgb")


@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       encoding=st.sampled_from(["mono8", "mono16", "bgr8", "rgb8", "bgra8"]),
       pad=st.integers(0, 7), cut=st.integers(-50, 50))
def test_image_decoder_with_consistent_sizes_and_cut_data(shape, encoding, pad, cut):
    channels = {"mono8": 1, "mono16": 2, "bgr8": 3, "rgb8": 3, "bgra8": 4}[encoding]
    h, w = shape
    step = w * channels + pad
    data = bytes(np.random.default_rng(h * w).integers(0, 256, max(step * h + cut, 0),
                                                       np.uint8))
    msg = Image(encoding=encoding, height=h, width=w, step=step, data=data)
    try:
        array, _ = image_to_array(msg)
    except ImageError:
        assert cut != 0  # only data of another size than step x height is an error here
        return
    assert array.shape[:2] == (h, w)


# ---------------------------------------------------------------------- CompressedImage
def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(7)
    image = cv2.GaussianBlur((rng.random((48, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    return cv2.imencode(ext, image)[1].tobytes()


JPEG, PNG = _encoded(".jpg"), _encoded(".png")


@st.composite
def damaged(draw, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        n = draw(st.integers(1, 64))
        data[i:i + n] = draw(st.binary(min_size=n, max_size=n))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@given(fmt=st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png",
                            "16UC1; compressedDepth png", "tiff", ""]) | st.text(max_size=20),
       data=st.binary(max_size=4000) | damaged(JPEG) | damaged(PNG))
def test_compressed_decoder_raises_only_image_error(fmt, data):
    msg = CompressedImage(format=fmt, data=data)
    try:
        array, order = compressed_to_array(msg, max_pixels=1 << 22)
    except ImageError:
        return
    assert array.size > 0 and order == "bgr"


# ---------------------------------------------------------------------- CameraInfo
@given(width=SMALL | st.integers(0, 20000), height=SMALL | st.integers(0, 20000),
       k=st.lists(FLOATS | st.floats(-1e4, 1e4), min_size=9, max_size=9),
       p=st.lists(FLOATS, min_size=12, max_size=12),
       d=st.lists(FLOATS | st.floats(-2, 2), max_size=16),
       model=st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant", "", "none",
                              "fisheye", "kannala"]) | st.text(max_size=10),
       binning=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       roi=st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100),
                     st.integers(0, 100)),
       rectified=st.booleans())
def test_camera_info_decoder_raises_only_camera_error(width, height, k, p, d, model, binning,
                                                      roi, rectified):
    msg = CameraInfo(width=width, height=height, distortion_model=model, d=d, k=k, p=p,
                     binning_x=binning[0], binning_y=binning[1])
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = roi
    try:
        camera = camera_from_info(msg, rectified)
    except CameraError:
        return
    if camera is not None:
        assert camera.implausible() is None and np.all(np.isfinite(camera.K))


@given(fx=st.floats(-1e7, 1e7), cx=st.floats(-1e7, 1e7), cy=st.floats(-1e7, 1e7),
       d=st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5))
def test_camera_info_near_a_real_camera_raises_only_camera_error(fx, cx, cy, d):
    msg = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=d,
                     k=[fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0])
    try:
        camera_from_info(msg)
    except CameraError:
        pass


# ---------------------------------------------------------------------- PointCloud2
FIELD_NAMES = ["u", "v", "x", "y", "score", "track_id", "track_age", "descriptor", "z", ""]


@given(fields=st.lists(st.tuples(st.sampled_from(FIELD_NAMES), st.integers(0, 300),
                                 st.integers(0, 10), st.integers(0, 300)), max_size=10),
       point_step=st.integers(0, 400), width=st.integers(0, 50), height=st.integers(0, 3),
       bigendian=st.booleans(), data=st.binary(max_size=3000))
def test_features_decoder_raises_only_value_error(fields, point_step, width, height,
                                                  bigendian, data):
    msg_fields = [PointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in fields]
    try:
        decode_features(data, msg_fields, point_step, width, height, bigendian)
    except ValueError:
        pass


# ---------------------------------------------------------------------- parameters file
YAML_SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | FLOATS | st.text(
    max_size=12)
KEYS = st.sampled_from(["detector", "detector.name", "detector.max_keypoints", "matcher",
                        "geometry.min_inliers", "tracker.reference", "node", "ros__parameters",
                        "frontend", "use_sim_time", "unknown.key"]) | st.text(max_size=8)
YAML_VALUES = st.recursive(YAML_SCALARS, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


@given(document=st.dictionaries(KEYS, YAML_VALUES, max_size=5) | YAML_VALUES)
def test_parameters_file_raises_only_config_error(tmp_path_factory, document):
    import yaml

    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        FrontEndConfig.from_yaml(path)
    except ConfigError:
        pass


@given(raw=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_parameters_file_with_any_bytes_raises_only_config_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_bytes(raw)
    try:
        FrontEndConfig.from_yaml(path)
    except ConfigError:
        pass


@given(params=st.dictionaries(st.sampled_from(sorted(NodeConfig().flat())) | st.text(
    max_size=12).map(lambda s: "node." + s), YAML_SCALARS | st.lists(FLOATS, max_size=6),
    max_size=6))
def test_node_parameters_raise_only_config_error(params):
    try:
        NodeConfig.from_flat(params)
    except ConfigError:
        pass


# ---------------------------------------------------------------------- per-frame record
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | FLOATS |
                           st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
STATUS_KEYS = ["schema", "version", "status", "message", "stamp", "index", "frame_id",
               "tracked", "model", "keypoints", "matches", "inliers", "inlier_ratio",
               "parallax_px", "reference_index", "reference_stamp", "is_keyframe",
               "latency_ms", "timings_ms", *NodeStats.COUNTERS]


@st.composite
def status_objects(draw):
    base = {"schema": "dkp_slam/status", "version": 1, "status": draw(st.sampled_from(
        ["OK", "INITIALISING", "LOW_PARALLAX", "FEW_MATCHES", "LOST", "INPUT_ERROR",
         "TIME_RESET", "ERROR", "WAITING_FOR_CAMERA_INFO", "BOGUS"])), "stamp": 1.0,
            "index": 0}
    for key in draw(st.lists(st.sampled_from(STATUS_KEYS), max_size=8)):
        base[key] = draw(JSON_VALUES)
    return base


@given(data=status_objects() | JSON_VALUES, via_json=st.booleans())
def test_status_record_raises_only_status_format_error(data, via_json):
    if via_json:  # what a recorded std_msgs/String holds (NaN -> null as the node writes it)
        data = json.loads(json.dumps(data, allow_nan=True).replace("NaN", "null")
                          .replace("-Infinity", "null").replace("Infinity", "null"))
    try:
        StatusReport.from_json(data, NodeStats.COUNTERS)
    except StatusFormatError:
        pass
