"""The node's interface without ROS imports: topic names, its own parameters (``node.*``), the
parameter specs (defaults, descriptions, ranges, run-time policy) and their validation.

The front-end parameters are the core's (:class:`dkp_slam.config.FrontEndConfig`, dotted
names such as ``detector.max_keypoints``) with the ranges and choices of
:data:`dkp_slam.config.RANGES` / :data:`~dkp_slam.config.CHOICES`; the node's own parameters
live under ``node.`` (a key the core's YAML loader skips), so one parameters file configures
both. :mod:`dkp_slam.ros.node` turns the specs into ROS parameter descriptors.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..camera import DISTORTION_MODELS, Camera, CameraError
from ..config import CHOICES, RANGES, ConfigError, FrontEndConfig, check_value, flatten

#: Default node name (``ros2 run dkp_slam frontend_node`` and the launch file).
NODE_NAME = "frontend"

#: Input topics, relative to the node's namespace (remap them, e.g. ``image:=/cam/image_raw``).
IMAGE_TOPIC = "image"
COMPRESSED_IMAGE_TOPIC = "image/compressed"
CAMERA_INFO_TOPIC = "camera_info"
#: Output topics (``~/`` = private to the node) and the global diagnostics topic.
FEATURES_TOPIC = "~/features"
RELATIVE_POSE_TOPIC = "~/relative_pose"
ODOMETRY_TOPIC = "~/odometry"
STATUS_TOPIC = "~/status"
DEBUG_IMAGE_TOPIC = "~/debug_image"
DIAGNOSTICS_TOPIC = "/diagnostics"
RESET_SERVICE = "~/reset"

#: Prefix of the node's own parameters in the parameters file.
NODE_PREFIX = "node."


# ---------------------------------------------------------------------- node parameters
@dataclass
class QosConfig:
    """QoS of the image and camera_info subscriptions (history: keep last).

    Attributes:
        reliability: ``best_effort`` (the sensor-data profile, default) or ``reliable``.
        depth: queue depth of the subscriptions.
    """

    reliability: str = "best_effort"
    depth: int = 5


@dataclass
class CameraParamsConfig:
    """Where the intrinsics come from.

    Attributes:
        source: ``camera_info`` (the ``camera_info`` topic; frames are skipped until a valid
            one arrives), ``parameters`` (the values below) or ``none`` (homography-only: no
            relative pose).
        rectified: the images are rectified: use the 3x3 part of CameraInfo ``P`` and no
            distortion instead of ``K`` and ``D``.
        width, height: image size in pixels (source ``parameters``).
        fx, fy, cx, cy: intrinsics in pixels (source ``parameters``).
        distortion_model: ``plumb_bob``, ``rational_polynomial``, ``equidistant`` or ``none``
            (source ``parameters``).
        d: distortion coefficients in the order of ``distortion_model`` (source
            ``parameters``).
    """

    source: str = "camera_info"
    rectified: bool = False
    width: int = 0
    height: int = 0
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    distortion_model: str = "plumb_bob"
    d: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0])


@dataclass
class FramesConfig:
    """Frame ids (REP-103/105).

    Attributes:
        odom: frame of ``~/odometry`` and of the TF parent (the first camera pose).
        camera: camera optical frame (x right, y down, z forward) of the features, the
            relative pose and the odometry child frame; empty = the image header's
            ``frame_id`` (``camera_optical_frame`` when that is empty too).
    """

    odom: str = "odom"
    camera: str = ""


@dataclass
class DebugImageConfig:
    """The ``~/debug_image`` topic (drawn only while someone subscribes).

    Attributes:
        enabled: draw and publish debug images.
        max_rate_hz: at most this many debug images per second.
    """

    enabled: bool = True
    max_rate_hz: float = 5.0


@dataclass
class NodeConfig:
    """Parameters of the ROS node itself (``node.*``).

    Attributes:
        image_transport: ``raw`` (sensor_msgs/Image on ``image``) or ``compressed``
            (sensor_msgs/CompressedImage on ``image/compressed``).
        publish_tf: broadcast ``odom -> camera`` on TF (needs tf2_ros).
        max_image_pixels: larger images are rejected before decoding.
        diagnostics_period_s: period of ``/diagnostics``.
        log_throttle_s: repeated warnings (bad input, dropped frames) are logged at most
            this often.
    """

    image_transport: str = "raw"
    qos: QosConfig = field(default_factory=QosConfig)
    camera: CameraParamsConfig = field(default_factory=CameraParamsConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    publish_tf: bool = False
    debug_image: DebugImageConfig = field(default_factory=DebugImageConfig)
    max_image_pixels: int = 4096 * 4096
    diagnostics_period_s: float = 1.0
    log_throttle_s: float = 5.0

    def flat(self) -> dict[str, Any]:
        """Dotted names with the ``node.`` prefix, as the ROS parameters are named."""
        return flatten(dataclasses.asdict(self), NODE_PREFIX)

    @classmethod
    def from_flat(cls, params: dict[str, Any]) -> "NodeConfig":
        """Build from ``node.*`` values (other keys ignored); raise :class:`ConfigError`."""
        conf = cls()
        for key, value in params.items():
            if not key.startswith(NODE_PREFIX):
                continue
            reason = check_parameter(key, value)
            if reason:
                raise ConfigError(f"{key}={value!r}: {reason}")
            *parents, leaf = key[len(NODE_PREFIX):].split(".")
            obj = conf
            for part in parents:
                obj = getattr(obj, part)
            if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
                value = [float(v) for v in value]  # ROS double arrays -> list
            setattr(obj, leaf, value)
        return conf


NODE_CHOICES: dict[str, tuple] = {
    "node.image_transport": ("raw", "compressed"),
    "node.qos.reliability": ("best_effort", "reliable"),
    "node.camera.source": ("camera_info", "parameters", "none"),
    "node.camera.distortion_model": tuple(sorted(DISTORTION_MODELS)),
}
NODE_RANGES: dict[str, tuple[float, float]] = {
    "node.qos.depth": (1, 1000),
    "node.camera.width": (0, 16384),
    "node.camera.height": (0, 16384),
    "node.camera.fx": (0.0, 1e6),
    "node.camera.fy": (0.0, 1e6),
    "node.camera.cx": (-1e6, 1e6),
    "node.camera.cy": (-1e6, 1e6),
    "node.debug_image.max_rate_hz": (0.01, 100.0),
    "node.max_image_pixels": (256, 16384 * 16384),
    "node.diagnostics_period_s": (0.05, 60.0),
    "node.log_throttle_s": (0.0, 3600.0),
}

# ---------------------------------------------------------------------- run-time policy
#: Applied between two frames with the tracking state kept.
RUNTIME = "runtime"
#: Applied between two frames by building a new FrontEnd: tracking restarts (odometry stays
#: continuous).
REBUILD = "rebuild"
#: Fixed at start-up (ROS rejects changes: read-only descriptor).
READ_ONLY = "read_only"

_RUNTIME_CORE_PREFIXES = ("geometry.", "tracker.", "matcher.max_distance", "matcher.max_hamming",
                          "matcher.ratio")
_RUNTIME_NODE_PREFIXES = ("node.frames.", "node.publish_tf", "node.debug_image.",
                          "node.max_image_pixels", "node.log_throttle_s")


def parameter_policy(name: str) -> str:
    """:data:`RUNTIME`, :data:`REBUILD` or :data:`READ_ONLY` for a parameter name."""
    if name.startswith(NODE_PREFIX):
        return RUNTIME if name.startswith(_RUNTIME_NODE_PREFIXES) else READ_ONLY
    if name.startswith(_RUNTIME_CORE_PREFIXES):
        return RUNTIME
    return REBUILD  # detector.*, matcher.device


# ---------------------------------------------------------------------- specs and checks
@dataclass
class ParamSpec:
    """Everything a ROS parameter descriptor needs.

    Attributes:
        name: dotted parameter name.
        default: default value (its type is the parameter type).
        description: from the dataclass docstrings.
        choices: allowed values of a string parameter, or None.
        range: ``(lo, hi)`` of a numeric parameter, or None.
        policy: :data:`RUNTIME`, :data:`REBUILD` or :data:`READ_ONLY`.
    """

    name: str
    default: Any
    description: str
    choices: Optional[tuple] = None
    range: Optional[tuple[float, float]] = None
    policy: str = READ_ONLY

    @property
    def read_only(self) -> bool:
        return self.policy == READ_ONLY


def _attribute_docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` section of a dataclass docstring
    (``a, b: text`` documents both)."""
    doc = cls.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^\s{8}([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for name in current:
                out[name] = m.group(2).strip()
        elif line.strip() and current:
            for name in current:
                out[name] += " " + line.strip()
    return out


def _collect_docs(obj: Any, prefix: str, out: dict[str, str]) -> None:
    """Descriptions of every leaf of a config dataclass; fields without an ``Attributes:`` entry
    get the class summary line (e.g. ``OpenCV ORB options (see cv2.ORB_create)``)."""
    docs = _attribute_docs(type(obj))
    summary = (type(obj).__doc__ or "").strip().splitlines()[0].rstrip(".") \
        if type(obj).__doc__ else ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _collect_docs(value, f"{prefix}{f.name}.", out)
        else:
            out[f"{prefix}{f.name}"] = docs.get(f.name) or f"{summary}: {f.name}"


def parameter_specs() -> list[ParamSpec]:
    """Specs of every parameter the node declares: the core's, then ``node.*``."""
    docs: dict[str, str] = {}
    core, node = FrontEndConfig(), NodeConfig()
    _collect_docs(core, "", docs)
    _collect_docs(node, NODE_PREFIX, docs)
    specs = []
    for name, default in {**core.flat(), **node.flat()}.items():
        policy = parameter_policy(name)
        desc = docs.get(name, "")
        if policy == REBUILD:
            desc += " [run-time change rebuilds the front-end: tracking restarts]"
        elif policy == RUNTIME:
            desc += " [changeable at run time]"
        else:
            desc += " [read-only: set at start-up]"
        specs.append(ParamSpec(name, default, desc.strip(),
                               CHOICES.get(name) or NODE_CHOICES.get(name),
                               RANGES.get(name) or NODE_RANGES.get(name), policy))
    return specs


def check_parameter(name: str, value: Any) -> Optional[str]:
    """Why ``value`` is invalid for parameter ``name`` (type, choice or range), or None."""
    if name.startswith(NODE_PREFIX):
        if name in NODE_CHOICES and value not in NODE_CHOICES[name]:
            return f"must be one of {list(NODE_CHOICES[name])}"
        if name in NODE_RANGES:
            lo, hi = NODE_RANGES[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number in [{lo}, {hi}]"
            if not lo <= value <= hi:
                return f"must be in [{lo}, {hi}]"
        if name == "node.camera.d":
            if not all(isinstance(v, (int, float)) and v == v for v in value):
                return "must be a list of finite numbers"
        return None
    return check_value(name, value)


def camera_from_parameters(conf: CameraParamsConfig) -> Camera:
    """The :class:`Camera` described by ``node.camera.*`` (source ``parameters``).

    Raises:
        ConfigError: the values do not describe a camera (with the reason).
    """
    dist = [float(v) for v in conf.d]
    model = conf.distortion_model if any(dist) else "none"
    try:
        return Camera(int(conf.width), int(conf.height), float(conf.fx), float(conf.fy),
                      float(conf.cx), float(conf.cy), model, dist if any(dist) else [])
    except CameraError as err:
        raise ConfigError(f"node.camera.*: {err}") from err


__all__ = ["NodeConfig", "ParamSpec", "parameter_specs", "check_parameter", "parameter_policy",
           "camera_from_parameters", "NODE_NAME", "RUNTIME", "REBUILD", "READ_ONLY"]
