"""A detector added from outside the package (test/plugin_detector.py) runs through the CLI and
the ROS node, named only by ``DKP_SLAM_PLUGINS`` (dkp_slam.registry), and its own options
(``detector.shi_tomasi_orb.*``) are settable there like the shipped detectors' options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_data
from installed import executable
from ros_harness import (KITTI, ROOT, RosHarness, assert_cloud_equals_result, camera_info,
                         domain_id, header, stop_process, wait_for)

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dkp_slam.config import ConfigError, FrontEndConfig
from dkp_slam.datasets import load_kitti
from dkp_slam.frontend import FrontEnd
from dkp_slam.interface import parameter_specs
from dkp_slam.registry import DETECTORS, PLUGINS_ENV
from dkp_slam.ros.conversions import array_to_image, stamp_to_seconds

TEST_DIR = Path(__file__).resolve().parent
NAME = "shi-tomasi-orb"
#: A non-default value of the plug-in's own option, set through the CLI and the node.
MIN_DISTANCE = ("detector.shi_tomasi_orb.min_distance", 7)
DOMAIN = domain_id(17)


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TEST_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def test_unregistered_name_is_a_config_error_naming_the_registered_ones():
    with pytest.raises(ConfigError, match="must be one of .*'orb'"):
        FrontEndConfig.from_dict({"detector.name": "no-such-detector"})


def test_plugin_options_are_a_section_of_the_detector_config(registered_here):
    conf = FrontEndConfig.from_dict({"detector.name": NAME, MIN_DISTANCE[0]: MIN_DISTANCE[1]})
    assert conf.detector.shi_tomasi_orb.min_distance == 7 and conf.detector.orb.n_levels == 1
    with pytest.raises(ConfigError, match="min_distance=0: must be in"):
        FrontEndConfig.from_dict({MIN_DISTANCE[0]: 0})
    assert "detector.shi_tomasi_orb.quality_level" in {s.name for s in parameter_specs()}


def test_cli_runs_the_plugin_detector(tmp_path):
    args = [sys.executable, "-m", "dkp_slam.cli", "run", str(shared_data(*KITTI)),
            "--max-frames", "12", "--set", f"detector.name={NAME}", "--no-progress",
            "--set", f"{MIN_DISTANCE[0]}={MIN_DISTANCE[1]}",
            "--output", str(tmp_path / "run")]
    without = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True)
    # without the plug-in, its option section does not exist either
    assert without.returncode == 2 and MIN_DISTANCE[0] in without.stderr
    run = subprocess.run(args, cwd=ROOT, env=_env(**{PLUGINS_ENV: "plugin_detector"}),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["detector"] == NAME and summary["frames"] == 12
    assert summary["tracked_fraction"] > 0.9  # KITTI's first frames: corners track well
    assert summary["rot_err_median_deg"] < 0.5
    options = summary["config"]["detector"]["shi_tomasi_orb"]
    assert options == {"quality_level": 0.001, "min_distance": MIN_DISTANCE[1]}


@pytest.fixture
def registered_here():
    """The plug-in registered in this process too (for the reference run), then removed."""
    import plugin_detector

    DETECTORS.register(NAME, plugin_detector.ShiTomasiOrbDetector)
    yield
    DETECTORS.unregister(NAME)


def test_node_runs_the_plugin_detector(tmp_path, registered_here):
    seq = load_kitti(shared_data(*KITTI))
    log = tmp_path / "node.log"
    env = _env(**{PLUGINS_ENV: "plugin_detector"}, ROS_DOMAIN_ID=str(DOMAIN),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(executable("frontend_node")), "--ros-args", "-p",
                             f"detector.name:={NAME}", "-p", "node.qos.reliability:=reliable",
                             "-p", f"{MIN_DISTANCE[0]}:={MIN_DISTANCE[1]}"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    ros = RosHarness(DOMAIN)
    try:
        features = ros.subscribe(PointCloud2, "/frontend/features")
        image_pub = ros.publisher(Image, "/image", wait_s=60)
        info_pub = ros.publisher(CameraInfo, "/camera_info", wait_s=10)
        direct = FrontEnd(FrontEndConfig.from_dict({"detector.name": NAME,
                                                    MIN_DISTANCE[0]: MIN_DISTANCE[1]}),
                          seq.camera)
        for i in range(4):
            image = seq.load_image(i)
            tried = []

            def processed() -> bool:
                # each try a new stamp (a repeated one is rejected as a duplicate), all
                # before the next frame's
                stamp = stamp_to_seconds(header(float(seq.stamps[i]) + 1e-4 * len(tried)).stamp)
                tried.append(stamp)
                info_pub.publish(camera_info(seq.camera, stamp))
                image_pub.publish(array_to_image(image, header(stamp), "mono8"))
                return any(features.stamped(t) is not None for t in tried)

            assert wait_for(processed, 30, period=0.5), log.read_text()[-3000:]
            stamp = next(t for t in tried if features.stamped(t) is not None)
            ref = direct.process(image, stamp)
            assert_cloud_equals_result(features.stamped(stamp), ref)
    finally:
        ros.close()
        rc = stop_process(proc)
    assert rc == 0, log.read_text()[-3000:]
