"""``frontend_node``: the ROS 2 node around :class:`dkp_slam.frontend.FrontEnd`.

Thin by design: messages are converted by :mod:`dkp_slam.ros.conversions`, parameters are
specified and checked by :mod:`dkp_slam.interface`, and the real-time machinery (newest
frame mailbox, statistics, odometry chaining) lives in :mod:`dkp_slam.runtime`.

Threads: the executor runs the callbacks (image, camera_info, reset, parameters, diagnostics
timer), none of which waits for processing: the image callback only puts the message into a
mailbox of ``node.queue_depth`` frames. One worker thread owns the FrontEnd: it takes the oldest
waiting message, applies pending parameter / camera / reset changes between frames, processes
and publishes. A frame arriving when the mailbox is full pushes out the oldest waiting one,
counted as dropped.

Interface (names relative to the node; see docs/ROS.md): subscribes ``image``
(``image/compressed`` with ``node.image_transport:=compressed``) and ``camera_info``; publishes
``~/features``, ``~/relative_pose``, ``~/odometry``, ``~/status``, ``~/debug_image``,
``/diagnostics``, optionally ``~/vins_features`` (``node.vins_features``) and TF; serves
``~/reset``.
"""

from __future__ import annotations

import copy
import functools
import re
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud, PointCloud2
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from ..allocator import keep_freed_memory
from ..camera import Camera, CameraError
from ..config import ConfigError, FrontEndConfig, set_by_path
from ..frontend import FrameResult, FrontEnd
from ..image import ImageError
from ..model.backends import BackendError
from ..model.weights import WeightsError
from ..records import FrameRecord, NodeStatus, StatusReport
from ..viz import TrackHistory, draw_frame
from .conversions import (array_to_image, camera_from_info, compressed_to_array,
                          diagnostics_msg, features_to_cloud, image_to_array, odometry_msg,
                          relative_pose_msg, stamp_to_seconds, status_msg, transform_msg,
                          vins_features_msg)
from ..interface import (CAMERA_INFO_TOPIC, COMPRESSED_IMAGE_TOPIC, DEBUG_IMAGE_TOPIC,
                        DIAGNOSTICS_TOPIC, FEATURES_TOPIC, IMAGE_TOPIC, NODE_NAME, NODE_PREFIX,
                        ODOMETRY_TOPIC, REBUILD, RELATIVE_POSE_TOPIC, RESET_SERVICE,
                        STATUS_TOPIC, VINS_FEATURES_TOPIC, NodeConfig, Spec,
                        camera_from_parameters, parameter_specs)
from ..messages.vins import VinsFeatureTracks
from ..odometry import AngularVelocity, OdometryChain
from ..runtime import FrameMailbox, NodeStats, SequenceGaps
from ..timeline import StampPolicy, restamped

try:  # Optional: not on PyPI; present on a ROS 2 install.
    from tf2_ros import TransformBroadcaster
except ImportError:  # pragma: no cover - depends on the installation
    TransformBroadcaster = None

#: Frames that may wait with ``node.process_every_frame`` (then the oldest is dropped).
EVERY_FRAME_QUEUE = 1000
#: rcl's error type (raised by ``rclpy.init`` for an unreadable parameters file).
RCLError = rclpy_implementation.RCLError
#: Parameters ROS itself may pass in a parameters file; not declared by the node.
ROS_BUILTIN_PREFIXES = ("use_sim_time", "qos_overrides.", "start_type_description_service")
DEFAULT_CAMERA_FRAME = "camera_optical_frame"
_UNSET = object()


