"""The ``~/features`` PointCloud2 layout: one point per keypoint, encoded and decoded with numpy.

No ROS import: a consumer that received the message (or only its ``data`` bytes and field list,
e.g. from a bag read with ``rosbags``) decodes it with :func:`decode_features`.

Layout (little-endian, ``height = 1``, ``width = N`` keypoints, ``point_step = 28 + D * s``):

=========== ====== ========= ===== ======================================================
field       offset datatype  count meaning
=========== ====== ========= ===== ======================================================
u           0      FLOAT32   1     pixel column (distorted image, pixel-centre convention)
v           4      FLOAT32   1     pixel row
x           8      FLOAT32   1     normalised undistorted ``(u - cx) / fx``; NaN without
                                   intrinsics
y           12     FLOAT32   1     normalised undistorted ``(v - cy) / fy``; NaN without
                                   intrinsics
score       16     FLOAT32   1     detector score (higher is better)
track_id    20     UINT32    1     persistent track id (the core's int64 id modulo 2**32)
track_age   24     UINT32    1     frames this track has been followed (0 = new)
descriptor  28     UINT8 or  D     binary descriptors: UINT8, D = bytes (ORB: 32);
                   FLOAT32         float descriptors: FLOAT32, D = dimension (SIFT: 128)
=========== ====== ========= ===== ======================================================

``is_dense`` is true when intrinsics are known (no NaN in ``x``/``y``). Points are in the
detector's order (decreasing score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Optional

import numpy as np

#: ``sensor_msgs/PointField`` datatype constants -> numpy dtypes (little-endian).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("i1"), 2: np.dtype("u1"), 3: np.dtype("<i2"), 4: np.dtype("<u2"),
    5: np.dtype("<i4"), 6: np.dtype("<u4"), 7: np.dtype("<f4"), 8: np.dtype("<f8"),
}
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)

#: The fixed fields before the descriptor: (name, offset, datatype).
SCALAR_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("u", 0, FLOAT32), ("v", 4, FLOAT32), ("x", 8, FLOAT32), ("y", 12, FLOAT32),
    ("score", 16, FLOAT32), ("track_id", 20, UINT32), ("track_age", 24, UINT32),
)
DESCRIPTOR_OFFSET = 28


class Field(NamedTuple):
    """One ``sensor_msgs/PointField``: name, byte offset in a point, datatype, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass
class FeatureCloud:
    """Decoded ``~/features`` message.

    Attributes:
        keypoints: (N,2) float32 pixels ``(u, v)``.
        normalised: (N,2) float32 ``(x, y)``, NaN without intrinsics.
        scores: (N,) float32.
        track_ids, track_ages: (N,) uint32.
        descriptors: (N,D) uint8 (binary) or float32.
    """

    keypoints: np.ndarray
    normalised: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    track_ages: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)


def feature_fields(descriptor_dtype: np.dtype | type, descriptor_size: int) -> list[Field]:
    """The field list for descriptors of ``descriptor_dtype`` (uint8 or float32) and size D."""
    dt = np.dtype(descriptor_dtype)
    if dt == np.uint8:
        desc_type = UINT8
    elif dt.kind == "f":
        desc_type = FLOAT32
    else:
        raise ValueError(f"descriptors must be uint8 or float, got {dt}")
    fields = [Field(n, o, t, 1) for n, o, t in SCALAR_FIELDS]
    fields.append(Field("descriptor", DESCRIPTOR_OFFSET, desc_type, int(descriptor_size)))
    return fields


def _structured_dtype(fields: Iterable[Any], point_step: int, big_endian: bool = False
                      ) -> np.dtype:
    """numpy structured dtype for PointField-like objects (``name, offset, datatype, count``)."""
    names, formats, offsets = [], [], []
    for f in fields:
        if f.datatype not in POINTFIELD_DTYPES:
            raise ValueError(f"field {f.name!r}: unknown PointField datatype {f.datatype}")
        base = POINTFIELD_DTYPES[f.datatype]
        if big_endian:
            base = base.newbyteorder(">")
        count = int(f.count)
        names.append(f.name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(int(f.offset))
        end = int(f.offset) + base.itemsize * max(count, 1)
        if end > point_step:
            raise ValueError(f"field {f.name!r} ends at byte {end} > point_step {point_step}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": int(point_step)})


