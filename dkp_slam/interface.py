"""The node's interface without ROS imports: topic names, its own parameters (``node.*``), the
parameter specs (defaults, descriptions, ranges, run-time policy) and their validation.

The front-end parameters are the core's (:class:`dkp_slam.config.FrontEndConfig`, dotted
names such as ``detector.max_keypoints``); the node's own parameters live under ``node.`` (a
key the core's YAML loader skips), so one parameters file configures both. Every leaf is
declared with :func:`dkp_slam.settings.setting` (description, choices or range, run-time
policy), and :mod:`dkp_slam.ros.node` turns those specs into ROS parameter descriptors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from .camera import DISTORTION_MODELS, Camera, CameraError
from .config import ConfigError, FrontEndConfig, flatten
from .settings import READ_ONLY, REBUILD, RUNTIME, Spec, markdown_table, setting, specs
from .timeline import TimeConfig

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
VINS_FEATURES_TOPIC = "~/vins_features"
DIAGNOSTICS_TOPIC = "/diagnostics"
RESET_SERVICE = "~/reset"

#: Prefix of the node's own parameters in the parameters file.
NODE_PREFIX = "node."


# ---------------------------------------------------------------------- node parameters
def _finite_numbers(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
           for v in value):
        return None
    return "must be a list of finite numbers"


@dataclass
class QosConfig:
    """QoS of the image and camera_info subscriptions (history: keep last)."""

    reliability: str = setting("best_effort", "best_effort (the sensor-data profile, default) or "
                               "reliable", choices=("best_effort", "reliable"), policy=READ_ONLY)
    depth: int = setting(5, "queue depth of the image and camera_info subscriptions",
                         range=(1, 1000), policy=READ_ONLY)


@dataclass
class CameraParamsConfig:
    """Where the intrinsics come from."""

    source: str = setting(
        "camera_info", "camera_info (the camera_info topic; frames are skipped until a valid one "
        "arrives), parameters (the values below) or none (homography-only: no relative pose)",
        choices=("camera_info", "parameters", "none"), policy=READ_ONLY)
    info_wait_s: float = setting(
        2.0, "the first frame waits this long (seconds) for the first CameraInfo, which it can "
        "overtake (another topic: DDS keeps no order between them), before it is skipped; "
        "once only", range=(0.0, 60.0), policy=READ_ONLY)
    rectified: bool = setting(False, "the images are rectified: use the 3x3 part of CameraInfo P "
                              "and no distortion instead of K and D", policy=READ_ONLY)
    width: int = setting(0, "image width in pixels (source parameters)", range=(0, 16384),
                         policy=READ_ONLY)
    height: int = setting(0, "image height in pixels (source parameters)", range=(0, 16384),
                          policy=READ_ONLY)
    fx: float = setting(0.0, "focal length x in pixels (source parameters)", range=(0.0, 1e6),
                        policy=READ_ONLY)
    fy: float = setting(0.0, "focal length y in pixels (source parameters)", range=(0.0, 1e6),
                        policy=READ_ONLY)
    cx: float = setting(0.0, "principal point x in pixels (source parameters)",
                        range=(-1e6, 1e6), policy=READ_ONLY)
    cy: float = setting(0.0, "principal point y in pixels (source parameters)",
                        range=(-1e6, 1e6), policy=READ_ONLY)
    distortion_model: str = setting(
        "plumb_bob", "plumb_bob, rational_polynomial, equidistant or none (source parameters)",
        choices=tuple(sorted(DISTORTION_MODELS)), policy=READ_ONLY)
    d: list = setting([0.0, 0.0, 0.0, 0.0, 0.0], "distortion coefficients in the order of "
                      "distortion_model (source parameters)", policy=READ_ONLY,
                      check=_finite_numbers)


@dataclass
class FramesConfig:
    """Frame ids (REP-103/105)."""

    odom: str = setting("odom", "frame of ~/odometry and of the TF parent (the first camera "
                        "pose)", policy=RUNTIME)
    camera: str = setting(
        "", "camera optical frame (x right, y down, z forward) of the features, the relative "
        "pose and the odometry child frame; empty = the image header's frame_id "
        "(camera_optical_frame when that is empty too)", policy=RUNTIME)


@dataclass
class DebugImageConfig:
    """The ``~/debug_image`` topic (drawn only while someone subscribes)."""

    enabled: bool = setting(True, "draw and publish debug images", policy=RUNTIME)
    max_rate_hz: float = setting(5.0, "at most this many debug images per second",
                                 range=(0.01, 100.0), policy=RUNTIME)


@dataclass
class NodeConfig:
    """Parameters of the ROS node itself (``node.*``)."""

    image_transport: str = setting(
        "raw", "raw (sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage on "
        "image/compressed)", choices=("raw", "compressed"), policy=READ_ONLY)
    qos: QosConfig = field(default_factory=QosConfig)
    camera: CameraParamsConfig = field(default_factory=CameraParamsConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    publish_tf: bool = setting(False, "broadcast odom -> camera on TF (needs tf2_ros)",
                               policy=RUNTIME)
    vins_features: bool = setting(
        False, "also publish ~/vins_features: the tracked features in VINS-Fusion / VINS-Mono's "
        "feature message (sensor_msgs/PointCloud of normalised points, channels id, u, v, "
        "velocity_x, velocity_y; dkp_slam.messages.vins), for a VINS estimator; needs "
        "intrinsics", policy=READ_ONLY)
    odometry_for_fusion: bool = setting(
        False, "~/odometry for a fusion back-end (robot_localization): the position keeps its "
        "value but its covariance says unknown (1e6: monocular odometry has no scale), the "
        "twist carries the angular velocity between consecutive frames with its covariance "
        "(dkp_slam.odometry.AngularVelocity) and an unknown linear velocity; false: the chained "
        "pose covariance in units of one step and no twist", policy=RUNTIME)
    debug_image: DebugImageConfig = field(default_factory=DebugImageConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    warm_up_frames: int = setting(
        3, "synthetic frames processed at start-up, before subscribing (at the camera's size "
        "when node.camera.source is parameters, else 640x480), so that the first real frame is "
        "answered at normal latency; 0 skips the warm-up", range=(0, 100), policy=READ_ONLY)
    queue_depth: int = setting(
        2, "frames that may wait for the worker; a frame arriving when this many wait replaces "
        "the oldest (counted dropped_busy). 1 keeps only the newest (lowest latency); 2 absorbs "
        "one slow frame at camera rate without a drop, at most one frame period of extra "
        "latency when the node is slower than the camera", range=(1, 100), policy=READ_ONLY)
    process_every_frame: bool = setting(
        False, "queue arriving frames (at most 1000, then the oldest is dropped) instead of "
        "node.queue_depth: every frame is processed, late when the node is slower than "
        "the camera (replaying a recording for evaluation, deterministic tests); without it the "
        "node falls behind by at most node.queue_depth frames", policy=READ_ONLY)
    max_image_pixels: int = setting(4096 * 4096, "larger images are rejected before decoding",
                                    range=(256, 16384 * 16384), policy=RUNTIME)
    diagnostics_period_s: float = setting(1.0, "period of /diagnostics", range=(0.05, 60.0),
                                          policy=READ_ONLY)
    log_throttle_s: float = setting(5.0, "repeated warnings (bad input, dropped frames) are "
                                    "logged at most this often", range=(0.0, 3600.0),
                                    policy=RUNTIME)

    def flat(self) -> dict[str, Any]:
        """Dotted names with the ``node.`` prefix, as the ROS parameters are named."""
        return flatten(dataclasses.asdict(self), NODE_PREFIX)

    @classmethod
    def from_flat(cls, params: dict[str, Any]) -> "NodeConfig":
        """Build from ``node.*`` values (other keys ignored); raise :class:`ConfigError`."""
        conf, table = cls(), specs(cls, NODE_PREFIX)
        for key, value in params.items():
            if not key.startswith(NODE_PREFIX):
                continue
            if key not in table:
                raise ConfigError(f"unknown parameter {key!r}")
            reason = table[key].why_invalid(value)
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


# ---------------------------------------------------------------------- specs and checks
def parameter_specs() -> list[Spec]:
    """Specs of every parameter the node declares: the core's, then ``node.*``; each
    description ends with what a change at run time does."""
    suffix = {REBUILD: " [run-time change rebuilds the front-end: tracking restarts]",
              RUNTIME: " [changeable at run time]", READ_ONLY: " [read-only: set at start-up]"}
    return [dataclasses.replace(spec, description=f"{spec.description}.{suffix[spec.policy]}")
            for spec in _all_specs().values()]


def parameter_table() -> str:
    """The table of every node parameter in docs/ROS.md (``python -m dkp_slam.interface``
    prints it; a test checks that the docs hold this very text)."""
    return markdown_table(_all_specs())


def parameter_policy(name: str) -> str:
    """:data:`RUNTIME`, :data:`REBUILD` or :data:`READ_ONLY` for a parameter name."""
    return _spec(name).policy


def check_parameter(name: str, value: Any) -> Optional[str]:
    """Why ``value`` is invalid for parameter ``name`` (type, choice or range), or None."""
    return _spec(name).why_invalid(value)


def _all_specs() -> dict[str, Spec]:
    """The core's specs, then ``node.*``'s, by parameter name."""
    return {**specs(FrontEndConfig), **specs(NodeConfig, NODE_PREFIX)}


def _spec(name: str) -> Spec:
    try:
        return _all_specs()[name]
    except KeyError:
        raise ConfigError(f"unknown parameter {name!r}") from None


def camera_from_parameters(conf: CameraParamsConfig) -> Camera:
    """The :class:`Camera` described by ``node.camera.*`` (source ``parameters``).

    Raises:
        ConfigError: the values do not describe a camera (with the reason).
    """
    dist = [float(v) for v in conf.d]
    model = conf.distortion_model if any(dist) else "none"
    try:
        camera = Camera(int(conf.width), int(conf.height), float(conf.fx), float(conf.fy),
                        float(conf.cx), float(conf.cy), model, dist if any(dist) else [])
    except CameraError as err:
        raise ConfigError(f"node.camera.*: {err}") from err
    problem = camera.implausible()
    if problem:
        raise ConfigError(f"node.camera.*: implausible intrinsics: {problem}")
    return camera


if __name__ == "__main__":
    print(parameter_table(), end="")

__all__ = ["NodeConfig", "Spec", "parameter_specs", "parameter_table", "check_parameter",
           "parameter_policy", "camera_from_parameters", "NODE_NAME", "RUNTIME", "REBUILD",
           "READ_ONLY"]
