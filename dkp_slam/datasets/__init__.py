"""Loaders that turn datasets on disk into :class:`~dkp_slam.sequence.Sequence` objects.

Supported sources, one module each (all images are read lazily, one frame per
``load_image(i)`` call):

* a **video file** (:mod:`.video`, :func:`load_video`),
* a **KITTI odometry** sequence folder (:mod:`.kitti`, :func:`load_kitti`),
* a **TUM RGB-D** sequence folder (:mod:`.tum`, :func:`load_tum`),
* an **EuRoC / ASL** sequence folder (:mod:`.euroc`, :func:`load_euroc`),
* a plain **image folder** (:mod:`.images`, :func:`load_image_folder`),

plus calibration files (:mod:`.calibration`), trajectory files (:mod:`.trajectory`) and
:func:`open_sequence`, which recognises the format of a path. Each format module registers a
:class:`~dkp_slam.datasets.common.SequenceFormat` in :data:`dkp_slam.registry.SEQUENCE_FORMATS`;
recognition tries them in registration order (the order above), so a new format is one new
module (and a plug-in may register one from outside the package).

Conventions: stamps are float64 seconds; ground-truth poses are ``T_world_cam`` (camera-to-world,
4x4) with NaN rows where no ground truth exists for a frame; images are returned as
``cv2.imread(..., IMREAD_UNCHANGED)`` gives them (HxW grey or HxWx3 BGR, uint8, or uint16 for
16-bit files); 4-channel images lose their alpha channel. Intrinsics use the pixel-centre
convention of :mod:`dkp_slam.camera`.
"""

from __future__ import annotations

from pathlib import Path

from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from . import video, kitti, tum, euroc, images  # noqa: F401  (register, in recognition order)
from .calibration import (TUM_CALIBRATIONS, load_calibration, load_camera_yaml, load_euroc_camera,
                          load_kalibr_camchain, tum_camera_from_name)
from .common import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, PathLike, SequenceFormat,
                     associate_nearest, list_images, natural_sort_key, read_image)
from .euroc import load_euroc
from .images import load_image_folder
from .kitti import load_kitti
from .trajectory import (interpolate_poses, load_euroc_groundtruth, load_trajectory,
                         load_tum_trajectory, write_tum_trajectory)
from .tum import load_tum
from .video import load_video


def detect_format(path: PathLike) -> str:
    """The format :func:`open_sequence` would use for ``path``: the name of the first
    registered :class:`SequenceFormat` that matches (``video``, ``kitti``, ``tum``, ``euroc``,
    ``images``, then plug-ins).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an empty folder, a file that is not a video, or a folder with no recognised
            layout and no images.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"sequence path does not exist: {p}")
    if p.is_dir() and not any(p.iterdir()):
        raise ValueError(f"sequence folder is empty: {p}")
    for name, fmt in SEQUENCE_FORMATS.items():
        if fmt.matches(p):
            return name
    if p.is_file():
        raise ValueError(f"{p} is a file but not a video ({', '.join(VIDEO_EXTENSIONS)}); "
                         f"pass a video or a sequence folder")
    layouts = [fmt.layout for _, fmt in SEQUENCE_FORMATS.items()]
    raise ValueError(f"unrecognised sequence layout in {p}: expected "
                     f"{', '.join(layouts[:-1])} or {layouts[-1]}")


def open_sequence(path: PathLike, fps: float = 10.0) -> Sequence:
    """Open ``path`` as a :class:`Sequence`, detecting its format (see :func:`detect_format`).

    ``fps`` sets the stamps of image folders without a timestamp file and is the fallback frame
    rate of videos whose container has none.
    """
    return SEQUENCE_FORMATS.get(detect_format(path)).open(Path(path), fps)


__all__ = [
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "TUM_CALIBRATIONS", "SequenceFormat",
    "natural_sort_key", "read_image", "list_images", "associate_nearest", "interpolate_poses",
    "load_camera_yaml", "load_euroc_camera", "load_euroc_groundtruth", "load_kalibr_camchain",
    "load_calibration", "load_trajectory", "tum_camera_from_name",
    "load_image_folder", "load_video", "load_kitti", "load_tum", "load_euroc",
    "load_tum_trajectory", "write_tum_trajectory", "detect_format", "open_sequence",
]
