"""Packaging: the shipped parameters file, package.xml and the installed entry points."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from installed import executable, share_file

from dkp_slam.config import FrontEndConfig

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_yaml_equals_dataclass_defaults():
    assert FrontEndConfig.from_yaml(ROOT / "config" / "frontend.yaml") == FrontEndConfig()


def test_jetson_yaml_is_valid_overrides():
    """config/jetson.yaml (docker/jetson, docs/DEPLOY.md) names only valid parameters."""
    conf = FrontEndConfig.from_yaml(ROOT / "config" / "jetson.yaml")
    assert (conf.detector.name, conf.detector.dkp.backend, conf.matcher.device) == (
        "dkp", "tensorrt", "cuda")
    assert conf.geometry == FrontEndConfig().geometry  # everything else stays the default


def test_package_xml_declares_ament_python_and_runtime_deps():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "dkp_slam"
    deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_msgs", "std_srvs",
                "diagnostic_msgs", "rosgraph_msgs", "builtin_interfaces", "rcl_interfaces",
                "ament_index_python", "launch", "launch_ros", "python3-numpy", "python3-opencv",
                "python3-yaml", "python3-scipy", "python3-tqdm", "python3-matplotlib"):
        assert dep in deps
    # a build type, not a rosdep key: rosdep fails on it (scripts/ci/ros_workspace.sh runs rosdep)
    assert "ament_python" not in {e.text for e in root.iter() if e.tag.endswith("depend")}
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "dkp_slam").is_file()


def test_core_never_imports_ros():
    """Importing every core module must not pull in rclpy or message packages."""
    code = ("import sys, pkgutil, importlib, dkp_slam\n"
            "for m in pkgutil.walk_packages(dkp_slam.__path__, 'dkp_slam.'):\n"
            "    if not m.name.startswith('dkp_slam.ros'): importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'std_msgs')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cli_entry_point_installed():
    out = subprocess.run([str(executable("dkp-slam")), "--version"], capture_output=True,
                         text=True, check=True)
    assert "dkp_slam" in out.stdout


def test_installed_share_files_are_the_sources():
    """What colcon / pip install under share/dkp_slam is what the repository holds."""
    for parts in (("package.xml",), ("config", "frontend.yaml"), ("config", "jetson.yaml"),
                  ("launch", "frontend.launch.py")):
        assert share_file(*parts).read_bytes() == ROOT.joinpath(*parts).read_bytes(), parts
