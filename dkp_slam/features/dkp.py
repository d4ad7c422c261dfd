"""The project's learned detector: DKPNet (:mod:`dkp_slam.model`) behind the detector interface.

Grey uint8 image -> padded on the right/bottom to a multiple of 8 (edge replication) -> DKPNet
-> cell-level NMS and top-k candidates with sub-pixel refinement
(:func:`~dkp_slam.model.dkpnet.extract_keypoints`) -> the shared border / NMS / bucketing /
budget selection -> descriptors sampled bilinearly at the kept keypoints. Keypoints are in the
pixel-centre convention of :mod:`dkp_slam.camera`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DetectorConfig
from ..model.dkpnet import extract_keypoints, sample_descriptors
from ..model.weights import load_model
from .base import Detector


class DKPDetector(Detector):
    """DKPNet with weights from ``conf.dkp.weights`` (empty: the shipped model)."""

    oversample = 2.0

    def __init__(self, conf: DetectorConfig, device: str = "cpu"):
        super().__init__(conf, device)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        self.net = load_model(conf.dkp.weights or None, self.device)
        self.num_candidates = max(int(conf.max_keypoints * self.oversample), 1)

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        h, w = image.shape
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        t = t.to(torch.float32).div_(255.0)[None, None]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            t = F.pad(t, (0, pw, 0, ph), mode="replicate")
        out = self.net(t)
        if self.net.conf["peakiness"]:
            kp, scores = extract_keypoints(out["scores"], self.num_candidates,
                                           self.conf.score_threshold)
        else:
            # Rank on the logits: far from any corner the sigmoid underflows to exactly 0 in
            # float32, which would leave too few candidates to fill the budget on weak texture.
            thr = self.conf.score_threshold
            thr = math.log(thr / (1.0 - thr)) if 0.0 < thr < 1.0 else (-math.inf if thr <= 0
                                                                       else math.inf)
            kp, logits = extract_keypoints(out["score_logits"], self.num_candidates, thr)
            scores = torch.sigmoid(logits)
        return (kp.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32),
                (out["descriptor_map"], t.shape[2:]))

    @torch.inference_mode()
    def _describe(self, image, keypoints, keep, state):
        desc_map, hw = state
        if len(keep) == 0:
            return keypoints, np.zeros((0, self.descriptor_size), np.float32), keep
        kp = torch.from_numpy(keypoints[keep]).to(self.device)[None]
        d = sample_descriptors(desc_map, kp, tuple(hw))[0]
        return keypoints, d.cpu().numpy().astype(np.float32), keep

    @property
    def descriptor_size(self) -> int:
        return int(self.net.conf["descriptor_dim"])
