"""Streamed reading of ROS bags with ``rosbags`` (no ROS installation needed, no rclpy).

Formats: rosbag2 folders or files with sqlite3 (``.db3``) or MCAP (``.mcap``) storage, and
ROS 1 ``.bag`` files (several ROS 1 files may be read as one). Messages are read one at a time
in bag-time order; nothing proportional to the bag size is kept.

Message type names are the ROS 2 spelling (``sensor_msgs/msg/Image``) for both ROS versions,
as ``rosbags`` reports them; ROS 1 field names that differ (``CameraInfo.K``) are handled by
:mod:`dkp_slam.messages.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence as Seq

import numpy as np

from ..messages.decode import matrix_from_pose, matrix_from_transform, stamp_to_ns

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED_TYPE = "geometry_msgs/msg/PoseStamped"
POSE_COV_TYPE = "geometry_msgs/msg/PoseWithCovarianceStamped"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
TRANSFORM_TYPE = "geometry_msgs/msg/TransformStamped"
TF_TYPE = "tf2_msgs/msg/TFMessage"
STRING_TYPE = "std_msgs/msg/String"
#: Message types a pose track (ground truth, node output) can be read from.
POSE_TYPES = (POSE_STAMPED_TYPE, POSE_COV_TYPE, ODOMETRY_TYPE, TRANSFORM_TYPE, TF_TYPE)
#: Bag file suffixes understood by :class:`BagReader`.
BAG_SUFFIXES = (".db3", ".mcap", ".bag")


class BagError(ValueError):
    """A bag, topic or option that cannot be used; the message is one line with the reason."""


class MessageError(ValueError):
    """One message that cannot be deserialised (truncated or corrupt data)."""


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: name, message type (ROS 2 spelling) and message count."""

    name: str
    msgtype: str
    count: int


@dataclass
class RawMessage:
    """One serialised message as stored: topic, type, bag (receive) time in ns, bytes."""

    topic: str
    msgtype: str
    time_ns: int
    data: bytes | memoryview


def resolve_bag_path(path: str | Path) -> list[Path]:
    """The path(s) ``rosbags`` should open for ``path``.

    A rosbag2 folder (with ``metadata.yaml``) is opened as a whole; a ``.db3`` / ``.mcap`` file
    inside such a folder opens the folder (splits and metadata belong together); a bare
    ``.db3`` / ``.mcap`` / ``.bag`` file is opened as is; a folder without ``metadata.yaml``
    holding exactly one bag file opens that file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BagError: not a bag.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    if p.is_dir():
        if (p / "metadata.yaml").is_file():
            return [p]
        files = sorted(f for f in p.iterdir() if f.suffix in BAG_SUFFIXES)
        if len(files) == 1:
            return files
        raise BagError(f"{p} is a folder without metadata.yaml and with {len(files)} bag files "
                       f"({', '.join(BAG_SUFFIXES)}); pass one file")
    if p.suffix not in BAG_SUFFIXES:
        raise BagError(f"{p} is not a bag (expected a rosbag2 folder or a "
                       f"{', '.join(BAG_SUFFIXES)} file)")
    if p.suffix != ".bag" and (p.parent / "metadata.yaml").is_file():
        return [p.parent]
    return [p]


class BagReader:
    """A bag opened for streamed reading (a context manager).

    Attributes:
        paths: what was opened (see :func:`resolve_bag_path`).
        format: ``"rosbag2/mcap"``, ``"rosbag2/sqlite3"`` or ``"ros1"``.
        topics: ``{name: TopicInfo}``.
        read_errors: reasons the bag could not be read to its end (a truncated file), if any.

    Raises:
        FileNotFoundError, BagError: the bag cannot be opened (with the reason).
    """

    def __init__(self, path: str | Path | Seq[str | Path]) -> None:
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.typesys import Stores, get_typestore

        paths = ([Path(p) for p in path] if isinstance(path, (list, tuple))
                 else resolve_bag_path(path))
        self.paths = paths
        self.path = paths[0]
        is_ros1 = all(p.suffix == ".bag" for p in paths)
        store = Stores.ROS1_NOETIC if is_ros1 else Stores.ROS2_KILTED
        try:
            self._reader = AnyReader(paths, default_typestore=get_typestore(store))
            self._reader.open()
        except (AnyReaderError, OSError, ValueError, KeyError) as err:
            raise BagError(f"cannot open bag {self.path}: {err}") from None
        self._errors = (AnyReaderError,)
        self.format = "ros1" if is_ros1 else f"rosbag2/{self._storage()}"
        self.topics: dict[str, TopicInfo] = {
            name: TopicInfo(name, info.msgtype or "", int(info.msgcount))
            for name, info in self._reader.topics.items()}
        self.read_errors: list[str] = []

    def _storage(self) -> str:
        for p in self.paths:
            if p.is_dir():
                return "mcap" if any(p.glob("*.mcap")) else "sqlite3"
            return "mcap" if p.suffix == ".mcap" else "sqlite3"
        return "?"

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying files (idempotent)."""
        if self._reader is not None and self._reader.stack is not None:
            self._reader.close()

    # ------------------------------------------------------------------ topics
    @property
    def start_ns(self) -> int:
        """Bag time of the first message (ns)."""
        return int(self._reader.start_time)

    @property
    def duration_s(self) -> float:
        """Seconds between the first and the last message (bag time)."""
        return max(int(self._reader.end_time) - int(self._reader.start_time), 0) * 1e-9

    def size_bytes(self) -> int:
        """Bytes on disk of the bag files."""
        total = 0
        for p in self.paths:
            files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
            total += sum(f.stat().st_size for f in files)
        return total

    def topics_of_type(self, *msgtypes: str) -> list[str]:
        """Names of the topics whose type is one of ``msgtypes``, sorted."""
        return sorted(n for n, t in self.topics.items() if t.msgtype in msgtypes)

    def require(self, topic: str, msgtypes: Iterable[str]) -> TopicInfo:
        """The topic ``topic``, checked to have one of ``msgtypes``.

        Raises:
            BagError: the bag has no such topic, or it has another type.
        """
        msgtypes = tuple(msgtypes)
        info = self.topics.get(topic)
        if info is None:
            listing = ", ".join(f"{n} ({t.msgtype})" for n, t in sorted(self.topics.items()))
            raise BagError(f"{self.path} has no topic {topic!r}; topics: {listing or 'none'}")
        if info.msgtype not in msgtypes:
            raise BagError(f"topic {topic} has type {info.msgtype}; expected "
                           f"{' or '.join(msgtypes)}")
        return info

    # ------------------------------------------------------------------ messages
    def messages(self, topics: Iterable[str], start_ns: Optional[int] = None
                 ) -> Iterator[RawMessage]:
        """Stream the messages of ``topics`` in bag-time order (from ``start_ns`` on).

        A bag that ends in the middle of a record (a recorder that was killed) ends the stream
        there; the reason is appended to :attr:`read_errors` instead of raising.
        """
        wanted = set(topics)
        conns = [c for c in self._reader.connections if c.topic in wanted]
        if not conns:
            return
        it = self._reader.messages(connections=conns, start=start_ns)
        while True:
            try:
                conn, t_ns, data = next(it)
            except StopIteration:
                return
            except Exception as err:  # rosbags raises its own errors, struct / zstd / sqlite ones
                self.read_errors.append(f"{type(err).__name__}: {err}")
                return
            yield RawMessage(conn.topic, conn.msgtype, int(t_ns), data)

    def deserialize(self, raw: RawMessage) -> Any:
        """The message object of ``raw`` (rosbags dataclasses; ROS 1 or ROS 2 fields).

        Raises:
            MessageError: truncated or corrupt data (with the reason).
        """
        try:
            return self._reader.deserialize(raw.data, raw.msgtype)
        except Exception as err:  # any decoding failure of foreign bytes: one bad message
            raise MessageError(f"cannot deserialise {raw.msgtype} on {raw.topic} "
                               f"({len(raw.data)} bytes): {type(err).__name__}: {err}") from None


