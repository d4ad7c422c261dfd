"""Image pairs related by a known homography, for the detector/descriptor benchmark.

Two sources:

- :func:`load_hpatches`: any folder in the HPatches layout (one sub-folder per scene holding
  ``1.ppm|png`` .. ``6.ppm|png`` and ``H_1_2`` .. ``H_1_6``, 3x3 text matrices mapping pixels of
  image 1 to image k), e.g. the Oxford affine dataset under ``../shared/data/homography/oxford``;
- :func:`synthetic_pairs`: photographs warped by random homographies, with photometric changes
  on the second image.

Every homography ``H_0_1`` maps pixel coordinates of ``image0`` to ``image1`` in the
pixel-centre convention used throughout the project and by OpenCV: the centre of the top-left
pixel is ``(0, 0)``, so a pixel ``(u, v)`` covers ``[u-0.5, u+0.5] x [v-0.5, v+0.5]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from ..geometry import apply_homography

PathLike = Union[str, Path]

#: Image file extensions tried, in order, for the HPatches layout.
HPATCHES_EXTENSIONS: tuple[str, ...] = (".ppm", ".png", ".jpg", ".jpeg", ".pgm")
#: Photograph extensions picked up by :func:`synthetic_pairs`.
PHOTO_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp")


@dataclass
class HomographyPair:
    """Two grey images and the homography between them.

    Attributes:
        image0, image1: grey uint8 images (H x W each; the sizes may differ).
        H_0_1: 3x3 float64, maps pixels of ``image0`` to ``image1`` (pixel-centre convention),
            normalised so that ``H_0_1[2, 2] == 1``.
        name: unique pair id, e.g. ``graf/1-3`` or ``synthetic/0007``.
        scene: scene (HPatches sub-folder) or ``synthetic``.
    """

    image0: np.ndarray
    image1: np.ndarray
    H_0_1: np.ndarray
    name: str
    scene: str


# ====================================================================== helpers
def read_gray(path: PathLike) -> np.ndarray:
    """Read an image file as grey uint8; raises ``FileNotFoundError`` if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def scale_matrix(sx: float, sy: float) -> np.ndarray:
    """3x3 matrix of an image resize by factors ``(sx, sy)`` in the pixel-centre convention.

    A resize maps pixel edges onto pixel edges, so a point ``p`` goes to ``(p + 0.5) * s - 0.5``
    (not ``p * s``): the centre of the top-left pixel moves unless ``s == 1``.
    """
    return np.array([[sx, 0.0, 0.5 * sx - 0.5],
                     [0.0, sy, 0.5 * sy - 0.5],
                     [0.0, 0.0, 1.0]])


