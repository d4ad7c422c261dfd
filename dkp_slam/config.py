"""Front-end configuration: dataclasses with defaults, loadable from the YAML the ROS node uses.

One YAML file configures both the command-line tools and the ROS 2 node. It may be a plain
nested mapping (``detector: {name: orb, ...}``) or a ROS 2 parameters file, in which case the
mapping under the first ``ros__parameters`` key is used. Keys may also be dotted
(``detector.max_keypoints: 1000``), as ROS 2 flattens them. Unknown keys are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """Raised for unknown keys, wrong types or out-of-range values."""


@dataclass
class OrbConfig:
    """OpenCV ORB options (see ``cv2.ORB_create``)."""

    scale_factor: float = 1.2
    n_levels: int = 8
    fast_threshold: int = 20


@dataclass
class SiftConfig:
    """OpenCV SIFT options (see ``cv2.SIFT_create``)."""

    contrast_threshold: float = 0.04
    edge_threshold: float = 10.0
    n_octave_layers: int = 3


@dataclass
class DkpConfig:
    """DKPNet options.

    Attributes:
        weights: weight file; empty = the model shipped in the package (``dkp_slam/weights``),
            a bare file name = another shipped file, otherwise a path.
        nms_cell: keypoint extraction cell (pixels, 2 or 4): each cell keeps its best pixel
            and suppresses weaker cells in its 3x3-cell neighbourhood (NMS radius ``nms_cell``
            to ``2 nms_cell`` px).
        min_texture: keypoints need at least this grey-level range (0-255) in the 5x5 pixels
            around them; 0 disables. A constant or saturated image then has no keypoints.
        n_levels: image pyramid levels the network runs on (1 = the full image only). Level
            ``k`` is the image shrunk by ``scale_factor ** k``; its keypoints, mapped back to
            full-resolution pixels, compete with the other levels' for the budget (each level
            proposes candidates in proportion to its area), and are described from that
            level's descriptor map. Levels whose shorter side would be under 64 px are skipped.
        scale_factor: size ratio between pyramid levels (> 1).
        backend: inference backend: ``torch``, ``onnxruntime`` or ``tensorrt``
            (:mod:`dkp_slam.model.backends`; falls back tensorrt -> onnxruntime -> torch).
        precision: ``auto`` (fp16 for tensorrt, fp32 otherwise), ``fp32`` or ``fp16`` (CUDA
            only; deformable sampling stays fp32).
        cuda_graphs: replay a captured CUDA graph per input size (torch backend on CUDA).
        onnx: ONNX file for onnxruntime / tensorrt (``dkp-slam export``); empty = export the
            weights on first use into ``cache_dir``.
        onnx_variant: ``deformconv`` (ONNX DeformConv; onnxruntime, TensorRT >= 10.1) or
            ``decomposed`` (GridSample + 1x1 conv; TensorRT 8.5 / 8.6, JetPack 5 / 6.0).
        cache_dir: ONNX exports and TensorRT engines; empty = ``$DKP_SLAM_CACHE`` or
            ``~/.cache/dkp_slam``.
        trt_plugin_library: extra TensorRT plugin library (.so) loaded before the standard
            plugins; empty = none.
    """

    weights: str = ""
    nms_cell: int = 2
    min_texture: int = 4
    n_levels: int = 2
    scale_factor: float = 1.4142
    backend: str = "torch"
    precision: str = "auto"
    cuda_graphs: bool = False
    onnx: str = ""
    onnx_variant: str = "deformconv"
    cache_dir: str = ""
    trt_plugin_library: str = ""


@dataclass
class DetectorConfig:
    """Keypoint detection and description.

    Attributes:
        name: detector id: ``dkp`` (the project's DKPNet, the default), ``orb``, ``sift``, or a
            benchmark peer (``akaze``, ``aliked-t16``, ``aliked-n16``, ``disk``, ``xfeat``; see
            :mod:`dkp_slam.features.peers`).
        max_keypoints: keypoint budget per frame.
        nms_radius: extra non-maximum suppression radius in pixels over the detector's own
            (0 disables; ORB and SIFT already suppress non-maxima themselves).
        border: keypoints closer than this to the image border are dropped (pixels).
        grid_rows, grid_cols: grid bucketing for an even spread (0 disables): each cell gets an
            equal share of the budget first, the rest goes to the strongest remaining keypoints.
        score_threshold: keypoints with a lower detector score are dropped.
    """

    name: str = "dkp"
    max_keypoints: int = 1000
    nms_radius: int = 0
    border: int = 8
    grid_rows: int = 0
    grid_cols: int = 0
    score_threshold: float = 0.0
    orb: OrbConfig = field(default_factory=OrbConfig)
    sift: SiftConfig = field(default_factory=SiftConfig)
    dkp: DkpConfig = field(default_factory=DkpConfig)


@dataclass
class MatcherConfig:
    """Mutual-nearest-neighbour matching.

    Attributes:
        device: torch device of the front-end (``cpu``, ``cuda``, ``cuda:0``): the similarity
            matrix and the learned detectors run there.
        max_distance: reject float-descriptor matches with a larger L2 distance (0 = off).
        max_hamming: reject binary-descriptor matches with more differing bits (0 = off).
        ratio: Lowe's ratio test on distances, best / second best < ratio (1.0 = off).
    """

    device: str = "cpu"
    max_distance: float = 0.0
    max_hamming: int = 0
    ratio: float = 1.0


@dataclass
class GeometryConfig:
    """Two-view geometry by RANSAC.

    Attributes:
        ransac_method: ``magsac`` (OpenCV USAC MAGSAC++), ``usac_default`` (LO-RANSAC),
            ``usac_fast`` or ``ransac``.
        ransac_threshold_px: inlier threshold in (undistorted) pixels.
        ransac_confidence: RANSAC confidence.
        ransac_max_iters: iteration cap.
        min_inliers: fewer geometric inliers than this is a failure (FEW_MATCHES).
        min_parallax_px: median rotation-compensated flow below this (pixels) means the
            translation is unobservable: status LOW_PARALLAX, rotation only.
        model_selection: ``gric`` (Torr's GRIC picks homography or essential matrix),
            ``essential`` or ``homography`` (always that model).
        pixel_sigma: lower bound of the keypoint noise (pixels) used by GRIC; the noise is
            estimated from the epipolar residuals and never taken below this.
    """

    ransac_method: str = "magsac"
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    ransac_max_iters: int = 1000
    min_inliers: int = 15
    min_parallax_px: float = 1.0
    model_selection: str = "gric"
    pixel_sigma: float = 0.25


@dataclass
class TrackerConfig:
    """Tracking and keyframe policy.

    Attributes:
        reference: ``previous`` (pose relative to the previous frame) or ``keyframe``.
        keyframe_parallax_px: new keyframe when the median rotation-compensated flow to the
            keyframe exceeds this (pixels).
        keyframe_min_track_ratio: new keyframe when fewer than this share of the keyframe's
            keypoints are still tracked.
        keyframe_max_interval_s: new keyframe at least this often (seconds; 0 = off).
        lost_after: this many consecutive failed frames make the status LOST and reinitialise.
    """

    reference: str = "previous"
    keyframe_parallax_px: float = 30.0
    keyframe_min_track_ratio: float = 0.5
    keyframe_max_interval_s: float = 1.0
    lost_after: int = 3


@dataclass
class FrontEndConfig:
    """Everything the front-end needs; one section per concept."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FrontEndConfig":
        """Build from a nested and/or dotted mapping; validates the result."""
        conf = cls()
        for key, value in flatten(data or {}).items():
            set_by_path(conf, key, value)
        conf.validate()
        return conf

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None
                  ) -> "FrontEndConfig":
        """Load a YAML file (plain or ROS 2 parameters file), then apply ``overrides``.

        Keys under ``node`` (the ROS node's own parameters) and ROS built-ins such as
        ``use_sim_time`` are skipped; any other unknown key is an error.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        params = flatten(extract_ros_parameters(data))
        params = {k: v for k, v in params.items() if k.split(".")[0] not in ROS_ONLY_KEYS}
        params.update(flatten(overrides or {}))
        return cls.from_dict(params)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, as ROS 2 parameters are named."""
        return flatten(self.to_dict())

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`ConfigError` with a reason for any out-of-range value."""
        for key, value in self.flat().items():
            reason = check_value(key, value)
            if reason:
                raise ConfigError(f"{key}={value!r}: {reason}")


#: Top-level keys of a parameters file that belong to the ROS layer, not the front-end core.
ROS_ONLY_KEYS = {"node", "use_sim_time", "qos_overrides", "start_type_description_service"}

#: Allowed values / ranges; one place used by the dataclass validation and the ROS node's
#: parameter descriptors.
CHOICES: dict[str, tuple] = {
    "detector.name": ("orb", "sift", "dkp", "akaze", "aliked-t16", "aliked-n16", "disk", "xfeat"),
    "detector.dkp.nms_cell": (2, 4),
    "detector.dkp.backend": ("torch", "onnxruntime", "tensorrt"),
    "detector.dkp.precision": ("auto", "fp32", "fp16"),
    "detector.dkp.onnx_variant": ("deformconv", "decomposed"),
    "geometry.ransac_method": ("magsac", "usac_default", "usac_fast", "ransac"),
    "geometry.model_selection": ("gric", "essential", "homography"),
    "tracker.reference": ("previous", "keyframe"),
}
RANGES: dict[str, tuple[float, float]] = {
    "detector.max_keypoints": (1, 100000),
    "detector.nms_radius": (0, 50),
    "detector.border": (0, 200),
    "detector.grid_rows": (0, 64),
    "detector.grid_cols": (0, 64),
    "detector.score_threshold": (0.0, 1e9),
    "detector.orb.scale_factor": (1.01, 4.0),
    "detector.orb.n_levels": (1, 16),
    "detector.orb.fast_threshold": (1, 255),
    "detector.sift.contrast_threshold": (0.0, 1.0),
    "detector.sift.edge_threshold": (1.0, 100.0),
    "detector.sift.n_octave_layers": (1, 10),
    "detector.dkp.min_texture": (0, 255),
    "detector.dkp.n_levels": (1, 8),
    "detector.dkp.scale_factor": (1.05, 4.0),
    "matcher.max_distance": (0.0, 2.0),
    "matcher.max_hamming": (0, 512),
    "matcher.ratio": (0.1, 1.0),
    "geometry.ransac_threshold_px": (0.05, 50.0),
    "geometry.ransac_confidence": (0.5, 0.999999),
    "geometry.ransac_max_iters": (10, 1000000),
    "geometry.min_inliers": (8, 100000),
    "geometry.min_parallax_px": (0.0, 1000.0),
    "geometry.pixel_sigma": (0.01, 50.0),
    "tracker.keyframe_parallax_px": (0.0, 10000.0),
    "tracker.keyframe_min_track_ratio": (0.0, 1.0),
    "tracker.keyframe_max_interval_s": (0.0, 3600.0),
    "tracker.lost_after": (1, 1000),
}


def check_value(key: str, value: Any) -> str | None:
    """Return why ``value`` is invalid for ``key``, or None if it is fine."""
    if key in CHOICES and value not in CHOICES[key]:
        return f"must be one of {list(CHOICES[key])}"
    if key in RANGES:
        lo, hi = RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number in [{lo}, {hi}]"
        if not lo <= value <= hi:
            return f"must be in [{lo}, {hi}]"
    if key == "matcher.device" and not (value == "cpu" or str(value).startswith("cuda")):
        return "must be 'cpu' or 'cuda[:N]'"
    return None


# ---------------------------------------------------------------------- helpers
def extract_ros_parameters(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the mapping under the first ``ros__parameters`` key, or ``data`` itself."""
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a YAML mapping")
    if "ros__parameters" in data:
        return data["ros__parameters"] or {}
    for value in data.values():
        if isinstance(value, Mapping):
            found = extract_ros_parameters(value)
            if found is not value:
                return found
    return data


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; already dotted keys are kept."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def set_by_path(conf: Any, dotted: str, value: Any) -> None:
    """Set ``conf.a.b = value`` for ``dotted == "a.b"`` with a type check against the default."""
    *parents, leaf = dotted.split(".")
    obj = conf
    for part in parents:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise ConfigError(f"unknown config key {dotted!r}")
        obj = getattr(obj, part)
    names = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
    if leaf not in names:
        raise ConfigError(f"unknown config key {dotted!r}; known here: {sorted(names)}")
    current = getattr(obj, leaf)
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"config key {dotted!r} is a section, not a value")
    setattr(obj, leaf, coerce(dotted, current, value))


def coerce(key: str, default: Any, value: Any) -> Any:
    """Convert ``value`` to the type of ``default`` (int->float allowed), or raise."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: expected {type(default).__name__}, got {value!r}")
