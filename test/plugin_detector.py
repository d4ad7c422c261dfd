"""A detector plug-in that lives outside the package (issue 14): Shi-Tomasi corners described by
ORB's BRIEF. Loaded by ``DKP_SLAM_PLUGINS=plugin_detector`` (with this folder on PYTHONPATH) in
the CLI and the ROS node, or by importing it. One file: the class, its options (the
configuration section ``detector.shi_tomasi_orb``) and its registration."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dkp_slam.features.base import Detector
from dkp_slam.registry import DETECTORS
from dkp_slam.settings import setting

NAME = "shi-tomasi-orb"


@dataclass
class ShiTomasiOrbOptions:
    """Options of ``cv2.goodFeaturesToTrack``."""

    quality_level: float = setting(0.001, "corners weaker than this fraction of the strongest "
                                   "are dropped (qualityLevel)", range=(1e-6, 1.0))
    min_distance: int = setting(3, "minimum distance between corners in pixels (minDistance)",
                                range=(1, 100))


class ShiTomasiOrbDetector(Detector):
    """Shi-Tomasi corners (``cv2.goodFeaturesToTrack``, min-eigenvalue scores), upright 256-bit
    ORB descriptors."""

    binary = True
    options = ShiTomasiOrbOptions

    def __init__(self, conf, device: str = "cpu") -> None:
        super().__init__(conf, device)
        self.orb = cv2.ORB_create()

    def _detect(self, image):
        n = int(self.conf.max_keypoints * self.oversample)
        opts = self.conf.shi_tomasi_orb
        pts = cv2.goodFeaturesToTrack(image, maxCorners=n, qualityLevel=opts.quality_level,
                                      minDistance=opts.min_distance)
        pts = np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2)
        eig = cv2.cornerMinEigenVal(image, 3)
        scores = eig[np.rint(pts[:, 1]).astype(int), np.rint(pts[:, 0]).astype(int)]
        return pts.astype(np.float32), scores.astype(np.float32), None

    def _describe(self, image, keypoints, keep, state):
        kps = [cv2.KeyPoint(float(x), float(y), 31.0, 0.0, 0.0, 0, int(i))
               for i, (x, y) in zip(keep, keypoints[keep])]
        kps, desc = self.orb.compute(image, kps)
        kept = np.array([k.class_id for k in kps], dtype=np.int64)
        if desc is None:
            desc = np.zeros((0, 32), np.uint8)
        return keypoints, desc, kept

    @property
    def descriptor_size(self) -> int:
        return 32


DETECTORS.register(NAME, ShiTomasiOrbDetector)
