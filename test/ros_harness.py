"""Shared helpers of the ROS tests (test_ros_*.py): real rclpy + DDS, an isolated domain per
module, KITTI frames as messages, polling with timeouts instead of sleeps.

Importing this module skips the importing test module when rclpy cannot be imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest

try:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header
except ImportError as err:  # pragma: no cover - depends on the installation
    pytest.skip(f"rclpy / ROS 2 messages cannot be imported ({err}); install the `ros` extra "
                f"or source a ROS 2 install", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / "config" / "frontend.yaml"
KITTI = ("sequences", "kitti07_0000-0159")
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def domain_id(module_offset: int) -> int:
    """A ROS domain id for one test module, varied by process id so that concurrent test runs
    on the same machine do not see each other (valid Fast DDS ids: 0..232)."""
    return 100 + (os.getpid() * 5 + module_offset) % 120


def header(stamp: float, frame_id: str = "camera_optical_frame") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec = int(stamp)
    h.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
    return h


def camera_info(camera, stamp: float = 0.0) -> CameraInfo:
    """CameraInfo of a :class:`dkp_slam.camera.Camera` (plumb_bob or no distortion)."""
    msg = CameraInfo(header=header(stamp), width=camera.width, height=camera.height,
                     distortion_model="plumb_bob" if camera.has_distortion else "",
                     d=[float(v) for v in camera.dist])
    msg.k = [float(v) for v in camera.K.reshape(-1)]
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = [float(v) for v in P.reshape(-1)]
    return msg


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, period: float = 0.005
             ) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


class Collector:
    """Thread-safe list of the messages received on one topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)

    def __len__(self) -> int:
        with self._lock:
            return len(self.messages)

    def last(self) -> Any:
        with self._lock:
            return self.messages[-1]

    def stamped(self, stamp: float) -> Any:
        """The last message whose ``header.stamp`` is ``stamp`` seconds, or None."""
        with self._lock:
            for msg in reversed(self.messages):
                if msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 == stamp:
                    return msg
        return None

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


class RosHarness:
    """One rclpy context in its own domain, a ``tester`` node, and an executor thread that
    spins the tester and any added node (e.g. the node under test)."""

    def __init__(self, domain: int, args: Optional[list[str]] = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context, domain_id=domain)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.tester = rclpy.create_node("tester", context=self.context)
        self.executor.add_node(self.tester)
        self._nodes: list = [self.tester]
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add_node(self, node: Any) -> Any:
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def remove_node(self, node: Any) -> None:
        self.executor.remove_node(node)
        self._nodes.remove(node)
        node.destroy_node()

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Collector:
        """Collect the messages on ``topic``; ``collector.subscription`` is the subscription."""
        col = Collector()
        col.subscription = self.tester.create_subscription(msg_type, topic, col, qos)
        return col

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE,
                  wait_s: float = 10.0):
        """A publisher on ``topic``; waits until some subscription is matched."""
        pub = self.tester.create_publisher(msg_type, topic, qos)
        assert wait_for(lambda: pub.get_subscription_count() > 0, wait_s), \
            f"no subscriber matched {topic}"
        return pub

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.tester.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            future = client.call_async(request)
            assert wait_for(future.done, timeout), f"service {name} did not answer"
            return future.result()
        finally:
            self.tester.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(timeout=10)
        for node in reversed(self._nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGINT (as Ctrl-C or launch does), then SIGKILL after ``timeout`` s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def assert_cloud_equals_result(msg: Any, result: Any) -> None:
    """A ``~/features`` PointCloud2 holds exactly a FrameResult's keypoints and descriptors."""
    from dkp_slam.messages.pointcloud import decode_features

    cloud = decode_features(msg.data, msg.fields, msg.point_step, msg.width, msg.height,
                            msg.is_bigendian)
    np.testing.assert_array_equal(cloud.keypoints, result.keypoints)
    np.testing.assert_array_equal(cloud.descriptors, result.descriptors)
