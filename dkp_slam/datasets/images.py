"""A plain folder of images (optional ``times.txt`` and ``calib.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..registry import SEQUENCE_FORMATS
from ..sequence import Sequence
from .calibration import _CAMERA_YAML_NAMES, load_camera_yaml
from .common import (IMAGE_EXTENSIONS, PathLike, SequenceFormat, _file_loader, _read_float_lines,
                     list_images, require)

_TIMES_NAMES = ("times.txt", "timestamps.txt")


def load_image_folder(path: PathLike, fps: float = 10.0, name: Optional[str] = None) -> Sequence:
    """A folder of image files as a sequence.

    Frames are the image files in natural sort order. Stamps come from ``times.txt`` or
    ``timestamps.txt`` (one float in seconds per line, first column used) when present, else
    ``i / fps``. Intrinsics come from ``calib.yaml`` or ``camera_info.yaml`` (see
    :func:`load_camera_yaml`) when present, else the camera is None.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: no image files, or a timestamp file whose length does not match.
    """
    folder = Path(path)
    require(folder, "image folder", folder=True)
    files = list_images(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    n = len(files)
    stamps_src = "fps"
    stamps = np.arange(n, dtype=np.float64) / float(fps)
    for tname in _TIMES_NAMES:
        tpath = folder / tname
        if tpath.is_file():
            vals = _read_float_lines(tpath)
            if vals.shape[0] != n:
                raise ValueError(f"{tpath} has {vals.shape[0]} stamps but {folder} holds "
                                 f"{n} images")
            stamps, stamps_src = vals[:, 0].copy(), str(tpath)
            break
    else:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
    camera = None
    for cname in _CAMERA_YAML_NAMES:
        if (folder / cname).is_file():
            camera = load_camera_yaml(folder / cname)
            break
    return Sequence(
        name=name or folder.resolve().name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=None,
        meta={"format": "images", "path": str(folder), "stamps_from": stamps_src,
              "files": [p.name for p in files]},
    )


SEQUENCE_FORMATS.register("images", SequenceFormat(
    "images", f"a folder of images ({', '.join(IMAGE_EXTENSIONS)})",
    lambda p: p.is_dir() and bool(list_images(p)),
    lambda p, fps: load_image_folder(p, fps=fps)))