def _guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Executor callbacks never raise: an exception would end ``spin()`` and the node."""

    @functools.wraps(callback)
    def wrapper(self: "FrontEndNode", *args: Any) -> Any:
        try:
            return callback(self, *args)
        except Exception as err:
            self.stats.problem("errors", f"{callback.__name__} failed: "
                                         f"{type(err).__name__}: {err}", error=True)
            return None

    return wrapper


def _descriptor(spec: Spec) -> ParameterDescriptor:
    """ROS descriptor (ranges, read-only, description) for a :class:`Spec`."""
    d = ParameterDescriptor(name=spec.name, description=spec.description,
                            read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = f"one of: {', '.join(map(str, spec.choices))}"
    if spec.range is not None and not isinstance(spec.default, bool):
        lo, hi = spec.range
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                         to_value=float(hi), step=0.0)]
    return d


class FrontEndNode(Node):
    """The front-end node. ``kwargs`` go to :class:`rclpy.node.Node` (context, namespace,
    parameter_overrides, ...).

    Raises:
        ConfigError: invalid or unknown parameters (with the reason).
        rclpy.exceptions.ParameterException: a parameter of the wrong type or out of range.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        super().__init__(node_name, **kwargs)
        try:
            self._setup()
        except BaseException:
            super().destroy_node()  # nothing half-built stays in the context
            raise

    def _setup(self) -> None:
        self._specs = {s.name: s for s in parameter_specs()}
        values = self._declare_parameters()
        core = FrontEndConfig.from_dict({k: v for k, v in values.items()
                                         if not k.startswith(NODE_PREFIX)})
        self.node_config = NodeConfig.from_flat(values)
        nc = self.node_config

        self.stats = NodeStats()
        self._slot: FrameMailbox[tuple[Any, float, int]] = FrameMailbox(
            EVERY_FRAME_QUEUE if nc.process_every_frame else nc.queue_depth)
        self._stamps = StampPolicy(nc.time)  # executor thread only
        self._segment = 0  # the worker's time segment (StampPolicy.segment)
        self._missing_reported = 0  # frames_missing_upstream at the last diagnostics
        self._odometry = OdometryChain()
        self._angular_velocity = AngularVelocity()
        self._vins = VinsFeatureTracks()
        self._sequence_gaps = SequenceGaps()
        self._history = TrackHistory()
        self._lock = threading.Lock()  # guards the pending changes below
        self._pending_params: dict[str, Any] = {}
        self._pending_camera: Any = _UNSET
        self._reset_requested = False
        self._frames_since_restart = 0
        self._last_info_key: Optional[tuple] = None
        self._last_debug = float("-inf")
        self._tf = None

        camera: Optional[Camera] = None
        source = nc.camera.source
        if source == "parameters":
            camera = camera_from_parameters(nc.camera)
        elif source == "none":
            self.get_logger().info("node.camera.source=none: no intrinsics, running "
                                   "homography-only (no relative pose)")
        # With camera_info, frames wait for the first valid CameraInfo.
        self._camera_known = source != "camera_info"
        self._waited_for_camera_info = False
        self.frontend = FrontEnd(copy.deepcopy(core), camera)
        if nc.warm_up_frames:  # before any subscription exists: no frame waits for it
            seconds = self.frontend.warm_up(frames=nc.warm_up_frames)
            self.get_logger().info(f"warmed up in {seconds:.1f} s ({nc.warm_up_frames} "
                                   f"synthetic frames)")

        # ---- interfaces
        reliability = (ReliabilityPolicy.BEST_EFFORT if nc.qos.reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        in_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=nc.qos.depth,
                            reliability=reliability, durability=DurabilityPolicy.VOLATILE)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._pub_features = self.create_publisher(PointCloud2, FEATURES_TOPIC, out_qos)
        self._pub_pose = self.create_publisher(PoseWithCovarianceStamped, RELATIVE_POSE_TOPIC,
                                               out_qos)
        self._pub_odom = self.create_publisher(Odometry, ODOMETRY_TOPIC, out_qos)
        self._pub_status = self.create_publisher(String, STATUS_TOPIC, out_qos)
        self._pub_debug = self.create_publisher(Image, DEBUG_IMAGE_TOPIC, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._pub_diag = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, out_qos)
        self._pub_vins = (self.create_publisher(PointCloud, VINS_FEATURES_TOPIC, out_qos)
                          if nc.vins_features else None)
        if nc.image_transport == "compressed":
            self._image_topic = COMPRESSED_IMAGE_TOPIC
            self.create_subscription(CompressedImage, COMPRESSED_IMAGE_TOPIC,
                                     self._on_image, in_qos)
        else:
            self._image_topic = IMAGE_TOPIC
            self.create_subscription(Image, IMAGE_TOPIC, self._on_image, in_qos)
        if source == "camera_info":
            self.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info,
                                     in_qos)
        self.create_service(Trigger, RESET_SERVICE, self._on_reset)
        # Steady clock: diagnostics keep coming with use_sim_time and no /clock.
        self.create_timer(nc.diagnostics_period_s, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._queue_parameters)

        self._worker = threading.Thread(target=self._run, name="dkp_frontend_worker",
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"front-end ready: detector {core.detector.name} on {core.matcher.device}, "
            f"{core.detector.max_keypoints} keypoints; input "
            f"{self.resolve_topic_name(self._image_topic)} ({nc.qos.reliability}, depth "
            f"{nc.qos.depth}); intrinsics from {source}")

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> dict[str, Any]:
        """Declare every spec'd parameter (file / command-line values override defaults)."""
        values = {}
        for spec in self._specs.values():
            values[spec.name] = self.declare_parameter(spec.name, spec.default,
                                                       _descriptor(spec)).value
        overrides = getattr(self, "_parameter_overrides", {})  # rclpy keeps no public view
        unknown = sorted(k for k in overrides if k not in self._specs
                         and not k.startswith(ROS_BUILTIN_PREFIXES))
        if unknown:
            raise ConfigError(f"unknown parameters {unknown}; see `ros2 param list` or "
                              f"docs/ROS.md for the known ones")
        for name, value in values.items():
            reason = self._specs[name].why_invalid(value)
            if reason:
                raise ConfigError(f"{name}={value!r}: {reason}")
        return values

    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """on-set callback: reject values with a reason (ranges/types/read-only are already
        checked by rclpy from the descriptors)."""
        for p in params:
            if p.name not in self._specs:
                continue
            reason = self._specs[p.name].why_invalid(p.value)
            if not reason and p.name == "matcher.device" and p.value != "cpu":
                import torch

                if not torch.cuda.is_available():
                    reason = "CUDA is not available on this machine"
            if reason:
                return SetParametersResult(successful=False,
                                           reason=f"{p.name}={p.value!r}: {reason}")
        return SetParametersResult(successful=True)

    def _queue_parameters(self, params: list[Parameter]) -> None:
        """post-set callback: hand accepted changes to the worker (applied between frames)."""
        with self._lock:
            for p in params:
                if p.name in self._specs:
                    self._pending_params[p.name] = p.value

    # ------------------------------------------------------------------ callbacks
    @_guarded
    def _on_image(self, msg: Image | CompressedImage, info: MessageInfo) -> None:
        """Never blocks: the newest message replaces one the worker has not taken yet."""
        self.stats.count("received")
        gid, seq = info.get("publisher_gid"), info.get("publication_sequence_number")
        if gid and seq:
            lost = self._sequence_gaps.update(bytes(gid["data"]), int(seq))
            if lost:
                self.stats.count("dropped_queue", lost)
                self.stats.count("dropped", lost)
        stamp = msg.header.stamp
        if self._stamps.config.restamp_zero:  # the clock is read only when it may be needed
            stamp.sec, stamp.nanosec = restamped(stamp.sec, stamp.nanosec,
                                                 self.get_clock().now().nanoseconds,
                                                 self._stamps.config)
        check = self._stamps.check(stamp.sec, stamp.nanosec)
        if check.missing:
            self.stats.count("frames_missing_upstream", check.missing)
        if check.counter:  # rejected, or a jump back in time announced before the frame
            self._problem(check.counter, check.reason, msg.header)
            if not check.accepted:
                return
        if self._slot.put((msg, time.perf_counter(), self._stamps.segment)):
            self.stats.count("dropped_busy")
            self.stats.count("dropped")

    @_guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        key = (tuple(msg.k), tuple(msg.p), tuple(msg.d), msg.distortion_model, msg.width,
               msg.height, msg.binning_x, msg.binning_y, msg.roi.x_offset, msg.roi.y_offset,
               msg.roi.width, msg.roi.height)
        if key == self._last_info_key:
            return  # drivers repeat CameraInfo with every image
        try:
            camera = camera_from_info(msg, self.node_config.camera.rectified)
        except (CameraError, ValueError) as err:
            self._problem("invalid_camera_info", f"CameraInfo rejected: {err}")
            return
        self._last_info_key = key
        if camera is None:
            self.get_logger().warning("camera_info is uncalibrated (K = 0): running "
                                      "homography-only (no relative pose)")
        else:
            self.get_logger().info(
                f"intrinsics from camera_info: {camera.width}x{camera.height} "
                f"fx={camera.fx:.2f} fy={camera.fy:.2f} cx={camera.cx:.2f} cy={camera.cy:.2f} "
                f"model={camera.model} dist={camera.dist.tolist()}")
        with self._lock:
            self._pending_camera = camera

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        with self._lock:
            self._reset_requested = True
        response.success = True
        response.message = ("reset: the next frame re-initialises; odometry continues from "
                            "the last pose")
        return response

    def _problem(self, counter: str, reason: str, header: Optional[Header] = None,
                 error: bool = False) -> None:
        """Count, log (throttled) and report on ~/status a skipped input or an error."""
        self.stats.problem(counter, reason, error)
        text = f"{reason} [{counter}: {self.stats.counters[counter]}]"
        throttle = self.node_config.log_throttle_s
        kwargs = {"throttle_duration_sec": throttle} if throttle > 0 else {}
        # rclpy ties a severity to each call site: one call per severity.
        if error:
            self.get_logger().error(text, **kwargs)
        else:
            self.get_logger().warning(text, **kwargs)
        status = (NodeStatus.WAITING_FOR_CAMERA_INFO if counter == "waiting_for_camera_info"
                  else NodeStatus.TIME_RESET if counter == "stamp_resets"
                  else NodeStatus.ERROR if error else NodeStatus.INPUT_ERROR)
        stamp = stamp_to_seconds(header.stamp) if header is not None else None
        self._pub_status.publish(status_msg(
            StatusReport(status, reason, stamp, dict(self.stats.counters)).to_json()))

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._slot.get(timeout=0.1)
            try:
                self._apply_pending()
                if item is not None:
                    self._process(*item)
            except Exception as err:  # never let the worker die
                if self._stop.is_set() or not self.context.ok():
                    break
                self._problem("errors", f"processing failed: {type(err).__name__}: {err}",
                              error=True)
                self.get_logger().debug(traceback.format_exc())

    def _wait_for_camera_info(self) -> None:
        """The first frame can overtake the first CameraInfo (they are different topics): it
        waits up to ``node.camera.info_wait_s`` for it, once (a camera that never sends one
        must not slow every frame)."""
        self._waited_for_camera_info = True
        deadline = time.monotonic() + self.node_config.camera.info_wait_s
        while time.monotonic() < deadline and not self._stop.is_set():
            with self._lock:
                arrived = self._pending_camera is not _UNSET
            if arrived:
                self._apply_pending()
                return
            time.sleep(0.01)

    def _apply_pending(self) -> None:
        """Apply queued parameter, camera and reset changes (worker thread, between frames)."""
        with self._lock:
            params, self._pending_params = self._pending_params, {}
            camera, self._pending_camera = self._pending_camera, _UNSET
            reset, self._reset_requested = self._reset_requested, False
        if params:
            self._apply_parameters(params)
        if camera is not _UNSET:
            before = self.frontend.camera.to_dict() if self.frontend.camera else None
            self.frontend.set_camera(camera)
            self._camera_known = True
            if (camera.to_dict() if camera else None) != before:
                self._restarted("intrinsics changed")
        if reset:
            self.frontend.reset()
            self._restarted("reset service")

    def _apply_parameters(self, params: dict[str, Any]) -> None:
        node_params = {k: v for k, v in params.items() if k.startswith(NODE_PREFIX)}
        if node_params:
            merged = {**self.node_config.flat(), **node_params}
            self.node_config = NodeConfig.from_flat(merged)
            self._stamps.config = self.node_config.time  # read by the next callback
        core = {k: v for k, v in params.items() if not k.startswith(NODE_PREFIX)}
        if not core:
            return
        wanted = copy.deepcopy(self.frontend.config)
        for key, value in core.items():
            set_by_path(wanted, key, value)
        wanted.validate()
        if wanted == self.frontend.config:
            return
        rebuild = [k for k in core if self._specs[k].policy == REBUILD]
        if not rebuild:  # in place: Matcher/Tracker/geometry read their config per call
            for key, value in core.items():
                set_by_path(self.frontend.config, key, value)
            self.get_logger().info(f"parameters applied: {core}")
            return
        try:
            frontend = FrontEnd(wanted, self.frontend.camera)
        except Exception as err:
            old = self.frontend.config.flat()
            self._problem("errors", f"could not rebuild the front-end for {core}: {err}; "
                                    f"keeping the previous configuration", error=True)
            self.set_parameters([Parameter(k, value=old[k]) for k in core])
            return
        self.frontend = frontend
        self._restarted(f"front-end rebuilt for {rebuild}")

    def _restarted(self, why: str) -> None:
        """The tracker restarted: keep odometry continuous, forget drawn tracks and what the
        angular velocity and the VINS features' velocities compare with."""
        if self._frames_since_restart:
            self._odometry.restart()
            self.get_logger().info(f"tracking restarts: {why}")
        self._angular_velocity.reset()
        self._vins.reset()
        self._frames_since_restart = 0
        self._history = TrackHistory()

    def _decode(self, msg: Image | CompressedImage):
        limit = self.node_config.max_image_pixels
        if isinstance(msg, CompressedImage):
            return compressed_to_array(msg, limit)
        return image_to_array(msg, limit)

    def _process(self, msg: Image | CompressedImage, t_received: float, segment: int) -> None:
        if segment != self._segment:  # time jumped back (announced by the callback)
            self._segment = segment
            self.frontend.reset()
            self._restarted("time jumped back")
        try:
            image, order = self._decode(msg)
        except ImageError as err:
            self._problem("invalid_images", f"image rejected: {err}", msg.header)
            return
        if not self._camera_known and not self._waited_for_camera_info:
            self._wait_for_camera_info()
        if not self._camera_known:
            self._problem("waiting_for_camera_info",
                          f"no valid CameraInfo on {self.resolve_topic_name(CAMERA_INFO_TOPIC)} "
                          f"yet: frame skipped (node.camera.source:=none runs homography-only)",
                          msg.header)
            return
        t0 = time.perf_counter()
        try:
            result = self.frontend.process(image, stamp_to_seconds(msg.header.stamp), order)
        except ImageError as err:
            self._problem("invalid_images", f"image rejected: {err}", msg.header)
            return
        process_ms = (time.perf_counter() - t0) * 1e3
        self._frames_since_restart += 1
        self._publish(result, msg.header, image, order, t_received, process_ms)

    # ------------------------------------------------------------------ outputs
    def _publish(self, result: FrameResult, header: Header, image, order: str,
                 t_received: float, process_ms: float) -> None:
        nc = self.node_config
        camera_frame = nc.frames.camera or header.frame_id or DEFAULT_CAMERA_FRAME
        cam_header = Header(stamp=header.stamp, frame_id=camera_frame)
        odom_header = Header(stamp=header.stamp, frame_id=nc.frames.odom)
        self._pub_features.publish(features_to_cloud(result, cam_header))
        self._pub_pose.publish(relative_pose_msg(result, cam_header))
        T_odom_cam, cov = self._odometry.update(result)
        omega = self._angular_velocity.update(result) if nc.odometry_for_fusion else None
        self._pub_odom.publish(odometry_msg(T_odom_cam, cov, odom_header, camera_frame, omega))
        if self._pub_vins is not None:
            vins = self._vins.update(result)
            if vins is None:
                self.get_logger().warning("node.vins_features needs intrinsics: no "
                                          "~/vins_features without them", once=True)
            else:
                self._pub_vins.publish(vins_features_msg(vins, cam_header))
        if nc.publish_tf:
            self._broadcast_tf(T_odom_cam, odom_header, camera_frame)
        latency_ms = (time.perf_counter() - t_received) * 1e3
        status = StatusReport.for_frame(FrameRecord.from_result(result), camera_frame,
                                        latency_ms, {}).to_json()
        self.stats.frame_done(result.status.value, latency_ms, process_ms, status)
        # the counters as they are after this frame was counted
        self._pub_status.publish(status_msg({**status, **self.stats.counters}))
        if nc.debug_image.enabled:
            self._history.add(result.track_ids, result.keypoints)
            now = time.monotonic()
            if (now - self._last_debug >= 1.0 / nc.debug_image.max_rate_hz
                    and self._pub_debug.get_subscription_count() > 0):
                self._last_debug = now
                canvas = draw_frame(image, result, self._history, order)
                self._pub_debug.publish(array_to_image(canvas, cam_header))

    def _broadcast_tf(self, T, header: Header, child: str) -> None:
        """odom -> camera on /tf through tf2_ros (unverified here: tf2_ros is not on PyPI)."""
        if TransformBroadcaster is None:
            self.get_logger().warning("node.publish_tf is true but tf2_ros cannot be "
                                      "imported: no TF is broadcast", once=True)
            return
        if self._tf is None:
            self._tf = TransformBroadcaster(self)
        self._tf.sendTransform(transform_msg(T, header, child))

    @_guarded
    def _publish_diagnostics(self) -> None:
        """Timer: one DiagnosticStatus with rates, latency, counts and the tracking state."""
        s = self.stats.snapshot()
        last = s["last"]
        period = self.node_config.diagnostics_period_s
        missing_now = s["frames_missing_upstream"] - self._missing_reported
        self._missing_reported = s["frames_missing_upstream"]
        period_s = self._stamps.period_s
        # clock 0: use_sim_time without /clock yet, nothing to compare with
        clock_ns, last_ns = self.get_clock().now().nanoseconds, self._stamps.last_ns
        clock_offset_s = ((clock_ns - last_ns) * 1e-9 if clock_ns > 0 and last_ns is not None
                          else float("nan"))
        status = last.get("status", "")
        level, message = DiagnosticStatus.OK, f"{status}: {last.get('message', '')}"
        if s["error_age_s"] < 2 * period + 1 or status == "LOST":
            level = DiagnosticStatus.ERROR
            message = s["last_problem"] if status != "LOST" else message
        elif s["problem_age_s"] < 2 * period + 1:
            level, message = DiagnosticStatus.WARN, s["last_problem"]
        elif not last:
            topic = self.resolve_topic_name(self._image_topic)
            level, message = DiagnosticStatus.WARN, f"no frame processed yet (waiting for {topic})"
        elif s["idle_s"] > max(5 * period, 2.0):
            level, message = DiagnosticStatus.WARN, f"no frame for {s['idle_s']:.1f} s"
        elif missing_now:
            level, message = DiagnosticStatus.WARN, (
                f"{missing_now} frames missing upstream since the last report (gaps in the "
                f"image stamps against the camera period of {period_s * 1e3:.1f} ms)")
        elif abs(clock_offset_s) > CLOCK_OFFSET_WARN_S:
            level, message = DiagnosticStatus.WARN, (
                f"image stamps are {clock_offset_s:.1f} s behind the node clock: replaying a "
                f"bag? start the node with use_sim_time:=true and play the bag with --clock")
        elif status == "FEW_MATCHES":
            level = DiagnosticStatus.WARN
        cam = self.frontend.camera
        values = {
            "status": status, "fps": s["fps"], "latency_ms_median": s["latency_ms_median"],
            "latency_ms_p90": s["latency_ms_p90"], "process_ms_median": s["process_ms_median"],
            "keypoints": last.get("keypoints", 0), "inliers": last.get("inliers", 0),
            **{k: s[k] for k in NodeStats.COUNTERS},
            "pending_frames": self._slot.pending,
            "frame_period_ms": period_s * 1e3,
            "stamp_behind_clock_s": clock_offset_s,
            "detector": self.frontend.config.detector.name,
            "camera": (f"{cam.width}x{cam.height} {cam.model}" if cam is not None
                       else "none (homography-only)"),
            "status_counts": s["status_counts"],
        }
        self._pub_diag.publish(diagnostics_msg(
            self.get_clock().now().to_msg(), f"{self.get_name()}: visual odometry front-end",
            self.node_config.frames.camera or self.get_fully_qualified_name(), level, message,
            values))

    # ------------------------------------------------------------------ lifecycle
    def destroy_node(self) -> None:
        """Stop the worker, then destroy the node."""
        self._stop.set()
        if self._worker is not None:
            self._slot.close()
            if self._worker.is_alive() and threading.current_thread() is not self._worker:
                self._worker.join(timeout=5.0)
        super().destroy_node()


