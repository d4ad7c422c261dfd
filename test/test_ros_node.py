"""frontend_node in-process with real rclpy and Fast DDS: KITTI07 frames and CameraInfo go in
from a tester node, features / relative pose / odometry come back and are compared with
dkp_slam.FrontEnd run directly on the same frames. Also: parameters from the shipped YAML via
--params-file, run-time parameter changes through the parameter service, the reset service,
malformed input, bursts, compressed input and diagnostics."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from conftest import shared_data
from ros_harness import (KITTI, PARAMS_FILE, ROOT, RosHarness, camera_info, domain_id, header,
                         wait_for)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger

from dkp_slam.config import FrontEndConfig, flatten
from dkp_slam.datasets import load_kitti
from dkp_slam.features import DETECTORS
from dkp_slam.frontend import FrontEnd
from dkp_slam.ros.conversions import (array_to_image, matrix_from_pose,
                                      stamp_to_seconds)
from dkp_slam.ros.node import FrontEndNode
from dkp_slam.records import STATUS_SCHEMA, STATUS_VERSION, NodeStatus, StatusReport
from dkp_slam.messages.pointcloud import decode_features
from dkp_slam.runtime import NodeStats
from dkp_slam.tracking import TrackingStatus

NS = "/dkp_test"
N_FRAMES = 25


@pytest.fixture(scope="module")
def kitti():
    seq = load_kitti(shared_data(*KITTI))
    return seq, [seq.load_image(i) for i in range(40)]


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness(domain_id(1), ["--ros-args", "--params-file", str(PARAMS_FILE)])
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def node(ros):
    """The node under test: the shipped parameters file, reliable input for lockstep tests."""
    n = ros.add_node(FrontEndNode(context=ros.context, namespace=NS, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable"),
        Parameter("node.debug_image.max_rate_hz", value=100.0)]))
    yield n


@pytest.fixture(scope="module")
def io(ros, node):
    """Publishers and collectors wired to the node under test."""
    out = {name: ros.subscribe(t, f"{NS}/frontend/{name}") for name, t in [
        ("features", PointCloud2), ("relative_pose", PoseWithCovarianceStamped),
        ("odometry", Odometry), ("status", String)]}
    out["diagnostics"] = ros.subscribe(DiagnosticArray, "/diagnostics")
    out["image"] = ros.publisher(Image, f"{NS}/image")
    out["camera_info"] = ros.publisher(CameraInfo, f"{NS}/camera_info")
    # Matched both ways before any test publishes (a volatile writer's samples sent before
    # the match never arrive).
    assert wait_for(lambda: all(out[k].subscription.get_publisher_count() for k in
                                ("features", "relative_pose", "odometry", "status")) and
                    out["image"].get_subscription_count() and
                    out["camera_info"].get_subscription_count(), 10)
    return out


def _publish_and_wait(io, node, image, stamp, encoding="mono8", timeout=10.0):
    """Publish one frame, wait until all its outputs arrived (~/status comes last); return
    its features."""
    stamp = stamp_to_seconds(header(stamp).stamp)
    io["image"].publish(array_to_image(image, header(stamp), encoding))

    def done():
        return (len(io["status"]) and _status(io).get("stamp") == stamp and
                all(io[k].stamped(stamp) for k in ("features", "relative_pose", "odometry")))

    assert wait_for(done, timeout), "no outputs for the frame"
    return io["features"].stamped(stamp)


def _status(io) -> dict:
    return json.loads(io["status"].last().data)


def t_var_along(cov, t):
    """Translation variance along the unit vector ``t``."""
    return float(t @ cov[:3, :3] @ t)


def _camera_parameters(cam) -> list:
    """The node's parameters for intrinsics ``cam`` given as parameters."""
    return [Parameter("node.camera.source", value="parameters"),
            Parameter("node.camera.width", value=cam.width),
            Parameter("node.camera.height", value=cam.height),
            Parameter("node.camera.fx", value=cam.fx), Parameter("node.camera.fy", value=cam.fy),
            Parameter("node.camera.cx", value=cam.cx), Parameter("node.camera.cy", value=cam.cy)]


def _rotation_angle_deg(R):
    return np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


