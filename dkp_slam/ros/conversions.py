"""ROS 2 messages <-> numpy and core types. No cv_bridge: images are decoded with numpy (raw)
or OpenCV (compressed).

Every decoder raises the core's exceptions with the reason (:class:`~dkp_slam.image.ImageError`
for images, :class:`~dkp_slam.camera.CameraError` for CameraInfo) so the node can count, log
and skip bad input.
"""

from __future__ import annotations

import array
import json
import math
from typing import Any, Optional

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import (Point, Pose, PoseWithCovarianceStamped, Quaternion, Transform,
                               TransformStamped, Vector3)
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header, String

from ..camera import DISTORTION_MODELS, Camera, CameraError
from ..geometry import UNKNOWN_VARIANCE
from ..image import ImageError
from .pointcloud import encode_features

#: Raw encodings accepted on ``image``: numpy dtype, channels, channel order.
IMAGE_ENCODINGS: dict[str, tuple[type, int, str]] = {
    "mono8": (np.uint8, 1, "bgr"),
    "8UC1": (np.uint8, 1, "bgr"),
    "mono16": (np.uint16, 1, "bgr"),
    "16UC1": (np.uint16, 1, "bgr"),
    "rgb8": (np.uint8, 3, "rgb"),
    "bgr8": (np.uint8, 3, "bgr"),
    "rgba8": (np.uint8, 4, "rgb"),
    "bgra8": (np.uint8, 4, "bgr"),
}
#: ``CompressedImage.format`` must name one of these (``jpeg``, ``png``, or image_transport's
#: ``"bgr8; jpeg compressed bgr8"``).
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


# ---------------------------------------------------------------------- time
def stamp_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def _bytes(data: Any) -> array.array:
    """A ``uint8[]`` field value without the per-element checks of the generated setter."""
    return array.array("B", data.tobytes() if isinstance(data, np.ndarray) else bytes(data))


