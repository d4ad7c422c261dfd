"""Packaging: the shipped parameters file, package.xml and the installed entry points."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

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
                "diagnostic_msgs", "python3-numpy", "python3-opencv", "python3-yaml"):
        assert dep in deps
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
    exe = shutil.which("dkp-slam") or str(Path(sys.executable).parent / "dkp-slam")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert "dkp_slam" in out.stdout
