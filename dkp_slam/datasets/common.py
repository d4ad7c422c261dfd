"""What the dataset readers share: path and image helpers, YAML / number parsing, pose
matrices, stamp association, and :class:`SequenceFormat` (a format's name, how it is recognised
and opened), which each format module registers in :data:`dkp_slam.registry.SEQUENCE_FORMATS`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from ..image import ImageError, decode_compressed
from ..sequence import Sequence

PathLike = Union[str, Path]


#: Image file extensions picked up by :func:`load_image_folder` (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


#: Video file extensions recognised by :func:`open_sequence`.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")


def natural_sort_key(name: str) -> list:
    """Sort key that orders ``img2.png`` before ``img10.png`` (digit runs compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_image(path: PathLike) -> np.ndarray:
    """Read one image file as ``cv2.imread(path, IMREAD_UNCHANGED)`` would.

    Returns HxW grey or HxWx3 BGR (uint8, or uint16 for 16-bit files); an alpha channel is
    dropped. Raises :class:`IOError` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        why = "file does not exist" if not path.exists() else err.strerror or str(err)
        raise IOError(f"cannot read image {path}: {why}") from None
    try:
        img = decode_compressed(data)  # a damaged JPEG is an error, not grey blocks
    except ImageError as err:
        raise IOError(f"cannot read image {path}: {err}") from None
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        elif img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 2:  # grey + alpha
            img = np.ascontiguousarray(img[:, :, 0])
    return img


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file (reads that one frame)."""
    img = read_image(path)
    return int(img.shape[1]), int(img.shape[0])


def _file_loader(files: list[Path]) -> Callable[[int], np.ndarray]:
    """A ``load_image(i)`` reading ``files[i]`` on demand."""
    files = list(files)

    def load_image(i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < len(files):
            raise IndexError(f"frame index {i} out of range [0, {len(files)})")
        return read_image(files[i])

    return load_image


def _read_float_lines(path: Path) -> np.ndarray:
    """Rows of floats from a whitespace-separated text file, ``#`` comments and blanks skipped."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: cannot parse numbers from {line!r}") from exc
    if rows and any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"{path}: rows have different numbers of values")
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1) if rows else np.zeros((0, 0))


def _load_yaml(path: Path) -> dict:
    """Parse YAML, tolerating OpenCV's ``%YAML:1.0`` header and ``!!opencv-matrix`` tags."""
    text = path.read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("%YAML"))
    text = re.sub(r"!!opencv-[A-Za-z-]+", "", text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse YAML file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return data


def _yaml_matrix(value, name: str, path: Path) -> np.ndarray:
    """A ``{rows, cols, data}`` mapping or a plain list as a float array."""
    if isinstance(value, dict):
        data = np.asarray(value.get("data", []), dtype=np.float64)
        rows, cols = value.get("rows"), value.get("cols")
        if rows is not None and cols is not None and data.size == int(rows) * int(cols):
            return data.reshape(int(rows), int(cols))
        return data
    if value is None:
        raise ValueError(f"{path}: missing {name!r}")
    return np.asarray(value, dtype=np.float64)


def _pose_matrices(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """(N,4,4) poses from translations (N,3) and quaternions (N,4, x y z w)."""
    n = len(t)
    T = np.tile(np.eye(4), (n, 1, 1))
    if n:
        T[:, :3, :3] = Rotation.from_quat(q_xyzw).as_matrix()
        T[:, :3, 3] = t
    return T


def _nan_poses(n: int) -> np.ndarray:
    return np.full((n, 4, 4), np.nan)


def associate_nearest(query: np.ndarray, ref: np.ndarray, max_dt: float) -> np.ndarray:
    """For each ``query`` stamp, the index of the nearest ``ref`` stamp within ``max_dt``.

    Returns an int array of length ``len(query)`` with ``-1`` where no reference stamp is within
    ``max_dt`` seconds. ``ref`` need not be sorted.
    """
    query = np.asarray(query, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    out = np.full(len(query), -1, dtype=np.int64)
    if len(ref) == 0 or len(query) == 0:
        return out
    order = np.argsort(ref, kind="stable")
    rs = ref[order]
    pos = np.clip(np.searchsorted(rs, query), 1, len(rs) - 1) if len(rs) > 1 else np.zeros(
        len(query), dtype=np.int64)
    lo = np.maximum(pos - 1, 0)
    hi = pos
    pick = np.where(np.abs(rs[lo] - query) <= np.abs(rs[hi] - query), lo, hi)
    ok = np.abs(rs[pick] - query) <= max_dt
    out[ok] = order[pick[ok]]
    return out


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (see :data:`IMAGE_EXTENSIONS`), naturally sorted."""
    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def require(path: Path, what: str, folder: bool = False) -> Path:
    """``path`` if it is an existing file (``folder``: directory); else FileNotFoundError
    ``"<what> not found: <path>"``."""
    if not (path.is_dir() if folder else path.is_file()):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


@dataclass(frozen=True)
class SequenceFormat:
    """A sequence format :func:`dkp_slam.datasets.open_sequence` can recognise.

    Attributes:
        name: format id (``summary.json``'s ``input.format``).
        layout: what it looks like on disk, for the error message of an unrecognised path.
        matches: ``path -> bool``: the path has this layout (folders; files for videos).
        open: ``(path, fps) -> Sequence``; ``fps`` is the fallback frame rate.
    """

    name: str
    layout: str
    matches: Callable[[Path], bool]
    open: Callable[[Path, float], "Sequence"]
