"""``ros2 launch dkp_slam frontend.launch.py`` the ROS way: launch_testing starts the node through
the launch file installed in ``share/dkp_slam/launch`` (found through the ament index), with
remapped topics, a namespace and a user ``params_file``; an active test feeds it camera frames and
checks that its outputs arrive under the namespace with the user's parameters applied; after
launch_testing has shut the launch down (SIGINT), the post-shutdown test checks exit code 0 and no
traceback.

Runs under ``colcon test`` on a ROS 2 install (launch_testing's pytest plugin collects it).
Where ``launch_testing`` / ``launch_ros`` are not installed (the development machines: they are on
neither PyPI nor Debian 12) the module is skipped with that reason; test_ros_launch.py and
test_ros_shutdown.py cover what runs there.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import unittest

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing is not installed (it comes with a ROS 2 install: "
    "apt install ros-$ROS_DISTRO-launch-testing-ros; not on PyPI)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (comes with ROS 2)")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from dkp_slam.ros.conversions import array_to_image  # noqa: E402
from dkp_slam.synthetic import SyntheticConfig, make_synthetic_sequence  # noqa: E402

NAMESPACE = "robot1"
IMAGE, CAMERA_INFO = "/cam/image_raw", "/cam/camera_info"
USER_PARAMS = """\
/**:
  ros__parameters:
    detector:
      name: orb
      max_keypoints: 600
"""


@pytest.mark.launch_test
def generate_test_description():
    params = os.path.join(tempfile.mkdtemp(prefix="dkp_launch_"), "my_frontend.yaml")
    with open(params, "w") as f:
        f.write(USER_PARAMS)
    launch_file = os.path.join(get_package_share_directory("dkp_slam"), "launch",
                               "frontend.launch.py")
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(launch_file),
            launch_arguments={"image": IMAGE, "camera_info": CAMERA_INFO,
                              "namespace": NAMESPACE, "params_file": params,
                              "log_level": "info"}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestOutputsArrive(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("dkp_launch_tester")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_outputs_under_the_namespace_with_user_parameters(self, proc_output):
        seq = make_synthetic_sequence(SyntheticConfig(n_frames=10))
        got = {"features": [], "odometry": [], "status": [], "diagnostics": []}
        prefix = f"/{NAMESPACE}/frontend"
        for key, typ, topic in (("features", PointCloud2, f"{prefix}/features"),
                                ("odometry", Odometry, f"{prefix}/odometry"),
                                ("status", String, f"{prefix}/status"),
                                ("diagnostics", DiagnosticArray, "/diagnostics")):
            self.node.create_subscription(typ, topic, got[key].append, 10)
        image_pub = self.node.create_publisher(Image, IMAGE, 10)
        info_pub = self.node.create_publisher(CameraInfo, CAMERA_INFO, 10)
        cam = seq.camera
        end = time.monotonic() + 120
        i = 0
        while time.monotonic() < end and len(got["odometry"]) < 5:
            stamp = 1.0 + 0.05 * i  # increasing: the sequence is replayed in a loop
            info = CameraInfo(width=cam.width, height=cam.height, distortion_model="plumb_bob",
                              d=[0.0] * 5, k=[float(v) for v in cam.K.reshape(-1)])
            info.header.stamp.sec = int(stamp)
            info.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
            msg = array_to_image(seq.load_image(i % len(seq)), info.header, "mono8")
            info_pub.publish(info)
            image_pub.publish(msg)
            i += 1
            end_spin = time.monotonic() + 0.2
            while time.monotonic() < end_spin:
                rclpy.spin_once(self.node, timeout_sec=0.05)
        self.assertGreaterEqual(len(got["odometry"]), 5, "no odometry under the namespace")
        self.assertTrue(got["features"] and got["status"])
        self.assertIn(json.loads(got["status"][-1].data)["status"], ("OK", "LOW_PARALLAX"))
        detectors = {kv.value for m in got["diagnostics"] for s in m.status for kv in s.values
                     if kv.key == "detector"}
        self.assertEqual(detectors, {"orb"}, "the user's params_file was not applied")
        proc_output.assertWaitFor("front-end ready", timeout=10)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code_zero_and_no_traceback(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)  # 0 after launch's SIGINT
        for output in proc_output:
            text = output.text.decode() if isinstance(output.text, bytes) else output.text
            self.assertNotIn("Traceback", text)
