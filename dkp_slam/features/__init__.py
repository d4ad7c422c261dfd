"""Keypoint detectors/descriptors. Each detector module registers its classes in
:data:`dkp_slam.registry.DETECTORS`; :func:`create_detector` builds the one a config names."""

from __future__ import annotations

from ..config import DetectorConfig
from ..registry import DETECTORS
from . import opencv, dkp, peers  # noqa: F401  (register orb, sift; dkp; the benchmark peers)
from .base import Detector, select_keypoints


def create_detector(conf: DetectorConfig, device: str = "cpu") -> Detector:
    """Instantiate the detector named by ``conf.name``; learned detectors run on ``device``.

    Raises:
        ValueError: no detector of that name is registered.
    """
    return DETECTORS.get(conf.name)(conf, device)


__all__ = ["Detector", "DETECTORS", "create_detector", "select_keypoints"]
