"""Front-end configuration: dataclasses with defaults, loadable from the YAML the ROS node uses.

One YAML file configures both the command-line tools and the ROS 2 node. It may be a plain
nested mapping (``detector: {name: orb, ...}``) or a ROS 2 parameters file, in which case the
mapping under the first ``ros__parameters`` key is used. Keys may also be dotted
(``detector.max_keypoints: 1000``), as ROS 2 flattens them. Unknown keys are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .registry import DETECTORS
from .settings import RUNTIME, setting, why_invalid


class ConfigError(ValueError):
    """Raised for unknown keys, wrong types or out-of-range values."""


def _torch_device(value: Any) -> str | None:
    if value == "cpu" or str(value).startswith("cuda"):
        return None
    return "must be 'cpu' or 'cuda[:N]'"


@dataclass
class DetectorConfig:
    """Keypoint detection and description: the options every detector shares, then one section
    per registered detector that declares its own (``detector.<section>.<option>``).

    A detector class names its options dataclass in ``Detector.options`` (fields declared with
    :func:`~dkp_slam.settings.setting`) in its own module; the section is the registered name
    with ``-`` replaced by ``_`` (``detector.orb``, ``detector.dkp``). ``DetectorConfig(...)``
    therefore builds an instance of a subclass with those sections
    (:func:`detector_config_class`), so plug-in detectors get theirs in the CLI's ``--set``, the
    YAML file, the ROS parameters and the docs like the shipped ones.
    """

    name: str = setting(
        "dkp", "detector: dkp (the project's DKPNet, the default), orb, sift, a benchmark peer "
        "(dkp_slam.features.peers) or a plug-in; any name in dkp_slam.registry.DETECTORS",
        choices=DETECTORS.names)
    max_keypoints: int = setting(1000, "keypoint budget per frame", range=(1, 100000))
    nms_radius: int = setting(
        0, "extra non-maximum suppression radius in pixels over the detector's own (0 disables; "
        "ORB and SIFT already suppress non-maxima themselves)", range=(0, 50))
    border: int = setting(8, "keypoints closer than this to the image border are dropped "
                          "(pixels)", range=(0, 200))
    grid_rows: int = setting(
        0, "grid bucketing rows for an even spread (0 disables): each cell gets an equal share "
        "of the budget first, the rest goes to the strongest remaining keypoints", range=(0, 64))
    grid_cols: int = setting(0, "grid bucketing columns (see grid_rows)", range=(0, 64))
    score_threshold: float = setting(0.0, "keypoints with a lower detector score are dropped",
                                     range=(0.0, 1e9))

    def __new__(cls, *args: Any, **kwargs: Any) -> "DetectorConfig":
        if cls is DetectorConfig:
            cls = detector_config_class()
        return super().__new__(cls)


def detector_section(name: str) -> str:
    """The configuration section of the detector registered as ``name``."""
    return name.replace("-", "_")


_DETECTOR_CONFIG_CLASSES: dict[tuple, type] = {}


def detector_config_class() -> type:
    """:class:`DetectorConfig` with one section per registered detector that declares options,
    in registration order (built once per set of registered detectors)."""
    sections = tuple((detector_section(name), cls.options) for name, cls in DETECTORS.items()
                     if getattr(cls, "options", None) is not None)
    if sections not in _DETECTOR_CONFIG_CLASSES:
        _DETECTOR_CONFIG_CLASSES[sections] = dataclasses.make_dataclass(
            "DetectorConfig", [(key, options, field(default_factory=options))
                               for key, options in sections],
            bases=(DetectorConfig,), namespace={"__doc__": DetectorConfig.__doc__,
                                                "__module__": __name__})
    return _DETECTOR_CONFIG_CLASSES[sections]


@dataclass
class MatcherConfig:
    """Mutual-nearest-neighbour matching."""

    device: str = setting(
        "cpu", "torch device of the front-end (cpu, cuda, cuda:0): the similarity matrix and the "
        "learned detectors run there", check=_torch_device)
    max_distance: float = setting(0.0, "reject float-descriptor matches with a larger L2 "
                                  "distance (0 = off)", range=(0.0, 2.0), policy=RUNTIME)
    max_hamming: int = setting(0, "reject binary-descriptor matches with more differing bits "
                               "(0 = off)", range=(0, 512), policy=RUNTIME)
    ratio: float = setting(1.0, "Lowe's ratio test on distances, best / second best < ratio "
                           "(1.0 = off)", range=(0.1, 1.0), policy=RUNTIME)


@dataclass
class GeometryConfig:
    """Two-view geometry by RANSAC."""

    ransac_method: str = setting(
        "magsac", "magsac (OpenCV USAC MAGSAC++), usac_default (LO-RANSAC), usac_fast or ransac",
        choices=("magsac", "usac_default", "usac_fast", "ransac"), policy=RUNTIME)
    ransac_threshold_px: float = setting(1.0, "inlier threshold in (undistorted) pixels",
                                         range=(0.05, 50.0), policy=RUNTIME)
    ransac_confidence: float = setting(0.999, "RANSAC confidence", range=(0.5, 0.999999),
                                       policy=RUNTIME)
    ransac_max_iters: int = setting(1000, "RANSAC iteration cap", range=(10, 1000000),
                                    policy=RUNTIME)
    min_inliers: int = setting(15, "fewer geometric inliers than this is a failure "
                               "(FEW_MATCHES)", range=(8, 100000), policy=RUNTIME)
    min_parallax_px: float = setting(
        1.0, "median rotation-compensated flow below this (pixels) means no translation: "
        "the motion is fitted as a rotation only, status LOW_PARALLAX", range=(0.0, 1000.0),
        policy=RUNTIME)
    min_translation_parallax_px: float = setting(
        2.0, "a translation is reported only from this much median rotation-compensated flow "
        "(pixels) on; from min_parallax_px to here the translating model's rotation is kept "
        "and the translation is unknown: status LOW_PARALLAX", range=(0.0, 1000.0),
        policy=RUNTIME)
    keypoint_bias_px: float = setting(
        0.05, "keypoint error shared by all matches (pixels; blur, interpolation, calibration) "
        "that more matches do not average away; with the independent noise estimated from the "
        "residuals it sets the pose covariance", range=(0.0, 10.0), policy=RUNTIME)
    max_direction_sigma_deg: float = setting(
        4.0, "a translation is reported only when its direction's standard deviation (pose "
        "covariance) is below this (degrees); otherwise the translating model's rotation is "
        "kept and the translation is unknown: status LOW_PARALLAX", range=(0.0, 180.0),
        policy=RUNTIME)
    model_selection: str = setting(
        "gric", "gric (Torr's GRIC picks homography or essential matrix), essential or "
        "homography (always that model)", choices=("gric", "essential", "homography"),
        policy=RUNTIME)
    pixel_sigma: float = setting(
        0.25, "lower bound of the keypoint noise (pixels) used by GRIC; the noise is estimated "
        "from the epipolar residuals and never taken below this", range=(0.01, 50.0),
        policy=RUNTIME)


@dataclass
class TrackerConfig:
    """Tracking and keyframe policy."""

    reference: str = setting("previous", "previous (pose relative to the previous frame) or "
                             "keyframe", choices=("previous", "keyframe"), policy=RUNTIME)
    keyframe_parallax_px: float = setting(
        30.0, "new keyframe when the median rotation-compensated flow to the keyframe exceeds "
        "this (pixels)", range=(0.0, 10000.0), policy=RUNTIME)
    keyframe_min_track_ratio: float = setting(
        0.5, "new keyframe when fewer than this share of what the first frame after the "
        "keyframe saw of it is still seen (inliers against the keyframe with reference "
        "keyframe, common tracks with previous)", range=(0.0, 1.0), policy=RUNTIME)
    keyframe_max_interval_s: float = setting(
        1.0, "new keyframe at least this often (seconds; 0 = off)", range=(0.0, 3600.0),
        policy=RUNTIME)
    rotation_anchor_parallax_px: float = setting(
        4.0, "with reference previous, a frame too close to the previous one for a translation "
        "(LOW_PARALLAX) takes its rotation from two estimates against an earlier frame with at "
        "least this much parallax to both (pixels; 0 = off)", range=(0.0, 10000.0),
        policy=RUNTIME)
    rotation_anchor_renew_px: float = setting(
        10.0, "a further such anchor frame is set once the parallax to the newest exceeds this "
        "(pixels)", range=(0.0, 10000.0), policy=RUNTIME)
    lost_after: int = setting(3, "this many consecutive failed frames make the status LOST and "
                              "reinitialise", range=(1, 1000), policy=RUNTIME)


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
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            reason = str(err).replace("\n", " ")
            raise ConfigError(f"cannot read config file {path}: {reason}") from None
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
        """Raise :class:`ConfigError` with a reason for any value its field does not allow."""
        reason = why_invalid(self, self.flat())
        if reason:
            raise ConfigError(reason)


#: Top-level keys of a parameters file that belong to the ROS layer, not the front-end core.
ROS_ONLY_KEYS = {"node", "use_sim_time", "qos_overrides", "start_type_description_service"}

def parse_set_options(items: Sequence[str]) -> dict[str, Any]:
    """``--set`` options, ``["detector.name=sift", "detector.max_keypoints=500"]``, as a dotted
    dict with YAML-typed values.

    Raises:
        ConfigError: an item without ``=``.
    """
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def method_overrides(method: str) -> dict[str, Any]:
    """The dotted config values a benchmark method names.

    A method is a registered detector, ``NAME``, optionally with options of that detector's own
    section, ``NAME:OPTION=VALUE[:OPTION=VALUE...]`` (values YAML-typed as in ``--set``): e.g.
    ``dkp:weights=dkp_v3_rot.pt`` or ``dkp:n_levels=1``, so one benchmark run can compare
    weights or settings of one detector. ``"dkp:n_levels=1"`` ->
    ``{"detector.name": "dkp", "detector.dkp.n_levels": 1}``.

    Raises:
        ConfigError: an empty name or an option without ``=``.
    """
    name, *options = method.split(":")
    if not name.strip():
        raise ConfigError(f"method {method!r}: no detector name")
    section = detector_section(name.strip())
    out: dict[str, Any] = {"detector.name": name.strip()}
    for key, value in parse_set_options(options).items():
        out[f"detector.{section}.{key}"] = value
    return out


def method_config(base: FrontEndConfig, method: str, **detector: Any) -> FrontEndConfig:
    """``base`` with the detector a benchmark method names (:func:`method_overrides`) and the
    further detector values ``detector`` (``max_keypoints=500``); validated, ``base`` unchanged.

    Raises:
        ConfigError: an unknown detector, option or value.
    """
    return FrontEndConfig.from_dict({**base.flat(), **method_overrides(method),
                                     **{f"detector.{k}": v for k, v in detector.items()}})


def file_tag(text: str) -> str:
    """``text`` (a benchmark method, an input's name) as a file-name part: characters other
    than letters, digits, ``.``, ``_`` and ``-`` become ``_`` (``dkp:weights=a/b.pt`` ->
    ``dkp_weights_a_b.pt``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> FrontEndConfig:
    """What every command line tool runs with: the defaults, then the YAML file (if any), then
    the ``--set KEY=VALUE`` overrides."""
    sets = parse_set_options(overrides)
    if path:
        return FrontEndConfig.from_yaml(path, sets)
    return FrontEndConfig.from_dict(sets)


# ---------------------------------------------------------------------- helpers
def extract_ros_parameters(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the mapping under the first ``ros__parameters`` key, or ``data`` itself."""
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a YAML mapping")
    if "ros__parameters" in data:
        params = data["ros__parameters"] or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"ros__parameters must be a mapping, got {params!r:.60}")
        return params
    for value in data.values():
        if isinstance(value, Mapping):
            found = extract_ros_parameters(value)
            if found is not value:
                return found
    return data


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; already dotted keys are kept."""
    out: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got "
                          f"{data!r:.60}")
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
