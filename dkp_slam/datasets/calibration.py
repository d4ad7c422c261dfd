"""Camera calibration files: ROS ``camera_info`` / OpenCV YAML, EuRoC ``sensor.yaml``, Kalibr
``camchain.yaml``, the published TUM RGB-D calibrations, and :func:`load_calibration`, which
tells them apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..camera import Camera
from .common import PathLike, _load_yaml, _yaml_matrix, require

#: Published TUM RGB-D calibrations of the RGB camera (fx, fy, cx, cy, d0..d4 = k1 k2 p1 p2 k3).
TUM_CALIBRATIONS: dict[int, tuple[float, float, float, float, tuple[float, ...]]] = {
    1: (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    2: (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    3: (535.4, 539.2, 320.1, 247.6, ()),
}


_CAMERA_YAML_NAMES = ("calib.yaml", "camera_info.yaml")


def load_camera_yaml(path: PathLike) -> Camera:
    """Read intrinsics from a YAML file.

    Understands the ROS ``camera_info`` layout (``image_width``, ``image_height``,
    ``camera_matrix.data``, ``distortion_model``, ``distortion_coefficients.data``), OpenCV's
    calibration output (``%YAML:1.0``, ``camera_matrix``/``distortion_coefficients`` as
    ``!!opencv-matrix``) and :meth:`Camera.to_dict` (``width height fx fy cx cy model dist``).
    """
    path = Path(path)
    d = _load_yaml(path)
    try:
        if "fx" in d:
            dist = np.asarray(d.get("dist", []) or [], dtype=np.float64)
            model = d.get("model", "radtan" if dist.size else "none")
            return Camera(int(d["width"]), int(d["height"]), float(d["fx"]), float(d["fy"]),
                          float(d["cx"]), float(d["cy"]), model, dist)
        K = _yaml_matrix(d.get("camera_matrix"), "camera_matrix", path)
        width = d.get("image_width", d.get("width"))
        height = d.get("image_height", d.get("height"))
        if width is None or height is None:
            raise ValueError("missing image_width / image_height")
        dist_raw = d.get("distortion_coefficients", d.get("D"))
        dist = (np.zeros(0) if dist_raw is None
                else _yaml_matrix(dist_raw, "distortion_coefficients", path).reshape(-1))
        model = str(d.get("distortion_model", "plumb_bob" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        return Camera.from_K(K, int(width), int(height), dist, model)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable camera calibration: {exc}") from exc


def tum_camera_from_name(name: str, width: int = 640, height: int = 480) -> Optional[Camera]:
    """The published TUM RGB-D RGB calibration for a sequence name containing ``freiburg1``,
    ``freiburg2`` or ``freiburg3`` (or ``fr1``/``fr2``/``fr3``); None when none matches."""
    m = re.search(r"(?:freiburg|(?<![a-z])fr)_?([123])(?!\d)", name.lower())
    if not m:
        return None
    fx, fy, cx, cy, d = TUM_CALIBRATIONS[int(m.group(1))]
    return Camera(width, height, fx, fy, cx, cy, "radtan" if d else "none", np.array(d))


def load_euroc_camera(sensor_yaml: PathLike) -> tuple[Camera, np.ndarray]:
    """Intrinsics and ``T_BS`` (sensor pose in the body frame, 4x4) from an ASL ``sensor.yaml``."""
    path = Path(sensor_yaml)
    d = _load_yaml(path)
    try:
        fu, fv, cu, cv = (float(v) for v in d["intrinsics"])
        width, height = (int(v) for v in d["resolution"])
        dist = np.asarray(d.get("distortion_coefficients", []) or [], dtype=np.float64)
        model = str(d.get("distortion_model", "radial-tangential" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        T_BS = (_yaml_matrix(d["T_BS"], "T_BS", path).reshape(4, 4) if "T_BS" in d
                else np.eye(4))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable ASL camera description: {exc}") from exc
    return Camera(width, height, fu, fv, cu, cv, model, dist), T_BS


def load_kalibr_camchain(path: PathLike, cam: Optional[str] = None
                         ) -> tuple[Camera, Optional[np.ndarray], Optional[str]]:
    """One camera of a Kalibr ``camchain.yaml`` (``cam0: {camera_model: pinhole, intrinsics:
    [fu fv pu pv], distortion_model: radtan|equidistant, distortion_coeffs, resolution: [w h],
    T_cam_imu, rostopic}``).

    Returns ``(camera, T_imu_cam or None, rostopic or None)``; ``T_imu_cam`` is the inverse
    of ``T_cam_imu`` (the camera pose in the IMU/body frame, like EuRoC's ``T_BS``).
    ``cam`` picks the camera (default: the first ``camN`` key).

    Raises:
        ValueError: not a camchain, an unknown camera, or an unsupported camera model.
    """
    path = Path(path)
    d = _load_yaml(path)
    cams = sorted(k for k, v in d.items() if isinstance(v, dict) and "intrinsics" in v)
    if not cams:
        raise ValueError(f"{path}: no camN entries with intrinsics (not a Kalibr camchain)")
    key = cam or cams[0]
    if key not in d:
        raise ValueError(f"{path}: no camera {key!r}; cameras: {', '.join(cams)}")
    c = d[key]
    try:
        if str(c.get("camera_model", "pinhole")) != "pinhole":
            raise ValueError(f"camera_model {c.get('camera_model')!r} is not supported "
                             f"(pinhole only)")
        fu, fv, pu, pv = (float(v) for v in c["intrinsics"][:4])
        width, height = (int(v) for v in c["resolution"])
        dist = np.asarray(c.get("distortion_coeffs", []) or [], dtype=np.float64)
        model = str(c.get("distortion_model", "radtan" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        camera = Camera(width, height, fu, fv, pu, pv, model, dist)
        T_cam_imu = c.get("T_cam_imu")
        T_imu_cam = (np.linalg.inv(np.asarray(T_cam_imu, dtype=np.float64).reshape(4, 4))
                     if T_cam_imu is not None else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable Kalibr camera {key!r}: {exc}") from exc
    topic = c.get("rostopic")
    return camera, T_imu_cam, str(topic) if topic else None


def load_calibration(path: PathLike, cam: Optional[str] = None
                     ) -> tuple[Camera, Optional[np.ndarray], Optional[str]]:
    """Intrinsics from any supported calibration file, detected from its content.

    Formats: a Kalibr camchain (:func:`load_kalibr_camchain`, ``cam`` picks the camera), an
    EuRoC / ASL ``sensor.yaml`` (:func:`load_euroc_camera`), or a ROS ``camera_info`` YAML /
    OpenCV calibration / :meth:`Camera.to_dict` file (:func:`load_camera_yaml`).

    Returns ``(camera, T_body_cam or None, image topic or None)``: the camera pose in the body
    (IMU) frame when the file gives it, and Kalibr's ``rostopic``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no known layout, or unusable values.
    """
    path = Path(path)
    require(path, "calibration file")
    d = _load_yaml(path)
    if any(isinstance(v, dict) and "intrinsics" in v for v in d.values()):
        return load_kalibr_camchain(path, cam)
    if "intrinsics" in d and "resolution" in d:
        camera, T_BS = load_euroc_camera(path)
        return camera, T_BS, None
    return load_camera_yaml(path), None, None
