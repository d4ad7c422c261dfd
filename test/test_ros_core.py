"""The ROS layer's plain-Python parts (no rclpy needed): the feature cloud layout, parameter
specs and validation, the newest-frame mailbox and odometry chaining."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from dkp_slam import settings
from dkp_slam.config import ConfigError, FrontEndConfig, flatten
from dkp_slam.geometry import UNKNOWN_VARIANCE
from dkp_slam.interface import (READ_ONLY, REBUILD, RUNTIME, NodeConfig,
                                    camera_from_parameters, check_parameter, parameter_policy,
                                    parameter_specs)
from dkp_slam.messages.pointcloud import (FLOAT32, UINT8, UINT32, Field, decode_features,
                                     decode_points, encode_features, feature_fields)
from dkp_slam.odometry import OdometryChain
from dkp_slam.runtime import FrameMailbox, NodeStats, SequenceGaps
from dkp_slam.tracking import TrackingStatus

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- point cloud layout
def _features(n: int, d: int, binary: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    kps = rng.uniform(0, 600, (n, 2)).astype(np.float32)
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    scores = rng.uniform(size=n).astype(np.float32)
    ids = rng.integers(0, 2**40, n).astype(np.int64)
    ages = rng.integers(0, 100, n).astype(np.int32)
    desc = (rng.integers(0, 256, (n, d), dtype=np.uint8) if binary
            else rng.normal(size=(n, d)).astype(np.float32))
    return kps, xy, scores, ids, ages, desc


@pytest.mark.parametrize("binary,d", [(True, 32), (False, 128)])
def test_feature_cloud_round_trip(binary, d):
    kps, xy, scores, ids, ages, desc = _features(50, d, binary)
    fields, step, data = encode_features(kps, xy, scores, ids, ages, desc)
    assert step == 28 + d * (1 if binary else 4) and len(data) == 50 * step
    assert [f.name for f in fields] == ["u", "v", "x", "y", "score", "track_id", "track_age",
                                        "descriptor"]
    assert fields[-1] == Field("descriptor", 28, UINT8 if binary else FLOAT32, d)
    cloud = decode_features(data, fields, step, 50)
    np.testing.assert_array_equal(cloud.keypoints, kps)
    np.testing.assert_array_equal(cloud.normalised, xy)
    np.testing.assert_array_equal(cloud.scores, scores)
    np.testing.assert_array_equal(cloud.track_ids, (ids & 0xFFFFFFFF).astype(np.uint32))
    np.testing.assert_array_equal(cloud.track_ages, ages.astype(np.uint32))
    np.testing.assert_array_equal(cloud.descriptors, desc)
    assert cloud.descriptors.dtype == desc.dtype


def test_feature_cloud_without_intrinsics_and_empty():
    kps, _, scores, ids, ages, desc = _features(5, 32, True)
    fields, step, data = encode_features(kps, None, scores, ids, ages, desc)
    assert np.isnan(decode_features(data, fields, step, 5).normalised).all()
    fields, step, data = encode_features(np.zeros((0, 2)), None, np.zeros(0), np.zeros(0),
                                         np.zeros(0), np.zeros((0, 32), np.uint8))
    assert data == b"" and len(decode_features(data, fields, step, 0)) == 0


def test_decoder_checks_buffer_and_fields():
    kps, xy, scores, ids, ages, desc = _features(3, 32, True)
    fields, step, data = encode_features(kps, xy, scores, ids, ages, desc)
    with pytest.raises(ValueError, match="bytes"):
        decode_points(data[:-1], fields, step, 3)
    with pytest.raises(ValueError, match="missing fields"):
        decode_features(data, fields[:-1], step, 3)
    with pytest.raises(ValueError, match="datatype"):
        decode_points(data, [Field("u", 0, 42, 1)], step, 3)
    # Big-endian buffers (from another machine) decode too.
    be = np.frombuffer(data, np.uint8).reshape(3, step).copy()
    for f in fields[:7]:
        be[:, f.offset:f.offset + 4] = be[:, f.offset:f.offset + 4][:, ::-1]
    cloud = decode_features(be.tobytes(), fields, step, 3, is_bigendian=True)
    np.testing.assert_array_equal(cloud.keypoints, kps)
    assert feature_fields(np.float64, 4)[-1].datatype == FLOAT32
    assert fields[5].datatype == UINT32


def test_ros_free_modules_import_no_ros():
    code = ("import sys, dkp_slam.ros, dkp_slam.messages.pointcloud, dkp_slam.interface, "
            "dkp_slam.runtime\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', "
            "'std_msgs', 'geometry_msgs', 'nav_msgs', 'rcl_interfaces')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------- parameters
def test_specs_cover_core_and_node_parameters_with_core_ranges():
    specs = {s.name: s for s in parameter_specs()}
    assert set(specs) == set(FrontEndConfig().flat()) | set(NodeConfig().flat())
    core = settings.specs(FrontEndConfig)  # the fields' own declarations
    for key, spec in core.items():
        assert (specs[key].range, specs[key].choices, specs[key].policy) == \
            (spec.range, spec.choices, spec.policy)
        assert specs[key].description.startswith(spec.description)
    assert specs["detector.max_keypoints"].range == (1, 100000)
    assert specs["detector.name"].choices[:3] == ("orb", "sift", "dkp")
    assert all(s.description for s in specs.values())
    assert specs["geometry.ransac_threshold_px"].policy == RUNTIME
    assert specs["tracker.reference"].policy == RUNTIME
    assert specs["detector.name"].policy == REBUILD
    assert specs["matcher.device"].policy == REBUILD
    assert specs["node.qos.depth"].read_only and specs["node.image_transport"].read_only
    assert parameter_policy("node.frames.odom") == RUNTIME
    assert parameter_policy("node.camera.fx") == READ_ONLY


def test_check_parameter_reasons():
    assert check_parameter("detector.max_keypoints", 500) is None
    assert "in [1, 100000]" in check_parameter("detector.max_keypoints", 0)
    assert "one of" in check_parameter("tracker.reference", "bogus")
    assert "one of" in check_parameter("node.qos.reliability", "sometimes")
    assert "number" in check_parameter("node.qos.depth", "5")
    assert check_parameter("node.camera.d", [0.1, float("nan")]) is not None
    assert check_parameter("geometry.ransac_threshold_px", float("nan")) is not None


def test_shipped_yaml_node_section_equals_node_defaults():
    with open(ROOT / "config" / "frontend.yaml") as f:
        params = flatten(yaml.safe_load(f)["/**"]["ros__parameters"])
    node = {k: v for k, v in params.items() if k.startswith("node.")}
    assert node == NodeConfig().flat()
    assert NodeConfig.from_flat(node) == NodeConfig()
    with pytest.raises(ConfigError, match="node.qos.depth"):
        NodeConfig.from_flat({"node.qos.depth": 0})


def test_camera_from_parameters():
    conf = NodeConfig().camera
    conf.width, conf.height, conf.fx, conf.fy, conf.cx, conf.cy = 640, 480, 500., 500., 320., 240.
    cam = camera_from_parameters(conf)
    assert cam.model == "none" and cam.fx == 500.0
    conf.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    assert camera_from_parameters(conf).model == "radtan"
    conf.fx = 0.0
    with pytest.raises(ConfigError, match="focal"):
        camera_from_parameters(conf)


# ---------------------------------------------------------------------- runtime
def test_latest_slot_keeps_only_the_newest():
    slot: FrameMailbox[int] = FrameMailbox()
    assert slot.get(timeout=0.0) is None
    dropped = sum(slot.put(i) for i in range(10))
    assert dropped == 9 and slot.pending == 1
    assert slot.get(timeout=0.0) == 9 and slot.pending == 0

    got = []

    def consumer():
        while (item := slot.get(timeout=1.0)) is not None:
            got.append(item)

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(1000):
        slot.put(i)
    slot.close()
    t.join(timeout=5)
    assert got and got[-1] == 999 and got == sorted(got)


def test_sequence_gaps_count_frames_lost_before_the_callback():
    gaps = SequenceGaps()
    assert gaps.update(b"a", 7) == 0  # first message of a publisher: earlier ones unknowable
    assert gaps.update(b"a", 8) == 0
    assert gaps.update(b"a", 12) == 3
    assert gaps.update(b"b", 100) == 0 and gaps.update(b"b", 102) == 1
    assert gaps.update(b"a", 13) == 0


def test_slot_with_capacity_keeps_order_and_drops_the_oldest():
    slot: FrameMailbox[int] = FrameMailbox(capacity=3)
    assert [slot.put(i) for i in range(5)] == [False, False, False, True, True]
    assert slot.pending == 3
    assert [slot.get(timeout=0.0) for _ in range(4)] == [2, 3, 4, None]
    with pytest.raises(ValueError):
        FrameMailbox(capacity=0)


def test_node_stats_snapshot():
    stats = NodeStats()
    stats.count("received", 3)
    stats.problem("invalid_images", "bad")
    for _ in range(3):
        stats.frame_done("OK", 10.0, 8.0, {"status": "OK"})
    s = stats.snapshot()
    assert s["received"] == 3 and s["processed"] == 3 and s["invalid_images"] == 1
    assert s["latency_ms_median"] == 10.0 and s["status_counts"] == {"OK": 3}
    assert s["last_problem"] == "bad" and 0 <= s["problem_age_s"] < float("inf")
    assert NodeStats().snapshot()["problem_age_s"] == float("inf")  # no problem yet


class _Result:
    """The FrameResult fields OdometryChain uses."""

    def __init__(self, index, ref, T_world_cam, R=np.eye(3), t=np.zeros(3), status="OK",
                 keyframe=False):
        self.index, self.reference_index, self.T_world_cam = index, ref, T_world_cam
        self.status, self.is_keyframe = TrackingStatus(status), keyframe
        self.T_ref_cur = np.eye(4)
        self.T_ref_cur[:3, :3], self.T_ref_cur[:3, 3] = R, t
        self.covariance = np.eye(6) * 1e-4


def _step(x):
    T = np.eye(4)
    T[0, 3] = x
    return T


def test_odometry_chain_accumulates_and_stays_continuous_across_restarts():
    chain = OdometryChain()
    pose, cov = chain.update(_Result(0, -1, np.eye(4), status="INITIALISING", keyframe=True))
    assert np.allclose(pose, np.eye(4)) and not cov.any()
    pose, cov = chain.update(_Result(1, 0, _step(1), t=np.array([1.0, 0, 0])))
    assert np.allclose(cov, np.eye(6) * 1e-4)
    pose, cov = chain.update(_Result(2, 1, _step(2), t=np.array([1.0, 0, 0])))
    assert np.allclose(pose, _step(2)) and np.allclose(cov, np.eye(6) * 2e-4)
    # The core restarts at identity; the odometry continues from the last pose.
    chain.restart()
    pose, cov = chain.update(_Result(3, -1, np.eye(4), status="INITIALISING"))
    assert np.allclose(pose, _step(2)) and cov[0, 0] >= UNKNOWN_VARIANCE
    pose, _ = chain.update(_Result(4, 3, _step(1), t=np.array([1.0, 0, 0])))
    assert np.allclose(pose, _step(3))
    _, cov = chain.update(_Result(5, 4, _step(1), status="FEW_MATCHES"))
    assert cov[0, 0] >= UNKNOWN_VARIANCE


def test_docs_parameter_table_is_the_generated_one():
    """docs/ROS.md's parameter table is ``parameter_table()`` verbatim (regenerate it with
    ``python -m dkp_slam.interface`` after changing a field)."""
    from dkp_slam.interface import parameter_table

    text = (ROOT / "docs" / "ROS.md").read_text()
    begin = text.index("<!-- generated from the fields' settings()")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- end of generated table -->")
    assert text[begin:end] == parameter_table()
