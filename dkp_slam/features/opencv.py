"""Classical OpenCV detectors behind the :class:`~dkp_slam.features.base.Detector` interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..registry import DETECTORS
from ..settings import setting
from .base import Detector


@dataclass
class OrbConfig:
    """OpenCV ORB options (see ``cv2.ORB_create``)."""

    scale_factor: float = setting(1.2, "ORB pyramid decimation ratio (cv2.ORB_create scaleFactor)",
                                  range=(1.01, 4.0))
    n_levels: int = setting(
        1, "ORB pyramid levels (cv2.ORB_create nlevels). 1 keeps every keypoint at full "
        "resolution, which frame-to-frame tracking needs (a keypoint of level k is "
        "scale_factor ** k px coarse); 8 (OpenCV's default) tolerates large scale changes "
        "between the images", range=(1, 16))
    fast_threshold: int = setting(20, "ORB FAST threshold (cv2.ORB_create fastThreshold)",
                                  range=(1, 255))


@dataclass
class SiftConfig:
    """OpenCV SIFT options (see ``cv2.SIFT_create``)."""

    contrast_threshold: float = setting(0.04, "SIFT contrast threshold (cv2.SIFT_create "
                                        "contrastThreshold)", range=(0.0, 1.0))
    edge_threshold: float = setting(10.0, "SIFT edge threshold (cv2.SIFT_create edgeThreshold)",
                                    range=(1.0, 100.0))
    n_octave_layers: int = setting(3, "SIFT layers per octave (cv2.SIFT_create nOctaveLayers)",
                                   range=(1, 10))


class _OpenCVDetector(Detector):
    """Shared glue: OpenCV keypoint lists <-> arrays."""

    def _create(self) -> Any:
        raise NotImplementedError

    def __init__(self, conf, device: str = "cpu"):
        super().__init__(conf, device)
        self.cv = self._create()

    def _detect(self, image):
        kps = self.cv.detect(image, None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        scores = np.array([k.response for k in kps], dtype=np.float32)
        return pts, scores, kps

    def _describe(self, image, keypoints, keep, state):
        selected = [state[i] for i in keep]
        for k, i in zip(selected, keep):
            k.class_id = int(i)  # survives compute(), which may drop or reorder keypoints
        selected, desc = self.cv.compute(image, selected)
        kept = np.array([k.class_id for k in selected], dtype=np.int64)
        if desc is None:
            desc = np.zeros((0, self.descriptor_size), dtype=self._dtype)
        return keypoints, self._post(desc), kept

    _dtype = np.float32

    def _post(self, desc: np.ndarray) -> np.ndarray:
        return desc


class OrbDetector(_OpenCVDetector):
    """OpenCV ORB: FAST corners + Harris score over a pyramid, 256-bit rBRIEF descriptors."""

    binary = True
    options = OrbConfig
    _dtype = np.uint8

    def _create(self):
        c = self.conf
        return cv2.ORB_create(
            nfeatures=int(c.max_keypoints * self.oversample), scaleFactor=c.orb.scale_factor,
            nlevels=c.orb.n_levels, fastThreshold=c.orb.fast_threshold,
            edgeThreshold=max(31, c.border), patchSize=31,
        )

    @property
    def descriptor_size(self) -> int:
        return 32


class SiftDetector(_OpenCVDetector):
    """OpenCV SIFT with RootSIFT-free plain L2-normalised 128-D float descriptors."""

    options = SiftConfig

    def _create(self):
        c = self.conf
        return cv2.SIFT_create(
            nfeatures=int(c.max_keypoints * self.oversample),
            nOctaveLayers=c.sift.n_octave_layers,
            contrastThreshold=c.sift.contrast_threshold, edgeThreshold=c.sift.edge_threshold,
        )

    def _post(self, desc):
        desc = desc.astype(np.float32)
        return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)

    @property
    def descriptor_size(self) -> int:
        return 128


DETECTORS.register("orb", OrbDetector)
DETECTORS.register("sift", SiftDetector)
