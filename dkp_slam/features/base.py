"""The detector/descriptor interface and the keypoint selection every detector shares.

A detector maps a grey uint8 image to a dict:

- ``keypoints``: (N,2) float32 pixel coordinates ``(u, v)``, pixel-centre convention (the centre
  of the top-left pixel is ``(0, 0)``, see :mod:`dkp_slam.camera`);
- ``scores``: (N,) float32, higher is better;
- ``descriptors``: (N,D) float32 L2-normalised, or (N,B) uint8 packed binary descriptors
  (B bytes = 8B bits), which the matcher compares by Hamming distance.

Keypoints are sorted by decreasing score.
"""

from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np

from ..config import DetectorConfig


class Detector:
    """Base class. Subclasses implement :meth:`_detect` returning candidate keypoints/scores and
    :meth:`_describe` computing descriptors for the selected ones."""

    #: True when descriptors are packed binary strings (Hamming distance).
    binary: bool = False
    #: How many candidates to ask the underlying detector for, relative to the budget, so that
    #: NMS and bucketing have something to choose from.
    oversample: float = 2.0
    #: The detector's own options: a dataclass whose fields are declared with
    #: :func:`~dkp_slam.settings.setting`, or None. They become the configuration section
    #: ``detector.<registered name>`` (:class:`~dkp_slam.config.DetectorConfig`).
    options: Optional[type] = None

    def __init__(self, conf: DetectorConfig, device: str = "cpu"):
        """``device`` is the torch device of learned detectors; OpenCV ones ignore it."""
        self.conf = conf

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Detect and describe keypoints in a grey uint8 image (see module docstring)."""
        keypoints, scores, state = self._detect(image)
        keep = select_keypoints(keypoints, scores, image.shape, self.conf)
        keypoints, descriptors, keep = self._describe(image, keypoints, keep, state)
        order = np.argsort(-scores[keep], kind="stable")
        keep = keep[order]
        return {
            "keypoints": np.ascontiguousarray(keypoints[keep], dtype=np.float32),
            "scores": np.ascontiguousarray(scores[keep], dtype=np.float32),
            "descriptors": np.ascontiguousarray(descriptors[order]),
        }

    # -- to implement -------------------------------------------------------------
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """Return candidate keypoints (N,2), scores (N,) and detector state for describing."""
        raise NotImplementedError

    def _describe(self, image: np.ndarray, keypoints: np.ndarray, keep: np.ndarray, state: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Describe ``keypoints[keep]``; return (keypoints, descriptors aligned with the returned
        ``keep``, keep). A detector may drop keypoints it cannot describe."""
        raise NotImplementedError

    @property
    def descriptor_size(self) -> int:
        raise NotImplementedError


def select_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, image_shape: tuple[int, ...], conf: DetectorConfig
) -> np.ndarray:
    """Indices of the keypoints kept after border removal, NMS, bucketing and the budget.

    Args:
        keypoints: (N,2) candidate pixel coordinates.
        scores: (N,) detector scores (higher is better).
        image_shape: (H, W, ...) of the image.
        conf: ``border``, ``score_threshold``, ``nms_radius``, ``grid_rows/cols`` and
            ``max_keypoints`` are used.

    Returns:
        int64 indices into ``keypoints``, at most ``conf.max_keypoints`` of them.
    """
    h, w = image_shape[:2]
    n = len(keypoints)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    kp = np.asarray(keypoints, dtype=np.float64)
    b = conf.border
    valid = (
        (kp[:, 0] >= b) & (kp[:, 0] <= w - 1 - b) & (kp[:, 1] >= b) & (kp[:, 1] <= h - 1 - b)
        & (scores > conf.score_threshold) & np.isfinite(scores)
    )
    idx = np.flatnonzero(valid)
    if conf.nms_radius > 0 and idx.size:
        idx = idx[nms_mask(kp[idx], scores[idx], (h, w), conf.nms_radius)]
    if conf.grid_rows > 0 and conf.grid_cols > 0 and idx.size > conf.max_keypoints:
        return idx[bucket(kp[idx], scores[idx], (h, w), conf.grid_rows, conf.grid_cols,
                          conf.max_keypoints)]
    if idx.size > conf.max_keypoints:
        top = np.argpartition(-scores[idx], conf.max_keypoints - 1)[: conf.max_keypoints]
        # argpartition's order is numpy's implementation detail (it differs between numpy 1.x
        # and 2.x): image order keeps the keypoints, and everything after them, reproducible.
        idx = idx[np.sort(top)]
    return idx.astype(np.int64)


def nms_mask(keypoints: np.ndarray, scores: np.ndarray, shape: tuple[int, int], radius: int
             ) -> np.ndarray:
    """Boolean mask of keypoints that are the strongest within a (2r+1)^2 window.

    Scores are rasterised at the rounded keypoint positions and compared against their grey
    dilation, so the cost is one image-sized max filter regardless of the keypoint count. Ties
    are broken by candidate order (earlier wins).
    """
    h, w = shape
    n = len(scores)
    # Strictly increasing rank avoids ties: the raster holds rank+1, 0 where empty.
    rank = np.empty(n, dtype=np.float32)
    rank[np.lexsort((-np.arange(n), scores))] = np.arange(1, n + 1, dtype=np.float32)
    cols = np.clip(np.rint(keypoints[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.rint(keypoints[:, 1]).astype(np.int64), 0, h - 1)
    raster = np.zeros((h, w), dtype=np.float32)
    np.maximum.at(raster, (rows, cols), rank)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)
    local_max = cv2.dilate(raster, kernel)
    return rank >= local_max[rows, cols]


def bucket(keypoints: np.ndarray, scores: np.ndarray, shape: tuple[int, int], rows: int,
           cols: int, budget: int) -> np.ndarray:
    """Pick ``budget`` keypoints spread over a rows x cols grid.

    Every cell first contributes its strongest ``budget // (rows*cols)`` keypoints; the rest of
    the budget goes to the strongest remaining keypoints anywhere.
    """
    h, w = shape
    cell = (np.clip((keypoints[:, 1] * rows / h).astype(np.int64), 0, rows - 1) * cols
            + np.clip((keypoints[:, 0] * cols / w).astype(np.int64), 0, cols - 1))
    order = np.lexsort((-scores, cell))  # by cell, then by decreasing score
    sorted_cell = cell[order]
    first = np.searchsorted(sorted_cell, sorted_cell, side="left")
    rank_in_cell = np.arange(len(order)) - first
    quota = max(budget // (rows * cols), 1)
    chosen = order[rank_in_cell < quota]
    if len(chosen) > budget:
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")[:budget]]
    elif len(chosen) < budget:
        rest = order[rank_in_cell >= quota]
        rest = rest[np.argsort(-scores[rest], kind="stable")[: budget - len(chosen)]]
        chosen = np.concatenate([chosen, rest])
    return chosen
