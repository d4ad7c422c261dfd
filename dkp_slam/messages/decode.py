"""Decoding of ROS image and camera messages into numpy / core types, without importing ROS.

The functions read message *attributes* only, so they accept rclpy messages (the live node),
the messages ``rosbags`` deserialises from ROS 2 and ROS 1 bags (:mod:`dkp_slam.bags`) and any
object with the same fields. :mod:`dkp_slam.ros.conversions` re-exports them next to the
encoders that need the ROS message packages.

Every decoder raises the core's exceptions with the reason (:class:`~dkp_slam.image.ImageError`
for images, :class:`~dkp_slam.camera.CameraError` for CameraInfo) so callers can count, log
and skip bad input.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy.spatial.transform import Rotation

from ..camera import DISTORTION_MODELS, Camera, CameraError
from ..image import ImageError, decode_compressed

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


# ---------------------------------------------------------------------- images in
def image_to_array(msg: Any, max_pixels: int = 1 << 28) -> tuple[np.ndarray, str]:
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


def compressed_image_complete(data: bytes | memoryview) -> bool:
    """Whether PNG / JPEG data ends with its end marker (``IEND`` chunk, JPEG ``EOI``).

    Decoders differ on truncated data: PyPI's OpenCV returns no image, the distributions'
    (system libjpeg) return the decoded part with the rest grey. Checking the end marker makes a
    truncated image an error everywhere. Up to 64 bytes of padding after the marker are allowed
    (``FF D9`` cannot occur inside JPEG entropy-coded data, where ``FF`` is byte-stuffed).
    """
    tail = bytes(data[-(64 + 12):])  # padding + PNG's 12-byte IEND chunk (JPEG's EOI: 2 bytes)
    if bytes(data[:8]) == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in tail
    return b"\xff\xd9" in tail


def compressed_to_array(msg: Any, max_pixels: int = 1 << 28
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
    if not compressed_image_complete(memoryview(data)):
        raise ImageError(f"corrupt compressed image ({msg.format!r}, {len(msg.data)} bytes): "
                         f"truncated, no end-of-image marker")
    try:
        image = decode_compressed(data)
    except ImageError as err:
        raise ImageError(f"{err} ({msg.format!r})") from None
    return image, "bgr"


# ---------------------------------------------------------------------- camera info
def camera_from_info(msg: Any, rectified: bool = False) -> Optional[Camera]:
    """The :class:`Camera` of a ``sensor_msgs/CameraInfo``; None for an uncalibrated camera
    (``K`` all zero, the ROS convention). ROS 1 messages (fields ``K``, ``D``, ``P``) work too.

    ``distortion_model`` ``plumb_bob`` (5 coefficients) and ``rational_polynomial`` (8: k1 k2
    p1 p2 k3 k4 k5 k6, the OpenCV order) map to the core's ``radtan``, ``equidistant`` (4) to
    ``equidistant``. With ``rectified`` the 3x3 part of ``P`` is used without distortion.

    Raises:
        CameraError: NaN/inf or implausible values (:meth:`Camera.implausible`: principal
            point outside the image, focal lengths out of range, a distortion that is not
            invertible over the image), an unknown distortion model, skew, binning or a region
            of interest (not supported).
    """
    K = np.asarray(_field(msg, "k"), dtype=np.float64).reshape(3, 3)
    if rectified:
        K = np.asarray(_field(msg, "p"), dtype=np.float64).reshape(3, 4)[:, :3]
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
    dist = np.zeros(0) if rectified else np.asarray(_field(msg, "d"), dtype=np.float64)
    model = (msg.distortion_model or "none").lower()
    if model not in DISTORTION_MODELS:
        raise CameraError(f"unknown distortion_model {msg.distortion_model!r}; supported: "
                          f"plumb_bob, rational_polynomial, equidistant")
    if not np.any(dist):
        model, dist = "none", np.zeros(0)
    camera = Camera(int(msg.width), int(msg.height), K[0, 0], K[1, 1], K[0, 2], K[1, 2], model,
                    dist)
    problem = camera.implausible()
    if problem:
        raise CameraError(f"implausible CameraInfo: {problem}")
    return camera


# ---------------------------------------------------------------------- time and poses
def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` (or a rosbags ``Time``) -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def matrix_from_pose(pose: Any) -> np.ndarray:
    """4x4 matrix of a ``geometry_msgs/Pose`` (``position``, ``orientation``)."""
    T = np.eye(4)
    o = pose.orientation
    T[:3, :3] = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def matrix_from_transform(transform: Any) -> np.ndarray:
    """4x4 matrix of a ``geometry_msgs/Transform`` (``translation``, ``rotation``)."""
    T = np.eye(4)
    r, t = transform.rotation, transform.translation
    T[:3, :3] = Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix()
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def _field(msg: Any, name: str) -> Any:
    """``msg.<name>``, or the ROS 1 upper-case spelling (``K``, ``D``, ``P``)."""
    value = getattr(msg, name, None)
    return getattr(msg, name.upper()) if value is None else value


__all__ = ["IMAGE_ENCODINGS", "COMPRESSED_FORMATS", "image_to_array", "compressed_image_size",
           "compressed_to_array", "camera_from_info", "stamp_to_seconds", "stamp_to_ns",
           "matrix_from_pose", "matrix_from_transform"]
