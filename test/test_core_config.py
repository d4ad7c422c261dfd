"""Tests for dkp_slam.config: defaults, dict / dotted / YAML / ROS 2 params loading, validation."""

from __future__ import annotations

import pytest
import yaml

from dkp_slam.config import (ConfigError, FrontEndConfig, file_tag, method_config,
                             method_overrides)
from dkp_slam.registry import DETECTORS
from dkp_slam.settings import specs


def test_defaults_are_valid_and_consistent() -> None:
    conf = FrontEndConfig()
    conf.validate()  # must not raise
    flat = conf.flat()
    # Every leaf carries its own declaration, and the defaults pass it.
    assert list(specs(conf)) == list(flat)
    assert flat["detector.name"] in DETECTORS
    assert conf.detector.max_keypoints == flat["detector.max_keypoints"] == 1000
    assert conf.tracker.reference == "previous"
    assert FrontEndConfig.from_dict(None) == conf
    assert FrontEndConfig.from_dict({}) == conf
    # Instances do not share mutable sections.
    other = FrontEndConfig()
    other.detector.orb.n_levels = 3
    assert conf.detector.orb.n_levels == 1


def test_from_dict_nested_and_dotted() -> None:
    conf = FrontEndConfig.from_dict({
        "detector": {"name": "sift", "max_keypoints": 1500, "sift": {"n_octave_layers": 4}},
        "geometry.ransac_method": "ransac",
        "tracker.reference": "keyframe",
        "detector.orb.fast_threshold": 7,
    })
    assert conf.detector.name == "sift"
    assert conf.detector.max_keypoints == 1500
    assert conf.detector.sift.n_octave_layers == 4
    assert conf.detector.orb.fast_threshold == 7
    assert conf.geometry.ransac_method == "ransac"
    assert conf.tracker.reference == "keyframe"
    # Untouched values keep their defaults.
    assert conf.detector.border == 8
    assert conf.matcher.ratio == 1.0
    # Round trip through the flat and nested views.
    assert FrontEndConfig.from_dict(conf.flat()) == conf
    assert FrontEndConfig.from_dict(conf.to_dict()) == conf


def test_int_to_float_coercion_and_integral_float_to_int() -> None:
    conf = FrontEndConfig.from_dict({"geometry.ransac_threshold_px": 2,
                                     "matcher.ratio": 1, "detector.max_keypoints": 500.0})
    assert conf.geometry.ransac_threshold_px == 2.0
    assert isinstance(conf.geometry.ransac_threshold_px, float)
    assert isinstance(conf.matcher.ratio, float)
    assert conf.detector.max_keypoints == 500 and isinstance(conf.detector.max_keypoints, int)


def test_from_yaml_plain(tmp_path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({
        "detector": {"name": "orb", "max_keypoints": 2000, "orb": {"n_levels": 4}},
        "geometry": {"min_inliers": 30},
        "tracker.lost_after": 5,
    }))
    conf = FrontEndConfig.from_yaml(path)
    assert conf.detector.max_keypoints == 2000
    assert conf.detector.orb.n_levels == 4
    assert conf.geometry.min_inliers == 30
    assert conf.tracker.lost_after == 5
    # overrides win over the file
    conf = FrontEndConfig.from_yaml(path, overrides={"detector": {"max_keypoints": 10}})
    assert conf.detector.max_keypoints == 10
    assert conf.detector.orb.n_levels == 4