# ---------------------------------------------------------------------- images in
def image_to_array(msg: Image, max_pixels: int = 1 << 28) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/Image`` into ``(HxW[xC] array, channel_order)`` without copying
    when possible (the result may be a view on ``msg.data``).

    Raises:
        ImageError: unsupported encoding, zero size, more than ``max_pixels`` pixels, or a
            ``step`` / data size that does not match ``height``, ``width`` and the encoding.
    """
    enc = msg.encoding
    if enc not in IMAGE_ENCODINGS:
        raise ImageError(f"unsupported encoding {enc!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    dtype, channels, order = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ImageError(f"zero-size image {w}x{h}")
    if h * w > max_pixels:
        raise ImageError(f"image {w}x{h} has more than node.max_image_pixels={max_pixels} pixels")
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if step < row:
        raise ImageError(f"step {step} is smaller than width x bytes per pixel = {row} "
                         f"({enc}, width {w})")
    size = len(msg.data)
    if size != step * h:
        raise ImageError(f"data has {size} bytes but step x height = {step} x {h} = {step * h}")
    buf = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :row]
    if itemsize > 1:
        big = bool(msg.is_bigendian)
        arr = np.ascontiguousarray(buf).view(np.dtype(dtype).newbyteorder(">" if big else "<"))
        arr = arr.astype(dtype, copy=False)
    else:
        arr = buf
    return (arr.reshape(h, w) if channels == 1 else arr.reshape(h, w, channels)), order


def compressed_image_size(data: bytes | memoryview) -> Optional[tuple[int, int]]:
    """``(width, height)`` from a PNG or JPEG header without decoding, or None if not found."""
    b = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(b):
            if b[i] != 0xFF:
                return None
            marker = b[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
                i += 2
                continue
            seg = int.from_bytes(b[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if i + 9 > len(b):
                    return None
                return int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
            i += 2 + seg
    return None


def compressed_to_array(msg: CompressedImage, max_pixels: int = 1 << 28
                        ) -> tuple[np.ndarray, str]:
    """Decode a JPEG/PNG ``sensor_msgs/CompressedImage`` into ``(array, "bgr")``.

    Raises:
        ImageError: other formats (e.g. ``compressedDepth``), empty or corrupt data, or more
            than ``max_pixels`` pixels (checked from the header before decoding).
    """
    fmt = msg.format.lower()
    if "compresseddepth" in fmt or not any(f in fmt for f in COMPRESSED_FORMATS):
        raise ImageError(f"unsupported compressed format {msg.format!r}; supported: jpeg, png")
    if len(msg.data) == 0:
        raise ImageError("compressed image has no data")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    size = compressed_image_size(memoryview(data))
    if size is None:
        raise ImageError(f"corrupt compressed image ({msg.format!r}): no PNG/JPEG header found")
    if size[0] * size[1] == 0 or size[0] * size[1] > max_pixels:
        raise ImageError(f"compressed image is {size[0]}x{size[1]}: zero or more than "
                         f"node.max_image_pixels={max_pixels} pixels")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError(f"corrupt compressed image ({msg.format!r}, {len(msg.data)} bytes)")
    return image, "bgr"


# ---------------------------------------------------------------------- camera info
def camera_from_info(msg: CameraInfo, rectified: bool = False) -> Optional[Camera]:
    """The :class:`Camera` of a ``sensor_msgs/CameraInfo``; None for an uncalibrated camera
    (``K`` all zero, the ROS convention).

    ``distortion_model`` ``plumb_bob`` (5 coefficients) and ``rational_polynomial`` (8: k1 k2
    p1 p2 k3 k4 k5 k6, the OpenCV order) map to the core's ``radtan``, ``equidistant`` (4) to
    ``equidistant``. With ``rectified`` the 3x3 part of ``P`` is used without distortion.

    Raises:
        CameraError: NaN/inf or implausible values, an unknown distortion model, skew,
            binning or a region of interest (not supported).
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if rectified:
        K = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3]
    if not np.all(np.isfinite(K)):
        raise CameraError(f"CameraInfo {'P' if rectified else 'K'} contains NaN/inf: "
                          f"{K.reshape(-1).tolist()}")
    if not np.any(K):
        return None
    if abs(K[0, 1]) > 1e-9 * max(abs(K[0, 0]), 1.0):
        raise CameraError(f"CameraInfo K has skew {K[0, 1]}; not supported")
    if msg.binning_x > 1 or msg.binning_y > 1:
        raise CameraError(f"CameraInfo binning {msg.binning_x}x{msg.binning_y} not supported")
    roi = msg.roi
    if roi.x_offset or roi.y_offset or (roi.width and (roi.width, roi.height) != (msg.width,
                                                                                   msg.height)):
        raise CameraError("CameraInfo region of interest not supported")
    dist = np.zeros(0) if rectified else np.asarray(msg.d, dtype=np.float64)
    model = (msg.distortion_model or "none").lower()
    if model not in DISTORTION_MODELS:
        raise CameraError(f"unknown distortion_model {msg.distortion_model!r}; supported: "
                          f"plumb_bob, rational_polynomial, equidistant")
    if not np.any(dist):
        model, dist = "none", np.zeros(0)
    return Camera(int(msg.width), int(msg.height), K[0, 0], K[1, 1], K[0, 2], K[1, 2], model,
                  dist)


# ---------------------------------------------------------------------- outputs
def array_to_image(image: np.ndarray, header: Header, encoding: str = "bgr8") -> Image:
    """A ``sensor_msgs/Image`` (mono8 or bgr8) from a uint8 array."""
    image = np.ascontiguousarray(image)
    msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                is_bigendian=False, step=image.shape[1] * (image.shape[2] if image.ndim == 3
                                                          else 1))
    msg.data = _bytes(image)
    return msg