# ---------------------------------------------------------------------- data path
def test_features_pose_and_odometry_equal_the_core(kitti, io, node):
    seq, images = kitti
    io["camera_info"].publish(camera_info(seq.camera))
    assert wait_for(lambda: node._camera_known, 10)
    direct = FrontEnd(FrontEndConfig.from_yaml(PARAMS_FILE), seq.camera)
    for i in range(N_FRAMES):
        stamp = stamp_to_seconds(header(float(seq.stamps[i])).stamp)
        io["camera_info"].publish(camera_info(seq.camera, stamp))  # as drivers do
        cloud_msg = _publish_and_wait(io, node, images[i], stamp)
        ref = direct.process(images[i], stamp)
        assert len(io["odometry"]) == len(io["relative_pose"]) == i + 1
        assert stamp_to_seconds(cloud_msg.header.stamp) == pytest.approx(stamp, abs=1e-9)
        assert cloud_msg.header.frame_id == "camera_optical_frame"
        cloud = decode_features(cloud_msg.data, cloud_msg.fields, cloud_msg.point_step,
                                cloud_msg.width, cloud_msg.height, cloud_msg.is_bigendian)
        np.testing.assert_array_equal(cloud.keypoints, ref.keypoints)
        np.testing.assert_array_equal(cloud.descriptors, ref.descriptors)
        np.testing.assert_array_equal(cloud.scores, ref.scores)
        np.testing.assert_allclose(cloud.normalised, ref.keypoints_normalised)
        assert cloud.descriptors.shape == (len(ref.keypoints), 64)  # DKPNet, the default
        status = _status(io)
        assert status["status"] == ref.status.value and status["index"] == ref.index
        pose = io["relative_pose"].stamped(stamp)
        T = matrix_from_pose(pose.pose.pose)
        if ref.status == TrackingStatus.OK:
            assert _rotation_angle_deg(T[:3, :3].T @ ref.R) < 0.05
            assert np.degrees(np.arccos(np.clip(T[:3, 3] @ ref.t, -1, 1))) < 1.0
            assert np.linalg.norm(T[:3, 3]) == pytest.approx(1.0, abs=1e-6)
            cov = np.reshape(pose.pose.covariance, (6, 6))
            assert np.all(np.diag(cov)[3:] < 1e-3)  # rotation well determined
            assert t_var_along(cov, T[:3, 3]) >= 1e5  # scale along t is unobservable
        elif ref.status.tracked:  # LOW_PARALLAX: the rotation, no translation
            assert _rotation_angle_deg(T[:3, :3].T @ ref.R) < 0.05
            assert not T[:3, 3].any()
            cov = np.reshape(pose.pose.covariance, (6, 6))
            assert np.all(np.diag(cov)[:3] >= 1e6) and np.all(np.diag(cov)[3:] < 1e-3)
        else:
            assert np.reshape(pose.pose.covariance, (6, 6))[0, 0] >= 1e6
        odom = io["odometry"].stamped(stamp)
        assert odom.header.frame_id == "odom" and odom.child_frame_id == "camera_optical_frame"
    # Track ids follow the same verified matches (RANSAC may differ in a few inliers).
    assert np.mean(cloud.track_ids == (ref.track_ids & 0xFFFFFFFF)) > 0.9
    assert status["status"] == "OK" and status["dropped"] == 0
    # The chained odometry follows the directly chained poses (up to the same scale).
    T_odom = matrix_from_pose(io["odometry"].last().pose.pose)
    assert _rotation_angle_deg(T_odom[:3, :3].T @ ref.T_world_cam[:3, :3]) < 0.5
    a, b = T_odom[:3, 3], ref.T_world_cam[:3, 3]
    assert np.linalg.norm(a - b) < 0.02 * np.linalg.norm(b)


def test_diagnostics_report_rates_and_counts(kitti, io, node):
    seq, images = kitti

    def ours():
        return [s for m in io["diagnostics"].messages for s in m.status
                if s.name.startswith("frontend:")]

    # FPS is measured over the last 5 s: process a few frames now, whatever ran before
    for i in range(3):
        _publish_and_wait(io, node, images[i], float(seq.stamps[i]) + 100.0)
    n = len(io["diagnostics"].messages)
    assert wait_for(lambda: len(io["diagnostics"].messages) > n, 5)
    values = {kv.key: kv.value for kv in ours()[-1].values}
    assert int(values["processed"]) > 0
    for key in ("fps", "latency_ms_median", "latency_ms_p90", "keypoints", "inliers",
                "dropped", "received", "invalid_images", "status"):
        assert key in values
    assert float(values["fps"]) > 0 and int(values["keypoints"]) > 0
    assert values["camera"].startswith("1226x370")


def test_debug_image_when_subscribed(ros, kitti, io, node):
    seq, images = kitti
    debug = ros.subscribe(Image, f"{NS}/frontend/debug_image")
    assert wait_for(lambda: node._pub_debug.get_subscription_count() > 0, 5)
    _publish_and_wait(io, node, images[N_FRAMES], float(seq.stamps[N_FRAMES]))
    assert wait_for(lambda: len(debug) > 0, 5)
    img = debug.last()
    assert (img.encoding, img.width, img.height) == ("bgr8", 1226, 370)