# ---------------------------------------------------------------------- pose tracks
def pose_samples(msg: Any, msgtype: str, child_frame: Optional[str] = None
                 ) -> list[tuple[int, np.ndarray, str]]:
    """``[(stamp_ns, 4x4 pose, child frame), ...]`` from one pose message.

    PoseStamped / PoseWithCovarianceStamped / Odometry / TransformStamped give one sample;
    a TFMessage gives one per transform (only those to ``child_frame`` when given). The child
    frame of PoseStamped / PoseWithCovarianceStamped is empty.
    """
    if msgtype == POSE_STAMPED_TYPE:
        return [(stamp_to_ns(msg.header.stamp), matrix_from_pose(msg.pose), "")]
    if msgtype == POSE_COV_TYPE:
        return [(stamp_to_ns(msg.header.stamp), matrix_from_pose(msg.pose.pose), "")]
    if msgtype == ODOMETRY_TYPE:
        return [(stamp_to_ns(msg.header.stamp), matrix_from_pose(msg.pose.pose),
                 msg.child_frame_id)]
    transforms = [msg] if msgtype == TRANSFORM_TYPE else list(msg.transforms)
    return [(stamp_to_ns(t.header.stamp), matrix_from_transform(t.transform), t.child_frame_id)
            for t in transforms if child_frame is None or t.child_frame_id == child_frame]


def read_pose_track(reader: BagReader, topic: str, child_frame: Optional[str] = None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """All poses of a pose topic: ``(stamps_ns (N,), poses (N,4,4), problems)``.

    For TF topics ``child_frame`` selects the transforms; without it the topic must carry a
    single child frame. ``problems`` counts messages that could not be deserialised
    (``corrupt``). Samples are sorted by stamp.

    Raises:
        BagError: no such topic, a wrong type, or several TF child frames and none chosen.
    """
    info = reader.require(topic, POSE_TYPES)
    stamps: list[int] = []
    poses: list[np.ndarray] = []
    children: set[str] = set()
    problems = {"corrupt": 0}
    for raw in reader.messages([topic]):
        try:
            msg = reader.deserialize(raw)
        except MessageError:
            problems["corrupt"] += 1
            continue
        for stamp, T, child in pose_samples(msg, info.msgtype, child_frame):
            stamps.append(stamp)
            poses.append(T)
            children.add(child)
    if info.msgtype in (TF_TYPE, TRANSFORM_TYPE) and child_frame is None and len(children) > 1:
        frames = ", ".join(sorted(children))
        raise BagError(f"{topic} carries transforms to several frames ({frames}); choose one "
                       f"with --gt-frame")
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return (np.asarray(stamps, dtype=np.int64)[order],
            np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)[order], problems)


__all__ = ["BagReader", "BagError", "MessageError", "TopicInfo", "RawMessage",
           "resolve_bag_path", "pose_samples", "read_pose_track", "IMAGE_TYPE",
           "COMPRESSED_IMAGE_TYPE", "IMAGE_TYPES", "CAMERA_INFO_TYPE", "POSE_TYPES",
           "POSE_STAMPED_TYPE", "POSE_COV_TYPE", "ODOMETRY_TYPE", "TRANSFORM_TYPE", "TF_TYPE",
           "STRING_TYPE"]
