"""An EuRoC / ASL sequence folder (``mav0/cam0/``, ``state_groundtruth_estimate0/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from .calibration import load_euroc_camera
from .common import PathLike, SequenceFormat, _file_loader, require
from .trajectory import _read_euroc_csv, interpolate_poses, load_euroc_groundtruth


def load_euroc(path: PathLike, cam: str = "cam0", max_dt: float = 0.02) -> Sequence:
    """An EuRoC / ASL sequence folder (the one containing ``mav0/``, or ``mav0`` itself).

    Frames are the rows of ``mav0/<cam>/data.csv`` (ns stamp, file name under
    ``mav0/<cam>/data/``); stamps are seconds (ns * 1e-9, float64). Intrinsics, distortion
    (``radial-tangential`` -> ``"radtan"``, ``equidistant``) and ``T_BS`` come from
    ``mav0/<cam>/sensor.yaml``. Ground truth is read from ``groundtruth.csv`` at the sequence
    root, else ``mav0/state_groundtruth_estimate0/data.csv`` (``ns, px py pz, qw qx qy qz,
    ...``, body pose ``T_world_body``). The body track is associated with the image stamps by
    :func:`interpolate_poses` (exact ns match, else interpolation between the bracketing
    samples when both are within ``max_dt``, else NaN) and becomes the camera pose
    ``T_world_cam = T_world_body @ T_BS``.
    ``gt_poses`` is None when there is no ground-truth file.

    Raises:
        FileNotFoundError: the folder, ``data.csv`` or ``sensor.yaml`` is missing.
        ValueError: malformed files.
    """
    root = Path(path)
    require(root, "EuRoC sequence folder", folder=True)
    mav0 = root if root.name == "mav0" and not (root / "mav0").is_dir() else root / "mav0"
    seq_root = mav0.parent
    cam_dir = mav0 / cam
    csv_path = cam_dir / "data.csv"
    require(csv_path, "EuRoC image list")
    yaml_path = cam_dir / "sensor.yaml"
    require(yaml_path, "EuRoC camera description")
    ns, rest = _read_euroc_csv(csv_path)
    if len(ns) == 0:
        raise ValueError(f"{csv_path} lists no images")
    files = [cam_dir / "data" / (r[0] if r and r[0] else f"{t}.png") for t, r in zip(ns, rest)]
    camera, T_BS = load_euroc_camera(yaml_path)

    gt = None
    gt_file = None
    for cand in (seq_root / "groundtruth.csv",
                 mav0 / "state_groundtruth_estimate0" / "data.csv"):
        if cand.is_file():
            gt_file = cand
            break
    if gt_file is not None:
        g_ns, T_wb = load_euroc_groundtruth(gt_file)
        # interpolate the body track (what was measured), then move to the camera
        gt = interpolate_poses(ns, g_ns, T_wb, max_dt) @ T_BS
    return Sequence(
        name=seq_root.resolve().name,
        stamps=ns.astype(np.float64) * 1e-9,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=gt,
        meta={"format": "euroc", "path": str(seq_root), "cam": cam, "stamps_ns": ns,
              "T_BS": T_BS, "gt_file": str(gt_file) if gt_file else None, "max_dt": max_dt},
    )


SEQUENCE_FORMATS.register("euroc", SequenceFormat(
    "euroc", "an EuRoC folder (mav0/)",
    lambda p: (p / "mav0").is_dir() or (p.name == "mav0" and (p / "cam0").is_dir()),
    lambda p, fps: load_euroc(p)))
