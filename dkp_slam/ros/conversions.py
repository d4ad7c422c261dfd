"""ROS 2 messages <-> numpy and core types. No cv_bridge: images are decoded with numpy (raw)
or OpenCV (compressed).

The decoders (images, CameraInfo, stamps, poses) need no ROS import and live in
:mod:`dkp_slam.messages.decode` (shared with the bag tools); they are re-exported here. Every
decoder raises the core's exceptions with the reason (:class:`~dkp_slam.image.ImageError` for
images, :class:`~dkp_slam.camera.CameraError` for CameraInfo) so the node can count, log and
skip bad input.
"""

from __future__ import annotations

import array
import json
import math
from typing import Any, Optional

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import (Point, Point32, Pose, PoseWithCovarianceStamped, Quaternion,
                               Transform, TransformStamped, Vector3)
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import ChannelFloat32, Image, PointCloud, PointCloud2, PointField
from std_msgs.msg import Header, String

from ..geometry import UNKNOWN_VARIANCE
from ..jsonable import jsonable
from ..messages.decode import (COMPRESSED_FORMATS, IMAGE_ENCODINGS, camera_from_info,
                     compressed_image_size, compressed_to_array, image_to_array,
                     matrix_from_pose, stamp_to_seconds)
from ..messages.pointcloud import encode_features
from ..messages.vins import VINS_CHANNELS, VinsFeatures


# ---------------------------------------------------------------------- outputs
def _bytes(data: Any) -> array.array:
    """A ``uint8[]`` field value without the per-element checks of the generated setter."""
    return array.array("B", data.tobytes() if isinstance(data, np.ndarray) else bytes(data))


def array_to_image(image: np.ndarray, header: Header, encoding: str = "bgr8") -> Image:
    """A ``sensor_msgs/Image`` (mono8 or bgr8) from a uint8 array."""
    image = np.ascontiguousarray(image)
    msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                is_bigendian=False, step=image.shape[1] * (image.shape[2] if image.ndim == 3
                                                          else 1))
    msg.data = _bytes(image)
    return msg


def features_to_cloud(result: Any, header: Header) -> PointCloud2:
    """``~/features``: one point per keypoint (layout: :mod:`dkp_slam.messages.pointcloud`)."""
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
                 child_frame: str, angular_velocity: Optional[tuple[np.ndarray, np.ndarray]]
                 = None) -> Odometry:
    """``~/odometry``: the chained pose with ``covariance`` (ROS order). Without
    ``angular_velocity`` the twist is not estimated (zero, unknown covariance). With it
    (``(omega (3,), covariance (3,3))`` in the child frame, for a fusion back-end) the twist
    carries it, the linear velocity stays unknown, and so does the position: its covariance's
    translation rows and columns become unknown (monocular odometry has no scale)."""
    msg = Odometry(header=header, child_frame_id=child_frame)
    msg.pose.pose = pose_from_matrix(T_odom_cam)
    twist_cov = np.eye(6) * UNKNOWN_VARIANCE
    if angular_velocity is not None:
        omega, omega_cov = angular_velocity
        covariance = np.array(covariance, dtype=np.float64)
        covariance[:3, :] = covariance[:, :3] = 0.0
        covariance[:3, :3] = np.eye(3) * UNKNOWN_VARIANCE
        msg.twist.twist.angular = Vector3(x=float(omega[0]), y=float(omega[1]),
                                          z=float(omega[2]))
        twist_cov[3:, 3:] = omega_cov
    msg.pose.covariance = _covariance(covariance)
    msg.twist.covariance = _covariance(twist_cov)
    return msg


def vins_features_msg(features: VinsFeatures, header: Header) -> PointCloud:
    """``~/vins_features``: :class:`~dkp_slam.messages.vins.VinsFeatures` as the
    ``sensor_msgs/PointCloud`` VINS' estimator reads (layout: :mod:`dkp_slam.messages.vins`)."""
    msg = PointCloud(header=header)
    msg.points = [Point32(x=float(x), y=float(y), z=float(z)) for x, y, z in features.points]
    msg.channels = [ChannelFloat32(name=name, values=array.array("f", row.tobytes()))
                    for name, row in zip(VINS_CHANNELS, features.channels)]
    return msg


def transform_msg(T: np.ndarray, header: Header, child_frame: str) -> TransformStamped:
    """``TransformStamped`` parent (``header.frame_id``) -> ``child_frame``."""
    p = pose_from_matrix(T)
    return TransformStamped(header=header, child_frame_id=child_frame, transform=Transform(
        translation=Vector3(x=p.position.x, y=p.position.y, z=p.position.z),
        rotation=p.orientation))


def status_msg(data: dict[str, Any]) -> String:
    """``~/status``: one JSON object (NaN/inf written as null)."""
    return String(data=json.dumps(jsonable(data, non_finite_as_null=True), separators=(",", ":")))


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
        return json.dumps(jsonable(v, non_finite_as_null=True), separators=(",", ":"))
    return str(v)


__all__ = ["IMAGE_ENCODINGS", "COMPRESSED_FORMATS", "stamp_to_seconds", "image_to_array",
           "compressed_to_array", "compressed_image_size", "camera_from_info", "array_to_image",
           "features_to_cloud", "pose_from_matrix", "matrix_from_pose", "relative_pose_msg",
           "odometry_msg", "vins_features_msg", "transform_msg", "status_msg",
           "diagnostics_msg"]