def test_from_yaml_empty_file_gives_defaults(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert FrontEndConfig.from_yaml(path) == FrontEndConfig()


def test_from_yaml_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        FrontEndConfig.from_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize("node_key", ["/**", "frontend_node"])
def test_from_yaml_ros2_params_file(tmp_path, node_key: str) -> None:
    text = f"""
{node_key!r}:
  ros__parameters:
    detector:
      name: sift
      max_keypoints: 1200
    detector.border: 12
    geometry.ransac_threshold_px: 2
    tracker:
      reference: keyframe
"""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    conf = FrontEndConfig.from_yaml(path)
    assert conf.detector.name == "sift"
    assert conf.detector.max_keypoints == 1200
    assert conf.detector.border == 12
    assert conf.geometry.ransac_threshold_px == 2.0
    assert isinstance(conf.geometry.ransac_threshold_px, float)
    assert conf.tracker.reference == "keyframe"


def test_from_yaml_ros2_unknown_key_still_rejected(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    detector:\n      max_keypoint: 5\n")
    with pytest.raises(ConfigError, match="detector.max_keypoint"):
        FrontEndConfig.from_yaml(path)


def test_from_yaml_not_a_mapping(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError):
        FrontEndConfig.from_yaml(path)


@pytest.mark.parametrize("data, key", [
    ({"detector": {"max_keypointz": 5}}, "detector.max_keypointz"),
    ({"detectorz.max_keypoints": 5}, "detectorz.max_keypoints"),
    ({"geometry.ransac_threshold": 1.0}, "geometry.ransac_threshold"),
    ({"detector.orb.nlevels": 3}, "detector.orb.nlevels"),
    ({"frobnicate": 1}, "frobnicate"),
])
def test_unknown_key_raises_with_name(data, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        FrontEndConfig.from_dict(data)


def test_section_used_as_value_raises() -> None:
    with pytest.raises(ConfigError, match="detector.orb"):
        FrontEndConfig.from_dict({"detector.orb": 3})


@pytest.mark.parametrize("key, value", [
    ("detector.max_keypoints", "many"),
    ("detector.max_keypoints", 10.5),
    ("detector.max_keypoints", True),
    ("detector.name", 3),
    ("geometry.ransac_threshold_px", "1.0"),
    ("geometry.ransac_threshold_px", None),
    ("matcher.ratio", [0.8]),
    ("tracker.lost_after", False),
])
def test_wrong_type_raises_with_name(key, value) -> None:
    with pytest.raises(ConfigError) as err:
        FrontEndConfig.from_dict({key: value})
    assert key in str(err.value)


@pytest.mark.parametrize("key, value", [
    ("detector.max_keypoints", 0),
    ("detector.max_keypoints", -5),
    ("detector.nms_radius", 51),
    ("detector.orb.scale_factor", 1.0),
    ("matcher.ratio", 1.5),
    ("matcher.ratio", 0.0),
    ("geometry.ransac_confidence", 1.0),
    ("geometry.min_inliers", 7),
    ("tracker.lost_after", 0),
    ("tracker.keyframe_min_track_ratio", 1.01),
])
def test_out_of_range_raises_with_name(key, value) -> None:
    with pytest.raises(ConfigError) as err:
        FrontEndConfig.from_dict({key: value})
    assert key in str(err.value)


@pytest.mark.parametrize("key, value", [
    ("detector.name", "surf"),
    ("geometry.ransac_method", "lmeds"),
    ("geometry.model_selection", "fundamental"),
    ("tracker.reference", "world"),
    ("matcher.device", "tpu"),
])
def test_bad_choice_raises_with_name(key, value) -> None:
    with pytest.raises(ConfigError) as err:
        FrontEndConfig.from_dict({key: value})
    assert key in str(err.value)


def test_range_bounds_are_inclusive() -> None:
    conf = FrontEndConfig.from_dict({"detector.max_keypoints": 1, "matcher.ratio": 0.1,
                                     "geometry.min_inliers": 8, "tracker.lost_after": 1})
    assert conf.detector.max_keypoints == 1
    assert conf.geometry.min_inliers == 8


def test_validate_catches_direct_mutation() -> None:
    conf = FrontEndConfig()
    conf.detector.max_keypoints = 0
    with pytest.raises(ConfigError, match="detector.max_keypoints"):
        conf.validate()


def test_benchmark_methods_carry_their_own_detector_options() -> None:
    assert method_overrides("orb") == {"detector.name": "orb"}
    assert method_overrides("dkp:weights=dkp_v3_rot.pt:n_levels=1") == {
        "detector.name": "dkp", "detector.dkp.weights": "dkp_v3_rot.pt",
        "detector.dkp.n_levels": 1}
    assert method_overrides("orb:n_levels=4") == {"detector.name": "orb",
                                                  "detector.orb.n_levels": 4}
    base = FrontEndConfig.from_dict({"detector.dkp.threads": 1, "matcher.ratio": 0.9})
    conf = method_config(base, "dkp:n_levels=1", max_keypoints=500)
    assert conf.detector.name == "dkp" and conf.detector.max_keypoints == 500
    assert conf.detector.dkp.n_levels == 1 and conf.detector.dkp.threads == 1
    assert conf.matcher.ratio == 0.9
    assert base.detector.dkp.n_levels == 2 and base.detector.max_keypoints == 1000  # unchanged
    with pytest.raises(ConfigError, match="detector.dkp.nope"):
        method_config(base, "dkp:nope=1")
    with pytest.raises(ConfigError, match="n_levels"):
        method_config(base, "dkp:n_levels=0")
    with pytest.raises(ConfigError, match="key=value"):
        method_overrides("dkp:n_levels")
    with pytest.raises(ConfigError, match="no detector name"):
        method_overrides(":n_levels=1")
    assert file_tag("dkp:weights=runs/a b/model.pt") == "dkp_weights_runs_a_b_model.pt"
