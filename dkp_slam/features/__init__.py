"""Keypoint detectors/descriptors. Each detector module registers its classes in
:data:`dkp_slam.registry.DETECTORS`; :func:`create_detector` builds the one a config names."""

from __future__ import annotations

from ..config import DetectorConfig, FrontEndConfig, method_config
from ..registry import DETECTORS
from . import opencv, dkp, peers  # noqa: F401  (register orb, sift; dkp; the benchmark peers)
from .base import Detector, select_keypoints


def create_detector(conf: DetectorConfig, device: str = "cpu") -> Detector:
    """Instantiate the detector named by ``conf.name``; learned detectors run on ``device``.

    Raises:
        ValueError: no detector of that name is registered.
    """
    return DETECTORS.get(conf.name)(conf, device)


def create_method_detector(base: DetectorConfig, method: str, max_keypoints: int,
                           device: str = "cpu") -> Detector:
    """The detector a benchmark method names (``orb``, ``dkp:weights=dkp_v3_rot.pt``; see
    :func:`dkp_slam.config.method_overrides`) with ``base``'s other options and the budget
    ``max_keypoints``.

    Raises:
        ConfigError: an unknown detector, option or value.
    """
    conf = method_config(FrontEndConfig(detector=base), method, max_keypoints=max_keypoints)
    return create_detector(conf.detector, device)


__all__ = ["Detector", "DETECTORS", "create_detector", "create_method_detector",
           "select_keypoints"]