def resize_max_side(image: np.ndarray, resize_max: Optional[int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``image`` so that its longer side is at most ``resize_max`` (never enlarges).

    Returns:
        the (possibly) resized image and the 3x3 :func:`scale_matrix` mapping old pixel
        coordinates to new ones (identity when unchanged). The scale factors are the exact
        ratios of the integer sizes, per axis.
    """
    h, w = image.shape[:2]
    if not resize_max or max(h, w) <= resize_max:
        return image, np.eye(3)
    f = resize_max / max(h, w)
    nw, nh = max(int(round(w * f)), 1), max(int(round(h * f)), 1)
    out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, scale_matrix(nw / w, nh / h)


def normalise_h(H: np.ndarray) -> np.ndarray:
    """Float64 copy of ``H`` scaled so that ``H[2, 2] == 1`` (unchanged if that is ~0)."""
    H = np.asarray(H, dtype=np.float64).reshape(3, 3)
    return H / H[2, 2] if abs(H[2, 2]) > 1e-12 else H.copy()


def _find_image(folder: Path, stem: str) -> Optional[Path]:
    for ext in HPATCHES_EXTENSIONS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


# ====================================================================== HPatches layout
def load_hpatches(root: PathLike, scenes: Optional[Sequence[str]] = None,
                  resize_max: Optional[int] = None) -> list[HomographyPair]:
    """Load the pairs ``(1, k)``, ``k = 2..6``, of every scene of an HPatches-layout folder.

    Args:
        root: folder with one sub-folder per scene; a scene holds ``1.ppm`` (or ``.png``, ...)
            .. ``6.ppm`` and ``H_1_2`` .. ``H_1_6`` (3x3 whitespace-separated text). A missing
            image ``k`` or ``H_1_k`` skips that pair.
        scenes: scene names to load (default: every sub-folder with an image ``1``, sorted).
        resize_max: when given, each image is shrunk (INTER_AREA) so that its longer side is
            at most this many pixels; the homography becomes ``S_k H S_1^-1`` with the
            pixel-centre :func:`scale_matrix` of each image.

    Returns:
        pairs named ``<scene>/1-<k>``, scene by scene. Image 1 of a scene is one shared array
        across its pairs (so callers may cache its features by object identity).

    Raises:
        FileNotFoundError: ``root`` or a requested scene does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"HPatches folder not found: {root}")
    if scenes is None:
        scene_dirs = sorted(d for d in root.iterdir()
                            if d.is_dir() and _find_image(d, "1") is not None)
    else:
        scene_dirs = [root / s for s in scenes]
        for d in scene_dirs:
            if not d.is_dir():
                raise FileNotFoundError(f"scene not found: {d}")
    pairs: list[HomographyPair] = []
    for d in scene_dirs:
        p1 = _find_image(d, "1")
        if p1 is None:
            raise FileNotFoundError(f"no image 1 in scene {d}")
        img0, S0 = resize_max_side(read_gray(p1), resize_max)
        S0_inv = np.linalg.inv(S0)
        for k in range(2, 7):
            pk, hk = _find_image(d, str(k)), d / f"H_1_{k}"
            if pk is None or not hk.is_file():
                continue
            img1, S1 = resize_max_side(read_gray(pk), resize_max)
            H = np.loadtxt(hk, dtype=np.float64).reshape(3, 3)
            pairs.append(HomographyPair(img0, img1, normalise_h(S1 @ H @ S0_inv),
                                        f"{d.name}/1-{k}", d.name))
    return pairs


# ====================================================================== synthetic pairs
def sample_homography(rng: np.random.Generator, shape: tuple[int, int], *,
                      max_rotation_deg: float = 25.0,
                      scale_range: tuple[float, float] = (0.8, 1.25),
                      max_translation: float = 0.1,
                      corner_perturbation: float = 0.15,
                      min_overlap: float = 0.6, max_tries: int = 200) -> np.ndarray:
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


def synthetic_pairs(folder: PathLike, n_pairs: int, seed: int = 0,
                    size: Optional[tuple[int, int]] = None, *,
                    max_rotation_deg: float = 25.0,
                    scale_range: tuple[float, float] = (0.8, 1.25),
                    max_translation: float = 0.1,
                    corner_perturbation: float = 0.15,
                    min_overlap: float = 0.6,
                    photometric: bool = True,
                    photometric_strength: float = 1.0) -> list[HomographyPair]:
    """Pairs made by warping photographs with random homographies.

    ``image0`` is the photograph (grey, resized to ``size`` when given); ``image1`` is
    ``cv2.warpPerspective(image0, H_0_1)`` (bilinear, black outside) followed, when
    ``photometric``, by :func:`photometric_augment`. Geometry is drawn by
    :func:`sample_homography` (see there for the magnitudes). Photographs are visited in a
    seeded random order, cycling when ``n_pairs`` exceeds their number. Everything depends on
    ``seed`` only: the same arguments give identical pairs, and the geometry (photograph order
    and ``H_0_1``) does not depend on ``photometric``/``photometric_strength``.

    Args:
        folder: folder of photographs (non-recursive).
        n_pairs: number of pairs.
        seed: random seed.
        size: ``(H, W)`` to resize every photograph to, or None for native sizes.

    Returns:
        pairs named ``synthetic/<index>:<file stem>``, scene ``synthetic``.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS) \
        if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no photographs in {folder}")
    # Separate streams: the geometry does not depend on whether photometric changes are drawn.
    geo_seq, photo_seq = np.random.SeedSequence(seed).spawn(2)
    rng, photo_rng = np.random.default_rng(geo_seq), np.random.default_rng(photo_seq)
    order = rng.permutation(len(files))
    pairs: list[HomographyPair] = []
    for i in range(n_pairs):
        path = files[order[i % len(files)]]
        img0 = read_gray(path)
        if size is not None:
            img0 = cv2.resize(img0, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
        H = sample_homography(rng, img0.shape[:2], max_rotation_deg=max_rotation_deg,
                              scale_range=scale_range, max_translation=max_translation,
                              corner_perturbation=corner_perturbation, min_overlap=min_overlap)
        img1 = cv2.warpPerspective(img0, H, (img0.shape[1], img0.shape[0]),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=0)
        if photometric:
            img1 = photometric_augment(img1, photo_rng, photometric_strength)
        pairs.append(HomographyPair(img0, img1, H, f"synthetic/{i:04d}:{path.stem}",
                                    "synthetic"))
    return pairs


__all__ = ["HomographyPair", "load_hpatches", "synthetic_pairs", "sample_homography",
           "photometric_augment", "scale_matrix", "resize_max_side", "read_gray",
           "normalise_h", "inside_image"]
