"""launch/frontend.launch.py cannot run here (launch_ros is not on PyPI), so it is parsed and
what it wires is checked against the package: the executable is a console script of
setup.py, the default parameters file is installed by setup.py's data_files, the remapped
topics are the node's topic names, and every LaunchConfiguration is declared."""

from __future__ import annotations

import ast
import glob
import importlib.metadata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dkp_slam.interface import (CAMERA_INFO_TOPIC, COMPRESSED_IMAGE_TOPIC, IMAGE_TOPIC,
                                    NODE_NAME)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "frontend.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and
            getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call: ast.Call, name: str) -> ast.AST:
    return next(k.value for k in call.keywords if k.arg == name)


def _const(node: ast.AST):
    assert isinstance(node, ast.Constant), ast.dump(node)
    return node.value


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    source = LAUNCH.read_text()
    compile(source, str(LAUNCH), "exec")
    return ast.parse(source)


@pytest.fixture(scope="module")
def setup_py() -> dict:
    """console_scripts and data_files of setup.py, evaluated from its AST."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}

    def value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(str(value(v.value if isinstance(v, ast.FormattedValue) else v))
                           for v in node.values)
        if isinstance(node, ast.Name):
            return consts[node.id]
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glob":
            return sorted(str(Path(p)) for p in glob.glob(str(ROOT / value(node.args[0]))))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "sorted":
            return sorted(value(node.args[0]))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        raise AssertionError(ast.dump(node))

    (setup_call,) = _calls(tree, "setup")
    data_files = {dest: [str(Path(f)) for f in files]
                  for dest, files in value(_kw(setup_call, "data_files"))}
    scripts = value(_kw(setup_call, "entry_points"))["console_scripts"]
    return {"package": consts["PACKAGE"], "data_files": data_files,
            "console_scripts": dict(s.replace(" ", "").split("=") for s in scripts)}


def test_node_executable_is_the_console_script(launch_tree, setup_py):
    (node,) = _calls(launch_tree, "Node")
    package = _const(_kw(node, "package"))
    executable = _const(_kw(node, "executable"))
    assert package == setup_py["package"] == ET.parse(ROOT / "package.xml").findtext("name")
    assert setup_py["console_scripts"][executable] == "dkp_slam.ros.node:main"
    assert _const(_kw(node, "name")) == NODE_NAME
    node_py = ast.parse((ROOT / "dkp_slam" / "ros" / "node.py").read_text())
    assert any(isinstance(f, ast.FunctionDef) and f.name == "main" for f in node_py.body)
    # The installed metadata (pip install -e .) has it too: `ros2 run dkp_slam frontend_node`.
    eps = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert eps.get(executable) == "dkp_slam.ros.node:main"


def test_default_params_file_and_launch_file_are_installed(launch_tree, setup_py):
    declared = {_const(c.args[0]): c for c in _calls(launch_tree, "DeclareLaunchArgument")}
    default = _kw(declared["params_file"], "default_value")
    assert isinstance(default, ast.Call) and default.func.id == "PathJoinSubstitution"
    share, *parts = default.args[0].elts
    assert share.func.id == "FindPackageShare" and _const(share.args[0]) == "dkp_slam"
    rel = [_const(p) for p in parts]
    dest = f"share/{setup_py['package']}/" + "/".join(rel[:-1])
    assert str(ROOT / "config" / rel[-1]) in setup_py["data_files"][dest]
    assert str(LAUNCH) in setup_py["data_files"][f"share/{setup_py['package']}/launch"]


def test_remappings_are_the_node_topics(launch_tree):
    (node,) = _calls(launch_tree, "Node")
    remaps = {_const(t.elts[0]): t.elts[1] for t in _kw(node, "remappings").elts}
    assert set(remaps) == {IMAGE_TOPIC, COMPRESSED_IMAGE_TOPIC, CAMERA_INFO_TOPIC}
    # image/compressed follows the image argument: [image, "/compressed"].
    compressed = remaps[COMPRESSED_IMAGE_TOPIC]
    assert isinstance(compressed, ast.List) and _const(compressed.elts[1]) == "/compressed"


def test_every_launch_configuration_is_declared(launch_tree):
    declared = {_const(c.args[0]) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    used = {_const(c.args[0]) for c in _calls(launch_tree, "LaunchConfiguration")}
    assert used <= declared
    assert {"image", "camera_info", "namespace", "use_sim_time", "params_file"} <= declared
    (node,) = _calls(launch_tree, "Node")
    params = _kw(node, "parameters").elts
    assert isinstance(params[1], ast.Dict) and _const(params[1].keys[0]) == "use_sim_time"


def test_launch_dependencies_are_declared(launch_tree):
    imported = {n.module.split(".")[0] for n in ast.walk(launch_tree)
                if isinstance(n, ast.ImportFrom)}
    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}
    assert imported == {"launch", "launch_ros"} and imported <= deps


def test_dds_profile_is_installed_and_given_to_what_the_launch_starts(launch_tree, setup_py):
    """The shipped Fast DDS profile (docs/ROS.md, "Frame delivery") is installed, is the
    default of ``dds_profile`` and is set under both Fast DDS names before the node starts."""
    declared = {_const(c.args[0]): c for c in _calls(launch_tree, "DeclareLaunchArgument")}
    default = _kw(declared["dds_profile"], "default_value")
    assert [_const(a) for a in default.args[0].elts[1:]] == ["config", "fastdds_frontend.xml"]
    config = setup_py["data_files"][f"share/{setup_py['package']}/config"]
    assert str(ROOT / "config" / "fastdds_frontend.xml") in config
    source = LAUNCH.read_text()
    assert source.index("SetEnvironmentVariable(") < source.index("Node(")
    for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        assert f'"{name}"' in source
    import xml.etree.ElementTree as ET

    root = ET.parse(ROOT / "config" / "fastdds_frontend.xml").getroot()
    ns = {"p": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    assert int(root.find(".//p:transport_descriptor[p:type='SHM']/p:segment_size", ns).text) \
        >= 16 * 2.76e6  # frames of 1280x720 bgr8 in flight