# ---------------------------------------------------------------------- parameters
def test_parameters_from_the_shipped_yaml(ros):
    """rclpy's --params-file handling: a node without overrides holds the YAML's values."""
    import yaml

    with open(PARAMS_FILE) as f:
        expected = flatten(yaml.safe_load(f)["/**"]["ros__parameters"])
    plain = FrontEndNode(node_name="yaml_check", context=ros.context, namespace=NS)
    try:
        got = {name: plain.get_parameter(name).value for name in expected}
        got = {k: list(v) if k == "node.camera.d" else v for k, v in got.items()}
        assert got == expected
        assert plain.frontend.config == FrontEndConfig.from_yaml(PARAMS_FILE)
    finally:
        plain.destroy_node()


def _set(ros, **values) -> list:
    """Set parameters through the real parameter service; returns the SetParametersResults."""
    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    req = SetParameters.Request()
    for name, value in values.items():
        name = name.replace("__", ".")
        v = ParameterValue(type=types[type(value)])
        setattr(v, {bool: "bool_value", int: "integer_value", float: "double_value",
                    str: "string_value"}[type(value)], value)
        req.parameters.append(ParameterMsg(name=name, value=v))
    return ros.call(SetParameters, f"{NS}/frontend/set_parameters", req).results


def test_parameter_changes_validated_and_applied(ros, kitti, io, node):
    seq, images = kitti
    frontend = node.frontend
    # Run-time change: applied in place, tracking state kept.
    (res,) = _set(ros, geometry__ransac_threshold_px=2.0)
    assert res.successful
    _publish_and_wait(io, node, images[N_FRAMES + 1], float(seq.stamps[N_FRAMES + 1]))
    assert node.frontend is frontend and frontend.config.geometry.ransac_threshold_px == 2.0
    assert _status(io)["status"] == "OK"
    # Rejected, with the reason; nothing changes.
    for kwargs, reason in [({"detector__max_keypoints": 0}, "out of range"),
                           ({"tracker__reference": "bogus"}, "must be one of"),
                           ({"geometry__min_inliers": "many"}, "type"),
                           ({"node__qos__depth": 3}, "read-only"),
                           ({"node__frames__odom": 3}, "type")]:
        (res,) = _set(ros, **kwargs)
        assert not res.successful and reason in res.reason.lower(), res.reason
    import torch

    if not torch.cuda.is_available():
        (res,) = _set(ros, matcher__device="cuda")
        assert not res.successful and "cuda" in res.reason.lower()
    # Detector change: the worker builds a new FrontEnd; tracking restarts.
    (res,) = _set(ros, detector__max_keypoints=300)
    assert res.successful
    cloud = _publish_and_wait(io, node, images[N_FRAMES + 2], float(seq.stamps[N_FRAMES + 2]))
    assert node.frontend is not frontend and cloud.width <= 300
    assert node.frontend.config.geometry.ransac_threshold_px == 2.0
    assert _status(io)["status"] == "INITIALISING"
    # A rebuild that fails keeps the running front-end and sets the parameters back.
    if "dkp" in DETECTORS:
        current = node.frontend
        results = _set(ros, detector__max_keypoints=500, detector__dkp__weights="/nonexistent.pt")
        assert all(r.successful for r in results)
        assert wait_for(lambda: node.get_parameter("detector.max_keypoints").value == 300 and
                        node.get_parameter("detector.dkp.weights").value == "", 10)
        assert node.frontend is current and "weight file not found" in node.stats.last_problem
    # Frames are run-time parameters too.
    assert all(r.successful for r in _set(ros, node__frames__camera="cam0",
                                          node__frames__odom="vo_odom", node__publish_tf=True))
    errors = node.stats.counters["errors"]
    _publish_and_wait(io, node, images[N_FRAMES + 3], float(seq.stamps[N_FRAMES + 3]))
    assert io["odometry"].last().header.frame_id == "vo_odom"
    assert io["features"].last().header.frame_id == "cam0"
    # TF: broadcast through tf2_ros where importable; here (no tf2_ros) a warning, no error.
    assert node.stats.counters["errors"] == errors
    assert all(r.successful for r in _set(ros, detector__max_keypoints=1000,
                                          node__frames__camera="", node__frames__odom="odom",
                                          node__publish_tf=False,
                                          geometry__ransac_threshold_px=1.0))


