"""A TUM RGB-D sequence folder (``rgb.txt``, optional ``groundtruth.txt``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from .calibration import tum_camera_from_name
from .common import (PathLike, SequenceFormat, _file_loader, _image_size, _nan_poses,
                     associate_nearest, require)
from .trajectory import load_tum_trajectory


def _read_tum_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """``timestamp filename`` rows of a TUM list file (``rgb.txt``, ``depth.txt``)."""
    stamps, names = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'timestamp filename', got {line!r}")
        try:
            stamps.append(float(parts[0]))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: bad timestamp {parts[0]!r}") from exc
        names.append(parts[1])
    return np.array(stamps, dtype=np.float64), names


def load_tum(path: PathLike, max_dt: float = 0.02) -> Sequence:
    """A TUM RGB-D sequence folder (``rgb.txt``, ``rgb/*.png``, optional ``groundtruth.txt``).

    Frames are the RGB images listed in ``rgb.txt``, in file order. Each frame gets the
    ground-truth pose whose stamp is nearest to its own if within ``max_dt`` seconds, else NaN
    (``gt_poses`` is None without ``groundtruth.txt``). TUM ground truth is already the pose of
    the RGB camera's optical centre, ``T_world_cam``. Intrinsics are the published calibration
    picked from the folder name (``freiburg1/2/3``), else None. Depth images are ignored.

    Raises:
        FileNotFoundError: the folder or ``rgb.txt`` is missing.
        ValueError: ``rgb.txt`` lists no images or cannot be parsed.
    """
    root = Path(path)
    require(root, "TUM sequence folder", folder=True)
    list_path = root / "rgb.txt"
    require(list_path, "TUM image list")
    stamps, names = _read_tum_list(list_path)
    if not names:
        raise ValueError(f"{list_path} lists no images")
    files = [root / nm for nm in names]
    gt = None
    gt_path = root / "groundtruth.txt"
    if gt_path.is_file():
        gt_stamps, gt_poses = load_tum_trajectory(gt_path)
        idx = associate_nearest(stamps, gt_stamps, max_dt)
        gt = _nan_poses(len(stamps))
        gt[idx >= 0] = gt_poses[idx[idx >= 0]]
    name = root.resolve().name
    camera = None
    if tum_camera_from_name(name) is not None:
        width, height = _image_size(files[0])
        camera = tum_camera_from_name(name, width, height)
    return Sequence(
        name=name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=gt,
        meta={"format": "tum", "path": str(root), "max_dt": max_dt,
              "gt_file": str(gt_path) if gt is not None else None},
    )


SEQUENCE_FORMATS.register("tum", SequenceFormat(
    "tum", "a TUM RGB-D folder (rgb.txt)", lambda p: (p / "rgb.txt").is_file(),
    lambda p, fps: load_tum(p)))
