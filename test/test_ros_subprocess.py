"""The real console script: ``frontend_node --ros-args --params-file config/frontend.yaml`` in a
subprocess, fed and read over Fast DDS from this process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from installed import executable, share_file
from ros_harness import (KITTI, ROOT, RosHarness, assert_cloud_equals_result, camera_info,
                         domain_id, header, stop_process, wait_for)

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from dkp_slam.config import FrontEndConfig
from dkp_slam.datasets import load_kitti
from dkp_slam.frontend import FrontEnd, TrackingStatus
from dkp_slam.ros.conversions import array_to_image, matrix_from_pose, stamp_to_seconds

NS = "/dkp_sub"
DOMAIN = domain_id(2)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONUNBUFFERED="1")
    return subprocess.Popen([str(executable("frontend_node")), "--ros-args", *args], cwd=ROOT,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_console_script_with_params_file(tmp_path):
    seq = load_kitti(shared_data(*KITTI))
    log = tmp_path / "node.log"
    installed_params = share_file("config", "frontend.yaml")
    proc = _start(["--params-file", str(installed_params), "-r", f"__ns:={NS}",
                   "-p", "node.qos.reliability:=reliable"], log)
    ros = RosHarness(DOMAIN)
    try:
        features = ros.subscribe(PointCloud2, f"{NS}/frontend/features")
        poses = ros.subscribe(PoseWithCovarianceStamped, f"{NS}/frontend/relative_pose")
        odometry = ros.subscribe(Odometry, f"{NS}/frontend/odometry")
        status = ros.subscribe(String, f"{NS}/frontend/status")
        diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        image_pub = ros.publisher(Image, f"{NS}/image", wait_s=60)
        info_pub = ros.publisher(CameraInfo, f"{NS}/camera_info", wait_s=10)
        outputs = (features, poses, odometry, status)
        assert wait_for(lambda: all(c.subscription.get_publisher_count() for c in outputs), 10)
        direct = FrontEnd(FrontEndConfig.from_yaml(installed_params), seq.camera)

        def camera_applied():  # the node reports its intrinsics in /diagnostics
            info_pub.publish(camera_info(seq.camera))
            return any(kv.key == "camera" and kv.value.startswith("1226x370")
                       for m in diagnostics.messages for s in m.status for kv in s.values)

        assert wait_for(camera_applied, 15, period=0.2), log.read_text()[-3000:]
        for i in range(10):
            stamp = stamp_to_seconds(header(float(seq.stamps[i])).stamp)
            info_pub.publish(camera_info(seq.camera, stamp))
            image = seq.load_image(i)
            image_pub.publish(array_to_image(image, header(stamp), "mono8"))
            assert wait_for(lambda: len(status) and
                            json.loads(status.last().data).get("stamp") == stamp and
                            all(c.stamped(stamp) for c in (features, poses, odometry)), 30), \
                log.read_text()[-3000:]
            ref = direct.process(image, stamp)
            assert_cloud_equals_result(features.stamped(stamp), ref)
            assert json.loads(status.last().data)["status"] == ref.status.value
            T = matrix_from_pose(poses.stamped(stamp).pose.pose)
            if ref.status.tracked:
                np.testing.assert_allclose(T[:3, :3], ref.R, atol=1e-3)
            if ref.status is TrackingStatus.OK:
                assert float(T[:3, 3] @ ref.t) > 0.999
            elif ref.status.tracked:  # LOW_PARALLAX: no translation claimed (the car pulling
                assert not T[:3, 3].any()  # away; Debian's OpenCV 4.6 withholds frame 2's)
        assert len(odometry) == 10
        T_odom = matrix_from_pose(odometry.last().pose.pose)
        np.testing.assert_allclose(T_odom[:3, :3], ref.T_world_cam[:3, :3], atol=1e-2)
    finally:
        ros.close()
        rc = stop_process(proc)
    out = log.read_text()
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "front-end ready" in out


@pytest.mark.parametrize("content,reason", [
    ("detector:\n  max_keypoint: 10\n", "unknown parameters"),
    ("detector:\n  max_keypoints: 0\n", "max_keypoints"),
    ("tracker:\n  reference: sideways\n", "must be one of"),
])
def test_invalid_params_file_exits_with_the_reason(tmp_path, content, reason):
    params = tmp_path / "bad.yaml"
    body = "".join("    " + line + "\n" for line in content.splitlines())
    params.write_text("/**:\n  ros__parameters:\n" + body)
    log = tmp_path / "node.log"
    proc = _start(["--params-file", str(params), "-r", f"__ns:={NS}/bad"], log)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    out = log.read_text()
    assert rc == 2, out[-2000:]
    assert "invalid parameters" in out and reason in out, out[-2000:]