def test_reset_service_restarts_tracking_with_continuous_odometry(ros, kitti, io, node):
    seq, images = kitti
    for i in (30, 31):
        _publish_and_wait(io, node, images[i], float(seq.stamps[i]))
    before = matrix_from_pose(io["odometry"].last().pose.pose)
    resp = ros.call(Trigger, f"{NS}/frontend/reset", Trigger.Request())
    assert resp.success and "reset" in resp.message
    _publish_and_wait(io, node, images[32], float(seq.stamps[32]))
    assert _status(io)["status"] == "INITIALISING"
    after = io["odometry"].last()
    np.testing.assert_allclose(matrix_from_pose(after.pose.pose), before, atol=1e-9)
    assert after.pose.covariance[0] >= 1e6  # the motion across the reset is unknown
    _publish_and_wait(io, node, images[33], float(seq.stamps[33]))
    assert _status(io)["status"] == "OK"


# ---------------------------------------------------------------------- robustness
def test_malformed_messages_are_reported_and_skipped(ros, kitti, io, node):
    seq, images = kitti
    good = array_to_image(images[34], header(float(seq.stamps[34])), "mono8")
    bad = []
    # fresh stamps between the last frame sent (33) and the next (34): only the pixels are bad
    stamps = iter(float(seq.stamps[33]) + 0.01 * k for k in range(1, 9))
    for change in [dict(encoding="yuv422_odd"), dict(step=good.step - 1),
                   dict(height=0, width=0, step=0), dict(height=100000, width=100000)]:
        msg = array_to_image(images[34], header(next(stamps)), "mono8")
        for k, v in change.items():
            setattr(msg, k, v)
        bad.append(msg)
    short = array_to_image(images[34], header(next(stamps)), "mono8")
    short.data = short.data[:-10]  # data size does not match step x height
    bad.append(short)
    before = dict(node.stats.counters)
    statuses = len(io["status"])
    for msg in bad:
        io["image"].publish(msg)
        n = node.stats.counters["invalid_images"]
        assert wait_for(lambda: node.stats.counters["invalid_images"] > n, 5)
    implausible = []
    for field, index, value in (("k", 5, 1e7), ("d", 0, 1e6), ("k", 0, 1e-3)):
        info = camera_info(seq.camera)
        info.distortion_model, info.d = "plumb_bob", [0.0] * 5
        getattr(info, field)[index] = value
        if field == "k" and value < 1:
            info.k[4] = value
        implausible.append(info)
    nan_info = camera_info(seq.camera)
    nan_info.k[0] = float("nan")
    for info in [*implausible, nan_info]:  # NaN last: diagnostics below show it
        n = node.stats.counters["invalid_camera_info"]
        io["camera_info"].publish(info)
        assert wait_for(lambda: node.stats.counters["invalid_camera_info"] > n, 5)
    assert node.stats.counters["invalid_images"] == before["invalid_images"] + len(bad)
    n_bad = len(bad) + 1 + len(implausible)
    assert wait_for(lambda: len(io["status"]) >= statuses + n_bad, 5)
    reports = [json.loads(m.data) for m in io["status"].messages[statuses:]]
    assert sum(r["status"] == "INPUT_ERROR" for r in reports) == n_bad
    reasons = " ".join(r["message"] for r in reports)
    for words in ("unsupported encoding", "step", "zero-size", "max_image_pixels", "NaN",
                  "principal point (601.887, 1e+07) is outside", "distortion [1000000.0, 0.0",
                  "fx=0.001 is outside"):
        assert words in reasons, words
    # Still alive, camera unchanged, next good frame processed and tracked.
    assert node.frontend.camera.fx == pytest.approx(seq.camera.fx)
    _publish_and_wait(io, node, images[34], float(seq.stamps[34]))
    assert node.stats.counters["errors"] == before["errors"] and node._worker.is_alive()
    # Diagnostics turn to WARN (ERROR while an earlier error is recent) with the reason.
    assert wait_for(lambda: any(s.level in (DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
                                and "NaN" in s.message
                                for m in io["diagnostics"].messages for s in m.status), 5)


def test_callbacks_never_raise(node):
    """An exception inside a callback would end spin() and the node: it is counted instead."""
    errors = node.stats.counters["errors"]
    assert node._on_camera_info(object()) is None
    assert node.stats.counters["errors"] == errors + 1
    assert "_on_camera_info failed" in node.stats.last_problem


def test_burst_drops_frames_instead_of_queueing(kitti, io, node):
    """Frames that arrive while the worker is busy: the node keeps at most node.queue_depth
    (the shipped 2) waiting frames, drops the rest (counted) and ends on the newest frame.
    The worker is held busy by the test (it waits for the lock it takes between frames), so
    this holds on a machine of any speed."""
    seq, images = kitti
    # One frame in lockstep first, also when this test runs alone: a reliable writer's burst
    # of 40 large samples right after matching stalled after 5 in Fast DDS (seen only then).
    io["camera_info"].publish(camera_info(seq.camera))
    assert wait_for(lambda: node.frontend.camera is not None, 10)  # else the frame waits
    _publish_and_wait(io, node, images[0], 99.0)
    for burst in range(2):
        before = dict(node.stats.counters)
        pending = []
        stamps = [100.0 + burst * 10 + 0.01 * i for i in range(40)]
        with node._lock:  # the worker cannot apply pending changes, so cannot take a frame
            for i, stamp in enumerate(stamps):
                io["image"].publish(array_to_image(images[i], header(stamp), "mono8"))
                pending.append(node._slot.pending)
            received = lambda: (node.stats.counters["received"] - before["received"] +  # noqa
                                node.stats.counters["dropped_queue"] - before["dropped_queue"])
            assert wait_for(lambda: received() == len(stamps), 30), dict(node.stats.counters)
            depth = node.node_config.queue_depth  # the shipped 2
            assert depth == 2 and node._slot.pending <= depth
        last = stamps[-1]
        assert wait_for(lambda: node.stats.last.get("stamp") == pytest.approx(last), 10), \
            "the newest frame was not processed"
        delta = lambda k: node.stats.counters[k] - before[k]  # noqa: E731
        # Every frame is accounted for: processed, replaced while the worker was busy, or
        # overwritten in the (depth 5) subscription queue before the callback.
        assert wait_for(lambda: node._slot.pending == 0 and
                        delta("received") == delta("processed") + delta("dropped_busy"), 5)
        assert delta("received") + delta("dropped_queue") == len(stamps)
        assert delta("dropped") == delta("dropped_busy") + delta("dropped_queue")
        # The frame it held, if any, and the newest `depth`, in order.
        assert 1 <= delta("processed") <= depth + 1
        assert delta("dropped") >= len(stamps) - depth - 1
        assert max(pending) <= depth


# ---------------------------------------------------------------------- other inputs
def test_compressed_transport_waits_for_camera_info_then_runs_homography_only(ros, kitti):
    """A second node: compressed input; frames before the first CameraInfo are skipped;
    an uncalibrated CameraInfo (K = 0) means homography-only (x, y NaN); corrupt JPEG
    data is reported."""
    seq, images = kitti
    ns = f"{NS}/compressed"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.image_transport", value="compressed"),
        Parameter("node.qos.reliability", value="reliable")]))
    try:
        features = ros.subscribe(PointCloud2, f"{ns}/frontend/features")
        status = ros.subscribe(String, f"{ns}/frontend/status")
        pub = ros.publisher(CompressedImage, f"{ns}/image/compressed")
        info_pub = ros.publisher(CameraInfo, f"{ns}/camera_info")

        def jpeg(i, data=None):
            msg = CompressedImage(header=header(float(seq.stamps[i])), format="jpeg")
            msg.data = data if data is not None else \
                cv2.imencode(".jpg", images[i], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            return msg

        pub.publish(jpeg(0))
        assert wait_for(lambda: node.stats.counters["waiting_for_camera_info"] == 1, 10)
        assert wait_for(lambda: len(status) and
                        json.loads(status.last().data)["status"] == "WAITING_FOR_CAMERA_INFO")
        uncalibrated = camera_info(seq.camera)
        uncalibrated.k = [0.0] * 9
        info_pub.publish(uncalibrated)
        assert wait_for(lambda: node._camera_known, 5)
        for i in range(1, 4):  # frame 0 was skipped: waiting for CameraInfo
            n = len(features)
            pub.publish(jpeg(i))
            assert wait_for(lambda: len(features) > n, 10)
        cloud = features.last()
        dec = decode_features(cloud.data, cloud.fields, cloud.point_step, cloud.width)
        assert len(dec) > 100 and np.isnan(dec.normalised).all() and not cloud.is_dense
        last = json.loads(status.last().data)
        assert last["model"] == "homography_only" and last["status"] == "OK"
        pub.publish(jpeg(4, cv2.imencode(".jpg", images[4])[1].tobytes()[:500]))
        assert wait_for(lambda: node.stats.counters["invalid_images"] == 1, 5)
        assert "corrupt" in node.stats.last_problem
        damaged = bytearray(jpeg(5).data)  # decodable, but 400 bytes in the middle changed
        mid = len(damaged) // 2
        damaged[mid:mid + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
        pub.publish(jpeg(5, bytes(damaged)))
        assert wait_for(lambda: node.stats.counters["invalid_images"] == 2, 5)
        assert "libjpeg: Corrupt JPEG data" in node.stats.last_problem
        assert node.stats.status_counts["FEW_MATCHES"] == 0  # not a tracking failure
    finally:
        ros.remove_node(node)


def test_first_frame_waits_for_the_first_camera_info(ros, kitti):
    """The first image may overtake the first CameraInfo (two topics, no order between them):
    it waits for it (node.camera.info_wait_s) and is answered, not skipped."""
    seq, images = kitti
    ns = f"{NS}/overtaken"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable")]))
    try:
        status = ros.subscribe(String, f"{ns}/frontend/status")
        pub = ros.publisher(Image, f"{ns}/image")
        info_pub = ros.publisher(CameraInfo, f"{ns}/camera_info")
        assert wait_for(lambda: pub.get_subscription_count() > 0
                        and info_pub.get_subscription_count() > 0, 10)
        pub.publish(array_to_image(images[0], header(float(seq.stamps[0])), "mono8"))
        assert wait_for(lambda: node.stats.counters["received"] == 1, 10)
        time.sleep(0.3)  # the CameraInfo comes later
        info_pub.publish(camera_info(seq.camera))
        assert wait_for(lambda: len(status) >= 1, 10)
        first = json.loads(status.messages[0].data)
        assert first["status"] == "INITIALISING", first
        assert node.stats.counters["waiting_for_camera_info"] == 0
    finally:
        ros.remove_node(node)


def test_intrinsics_from_parameters(ros, kitti):
    seq, images = kitti
    cam = seq.camera
    ns = f"{NS}/params_camera"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable"), *_camera_parameters(cam)]))
    try:
        assert node.frontend.camera.to_dict() == cam.to_dict()
        features = ros.subscribe(PointCloud2, f"{ns}/frontend/features")
        pub = ros.publisher(Image, f"{ns}/image")
        pub.publish(array_to_image(images[0], header(0.0), "mono8"))
        assert wait_for(lambda: len(features) > 0, 10)
        assert features.last().is_dense
    finally:
        ros.remove_node(node)


def test_backend_interfaces_vins_features_and_fusion_odometry(ros, kitti):
    """node.vins_features and node.odometry_for_fusion over DDS: each ~/vins_features
    message, read as VINS' estimator reads it, holds the frame's tracked features (those of
    ~/features with track_age >= 1) with velocities from the previous message; ~/odometry
    carries the angular velocity of ~/relative_pose's rotation and flags position and linear
    velocity unknown."""
    from dkp_slam.messages.vins import VINS_CHANNELS, VINS_ID_MODULUS, decode_vins_features
    from scipy.spatial.transform import Rotation
    from sensor_msgs.msg import PointCloud

    seq, images = kitti
    cam = seq.camera
    ns = f"{NS}/backends"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable"),
        Parameter("node.vins_features", value=True),
        Parameter("node.odometry_for_fusion", value=True), *_camera_parameters(cam)]))
    try:
        out = {name: ros.subscribe(t, f"{ns}/frontend/{name}") for name, t in [
            ("vins_features", PointCloud), ("features", PointCloud2),
            ("relative_pose", PoseWithCovarianceStamped), ("odometry", Odometry),
            ("status", String)]}
        pub = ros.publisher(Image, f"{ns}/image")
        assert wait_for(lambda: all(c.subscription.get_publisher_count() for c in out.values()))
        previous = None  # (stamp, {feature id: (x, y)}) of the previous VINS message
        for i in range(6):
            stamp = stamp_to_seconds(header(float(seq.stamps[i])).stamp)
            pub.publish(array_to_image(images[i], header(stamp), "mono8"))
            assert wait_for(lambda: all(c.stamped(stamp) for n, c in out.items()
                                        if n != "status"), 20), f"no outputs for frame {i}"
            msg = out["vins_features"].stamped(stamp)
            assert [c.name for c in msg.channels] == list(VINS_CHANNELS)
            seen = decode_vins_features(msg.points, msg.channels)  # asserts z == 1
            c = out["features"].stamped(stamp)
            cloud = decode_features(c.data, c.fields, c.point_step, c.width, c.height,
                                    c.is_bigendian)
            tracked = cloud.track_ages >= 1
            assert len(seen) == int(tracked.sum()) and (i == 0) == (len(seen) == 0)
            assert [o.camera_id for o in seen] == [0] * len(seen)
            np.testing.assert_array_equal([o.feature_id for o in seen],
                                          cloud.track_ids[tracked] % VINS_ID_MODULUS)
            np.testing.assert_array_equal(np.reshape([(o.x, o.y) for o in seen], (-1, 2)),
                                          cloud.normalised[tracked])
            np.testing.assert_array_equal(np.reshape([(o.p_u, o.p_v) for o in seen], (-1, 2)),
                                          cloud.keypoints[tracked])
            if previous is not None:
                dt = stamp - previous[0]
                before = [(o, previous[1].get(o.feature_id)) for o in seen]
                assert sum(b is not None for _, b in before) > 0.9 * len(seen)
                for o, b in before:
                    want = (0.0, 0.0) if b is None else ((o.x - b[0]) / dt, (o.y - b[1]) / dt)
                    np.testing.assert_allclose((o.velocity_x, o.velocity_y), want, rtol=1e-4,
                                               atol=1e-6)
            # every feature of the frame is known to the next one's velocities
            previous = (stamp, {int(t % VINS_ID_MODULUS): tuple(xy) for t, xy in
                                zip(cloud.track_ids, cloud.normalised)})
            odom = out["odometry"].stamped(stamp)
            pose_cov = np.reshape(odom.pose.covariance, (6, 6))
            twist_cov = np.reshape(odom.twist.covariance, (6, 6))
            assert np.all(np.diag(pose_cov)[:3] >= 1e6) and not pose_cov[:3, 3:].any()
            assert np.all(np.diag(twist_cov)[:3] >= 1e6)  # linear velocity: unknown
            rel = out["relative_pose"].stamped(stamp)
            if i == 0:  # the first frame: nothing measured yet
                assert np.all(np.diag(twist_cov)[3:] >= 1e6)
                continue
            assert json.loads(out["status"].last().data)["status"] in ("OK", "LOW_PARALLAX")
            dt = stamp - stamp_to_seconds(header(float(seq.stamps[i - 1])).stamp)
            R = matrix_from_pose(rel.pose.pose)[:3, :3]
            omega = [odom.twist.twist.angular.x, odom.twist.twist.angular.y,
                     odom.twist.twist.angular.z]
            np.testing.assert_allclose(omega, Rotation.from_matrix(R).as_rotvec() / dt,
                                       atol=1e-6)
            rot_cov = np.reshape(rel.pose.covariance, (6, 6))[3:, 3:]
            np.testing.assert_allclose(twist_cov[3:, 3:], rot_cov / dt ** 2, rtol=1e-6)
            assert np.all(np.diag(twist_cov)[3:] < 1e-2)  # (rad/s)^2: a measured rotation
            assert np.all(np.diag(pose_cov)[3:] < 1e-3)  # the chained orientation
    finally:
        ros.remove_node(node)


