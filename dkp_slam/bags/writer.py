"""Writing ROS bags with ``rosbags`` (no ROS installation needed, no rclpy), and ``dkp-slam
make-bag``: a dataset (KITTI, TUM RGB-D, EuRoC, image folder + timestamps, video) as a bag with
the topics a camera driver publishes plus ground truth.

Storage: rosbag2 with MCAP (``.mcap``) or sqlite3 (``.db3``) storage, or ROS 1 (``.bag``).
Messages are built from the ROS 2 Kilted (rosbag2) or ROS 1 Noetic (``.bag``) type definitions
of ``rosbags``, so the bags carry standard ``sensor_msgs`` / ``geometry_msgs`` / ``nav_msgs``
types that any ROS tool reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from ..camera import Camera
from ..sequence import Sequence
from .reader import (CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, ODOMETRY_TYPE,
                     POSE_STAMPED_TYPE, BagError)

#: Storage kinds of :class:`BagWriter`.
STORAGES = ("mcap", "sqlite3", "ros1")
#: Raw image encodings :func:`make_bag` can write, with the conversion from a grey / BGR frame.
WRITE_ENCODINGS = ("mono8", "bgr8", "rgb8", "mono16")


def storage_for(path: str | Path, storage: Optional[str] = None) -> str:
    """The storage kind for an output path: ``ros1`` for ``*.bag``, else ``storage`` or
    ``mcap``.

    Raises:
        BagError: ``storage`` is unknown or contradicts the file name.
    """
    is_ros1 = Path(path).suffix == ".bag"
    if storage is None:
        return "ros1" if is_ros1 else "mcap"
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
    if is_ros1 != (storage == "ros1"):
        raise BagError(f"output {path}: ROS 1 bags end in .bag and rosbag2 bags do not "
                       f"(storage {storage})")
    return storage


class BagWriter:
    """A new bag open for writing (a context manager); topics are added on first use.

    Args:
        path: a rosbag2 folder to create, or a ``.bag`` file for ROS 1.
        storage: ``mcap``, ``sqlite3`` or ``ros1`` (default from the path, see
            :func:`storage_for`).

    Raises:
        BagError: the output exists or cannot be created.
    """

    def __init__(self, path: str | Path, storage: Optional[str] = None) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        self.storage = storage_for(self.path, storage)
        self.ros1 = self.storage == "ros1"
        if self.path.exists():
            raise BagError(f"output {self.path} exists already; remove it or choose another name")
        self.typestore = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_KILTED)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.ros1:
            from rosbags.rosbag1 import Writer as Writer1

            self._writer: Any = Writer1(self.path)
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer as Writer2

            plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer2(self.path, version=Writer2.VERSION_LATEST,
                                   storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (indexes, metadata); idempotent."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------ topics, writing
    def add_topic(self, topic: str, msgtype: str, msgdef: Optional[str] = None,
                  digest: Optional[str] = None) -> None:
        """Declare ``topic`` with ``msgtype`` (definition from the typestore unless ``msgdef``
        and its hash ``digest`` are given)."""
        if topic in self._connections:
            return
        if msgdef is not None and digest is not None:
            key = "md5sum" if self.ros1 else "rihs01"
            conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, **{key: digest})
        else:
            if msgtype not in self.typestore.fielddefs:
                raise BagError(f"message type {msgtype} is unknown to the "
                               f"{'ROS 1' if self.ros1 else 'ROS 2'} typestore")
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self._connections[topic] = conn
        self.counts[topic] = 0

    def write(self, topic: str, time_ns: int, msg: Any) -> int:
        """Serialise and write ``msg`` (built by :meth:`new`) at bag time ``time_ns``; return
        the number of bytes written."""
        msgtype = msg.__msgtype__
        self.add_topic(topic, msgtype)
        data = (self.typestore.serialize_ros1(msg, msgtype) if self.ros1
                else self.typestore.serialize_cdr(msg, msgtype))
        return self.write_raw(topic, time_ns, data)

    def write_raw(self, topic: str, time_ns: int, data: bytes | memoryview) -> int:
        """Write already serialised bytes to a declared topic; return their size."""
        self._writer.write(self._connections[topic], int(time_ns), data)
        self.counts[topic] += 1
        return len(data)

    # ------------------------------------------------------------------ messages
    def new(self, msgtype: str, **values: Any) -> Any:
        """A message of ``msgtype`` of this bag's typestore.

        Field names are matched case-insensitively (``k=`` fills ROS 1's ``K``); fields not
        given get 0 / empty (e.g. ROS 1's ``Header.seq``).
        """
        cls = self.typestore.types[msgtype]
        kwargs = {}
        for name, (kind, spec) in self.typestore.fielddefs[msgtype][1]:
            if name in values or name.lower() in values:
                kwargs[name] = values[name if name in values else name.lower()]
            elif kind.name == "BASE":
                kwargs[name] = "" if spec[0] == "string" else 0
            else:
                raise BagError(f"{msgtype}: field {name!r} missing")
        return cls(**kwargs)

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        """``std_msgs/Header``."""
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return self.new("std_msgs/msg/Header", frame_id=frame_id,
                        stamp=self.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec))

    def image(self, image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str) -> Any:
        """``sensor_msgs/Image`` of a contiguous array already in ``encoding``."""
        image = np.ascontiguousarray(image)
        step = image.shape[1] * (image.shape[2] if image.ndim == 3 else 1) * image.itemsize
        return self.new(IMAGE_TYPE, header=self.header(stamp_ns, frame_id),
                        height=image.shape[0], width=image.shape[1], encoding=encoding,
                        is_bigendian=0, step=step,
                        data=np.frombuffer(image.tobytes(), dtype=np.uint8))

    def compressed_image(self, image: np.ndarray, stamp_ns: int, frame_id: str,
                         fmt: str = "png", jpeg_quality: int = 95) -> Any:
        """``sensor_msgs/CompressedImage`` (PNG: lossless; JPEG at ``jpeg_quality``)."""
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", image, params)
        if not ok:
            raise BagError(f"OpenCV could not encode a {image.shape} image as {fmt}")
        return self.new(COMPRESSED_IMAGE_TYPE, header=self.header(stamp_ns, frame_id),
                        format=fmt, data=np.asarray(buf, dtype=np.uint8).reshape(-1))

    def camera_info(self, camera: Camera, stamp_ns: int, frame_id: str) -> Any:
        """``sensor_msgs/CameraInfo`` of ``camera`` (radtan -> ``plumb_bob`` with 5 or
        ``rational_polynomial`` with 8 coefficients, equidistant -> ``equidistant``)."""
        d = [float(v) for v in camera.dist]
        if camera.model == "equidistant":
            model = "equidistant"
        elif len(d) > 5:
            model, d = "rational_polynomial", (d + [0.0] * 8)[:8]
        else:
            model, d = "plumb_bob", (d + [0.0] * 5)[:5]
        K = camera.K.reshape(-1)
        P = np.zeros((3, 4))
        P[:, :3] = camera.K
        roi = self.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0,
                       width=0, do_rectify=False)
        return self.new(CAMERA_INFO_TYPE, header=self.header(stamp_ns, frame_id),
                        height=camera.height, width=camera.width, distortion_model=model,
                        d=np.asarray(d, dtype=np.float64), k=np.asarray(K, dtype=np.float64),
                        r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
                        roi=roi)

    def pose(self, T: np.ndarray) -> Any:
        """``geometry_msgs/Pose`` of a 4x4 transform."""
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        return self.new("geometry_msgs/msg/Pose",
                        position=self.new("geometry_msgs/msg/Point", x=float(T[0, 3]),
                                          y=float(T[1, 3]), z=float(T[2, 3])),
                        orientation=self.new("geometry_msgs/msg/Quaternion", x=float(q[0]),
                                             y=float(q[1]), z=float(q[2]), w=float(q[3])))

    def pose_stamped(self, T: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        """``geometry_msgs/PoseStamped``."""
        return self.new(POSE_STAMPED_TYPE, header=self.header(stamp_ns, frame_id),
                        pose=self.pose(T))

    def odometry(self, T: np.ndarray, stamp_ns: int, frame_id: str, child_frame: str) -> Any:
        """``nav_msgs/Odometry`` with the pose only (zero twist and covariances)."""
        zeros = np.zeros(36)
        twist = self.new("geometry_msgs/msg/Twist",
                         linear=self.new("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=0.0),
                         angular=self.new("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=0.0))
        return self.new(ODOMETRY_TYPE, header=self.header(stamp_ns, frame_id),
                        child_frame_id=child_frame,
                        pose=self.new("geometry_msgs/msg/PoseWithCovariance", pose=self.pose(T),
                                      covariance=zeros),
                        twist=self.new("geometry_msgs/msg/TwistWithCovariance", twist=twist,
                                       covariance=zeros.copy()))


# ---------------------------------------------------------------------- make-bag
@dataclass
class MakeBagOptions:
    """What :func:`make_bag` writes.

    Attributes:
        storage: ``mcap``, ``sqlite3`` or ``ros1`` (None: from the output name).
        image_topic: topic of the images (``<image_topic>/compressed`` with ``compressed``).
        info_topic: CameraInfo topic (one per image, same stamp); empty: none.
        gt_topic: ground-truth topic; empty: none.
        gt_type: ``pose`` (geometry_msgs/PoseStamped) or ``odometry`` (nav_msgs/Odometry).
        frame_id: camera optical frame of the images.
        world_frame: frame of the ground truth.
        compressed: write sensor_msgs/CompressedImage instead of Image.
        compressed_format: ``png`` (lossless) or ``jpeg``.
        jpeg_quality: JPEG quality (1..100).
        encoding: raw encoding (``mono8``, ``bgr8``, ``rgb8``, ``mono16``); None: as stored
            (grey -> mono8, colour -> bgr8, 16-bit -> mono16).
        repeat: play the sequence this many times, every second pass backwards so that the
            motion (and the ground truth) stays continuous; stamps keep increasing with the
            original frame intervals. Used to make large bags.
        max_frames: stop after this many images (0: all).
    """

    storage: Optional[str] = None
    image_topic: str = "/camera/image_raw"
    info_topic: str = "/camera/camera_info"
    gt_topic: str = "/ground_truth/pose"
    gt_type: str = "pose"
    frame_id: str = "camera_optical_frame"
    world_frame: str = "world"
    compressed: bool = False
    compressed_format: str = "png"
    jpeg_quality: int = 95
    encoding: Optional[str] = None
    repeat: int = 1
    max_frames: int = 0


def play_order(stamps: np.ndarray, repeat: int) -> Iterator[tuple[int, int]]:
    """``(frame index, stamp_ns)`` of ``repeat`` ping-pong passes over a sequence.

    Pass 0 keeps the original stamps; later passes run backwards / forwards alternately
    (without repeating the turning frame) and continue the clock with the original intervals.
    """
    ns = np.round(np.asarray(stamps, dtype=np.float64) * 1e9).astype(np.int64)
    n = len(ns)
    for i in range(n):
        yield i, int(ns[i])
    t = int(ns[-1]) if n else 0
    prev = n - 1
    for p in range(1, max(int(repeat), 1)):
        seq = range(n - 2, -1, -1) if p % 2 else range(1, n)
        for i in seq:
            t += max(abs(int(ns[i]) - int(ns[prev])), 1)
            prev = i
            yield i, t


def _encode(image: np.ndarray, encoding: Optional[str]) -> tuple[np.ndarray, str]:
    """``(array, encoding)`` of a grey / BGR frame in the requested raw encoding."""
    grey = image.ndim == 2
    if encoding is None:
        return image, ("mono16" if image.dtype == np.uint16 else "mono8") if grey else "bgr8"
    if encoding not in WRITE_ENCODINGS:
        raise BagError(f"unsupported encoding {encoding!r}; choose one of "
                       f"{', '.join(WRITE_ENCODINGS)}")
    img8 = image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)
    if encoding == "mono16":
        img16 = image if image.dtype == np.uint16 else image.astype(np.uint16) * 257
        return (img16 if img16.ndim == 2 else cv2.cvtColor(img16, cv2.COLOR_BGR2GRAY)), encoding
    if encoding == "mono8":
        return (img8 if grey else cv2.cvtColor(img8, cv2.COLOR_BGR2GRAY)), encoding
    bgr = cv2.cvtColor(img8, cv2.COLOR_GRAY2BGR) if grey else img8
    return (bgr if encoding == "bgr8" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), encoding


def make_bag(sequence: Sequence, output: str | Path, options: MakeBagOptions = MakeBagOptions(),
             progress: bool = True) -> dict[str, Any]:
    """Write ``sequence`` as a bag: images (Image or CompressedImage), one CameraInfo per image
    (when the sequence has intrinsics) and the ground truth (when it has some; frames without
    ground truth get no message). Bag time = image stamp. Frames that cannot be read are
    skipped and counted.

    Returns ``{"path", "storage", "frames", "skipped", "bytes", "seconds", "topics"}``.

    Raises:
        BagError: the output exists, or options that cannot be written.
    """
    o = options
    if o.gt_type not in ("pose", "odometry"):
        raise BagError(f"gt_type must be pose or odometry, got {o.gt_type!r}")
    if o.compressed_format not in ("png", "jpeg"):
        raise BagError(f"compressed format must be png or jpeg, got {o.compressed_format!r}")
    image_topic = o.image_topic.rstrip("/") + ("/compressed" if o.compressed else "")
    total = len(sequence) + (len(sequence) - 1) * (max(o.repeat, 1) - 1)
    if o.max_frames > 0:
        total = min(total, o.max_frames)
    t0 = time.perf_counter()
    frames = skipped = 0
    with BagWriter(output, o.storage) as bag:
        for k, (i, stamp_ns) in enumerate(tqdm(play_order(sequence.stamps, o.repeat),
                                               total=total, desc=f"make-bag {sequence.name}",
                                               unit="frame", disable=not progress)):
            if k >= total:
                break
            try:
                image = sequence.load_image(i)
            except OSError:
                skipped += 1
                continue
            if sequence.camera is not None and o.info_topic:
                bag.write(o.info_topic, stamp_ns,
                          bag.camera_info(sequence.camera, stamp_ns, o.frame_id))
            if o.compressed:
                msg = bag.compressed_image(image, stamp_ns, o.frame_id, o.compressed_format,
                                           o.jpeg_quality)
            else:
                array, encoding = _encode(image, o.encoding)
                msg = bag.image(array, stamp_ns, o.frame_id, encoding)
            bag.write(image_topic, stamp_ns, msg)
            frames += 1
            gt = None if sequence.gt_poses is None else sequence.gt_poses[i]
            if o.gt_topic and gt is not None and np.all(np.isfinite(gt)):
                gt_msg = (bag.pose_stamped(gt, stamp_ns, o.world_frame) if o.gt_type == "pose"
                          else bag.odometry(gt, stamp_ns, o.world_frame, o.frame_id))
                bag.write(o.gt_topic, stamp_ns, gt_msg)
        counts = dict(bag.counts)
        storage = bag.storage
    out = Path(output)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() \
        else out.stat().st_size
    return {"path": str(out), "storage": storage, "frames": frames, "skipped": skipped,
            "bytes": size, "seconds": time.perf_counter() - t0, "topics": counts}


__all__ = ["BagWriter", "MakeBagOptions", "make_bag", "play_order", "storage_for", "STORAGES",
           "WRITE_ENCODINGS"]