def encode_features(keypoints: np.ndarray, normalised: Optional[np.ndarray],
                    scores: np.ndarray, track_ids: np.ndarray, track_ages: np.ndarray,
                    descriptors: np.ndarray) -> tuple[list[Field], int, bytes]:
    """Pack per-keypoint arrays into ``(fields, point_step, data)`` of the layout above.

    Args:
        keypoints: (N,2) pixels; normalised: (N,2) or None (then NaN).
        scores, track_ids, track_ages: (N,).
        descriptors: (N,D) uint8 or float.
    """
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    n = len(kps)
    desc = np.asarray(descriptors)
    desc = desc.reshape(n, -1) if desc.ndim != 2 else desc
    if len(desc) != n:
        raise ValueError(f"{len(desc)} descriptors for {n} keypoints")
    fields = feature_fields(desc.dtype, desc.shape[1])
    point_step = DESCRIPTOR_OFFSET + desc.shape[1] * POINTFIELD_DTYPES[fields[-1].datatype].itemsize
    cloud = np.zeros(n, dtype=_structured_dtype(fields, point_step))
    cloud["u"], cloud["v"] = kps[:, 0], kps[:, 1]
    if normalised is None:
        cloud["x"] = cloud["y"] = np.nan
    else:
        xy = np.asarray(normalised, dtype=np.float32).reshape(-1, 2)
        cloud["x"], cloud["y"] = xy[:, 0], xy[:, 1]
    cloud["score"] = np.asarray(scores, dtype=np.float32).reshape(-1)
    # Track ids are int64 in the core; PointField has no 64-bit integer type.
    cloud["track_id"] = (np.asarray(track_ids, dtype=np.int64).reshape(-1)
                         & 0xFFFFFFFF).astype(np.uint32)
    cloud["track_age"] = np.asarray(track_ages, dtype=np.int64).reshape(-1).astype(np.uint32)
    if desc.shape[1]:
        cloud["descriptor"] = desc.astype(cloud.dtype["descriptor"].base, copy=False)
    return fields, point_step, cloud.tobytes()


def decode_points(data: bytes | bytearray | memoryview | np.ndarray, fields: Iterable[Any],
                  point_step: int, width: int, height: int = 1, is_bigendian: bool = False
                  ) -> np.ndarray:
    """Decode any PointCloud2 buffer into a structured array of ``height * width`` points.

    ``fields`` are PointField messages or :class:`Field` tuples. Padding between rows
    (``row_step > width * point_step``) is not supported: pass the packed buffer.

    Raises:
        ValueError: the buffer size does not match the geometry, or a field is malformed.
    """
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    n = int(width) * int(height)
    if buf.size != n * int(point_step):
        raise ValueError(f"buffer has {buf.size} bytes, expected {n} points x "
                         f"{point_step} bytes")
    dtype = _structured_dtype(list(fields), int(point_step), bool(is_bigendian))
    return np.frombuffer(buf, dtype=dtype, count=n)


def decode_features(data: bytes | bytearray | memoryview | np.ndarray, fields: Iterable[Any],
                    point_step: int, width: int, height: int = 1, is_bigendian: bool = False
                    ) -> FeatureCloud:
    """Decode a ``~/features`` buffer (see the module docstring) into a :class:`FeatureCloud`.

    Typical use with a received ``msg``::

        cloud = decode_features(msg.data, msg.fields, msg.point_step, msg.width, msg.height,
                                msg.is_bigendian)
    """
    fields = list(fields)
    names = {f.name for f in fields}
    missing = {"u", "v", "x", "y", "score", "track_id", "track_age", "descriptor"} - names
    if missing:
        raise ValueError(f"not a dkp_slam features cloud: missing fields {sorted(missing)}")
    pts = decode_points(data, fields, point_step, width, height, is_bigendian)
    n = len(pts)
    dim = int(np.prod(pts.dtype["descriptor"].shape))  # shape () when count == 1
    desc = pts["descriptor"].reshape(n, dim)
    return FeatureCloud(
        keypoints=np.stack([pts["u"], pts["v"]], 1).astype(np.float32),
        normalised=np.stack([pts["x"], pts["y"]], 1).astype(np.float32),
        scores=pts["score"].astype(np.float32),
        track_ids=pts["track_id"].astype(np.uint32),
        track_ages=pts["track_age"].astype(np.uint32),
        descriptors=desc.astype(desc.dtype.newbyteorder("=")),
    )


__all__ = ["Field", "FeatureCloud", "feature_fields", "encode_features", "decode_points",
           "decode_features", "POINTFIELD_DTYPES"]
