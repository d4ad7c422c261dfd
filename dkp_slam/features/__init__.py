"""Keypoint detectors/descriptors. :func:`create_detector` maps a config name to a class."""

from __future__ import annotations

from ..config import DetectorConfig
from .base import Detector, select_keypoints
from .dkp import DKPDetector
from .opencv import OrbDetector, SiftDetector
from .peers import PEERS

DETECTORS: dict[str, type[Detector]] = {
    "orb": OrbDetector,
    "sift": SiftDetector,
    "dkp": DKPDetector,
    # Benchmark peers (AKAZE, ALIKED, DISK, XFeat); the learned ones import their optional
    # packages only when created.
    **PEERS,
}


def create_detector(conf: DetectorConfig, device: str = "cpu") -> Detector:
    """Instantiate the detector named by ``conf.name``; learned detectors run on ``device``."""
    try:
        cls = DETECTORS[conf.name]
    except KeyError:
        raise ValueError(f"unknown detector {conf.name!r}; available: {sorted(DETECTORS)}")
    return cls(conf, device)


__all__ = ["Detector", "DETECTORS", "create_detector", "select_keypoints"]