def features_to_cloud(result: Any, header: Header) -> PointCloud2:
    """``~/features``: one point per keypoint (layout: :mod:`dkp_slam.ros.pointcloud`)."""
    fields, point_step, data = encode_features(
        result.keypoints, result.keypoints_normalised, result.scores, result.track_ids,
        result.track_ages, result.descriptors)
    n = len(result.keypoints)
    msg = PointCloud2(header=header, height=1, width=n, is_bigendian=False,
                      point_step=point_step, row_step=point_step * n,
                      is_dense=result.keypoints_normalised is not None)
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in fields]
    msg.data = _bytes(data)
    return msg


def pose_from_matrix(T: np.ndarray) -> Pose:
    """``geometry_msgs/Pose`` of a 4x4 rigid transform."""
    q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x, y, z, w
    return Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                       w=float(q[3])))


def matrix_from_pose(pose: Pose) -> np.ndarray:
    """4x4 matrix of a ``geometry_msgs/Pose`` (inverse of :func:`pose_from_matrix`)."""
    T = np.eye(4)
    o = pose.orientation
    T[:3, :3] = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def _covariance(cov: np.ndarray) -> list[float]:
    cov = np.nan_to_num(np.asarray(cov, dtype=np.float64), nan=UNKNOWN_VARIANCE,
                        posinf=UNKNOWN_VARIANCE)
    return [float(v) for v in cov.reshape(36)]


def relative_pose_msg(result: Any, header: Header) -> PoseWithCovarianceStamped:
    """``~/relative_pose``: ``T_ref_cur`` (pose of the current camera in the reference camera,
    unit-norm or zero translation) with the core's covariance (ROS order)."""
    msg = PoseWithCovarianceStamped(header=header)
    msg.pose.pose = pose_from_matrix(result.T_ref_cur)
    msg.pose.covariance = _covariance(result.covariance)
    return msg


def odometry_msg(T_odom_cam: np.ndarray, covariance: np.ndarray, header: Header,
                 child_frame: str) -> Odometry:
    """``~/odometry``: the chained pose; the twist is not estimated (zero, unknown
    covariance)."""
    msg = Odometry(header=header, child_frame_id=child_frame)
    msg.pose.pose = pose_from_matrix(T_odom_cam)
    msg.pose.covariance = _covariance(covariance)
    msg.twist.covariance = _covariance(np.eye(6) * UNKNOWN_VARIANCE)
    return msg


def transform_msg(T: np.ndarray, header: Header, child_frame: str) -> TransformStamped:
    """``TransformStamped`` parent (``header.frame_id``) -> ``child_frame``."""
    p = pose_from_matrix(T)
    return TransformStamped(header=header, child_frame_id=child_frame, transform=Transform(
        translation=Vector3(x=p.position.x, y=p.position.y, z=p.position.z),
        rotation=p.orientation))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def status_msg(data: dict[str, Any]) -> String:
    """``~/status``: one JSON object (NaN/inf written as null)."""
    return String(data=json.dumps(_json_safe(data), separators=(",", ":")))


def diagnostics_msg(stamp: Time, name: str, hardware_id: str, level: bytes, message: str,
                    values: dict[str, Any]) -> DiagnosticArray:
    """``/diagnostics`` with one status; ``level`` is ``DiagnosticStatus.OK/WARN/ERROR``."""
    status = DiagnosticStatus(level=level, name=name, hardware_id=hardware_id,
                              message=message)
    status.values = [KeyValue(key=str(k), value=_format_value(v)) for k, v in values.items()]
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    if isinstance(v, dict):
        return json.dumps(_json_safe(v), separators=(",", ":"))
    return str(v)


__all__ = ["IMAGE_ENCODINGS", "stamp_to_seconds", "image_to_array", "compressed_to_array",
           "compressed_image_size", "camera_from_info", "array_to_image", "features_to_cloud",
           "pose_from_matrix", "matrix_from_pose", "relative_pose_msg", "odometry_msg",
           "transform_msg", "status_msg", "diagnostics_msg"]
