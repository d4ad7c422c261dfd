"""``dkp-slam bag-record``: subscribe to ROS 2 topics and write what arrives to a rosbag2 (MCAP
or sqlite3) with ``rosbags``' writer, e.g. the node's ``~/odometry``, ``~/relative_pose`` and
``~/status`` for ``dkp-slam bag-eval``.

Messages are received serialised (``raw=True``) and written as they are; their definitions come
from the ROS 2 Kilted typestore of ``rosbags`` (every type the node publishes is in it). Topics
are subscribed when they appear, with the reliability of their publishers. The bag time of a
message is its receive time on the recorder's clock (``use_sim_time`` for ``/clock``).

rclpy is imported when a recorder is created, never at module import.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .play import message_class
from .reader import BagError
from .writer import BagWriter


@dataclass
class RecordOptions:
    """Options of :class:`BagRecorder`.

    Attributes:
        topics: topics to record (absolute names).
        storage: ``mcap`` or ``sqlite3``.
        duration_s: stop after this many seconds (0: until interrupted).
        idle_stop_s: stop when nothing arrived for this long after the first message (0: off).
        stop_after: stop once every topic named here has this many messages (empty: off);
            independent of how fast the machine is, unlike ``idle_stop_s``.
        use_sim_time: stamp with ``/clock`` time.
        depth: subscription history depth.
    """

    topics: list[str] = field(default_factory=list)
    storage: str = "mcap"
    duration_s: float = 0.0
    idle_stop_s: float = 0.0
    stop_after: dict[str, int] = field(default_factory=dict)
    use_sim_time: bool = False
    depth: int = 100


class BagRecorder:
    """Records topics into a new bag (see the module description).

    Raises:
        BagError: no topics, the output exists, or a ROS 1 storage was asked for.
    """

    def __init__(self, output: str | Path, options: RecordOptions,
                 args: Optional[list[str]] = None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        if not options.topics:
            raise BagError("no topics to record (--topics)")
        if options.storage not in ("mcap", "sqlite3"):
            raise BagError(f"bag-record writes rosbag2 (mcap or sqlite3), not {options.storage}")
        for topic, count in options.stop_after.items():
            if topic not in options.topics or count < 1:
                raise BagError(f"stop after {count} messages on {topic}: the topic must be "
                               f"recorded (--topics) and the count at least 1")
        self.options = options
        self.rclpy = rclpy
        self.writer = BagWriter(output, options.storage)
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        overrides = [Parameter("use_sim_time", value=True)] if options.use_sim_time else []
        self.node = rclpy.create_node("dkp_bag_record", context=self.context,
                                      parameter_overrides=overrides)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._closed = False
        self.received: dict[str, int] = {t: 0 for t in options.topics}
        self.types: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self._subs: list[Any] = []
        self.first_t: Optional[float] = None
        self.last_t: Optional[float] = None
        self.node.create_timer(0.2, self._discover)
        self._discover()

    def _discover(self) -> None:
        """Subscribe to the wanted topics that have appeared (timer)."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        known = dict(self.node.get_topic_names_and_types())
        for topic in self.options.topics:
            if topic in self.types or topic in self.problems or topic not in known:
                continue
            msgtype = known[topic][0]
            try:
                cls = message_class(msgtype)
                self.writer.add_topic(topic, msgtype)
            except Exception as err:  # type not installed or unknown to the typestore
                self.problems[topic] = f"{msgtype}: {err}"
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                              for i in infos)
            # transient-local where every publisher keeps its history (bag-play does): messages
            # sent before this side of the match completed are delivered too
            latched = bool(infos) and all(
                i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
            qos = QoSProfile(depth=self.options.depth, reliability=(
                ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE),
                durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                            else DurabilityPolicy.VOLATILE))
            self._subs.append(self.node.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True))
            self.types[topic] = msgtype

    def _on_message(self, topic: str, data: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self.writer.write_raw(topic, now, data)
            self.received[topic] += 1
            self.last_t = time.monotonic()
            if self.first_t is None:
                self.first_t = self.last_t

    def record(self, stop: Optional[threading.Event] = None) -> dict[str, Any]:
        """Spin until ``stop`` is set, the duration is over, or the idle time passes; close the
        bag and return ``{"output", "received", "types", "problems", "seconds"}``."""
        o = self.options
        t0 = time.monotonic()
        stop = stop or threading.Event()
        try:
            while not stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.1)
                now = time.monotonic()
                if o.duration_s > 0 and now - t0 >= o.duration_s:
                    break
                if (o.idle_stop_s > 0 and self.last_t is not None
                        and now - self.last_t >= o.idle_stop_s):
                    break
                if o.stop_after and all(self.received[t] >= n for t, n in o.stop_after.items()):
                    break
        finally:
            self.close()
        missing = [t for t in o.topics if t not in self.types and t not in self.problems]
        return {"output": str(self.writer.path), "received": dict(self.received),
                "types": dict(self.types), "problems": dict(self.problems),
                "never_seen": missing, "seconds": round(time.monotonic() - t0, 3)}

    def close(self) -> None:
        """Finish the bag and shut the ROS context down (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.writer.close()
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


__all__ = ["BagRecorder", "RecordOptions"]
