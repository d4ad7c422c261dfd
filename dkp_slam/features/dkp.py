"""The project's learned detector: DKPNet (:mod:`dkp_slam.model`) behind the detector interface.

Grey uint8 image -> padded on the right/bottom to a multiple of 8 (edge replication) -> DKPNet
on the configured backend (``detector.dkp.backend``: torch, onnxruntime or tensorrt, see
:mod:`dkp_slam.model.backends`) -> cell-level NMS and top-k candidates with sub-pixel refinement
(:func:`~dkp_slam.model.dkpnet.extract_keypoints`) -> the shared border / NMS / bucketing /
budget selection -> descriptors sampled bilinearly at the kept keypoints. Keypoints are in the
pixel-centre convention of :mod:`dkp_slam.camera`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DetectorConfig
from ..model.backends import create_backend
from ..model.dkpnet import extract_keypoints, sample_descriptors
from ..model.weights import load_model
from .base import Detector

log = logging.getLogger(__name__)


class DKPDetector(Detector):
    """DKPNet with weights from ``conf.dkp.weights`` (empty: the shipped model)."""

    oversample = 2.0

    def __init__(self, conf: DetectorConfig, device: str = "cpu"):
        super().__init__(conf, device)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        self.net = load_model(conf.dkp.weights or None, self.device)
        d = conf.dkp
        if self.net.conf["peakiness"] and d.backend != "torch":
            log.warning("DKPNet with peakiness runs in torch: the ONNX exports have no "
                        "peakiness output (detector.dkp.backend=%s ignored)", d.backend)
            d = dataclasses.replace(d, backend="torch")
        self.backend = create_backend(d.backend, self.net, self.device, precision=d.precision,
                                      cuda_graphs=d.cuda_graphs, onnx_path=d.onnx,
                                      onnx_variant=d.onnx_variant, cache_dir=d.cache_dir,
                                      plugin_library=d.trt_plugin_library)
        self.num_candidates = max(int(conf.max_keypoints * self.oversample), 1)

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        h, w = image.shape
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        t = t.to(torch.float32).div_(255.0)[None, None]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            t = F.pad(t, (0, pw, 0, ph), mode="replicate")
        if self.net.conf["peakiness"]:  # peakiness scores are not an output of the exports
            out = self.net(t)
            kp, scores = extract_keypoints(out["scores"], self.num_candidates,
                                           self.conf.score_threshold,
                                           cell=self.conf.dkp.nms_cell)
        else:
            out = self.backend(t)
            # Rank on the logits: far from any corner the sigmoid underflows to exactly 0 in
            # float32, which would leave too few candidates to fill the budget on weak texture.
            thr = self.conf.score_threshold
            thr = math.log(thr / (1.0 - thr)) if 0.0 < thr < 1.0 else (-math.inf if thr <= 0
                                                                       else math.inf)
            kp, logits = extract_keypoints(out["score_logits"], self.num_candidates, thr,
                                           cell=self.conf.dkp.nms_cell)
            scores = torch.sigmoid(logits)
        kp = kp.cpu().numpy().astype(np.float32)
        scores = scores.cpu().numpy().astype(np.float32)
        if self.conf.dkp.min_texture > 0 and len(kp):
            textured = intensity_range(image, kp) >= self.conf.dkp.min_texture
            kp, scores = kp[textured], scores[textured]
        return kp, scores, (out["descriptor_map"], t.shape[2:])

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


def intensity_range(image: np.ndarray, keypoints: np.ndarray, radius: int = 2) -> np.ndarray:
    """(N,) max - min grey value of ``image`` in the (2 radius + 1)^2 window around each
    keypoint (rounded to the nearest pixel; edge pixels replicated).

    The network scores every image, also a flat one: zero padding makes the border of a
    constant image an edge, and its receptive field carries that far inside. A keypoint needs
    image texture under it, which this measures directly."""
    h, w = image.shape
    d = np.arange(-radius, radius + 1)
    rows = np.clip(np.rint(keypoints[:, 1]).astype(np.int64)[:, None] + d, 0, h - 1)
    cols = np.clip(np.rint(keypoints[:, 0]).astype(np.int64)[:, None] + d, 0, w - 1)
    patch = image[rows[:, :, None], cols[:, None, :]]  # clamped indices = replicated edges
    return patch.max(axis=(1, 2)).astype(np.int32) - patch.min(axis=(1, 2))
