"""``dkp-slam bag-play``: publish a bag's topics over ROS 2 at its recorded rate (or a multiple),
so that the live ``frontend_node`` can be evaluated on it.

rosbag2 messages are published as the serialised bytes stored in the bag (no decoding); ROS 1
messages are converted to ROS 2 wire format with ``rosbags`` (``std_msgs/Header`` loses
``seq``). ``/clock`` (``rosgraph_msgs/Clock``) carries the bag time for nodes started with
``use_sim_time:=true``.

rclpy is imported when a player is created, never at module import (the core stays free of
ROS imports).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from tqdm import tqdm

from .reader import BagError, BagReader


@dataclass
class PlayOptions:
    """Options of :class:`BagPlayer`.

    Attributes:
        rate: playback speed factor (2 = twice as fast).
        loop: start again at the end, until interrupted.
        start_s: skip this many seconds from the start of the bag.
        duration_s: stop after this many seconds of bag time (0: to the end).
        topics: topics to publish (empty: all that can be published).
        remap: ``{bag topic: published topic}``.
        clock: publish ``/clock`` with the bag time.
        clock_hz: ``/clock`` rate between messages.
        wait_subscribers_s: before starting, wait up to this long until every topic has a
            subscriber (0: start at once).
        qos_depth: history depth of the (reliable) publishers.
    """

    rate: float = 1.0
    loop: bool = False
    start_s: float = 0.0
    duration_s: float = 0.0
    topics: list[str] = field(default_factory=list)
    remap: dict[str, str] = field(default_factory=dict)
    clock: bool = False
    clock_hz: float = 100.0
    wait_subscribers_s: float = 0.0
    qos_depth: int = 10


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``pkg/msg/Name`` (ImportError when not installed)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _ros1_converter(reader: BagReader, msgtype: str) -> Callable[[bytes], bytes]:
    """ROS 1 bytes -> ROS 2 CDR bytes for ``msgtype`` (as ``rosbags-convert`` does)."""
    from rosbags.convert.converter import generate_message_converter
    from rosbags.typesys import Stores, get_typestore

    src = reader._reader.typestore  # the bag's own definitions
    dst = get_typestore(Stores.EMPTY)
    dst.register({**src.fielddefs, "std_msgs/msg/Header":
                  get_typestore(Stores.ROS2_KILTED).fielddefs["std_msgs/msg/Header"]})
    convert = generate_message_converter(src, dst, msgtype, msgtype, {}, src_is2=False,
                                         dst_is2=True)
    return lambda data: bytes(convert(data))


class BagPlayer:
    """Publishes a bag over ROS 2 (see the module description).

    Raises:
        BagError: the bag cannot be opened, or none of the topics can be published.
    """

    def __init__(self, path: str | Path, options: PlayOptions = PlayOptions(),
                 args: Optional[list[str]] = None) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        if not options.rate > 0:
            raise BagError(f"--rate must be positive, got {options.rate}")
        self.options = options
        self.reader = BagReader(path)
        missing = [t for t in options.topics if t not in self.reader.topics]
        if missing:
            raise BagError(f"{self.reader.path} has no topic(s) {', '.join(missing)}")
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        self.node = rclpy.create_node("dkp_bag_play", context=self.context)
        # Transient-local: a subscriber whose side of the DDS match completes after the first
        # messages (wait_for_subscribers only sees the publisher's side) still gets the last
        # ``qos_depth`` of them if it asks for transient-local, as bag-record does; volatile
        # subscribers (the node) are compatible and get live messages only.
        qos = QoSProfile(depth=options.qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publishers: dict[str, Any] = {}
        self.converters: dict[str, Callable[[bytes], bytes]] = {}
        self.skipped_topics: dict[str, str] = {}
        for name in options.topics or sorted(self.reader.topics):
            msgtype = self.reader.topics[name].msgtype
            try:
                cls = message_class(msgtype)
                if self.reader.format == "ros1":
                    self.converters[name] = _ros1_converter(self.reader, msgtype)
            except Exception as err:  # type not installed here, or not convertible
                self.skipped_topics[name] = f"{msgtype}: {type(err).__name__}: {err}"
                continue
            self.publishers[name] = self.node.create_publisher(
                cls, options.remap.get(name, name), qos)
        if not self.publishers:
            self.close()
            raise BagError(f"none of the topics can be published here: {self.skipped_topics}")
        self.clock_pub = None
        if options.clock:
            from rosgraph_msgs.msg import Clock

            self.clock_pub = self.node.create_publisher(Clock, "/clock", qos)
        self.published: dict[str, int] = {t: 0 for t in self.publishers}
        self.late_ms_max = 0.0

    # ------------------------------------------------------------------ playing
    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every publisher has a subscriber (or ``timeout_s`` passes)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                time.sleep(0.5)  # let the subscribers' side of the match settle too
                return True
            time.sleep(0.05)
        return False

    def _publish_clock(self, t_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def _sleep_until(self, wall: float, bag_ns_at: Callable[[float], int]) -> None:
        """Sleep until ``wall`` (perf_counter), publishing /clock in between."""
        period = 1.0 / self.options.clock_hz
        while True:
            now = time.perf_counter()
            if now >= wall:
                return
            if self.clock_pub is not None:
                self._publish_clock(bag_ns_at(now))
                time.sleep(min(period, wall - now))
            else:
                time.sleep(wall - now)

    def play_once(self, progress: bool = True) -> int:
        """Play the bag (or its selected part) once; return the messages published."""
        o = self.options
        start_ns = self.reader.start_ns + int(o.start_s * 1e9)
        stop_ns = start_ns + int(o.duration_s * 1e9) if o.duration_s > 0 else None
        total = sum(self.reader.topics[t].count for t in self.publishers)
        wall0: Optional[float] = None
        bag0 = start_ns
        count = 0

        def bag_ns_at(wall: float) -> int:
            return bag0 + int((wall - wall0) * o.rate * 1e9)

        for raw in tqdm(self.reader.messages(list(self.publishers), start_ns), total=total,
                        desc="bag-play", unit="msg", disable=not progress):
            if stop_ns is not None and raw.time_ns >= stop_ns:
                break
            if wall0 is None:
                wall0, bag0 = time.perf_counter(), raw.time_ns
            target = wall0 + (raw.time_ns - bag0) * 1e-9 / o.rate
            self._sleep_until(target, bag_ns_at)
            late_ms = (time.perf_counter() - target) * 1e3
            self.late_ms_max = max(self.late_ms_max, late_ms)
            if self.clock_pub is not None:
                self._publish_clock(raw.time_ns)
            data = bytes(raw.data)
            convert = self.converters.get(raw.topic)
            self.publishers[raw.topic].publish(convert(data) if convert else data)
            self.published[raw.topic] += 1
            count += 1
        return count

    def play(self, progress: bool = True) -> dict[str, Any]:
        """Wait for subscribers (if asked), play (looping if asked); return statistics."""
        o = self.options
        matched = True
        if o.wait_subscribers_s > 0:
            matched = self.wait_for_subscribers(o.wait_subscribers_s)
        t0 = time.perf_counter()
        passes = 0
        while True:
            self.play_once(progress)
            passes += 1
            if not o.loop:
                break
        acknowledged = self.wait_for_acknowledgements(5.0)
        return {"bag": str(self.reader.path), "passes": passes, "published": dict(self.published),
                "skipped_topics": dict(self.skipped_topics), "subscribers_matched": matched,
                "acknowledged": acknowledged,
                "wall_s": round(time.perf_counter() - t0, 3),
                "late_ms_max": round(self.late_ms_max, 1), "rate": o.rate}

    def wait_for_acknowledgements(self, timeout_s: float) -> bool:
        """Wait until every subscriber acknowledged every message (reliable QoS), at most
        ``timeout_s`` in all: the last messages would otherwise be lost when the publishers
        are destroyed right after the last one was sent."""
        from rclpy.duration import Duration

        end = time.monotonic() + timeout_s
        pubs = list(self.publishers.values()) + ([self.clock_pub] if self.clock_pub else [])
        return all([p.wait_for_all_acked(Duration(seconds=max(end - time.monotonic(), 0.0)))
                    for p in pubs])

    def close(self) -> None:
        """Destroy the node, shut the context down and close the bag (idempotent)."""
        if self.node is None:
            return
        node, self.node = self.node, None
        try:
            node.destroy_node()
        finally:
            self.rclpy.try_shutdown(context=self.context)
            self.reader.close()


__all__ = ["BagPlayer", "PlayOptions", "message_class"]
