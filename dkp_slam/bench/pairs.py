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

from ..warps import normalise_h, photometric_augment, sample_homography

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
def list_photos(folder: PathLike, photo_range: Optional[tuple[int, int]] = None
                ) -> list[Path]:
    """The photographs of ``folder`` (non-recursive, :data:`PHOTO_EXTENSIONS`), sorted by
    name, restricted to ``photo_range = (start, stop)`` when given.

    Raises:
        FileNotFoundError: no photograph (in that range).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS) \
        if folder.is_dir() else []
    if photo_range is not None:
        files = files[photo_range[0]:photo_range[1]]
    if not files:
        where = f" (range {photo_range[0]}:{photo_range[1]})" if photo_range else ""
        raise FileNotFoundError(f"no photographs in {folder}{where}")
    return files


def parse_photo_range(text: str) -> tuple[int, int]:
    """``"START:STOP"`` (non-negative integers, START < STOP) -> ``(start, stop)``.

    Raises:
        ValueError: any other text, naming it.
    """
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"photo range must be START:STOP, e.g. 0:50, got {text!r}")
    start, stop = int(parts[0]), int(parts[1])
    if start >= stop:
        raise ValueError(f"photo range {text!r}: START must be below STOP")
    return start, stop


def synthetic_pairs(folder: PathLike, n_pairs: int, seed: int = 0,
                    size: Optional[tuple[int, int]] = None, *,
                    max_rotation_deg: float = 25.0,
                    scale_range: tuple[float, float] = (0.8, 1.25),
                    max_translation: float = 0.1,
                    corner_perturbation: float = 0.15,
                    min_overlap: float = 0.6,
                    photometric: bool = True,
                    photometric_strength: float = 1.0,
                    photo_range: Optional[tuple[int, int]] = None) -> list[HomographyPair]:
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
        photo_range: ``(start, stop)``: use only these photographs of the folder's sorted
            file list (Python slice semantics), e.g. one half of a folder for validation and
            the other for testing (:func:`list_photos`).

    Returns:
        pairs named ``synthetic/<index>:<file stem>``, scene ``synthetic``.
    """
    files = list_photos(folder, photo_range)
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


__all__ = ["HomographyPair", "load_hpatches", "synthetic_pairs", "list_photos",
           "parse_photo_range", "scale_matrix", "resize_max_side", "read_gray"]