#: /diagnostics warns when image stamps and the node clock differ by more than this (s).
CLOCK_OFFSET_WARN_S = 30.0

#: Longest time a stop request (SIGINT / SIGTERM) waits for the executor to notice it.
STOP_POLL_S = 0.1


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM, once or repeatedly, only set ``stop``.

    rclpy's own handlers are not installed (``SignalHandlerOptions.NO``): they chain to Python's
    SIGINT handler, whose ``KeyboardInterrupt`` can land anywhere in the clean-up when a launch
    without a terminal signals the whole process group (the node then gets the group's SIGINT and
    the launcher's). Here no signal raises; the main loop sees ``stop`` and shuts down in order.
    """
    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)


def ros_arguments_error(message: str) -> str:
    """One line from rcl's error for unusable ``--ros-args``: the parameters file and the
    parser's reason, without rcl's source locations (``, at /project/src/...``)."""
    text = re.sub(r",? at \S+:\d+", "", message).strip()
    text = text.replace("failed to initialize rcl: ", "")
    found = re.search(r"Couldn't parse params file: '--params-file ([^']+)'\.? ?(?:Error: )?"
                      r"(.*)", text)
    if found:
        return f"cannot read the parameters file {found.group(1)}: {found.group(2) or text}"
    return f"invalid ROS arguments: {text}"


def main(args: Optional[list[str]] = None) -> int:
    """Console script ``frontend_node`` (``ros2 run dkp_slam frontend_node --ros-args ...``).

    Exits 0 after SIGINT or SIGTERM (one or several); 2 with one line on stderr for invalid
    parameters, an unreadable parameters file, weights / an ONNX file that cannot be used, or
    a TensorRT engine that cannot be built (during the warm-up).
    """
    keep_freed_memory()  # per-frame buffers stay mapped (dkp_slam/allocator.py)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as err:  # an unreadable parameters file or malformed --ros-args
        print(f"frontend_node: {ros_arguments_error(str(err))}", file=sys.stderr)
        return 2
    try:
        node = FrontEndNode()
    except (ConfigError, CameraError, ParameterException) as err:
        print(f"frontend_node: invalid parameters: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except (WeightsError, BackendError) as err:  # weights, ONNX file; an engine (warm-up)
        print(f"frontend_node: error: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
        # Python's finalisation resets handlers it installed to the default, which a late
        # signal of the group would turn into death by signal (-2): ignored ones stay ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
