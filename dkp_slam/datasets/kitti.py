"""A KITTI odometry sequence folder (``calib.txt``, ``times.txt``, ``image_0/`` or ``image_2/``,
optional ``poses.txt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..camera import Camera
from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from .common import (PathLike, SequenceFormat, _file_loader, _image_size, _read_float_lines,
                     list_images, require)
from .trajectory import _kitti_poses

_KITTI_CAMERAS = ("image_0", "image_2")


def _read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    calib: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, _, vals = line.partition(":")
        try:
            calib[key.strip()] = np.array([float(v) for v in vals.split()], dtype=np.float64)
        except ValueError:
            continue
    return calib


def _index_rows(rows: np.ndarray, frame_ids: np.ndarray, what: str, path: Path) -> np.ndarray:
    """Pick the rows of a per-frame KITTI file for the frames present.

    When the file has one row per image, rows are taken in order; otherwise the frame number in
    the image file name (``000123.png`` -> row 123) selects the row.
    """
    n = len(frame_ids)
    if rows.shape[0] == n:
        return rows
    if n and frame_ids.min() >= 0 and frame_ids.max() < rows.shape[0]:
        return rows[frame_ids]
    raise ValueError(f"{path} has {rows.shape[0]} {what} rows, which does not fit the {n} "
                     f"images (frame numbers {frame_ids.min()}..{frame_ids.max()})")


def load_kitti(path: PathLike, camera: str = "image_0",
               poses_path: Optional[PathLike] = None) -> Sequence:
    """A KITTI odometry sequence folder (``image_0/`` or ``image_2/``, ``times.txt``,
    ``calib.txt``, optional ``poses.txt``).

    Intrinsics come from the ``P0:`` line of ``calib.txt`` (``P2:`` for ``image_2``):
    ``fx = P[0]``, ``cx = P[2]``, ``fy = P[5]``, ``cy = P[6]``; the images are rectified, so the
    model is ``"none"``. Ground truth is read from ``poses_path`` or ``poses.txt`` in the folder
    (12 values per line, row-major 3x4 ``T_world_cam0``). For ``image_2`` the poses are moved
    to camera 2 with the baseline encoded in ``P2``. When a per-frame file has more rows than
    there are images, the number in each image name selects its row.

    Raises:
        FileNotFoundError: the folder, the image folder, ``times.txt`` or ``calib.txt`` is missing.
        ValueError: files that do not fit each other.
    """
    root = Path(path)
    require(root, "KITTI sequence folder", folder=True)
    if camera not in _KITTI_CAMERAS:
        raise ValueError(f"camera must be one of {_KITTI_CAMERAS}, got {camera!r}")
    img_dir = root / camera
    require(img_dir, "KITTI image folder", folder=True)
    files = [p for p in list_images(img_dir) if p.suffix.lower() == ".png"]
    if not files:
        raise ValueError(f"no PNG images in {img_dir}")
    n = len(files)
    try:
        frame_ids = np.array([int(p.stem) for p in files], dtype=np.int64)
    except ValueError:
        frame_ids = np.arange(n, dtype=np.int64)

    times_path = root / "times.txt"
    require(times_path, "KITTI times file")
    times = _read_float_lines(times_path)
    stamps = _index_rows(times, frame_ids, "timestamp", times_path)[:, 0].copy()

    calib_path = root / "calib.txt"
    require(calib_path, "KITTI calibration file")
    pkey = "P" + camera[-1]
    calib = _read_kitti_calib(calib_path)
    if pkey not in calib or calib[pkey].size != 12:
        raise ValueError(f"{calib_path}: no 12-value {pkey}: line")
    P = calib[pkey].reshape(3, 4)
    width, height = _image_size(files[0])
    cam = Camera(width, height, float(P[0, 0]), float(P[1, 1]), float(P[0, 2]), float(P[1, 2]),
                 "none")

    gt = None
    ppath = Path(poses_path) if poses_path is not None else root / "poses.txt"
    if poses_path is not None and not ppath.is_file():
        raise FileNotFoundError(f"KITTI poses file not found: {ppath}")
    if ppath.is_file():
        rows = _read_float_lines(ppath)
        if rows.shape[1] != 12:
            raise ValueError(f"{ppath}: expected 12 values per line, got {rows.shape[1]}")
        gt = _kitti_poses(_index_rows(rows, frame_ids, "pose", ppath))
        if camera != "image_0":
            # P_k = K [I | t_k]: x_camk = x_cam0 + t_k, so T_cam0_camk = [I | -t_k].
            t_k = np.linalg.solve(P[:, :3], P[:, 3])
            T_c0_ck = np.eye(4)
            T_c0_ck[:3, 3] = -t_k
            gt = gt @ T_c0_ck
    return Sequence(
        name=root.resolve().name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=cam,
        gt_poses=gt,
        meta={"format": "kitti", "path": str(root), "camera": camera,
              "frame_ids": frame_ids, "poses_file": str(ppath) if gt is not None else None},
    )


SEQUENCE_FORMATS.register("kitti", SequenceFormat(
    "kitti", "a KITTI folder (calib.txt + image_0/ or image_2/)",
    lambda p: (p / "calib.txt").is_file() and any((p / c).is_dir() for c in _KITTI_CAMERAS),
    lambda p, fps: load_kitti(p, "image_0" if (p / "image_0").is_dir() else "image_2")))