def test_invalid_startup_parameters_raise_with_a_reason(ros):
    from dkp_slam.config import ConfigError
    from rclpy.exceptions import ParameterException

    with pytest.raises(ParameterException):
        FrontEndNode(node_name="bad1", context=ros.context, namespace=NS,
                     parameter_overrides=[Parameter("detector.max_keypoints", value=0)])
    with pytest.raises(ConfigError, match="unknown parameters"):
        FrontEndNode(node_name="bad2", context=ros.context, namespace=NS,
                     parameter_overrides=[Parameter("detector.max_keypoint", value=10)])
    with pytest.raises(ConfigError, match="focal"):
        FrontEndNode(node_name="bad3", context=ros.context, namespace=NS,
                     parameter_overrides=[Parameter("node.camera.source", value="parameters")])


def _documented_status_keys() -> dict[str, str]:
    """``key -> in`` of the ~/status table in docs/ROS.md."""
    text = (ROOT / "docs" / "ROS.md").read_text()
    table = text[text.index("<!-- status schema:"):text.index("<!-- end of status schema -->")]
    keys = {}
    for row in table.splitlines()[3:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for key in cells[0].replace("`", "").split(","):
            keys[key.strip()] = cells[2]
    return keys


def test_status_messages_follow_the_documented_schema(ros, kitti):
    """Every kind of ~/status message a node publishes over DDS (waiting for CameraInfo, a
    rejected input, processed frames) has exactly the documented keys and reads back as a
    StatusReport of the current version."""
    seq, images = kitti
    ns = f"{NS}/schema"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable")]))
    try:
        status = ros.subscribe(String, f"{ns}/frontend/status")
        pub = ros.publisher(Image, f"{ns}/image")
        info_pub = ros.publisher(CameraInfo, f"{ns}/camera_info")
        assert wait_for(lambda: status.subscription.get_publisher_count() > 0, 10)
        pub.publish(array_to_image(images[0], header(float(seq.stamps[0])), "mono8"))
        assert wait_for(lambda: len(status) >= 1, 10)
        info_pub.publish(camera_info(seq.camera))
        assert wait_for(lambda: node._camera_known, 10)
        bad = array_to_image(images[1], header(float(seq.stamps[1])), "mono8")
        bad.encoding = "yuv422_odd"
        pub.publish(bad)
        assert wait_for(lambda: len(status) >= 2, 10)
        for i in (2, 3):  # (frame 1's stamp was taken by the bad image)
            n = len(status)
            pub.publish(array_to_image(images[i], header(float(seq.stamps[i])), "mono8"))
            assert wait_for(lambda: len(status) > n, 10)
        messages = [json.loads(m.data) for m in status.messages]
    finally:
        ros.remove_node(node)
    documented = _documented_status_keys()
    every = {k for k, where in documented.items() if where.startswith("every message")}
    frame = {k for k, where in documented.items() if where == "processed frames"}
    kinds = {}
    for data in messages:
        report = StatusReport.from_json(data, NodeStats.COUNTERS)
        assert report.version == STATUS_VERSION and data["schema"] == STATUS_SCHEMA
        assert set(data) <= set(documented), set(data) - set(documented)
        assert every - {"stamp"} <= set(data)
        expected = every | frame if report.frame is not None else every
        assert set(data) == expected, (data["status"], set(data) ^ expected)
        kinds[data["status"]] = report
    assert {"WAITING_FOR_CAMERA_INFO", "INPUT_ERROR", "INITIALISING", "OK"} <= set(kinds)
    assert kinds["OK"].frame.index == 1 and kinds["OK"].frame.keypoints > 100
    assert set(NodeStatus) >= {NodeStatus(s.value) for s in TrackingStatus}


def test_time_policy_over_dds(ros, kitti):
    """Bad stamps are rejected with their own counters and INPUT_ERROR, a large jump back
    restarts tracking (TIME_RESET, then the frame is processed), odometry stamps never go
    backwards within a time segment, and a gap in the stamps counts frames missing upstream."""
    seq, images = kitti
    ns = f"{NS}/time"
    node = ros.add_node(FrontEndNode(context=ros.context, namespace=ns, parameter_overrides=[
        Parameter("node.qos.reliability", value="reliable"),
        Parameter("node.camera.source", value="none"),
        Parameter("detector.name", value="orb")]))
    try:
        status = ros.subscribe(String, f"{ns}/frontend/status")
        odometry = ros.subscribe(Odometry, f"{ns}/frontend/odometry")
        pub = ros.publisher(Image, f"{ns}/image")
        assert wait_for(lambda: status.subscription.get_publisher_count() > 0, 10)

        def send(i, sec, nanosec=0):
            h = header(0.0)
            h.stamp.sec, h.stamp.nanosec = sec, nanosec
            n = len(status)
            pub.publish(array_to_image(images[i], h, "mono8"))
            assert wait_for(lambda: len(status) > n, 10)
            return json.loads(status.messages[n].data)

        period = 100_000_000  # 10 Hz
        for k in range(7):
            send(k, 1000, k * period)
        bad = [((1000, 2 * period), "stamp_backwards"), ((1000, 6 * period), "stamp_duplicate"),
               ((1000, 5 * period + 1), "stamp_backwards"), ((-3, 0), "stamp_invalid"),
               ((1000, 2_500_000_000), "stamp_invalid"), ((0, 0), "stamp_invalid")]
        for (sec, nsec), counter in bad:
            before = node.stats.counters[counter]
            reply = send(7, sec, nsec)
            assert reply["status"] == "INPUT_ERROR" and "frame skipped" in reply["message"]
            assert node.stats.counters[counter] == before + 1, counter
        assert node.stats.counters["processed"] == 7
        send(7, 1000, 9 * period)  # two frames missing upstream
        assert node.stats.counters["frames_missing_upstream"] == 2
        reply = send(8, 500)  # the source restarted, 500.9 s earlier
        assert reply["status"] == "TIME_RESET" and "jumped back 500.900 s" in reply["message"]
        assert wait_for(lambda: json.loads(status.last().data)["status"] == "INITIALISING", 10)
        assert node.stats.counters["stamp_resets"] == 1
        send(9, 500, period)
        assert wait_for(lambda: len(odometry) == 10, 10)
        stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in odometry.messages]
        assert stamps == [*((1000, k * period) for k in range(7)), (1000, 9 * period),
                          (500, 0), (500, period)]  # one jump back, announced before it
    finally:
        ros.remove_node(node)
