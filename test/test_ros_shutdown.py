"""Shutdown of the installed ``frontend_node`` as a launcher without a terminal does it (docker,
systemd, CI): SIGINT or SIGTERM sent to the node's whole process group, once or twice (the
group's signal and the launcher's own), while frames are being processed. The node must exit 0
with no traceback in its output."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import shared_data
from installed import executable, share_file
from ros_harness import KITTI, RosHarness, camera_info, domain_id, header, wait_for

from sensor_msgs.msg import CameraInfo, Image

from dkp_slam.datasets import load_kitti
from dkp_slam.ros.conversions import array_to_image

NS = "/dkp_shutdown"
DOMAIN = domain_id(5)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> bool:
    return wait_for(lambda: text in log.read_text() or proc.poll() is not None, timeout,
                    period=0.05) and text in log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("count", [1, 2], ids=["once", "twice"])
def test_signal_to_process_group_exits_cleanly(tmp_path, signum, count):
    seq = load_kitti(shared_data(*KITTI))
    log = tmp_path / "node.log"
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [str(executable("frontend_node")), "--ros-args",
         "--params-file", str(share_file("config", "frontend.yaml")), "-r", f"__ns:={NS}"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group, as a launcher gives it
    ros = RosHarness(DOMAIN)
    feeding = threading.Event()
    feeder = None
    try:
        assert _wait_for_line(log, "front-end ready", proc, 120), log.read_text()[-3000:]
        image_pub = ros.publisher(Image, f"{NS}/image", wait_s=30)
        info_pub = ros.publisher(CameraInfo, f"{NS}/camera_info", wait_s=30)
        feeding.set()

        def feed() -> None:  # 10 Hz camera until the test ends, so the worker is busy
            i = 0
            while feeding.is_set():
                stamp = 1.0 + 0.1 * i
                info_pub.publish(camera_info(seq.camera, stamp))
                image_pub.publish(array_to_image(seq.load_image(i % 10), header(stamp), "mono8"))
                i += 1
                time.sleep(0.1)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        time.sleep(2.0)  # a few frames in flight
        for k in range(count):
            os.killpg(proc.pid, signum)
            if k + 1 < count:
                time.sleep(0.05)  # the second one lands in the clean-up
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("the node did not stop within 30 s:\n" + log.read_text()[-3000:])
    finally:
        feeding.clear()
        if feeder is not None:
            feeder.join(timeout=5)
        ros.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text()
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
