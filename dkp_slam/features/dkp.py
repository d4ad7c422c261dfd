"""The project's learned detector: DKPNet (:mod:`dkp_slam.model`) behind the detector interface.

Grey uint8 image -> an image pyramid (``detector.dkp.n_levels`` levels, each shrunk by
``scale_factor`` with area interpolation; 2 levels of factor sqrt(2) by default) -> per level:
padded on the right/bottom to a multiple of 8 (edge replication), DKPNet on the configured
backend (``detector.dkp.backend``: torch, onnxruntime or tensorrt, see
:mod:`dkp_slam.model.backends`), cell-level NMS and top-k candidates with sub-pixel refinement
(:func:`~dkp_slam.model.dkpnet.extract_keypoints`), a candidate budget in proportion to the
level's area -> candidates mapped to full-resolution pixels and pooled -> the texture rule ->
the shared border / NMS / bucketing / budget selection -> each kept keypoint described
bilinearly from its own level's descriptor map. Keypoints are in the pixel-centre convention of
:mod:`dkp_slam.camera`.

The pyramid is what makes the single-scale network scale-tolerant: on the Oxford scenes with
zoom (boat) and viewpoint change (graf) one level loses most repeatability (docs/MODEL.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..config import DetectorConfig
from ..model.backends import create_backend
from ..model.dkpnet import extract_keypoints, sample_descriptors
from ..model.weights import load_model
from ..registry import BACKENDS, DETECTORS
from ..settings import setting
from .base import Detector

log = logging.getLogger(__name__)


@dataclass
class DkpConfig:
    """DKPNet options."""

    weights: str = setting(
        "", "weight file; empty = the model shipped in the package (dkp_slam/weights), a bare "
        "file name = another shipped file, otherwise a path")
    nms_cell: int = setting(
        2, "keypoint extraction cell (pixels, 2 or 4): each cell keeps its best pixel and "
        "suppresses weaker cells in its 3x3-cell neighbourhood (NMS radius nms_cell to "
        "2 nms_cell px)", choices=(2, 4))
    min_texture: int = setting(
        4, "keypoints need at least this grey-level range (0-255) in the 5x5 pixels around "
        "them; 0 disables. A constant or saturated image then has no keypoints", range=(0, 255))
    n_levels: int = setting(
        2, "image pyramid levels the network runs on (1 = the full image only). Level k is the "
        "image shrunk by scale_factor ** k; its keypoints, mapped back to full-resolution "
        "pixels, compete with the other levels' for the budget (each level proposes candidates "
        "in proportion to its area), and are described from that level's descriptor map. "
        "Levels whose shorter side would be under 64 px are skipped", range=(1, 8))
    scale_factor: float = setting(1.4142, "size ratio between pyramid levels (> 1)",
                                  range=(1.05, 4.0))
    backend: str = setting(
        "torch", "inference backend (dkp_slam.model.backends; falls back tensorrt -> "
        "onnxruntime -> torch)", choices=BACKENDS.names)
    precision: str = setting(
        "auto", "auto (fp16 for tensorrt, fp32 otherwise), fp32 or fp16 (CUDA only; deformable "
        "sampling stays fp32)", choices=("auto", "fp32", "fp16"))
    cuda_graphs: bool = setting(False, "replay a captured CUDA graph per input size (torch "
                                "backend on CUDA)")
    onnx: str = setting("", "ONNX file for onnxruntime / tensorrt (dkp-slam export); empty = "
                        "export the weights on first use into cache_dir")
    onnx_variant: str = setting(
        "deformconv", "deformconv (ONNX DeformConv; onnxruntime, TensorRT >= 10.1) or "
        "decomposed (GridSample + 1x1 conv; TensorRT 8.5 / 8.6, JetPack 5 / 6.0)",
        choices=("deformconv", "decomposed"))
    cache_dir: str = setting("", "ONNX exports and TensorRT engines; empty = $DKP_SLAM_CACHE or "
                             "~/.cache/dkp_slam")
    trt_plugin_library: str = setting("", "extra TensorRT plugin library (.so) loaded before the "
                                      "standard plugins; empty = none")
    threads: int = setting(
        0, "CPU threads of the network: torch's intra-op threads (set for the whole process; "
        "onnxruntime uses as many); 0 = torch's default, one per core. On a CPU shared with "
        "other work fewer threads degrade more gracefully (docs/ROS.md)", range=(0, 256))


class DKPDetector(Detector):
    """DKPNet with weights from ``conf.dkp.weights`` (empty: the shipped model)."""

    options = DkpConfig
    oversample = 2.0
    #: shorter side (px) below which pyramid levels are left out
    min_level_side = 64

    def __init__(self, conf: DetectorConfig, device: str = "cpu"):
        super().__init__(conf, device)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        d = conf.dkp
        if d.threads:
            torch.set_num_threads(d.threads)
        self.net = load_model(d.weights or None, self.device)
        if self.net.conf["peakiness"] and d.backend != "torch":
            log.warning("DKPNet with peakiness runs in torch: the ONNX exports have no "
                        "peakiness output (detector.dkp.backend=%s ignored)", d.backend)
            d = dataclasses.replace(d, backend="torch")
        self.backend = create_backend(d.backend, self.net, self.device, precision=d.precision,
                                      cuda_graphs=d.cuda_graphs, onnx_path=d.onnx,
                                      onnx_variant=d.onnx_variant, cache_dir=d.cache_dir,
                                      plugin_library=d.trt_plugin_library,
                                      any_size=d.n_levels > 1)
        self.num_candidates = max(int(conf.max_keypoints * self.oversample), 1)

    def pyramid(self, height: int, width: int) -> list[tuple[int, int]]:
        """(height, width) of each pyramid level the network runs on for an image of this
        size: level 0 is the image, level k is shrunk by ``scale_factor ** k``; levels whose
        shorter side would be under :attr:`min_level_side` px are left out."""
        sizes = [(height, width)]
        for k in range(1, self.conf.dkp.n_levels):
            s = self.conf.dkp.scale_factor ** -k
            h, w = round(height * s), round(width * s)
            if min(h, w) < self.min_level_side:
                break
            sizes.append((h, w))
        return sizes

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        h, w = image.shape
        levels, kps, scores, level_of = [], [], [], []
        for k, (lh, lw) in enumerate(self.pyramid(h, w)):
            level = image if k == 0 else cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
            budget = max(int(round(self.num_candidates * lh * lw / (h * w))), 1)
            kp, sc, desc_map, hw = self._detect_level(level, budget)
            # Level pixel centres -> image pixel centres: (u + 0.5) * W / w - 0.5.
            scale = np.array([w / lw, h / lh], np.float32)
            levels.append((desc_map, hw, scale))
            kps.append((kp + 0.5) * scale - 0.5)
            scores.append(sc)
            level_of.append(np.full(len(kp), k, np.int64))
        kp, sc, level_of = np.concatenate(kps), np.concatenate(scores), np.concatenate(level_of)
        if self.conf.dkp.min_texture > 0 and len(kp):
            textured = intensity_range(image, kp) >= self.conf.dkp.min_texture
            kp, sc, level_of = kp[textured], sc[textured], level_of[textured]
        return kp, sc, (levels, level_of)

    def _detect_level(self, image: np.ndarray, num_candidates: int
                      ) -> tuple[np.ndarray, np.ndarray, torch.Tensor, tuple[int, int]]:
        """Candidates of one pyramid level: keypoints (N,2) and scores (N,) in that level's
        pixels, its descriptor map and the (padded) network input size."""
        h, w = image.shape
        # torch wants a writable array: images decoded from message buffers are read-only
        # (numpy < 2 keeps frombuffer's flag through the grey conversion).
        image = np.ascontiguousarray(image)
        t = torch.from_numpy(image if image.flags.writeable else image.copy()).to(self.device)
        t = t.to(torch.float32).div_(255.0)[None, None]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            t = F.pad(t, (0, pw, 0, ph), mode="replicate")
        if self.net.conf["peakiness"]:  # peakiness scores are not an output of the exports
            out = self.net(t)
            kp, scores = extract_keypoints(out["scores"], num_candidates,
                                           self.conf.score_threshold,
                                           cell=self.conf.dkp.nms_cell)
        else:
            out = self.backend(t)
            # Rank on the logits: far from any corner the sigmoid underflows to exactly 0 in
            # float32, which would leave too few candidates to fill the budget on weak texture.
            thr = self.conf.score_threshold
            thr = math.log(thr / (1.0 - thr)) if 0.0 < thr < 1.0 else (-math.inf if thr <= 0
                                                                       else math.inf)
            kp, logits = extract_keypoints(out["score_logits"], num_candidates, thr,
                                           cell=self.conf.dkp.nms_cell)
            scores = torch.sigmoid(logits)
        kp = kp.cpu().numpy().astype(np.float32)
        # Padding pixels are not image: keypoints there (beyond the last row / column) go.
        inside = (kp[:, 0] <= w - 1) & (kp[:, 1] <= h - 1)
        scores = scores.cpu().numpy().astype(np.float32)
        return kp[inside], scores[inside], out["descriptor_map"], tuple(t.shape[2:])

    @torch.inference_mode()
    def _describe(self, image, keypoints, keep, state):
        levels, level_of = state
        kept_level = level_of[keep]
        desc = np.zeros((len(keep), self.descriptor_size), np.float32)
        for k, (desc_map, hw, scale) in enumerate(levels):
            rows = np.flatnonzero(kept_level == k)
            if len(rows) == 0:
                continue
            kp = (keypoints[keep[rows]] + 0.5) / scale - 0.5  # back to the level's pixels
            kp = torch.from_numpy(np.ascontiguousarray(kp, np.float32)).to(self.device)[None]
            desc[rows] = sample_descriptors(desc_map, kp, hw)[0].cpu().numpy()
        return keypoints, desc, keep

    @property
    def descriptor_size(self) -> int:
        return int(self.net.conf["descriptor_dim"])


DETECTORS.register("dkp", DKPDetector)


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
