"""Random homographies and photometric changes: the synthetic image pairs of ``bench homography``
(:func:`dkp_slam.bench.pairs.synthetic_pairs`) and of training
(:class:`dkp_slam.training.data.HomographyPairs`) are drawn by the same functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .geometry import apply_homography
from .settings import increasing_pair, setting


@dataclass
class HomographyConfig:
    """Options of :func:`sample_homography` (the ``data.homography`` section of training)."""

    max_rotation_deg: float = setting(25.0, "rotation uniform in +- this (degrees)",
                                      range=(0.0, 180.0))
    scale_range: tuple = setting((0.8, 1.25), "[lo, hi] of the log-uniform scale",
                                 check=increasing_pair)
    max_translation: float = setting(0.1, "translation uniform in +- this x the image size",
                                     range=(0.0, 1.0))
    corner_perturbation: float = setting(
        0.15, "each corner moved by up to this x (W, H) (perspective, shear)", range=(0.0, 0.5))
    min_overlap: float = setting(0.6, "both images keep at least this share of each other",
                                 range=(0.0, 1.0))


def normalise_h(H: np.ndarray) -> np.ndarray:
    """Float64 copy of ``H`` scaled so that ``H[2, 2] == 1`` (unchanged if that is ~0)."""
    H = np.asarray(H, dtype=np.float64).reshape(3, 3)
    return H / H[2, 2] if abs(H[2, 2]) > 1e-12 else H.copy()


def sample_homography(rng: np.random.Generator, shape: tuple[int, int], *,
                      max_rotation_deg: float = HomographyConfig.max_rotation_deg,
                      scale_range: tuple[float, float] = HomographyConfig.scale_range,
                      max_translation: float = HomographyConfig.max_translation,
                      corner_perturbation: float = HomographyConfig.corner_perturbation,
                      min_overlap: float = HomographyConfig.min_overlap,
                      max_tries: int = 200) -> np.ndarray:
    """Random homography for an image of ``shape`` (H, W) that keeps most of it in view.

    Construction: a similarity about the image centre (rotation uniform in
    ``+-max_rotation_deg``, scale log-uniform in ``scale_range``, translation uniform in
    ``+-max_translation`` x the image size) is applied to the four image corners, then each
    corner is moved independently by up to ``corner_perturbation`` x (W, H) (uniform), which
    adds perspective and shear; H is the exact 4-point homography from the original corners.

    A sample is rejected and redrawn unless the warped corner quadrilateral is convex with the
    same orientation (no fold) and both overlap fractions (the share of image0 whose warp lands
    inside image1 and the share of image1 covered by the warp of image0, measured on a 32x32
    grid of pixel centres) are at least ``min_overlap``. After ``max_tries`` rejections the
    similarity of the last draw (no perspective) is returned.

    Returns:
        3x3 float64 homography (pixel-centre convention), ``H[2, 2] == 1``.
    """
    h, w = shape
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    gu, gv = np.meshgrid(np.linspace(0, w - 1, 32), np.linspace(0, h - 1, 32))
    grid = np.stack([gu.ravel(), gv.ravel()], 1)
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    A = np.eye(3)
    for _ in range(max_tries):
        theta = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
        s = float(np.exp(rng.uniform(lo, hi)))
        t = rng.uniform(-max_translation, max_translation, 2) * (w, h)
        R = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        A = np.eye(3)
        A[:2, :2] = R
        A[:2, 2] = c + t - R @ c
        dst = corners @ A[:2, :2].T + A[:2, 2]
        dst = dst + rng.uniform(-corner_perturbation, corner_perturbation, (4, 2)) * (w, h)
        if not _convex_same_orientation(dst):
            continue
        H = cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32))
        H = normalise_h(H)
        fwd = inside_image(apply_homography(H, grid), shape).mean()
        bwd = inside_image(apply_homography(np.linalg.inv(H), grid), shape).mean()
        if fwd >= min_overlap and bwd >= min_overlap:
            return H
    return A


def inside_image(points: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(N,) bool: points (N,2) inside an image of ``shape`` (H, W, ...): ``-0.5 <= u < W-0.5``
    and ``-0.5 <= v < H-0.5`` (pixel-centre convention; non-finite points are outside)."""
    h, w = int(shape[0]), int(shape[1])
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return ((p[:, 0] >= -0.5) & (p[:, 0] < w - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < h - 0.5))


def _convex_same_orientation(quad: np.ndarray) -> bool:
    """True if the quadrilateral (4,2), in order, is strictly convex and keeps the
    orientation of the image corners (clockwise in y-down pixel coordinates)."""
    e = np.roll(quad, -1, axis=0) - quad
    cross = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0))


def photometric_augment(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0
                        ) -> np.ndarray:
    """Random photometric change of a grey uint8 image (seeded by ``rng``).

    In order: contrast x U(1 -/+ 0.3 s) about the mean and brightness + U(+-30 s) grey levels;
    gamma U(1 -/+ 0.3 s) (log-uniform); with probability 0.5 a Gaussian blur of sigma
    U(0.3, 0.3 + 1.2 s); additive Gaussian noise of sigma U(0, 5 s) grey levels; with
    probability 0.5 a JPEG re-encoding at quality U(95 - 55 s, 95). ``strength`` s scales
    every magnitude (0 = no change).
    """
    if strength <= 0:
        return image.copy()
    s = float(strength)
    img = image.astype(np.float32)
    contrast = rng.uniform(1 - 0.3 * s, 1 + 0.3 * s)
    brightness = rng.uniform(-30 * s, 30 * s)
    img = (img - img.mean()) * contrast + img.mean() + brightness
    gamma = float(np.exp(rng.uniform(np.log(max(1 - 0.3 * s, 0.1)), np.log(1 + 0.3 * s))))
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** gamma
    if rng.uniform() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.3 + 1.2 * s))
    noise_sigma = rng.uniform(0, 5 * s)
    img = img + rng.normal(0.0, 1.0, img.shape).astype(np.float32) * noise_sigma
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if rng.uniform() < 0.5:
        quality = int(rng.uniform(max(95 - 55 * s, 5), 95))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


__all__ = ["sample_homography", "photometric_augment", "inside_image", "normalise_h"]
