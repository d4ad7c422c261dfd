"""``dkp-slam bag-eval``: the front-end on a recorded bag, offline and deterministic, or the
scoring of a bag recorded from the live node.

Running on an input bag: the image topic becomes a :class:`BagFrames` stream (a
:class:`~dkp_slam.sequence.FrameSource`) that :func:`dkp_slam.runner.run_sequence` consumes
exactly like a dataset folder, with the same :class:`~dkp_slam.frontend.FrontEnd` and
configuration as the node, so the outputs (``summary.json``, ``frames.csv``,
``trajectory_tum.txt``, ...) and metrics are those of ``dkp-slam run``. Problems in the bag
(corrupt messages, unknown encodings, stamps going backwards or repeated, missing CameraInfo)
are counted under ``input.counters`` of the summary and never stop the run.

Scoring an output bag (:func:`score_output_bag`): the node's ``~/status`` + ``~/relative_pose``
(or ``~/odometry``) become the per-frame records of :mod:`dkp_slam.evaluation` and go through
the same summary, outputs and report.
"""

from __future__ import annotations

import json
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..camera import Camera, CameraError
from ..config import FrontEndConfig, extract_ros_parameters, flatten
from ..datasets import interpolate_poses, load_calibration, load_trajectory
from ..evaluation import relative_pose_errors, summarize
from ..geometry import UNKNOWN_VARIANCE
from ..image import ImageError
from ..memory import peak_rss_mb, rss_mb
from ..records import FrameRecord, StatusReport
from ..messages.decode import (COMPRESSED_FORMATS, IMAGE_ENCODINGS, camera_from_info,
                          compressed_to_array, image_to_array, matrix_from_pose, stamp_to_ns)
from ..interface import NODE_PREFIX, NodeConfig, camera_from_parameters
from ..runtime import NodeStats
from ..timeline import NS_PER_S, RESTART, TIME_COUNTERS, StampPolicy, TimeConfig, restamped
from ..runner import run_sequence, write_outputs
from ..sequence import Frame
from ..tracking import TrackingStatus
from .reader import (CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPES, ODOMETRY_TYPE,
                     POSE_COV_TYPE, POSE_STAMPED_TYPE, STRING_TYPE, TF_TYPE, TRANSFORM_TYPE,
                     BagError, BagReader, MessageError, RawMessage, read_pose_track)

#: Counters of :class:`BagFrames` (``input.counters`` of the summary).
COUNTERS = ("images", "corrupt", "unsupported_encoding", "invalid_image", *TIME_COUNTERS,
            "camera_info_messages", "camera_info_invalid", "camera_info_changes",
            "camera_info_missing", "read_errors")
#: Words that mark a ground-truth topic when a bag has several pose topics.
GT_HINTS = ("ground_truth", "groundtruth", "gt", "vicon", "leica", "mocap")


@dataclass
class BagEvalOptions:
    """Options of :func:`evaluate_bag` (the ``dkp-slam bag-eval`` flags).

    Attributes:
        image_topic: image topic (Image or CompressedImage); None: auto-detected.
        info_topic: CameraInfo topic; None: the one beside the image topic, or the only one.
        calib: calibration file (ROS camera_info YAML, Kalibr camchain, EuRoC sensor.yaml);
            overrides CameraInfo.
        calib_camera: camera of a Kalibr camchain (``cam0``, ...).
        gt: ground-truth file (TUM, KITTI, EuRoC csv).
        gt_topic: ground-truth topic (PoseStamped, PoseWithCovarianceStamped, Odometry,
            TransformStamped, TF); None: auto-detected from the pose topics.
        gt_frame: child frame of the TF ground truth.
        gt_body: the ground truth is the body (IMU) pose: multiply by ``T_body_cam`` from
            the calibration file (EuRoC csv files always are).
        gt_max_dt: ground truth is interpolated between samples at most this far (s) from an
            image stamp; farther frames have none.
        stamps: ``header`` (image header stamps, as the node uses) or ``bag`` (bag receive
            times, for drivers that do not stamp).
        start_s: skip this many seconds from the start of the bag.
        max_frames: read at most this many image messages (0: all).
        pose_topic: score this node output (Odometry or PoseWithCovarianceStamped) instead of
            running the front-end; also chosen automatically for bags without images.
        rss_every: sample the resident memory every this many frames.
    """

    image_topic: Optional[str] = None
    info_topic: Optional[str] = None
    calib: Optional[str] = None
    calib_camera: Optional[str] = None
    gt: Optional[str] = None
    gt_topic: Optional[str] = None
    gt_frame: Optional[str] = None
    gt_body: bool = False
    gt_max_dt: float = 0.02
    stamps: str = "header"
    start_s: float = 0.0
    max_frames: int = 0
    pose_topic: Optional[str] = None
    rss_every: int = 50


# ---------------------------------------------------------------------- ground truth
@dataclass
class GroundTruth:
    """A pose track ``T_world_cam`` and how frames are associated with it.

    Attributes:
        stamps_ns: sample times, or None for one pose per frame (KITTI without times).
        poses: (N,4,4) poses.
        source: where it came from (for the summary).
        max_dt: see :attr:`BagEvalOptions.gt_max_dt`.
    """

    stamps_ns: Optional[np.ndarray]
    poses: np.ndarray
    source: str
    max_dt: float = 0.02

    def at(self, records: list[FrameRecord]) -> np.ndarray:
        """(len(records),4,4) poses at the records' stamps (or frame indices), NaN where the
        track has no sample within ``max_dt``."""
        if self.stamps_ns is None:
            out = np.full((len(records), 4, 4), np.nan)
            idx = np.array([r.sequence_index for r in records], dtype=np.int64)
            ok = idx < len(self.poses)
            out[ok] = self.poses[idx[ok]]
            return out
        query = np.array([round(r.stamp * 1e9) for r in records], dtype=np.int64)
        return interpolate_poses(query, self.stamps_ns, self.poses, self.max_dt)


def _pose_topics(reader: BagReader, exclude: tuple[str, ...] = ()) -> list[str]:
    return [t for t in reader.topics_of_type(POSE_STAMPED_TYPE, POSE_COV_TYPE, ODOMETRY_TYPE,
                                             TRANSFORM_TYPE)
            if t not in exclude and not _is_node_output(t)]


def _is_node_output(topic: str) -> bool:
    return topic.rstrip("/").rsplit("/", 1)[-1] in ("odometry", "relative_pose")


def load_ground_truth(reader: BagReader, o: BagEvalOptions,
                      T_body_cam: Optional[np.ndarray], exclude: tuple[str, ...] = ()
                      ) -> tuple[Optional[GroundTruth], str]:
    """The ground truth of a bag evaluation and a one-line note about it.

    Order: ``--gt`` file; ``--gt-topic`` (or ``/tf`` with ``--gt-frame``); else the only pose
    topic of the bag (or the one whose name says ground truth) other than the node's outputs
    and ``exclude``. EuRoC csv files (body poses) and ``gt_body`` are moved to the camera with
    ``T_body_cam``.

    Raises:
        BagError, FileNotFoundError, ValueError: an unusable file or topic.
    """
    body = o.gt_body
    if o.gt:
        ns, poses, fmt = load_trajectory(o.gt)
        body = body or fmt == "euroc"
        source = f"file {o.gt} ({fmt})"
    else:
        topic = o.gt_topic
        if topic is None and o.gt_frame:
            tf = reader.topics_of_type(TF_TYPE)
            topic = "/tf" if "/tf" in tf else (tf[0] if tf else None)
        if topic is None:
            cands = _pose_topics(reader, exclude)
            hinted = [t for t in cands if any(h in t.lower() for h in GT_HINTS)]
            if len(cands) == 1 or len(hinted) == 1:
                topic = (hinted or cands)[0]
            elif cands:
                return None, (f"no ground truth: several pose topics ({', '.join(cands)}); "
                              f"choose one with --gt-topic")
            else:
                return None, "no ground truth (no pose topic in the bag; use --gt FILE)"
        ns, poses, problems = read_pose_track(reader, topic, o.gt_frame)
        source = f"topic {topic} ({reader.topics[topic].msgtype})"
        if problems["corrupt"]:
            source += f", {problems['corrupt']} corrupt messages skipped"
        if len(poses) == 0:
            return None, f"no ground truth: {source} has no poses"
    note = source
    if body:
        if T_body_cam is None:
            note += "; body poses used as camera poses (no T_body_cam: pass --calib)"
        else:
            poses = poses @ T_body_cam
            note += "; body poses moved to the camera with T_body_cam from the calibration"
    return GroundTruth(ns, poses, source, o.gt_max_dt), note


# ---------------------------------------------------------------------- camera
def node_camera_config(config_path: Optional[str]) -> NodeConfig:
    """The ``node.*`` parameters of a node parameters file (defaults without one), so that
    ``bag-eval --config`` takes its intrinsics where the node would (``node.camera.source``,
    ``node.camera.rectified``)."""
    if not config_path:
        return NodeConfig()
    import yaml

    with open(config_path) as f:
        data = yaml.safe_load(f) or {}
    flat = flatten(extract_ros_parameters(data))
    return NodeConfig.from_flat({k: v for k, v in flat.items() if k.startswith(NODE_PREFIX)})


def _sibling_info_topic(image_topic: str) -> str:
    base = image_topic.rstrip("/")
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    return base.rsplit("/", 1)[0] + "/camera_info"


def first_camera_info(reader: BagReader, topic: str, rectified: bool
                      ) -> tuple[Optional[Camera], int]:
    """The camera of the first valid CameraInfo on ``topic`` and the number of invalid ones
    read before it (the scan stops at the first valid one)."""
    invalid = 0
    for raw in reader.messages([topic]):
        try:
            cam = camera_from_info(reader.deserialize(raw), rectified)
        except (MessageError, CameraError, ValueError):
            invalid += 1
            continue
        if cam is not None:
            return cam, invalid
        invalid += 1  # uncalibrated (K = 0)
    return None, invalid


# ---------------------------------------------------------------------- the frame stream
def detect_image_topic(reader: BagReader, hint: Optional[str] = None) -> Optional[str]:
    """The image topic to evaluate: ``hint`` when it is one (e.g. Kalibr's ``rostopic``),
    else the only image topic, preferring raw Image over its ``/compressed`` twin and ignoring
    the node's ``debug_image``; None when the bag has no image topic.

    Raises:
        BagError: several candidates (listed).
    """
    topics = [t for t in reader.topics_of_type(*IMAGE_TYPES)
              if not t.rstrip("/").endswith("debug_image")]
    if hint and hint in topics:
        return hint
    raw = set(topics)
    topics = [t for t in topics if not (t.endswith("/compressed") and
                                        t[: -len("/compressed")] in raw)]
    if len(topics) > 1:
        raise BagError(f"several image topics ({', '.join(topics)}); choose one with "
                       f"--image-topic")
    return topics[0] if topics else None


def _failing(err: Exception) -> Callable[[], tuple[np.ndarray, str]]:
    def load() -> tuple[np.ndarray, str]:
        raise err
    return load


class BagFrames:
    """The image topic of a bag as a :class:`~dkp_slam.sequence.FrameSource`.

    Frames are read, deserialised and decoded one at a time while the runner asks for them.
    Rejected messages still yield a frame whose ``load()`` raises
    :class:`~dkp_slam.image.ImageError` with the reason, so the runner lists them as skipped;
    the reason is also counted in :attr:`counters`. Stamps go through the node's time policy
    (:mod:`dkp_slam.timeline`, ``node.time.*`` of the parameters file): invalid, repeated and
    slightly backward stamps are rejected, a jump back beyond ``reset_backwards_s`` restarts
    the tracker.
    """

    def __init__(self, reader: BagReader, image_topic: str, camera: Optional[Camera],
                 camera_source: str, info_topic: Optional[str] = None,
                 ground_truth: Optional[GroundTruth] = None, gt_note: str = "",
                 options: BagEvalOptions = BagEvalOptions(), rectified: bool = False,
                 max_image_pixels: int = 1 << 28, time_config: Optional[TimeConfig] = None
                 ) -> None:
        self.reader = reader
        self.image_topic = image_topic
        self.info_topic = info_topic
        self.camera = camera
        self.camera_source = camera_source
        self.gt = ground_truth
        self.gt_note = gt_note
        self.options = options
        self.rectified = rectified
        self.max_image_pixels = max_image_pixels
        self.time_config = time_config if time_config is not None else TimeConfig()
        self.name = reader.path.stem if reader.path.suffix else reader.path.name
        self.counters: dict[str, int] = {k: 0 for k in COUNTERS}
        self.counters["camera_info_missing"] = int(camera is None)
        self.rss_samples: list[tuple[int, float]] = []
        self.wall_s = 0.0
        self._last_info: Optional[tuple] = None
        n = reader.topics[image_topic].count
        self._n = min(n, options.max_frames) if options.max_frames > 0 else n

    def __len__(self) -> int:
        return self._n

    def _on_camera_info(self, raw: RawMessage) -> None:
        self.counters["camera_info_messages"] += 1
        try:
            msg = self.reader.deserialize(raw)
            cam = camera_from_info(msg, self.rectified)
        except (MessageError, CameraError, ValueError):
            self.counters["camera_info_invalid"] += 1
            return
        key = None if cam is None else json.dumps(cam.to_dict(), default=str)
        if self._last_info is not None and key != self._last_info:
            self.counters["camera_info_changes"] += 1
        self._last_info = key

    def _decode(self, msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
        if msgtype == COMPRESSED_IMAGE_TYPE:
            fmt = str(msg.format).lower()
            if "compresseddepth" in fmt or not any(f in fmt for f in COMPRESSED_FORMATS):
                self.counters["unsupported_encoding"] += 1
                raise ImageError(f"unsupported compressed format {msg.format!r}")
            return compressed_to_array(msg, self.max_image_pixels)
        if msg.encoding not in IMAGE_ENCODINGS:
            self.counters["unsupported_encoding"] += 1
            raise ImageError(f"unsupported encoding {msg.encoding!r}; supported: "
                             f"{sorted(IMAGE_ENCODINGS)}")
        return image_to_array(msg, self.max_image_pixels)

    def frames(self) -> Iterator[Frame]:
        """Yield the image messages as frames (see the class description)."""
        o = self.options
        topics = [self.image_topic] + ([self.info_topic] if self.info_topic else [])
        start = (self.reader.start_ns + int(o.start_s * 1e9)) if o.start_s > 0 else None
        t0 = time.perf_counter()
        policy = StampPolicy(self.time_config)
        index = -1
        for raw in self.reader.messages(topics, start):
            if raw.topic != self.image_topic:
                self._on_camera_info(raw)
                continue
            index += 1
            if index >= self._n:
                break
            self.counters["images"] += 1
            if o.rss_every > 0 and index % o.rss_every == 0:
                self.rss_samples.append((index, round(rss_mb(), 1)))
            try:
                msg = self.reader.deserialize(raw)
            except MessageError as err:
                self.counters["corrupt"] += 1
                yield Frame(index, raw.time_ns * 1e-9, _failing(ImageError(str(err))))
                continue
            if o.stamps == "header":
                check = policy.check(*restamped(msg.header.stamp.sec, msg.header.stamp.nanosec,
                                                raw.time_ns, policy.config))
            else:
                check = policy.check(*divmod(raw.time_ns, NS_PER_S))
            stamp_ns = check.stamp_ns
            self.counters["frames_missing_upstream"] += check.missing
            if check.counter:
                self.counters[check.counter] += 1
            if not check.accepted:
                yield Frame(index, stamp_ns * 1e-9, _failing(ImageError(check.reason)))
                continue
            try:
                decoded = self._decode(msg, raw.msgtype)
            except ImageError as err:
                if "unsupported" not in str(err):
                    self.counters["invalid_image"] += 1
                yield Frame(index, stamp_ns * 1e-9, _failing(err))
                continue
            yield Frame(index, stamp_ns * 1e-9, lambda d=decoded: d, check.reason
                        if check.verdict == RESTART else "")
        self.counters["read_errors"] = len(self.reader.read_errors)
        self.wall_s = time.perf_counter() - t0
        self.rss_samples.append((index + 1, round(rss_mb(), 1)))

    def ground_truth(self, records: list[FrameRecord]) -> Optional[np.ndarray]:
        """Ground truth at the processed frames (see :meth:`GroundTruth.at`)."""
        return self.gt.at(records) if self.gt is not None and records else None

    def describe(self) -> dict[str, Any]:
        """Bag, topics, where intrinsics and ground truth came from, the counters, read
        errors, throughput (wall time of reading + decoding + processing) and memory."""
        n = self.counters["images"]
        size = self.reader.size_bytes()
        rss = [r for _, r in self.rss_samples if r > 0]  # 0: unavailable
        return {
            "format": self.reader.format, "path": str(self.reader.path), "bag_bytes": size,
            "bag_duration_s": round(self.reader.duration_s, 3),
            "image_topic": self.image_topic,
            "image_type": self.reader.topics[self.image_topic].msgtype,
            "camera_source": self.camera_source, "ground_truth": self.gt_note,
            "stamps": self.options.stamps, "counters": dict(self.counters),
            "read_errors": self.reader.read_errors[:5],
            "wall_s": round(self.wall_s, 3),
            "throughput_fps": n / self.wall_s if self.wall_s > 0 else float("nan"),
            "throughput_mb_s": (size / 2 ** 20 * n / max(len(self), 1) / self.wall_s
                                if self.wall_s > 0 else float("nan")),
            "rss_mb_samples": self.rss_samples[:: max(1, len(self.rss_samples) // 200)],
            "rss_mb_first": rss[0] if rss else float("nan"),
            "rss_mb_last": rss[-1] if rss else float("nan"),
            "rss_mb_max": max(rss) if rss else float("nan"),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }


# ---------------------------------------------------------------------- evaluate
def evaluate_bag(path: str | Path, config: FrontEndConfig, output: str | Path,
                 options: BagEvalOptions = BagEvalOptions(), config_path: Optional[str] = None,
                 n_annotated: int = 4, progress: bool = True, html_report: bool = False
                 ) -> dict[str, Any]:
    """Evaluate a bag into ``output`` and return the summary (also ``summary.json``).

    A bag with an image topic runs the front-end on every frame (:class:`BagFrames` +
    :func:`~dkp_slam.runner.run_sequence`); a bag without one, or with ``options.pose_topic``,
    is scored as a recording of the node (:func:`score_output_bag`). Intrinsics come from
    ``options.calib``, else where the node's parameters (``config_path``) say: CameraInfo in
    the bag (default), ``node.camera.*`` parameters, or none (homography-only). Writes the
    report (:func:`~dkp_slam.bags.report.write_report`; also HTML with ``html_report``).

    Raises:
        BagError, FileNotFoundError, ValueError, ConfigError: unusable input (one-line
            reason).
    """
    o = options
    if o.stamps not in ("header", "bag"):
        raise BagError(f"stamps must be header or bag, got {o.stamps!r}")
    out = Path(output)
    with BagReader(path) as reader:
        calib = load_calibration(o.calib, o.calib_camera) if o.calib else None
        image_topic = o.image_topic
        if image_topic is not None:
            reader.require(image_topic, IMAGE_TYPES)
        elif o.pose_topic is None:
            image_topic = detect_image_topic(reader, calib[2] if calib else None)
        if image_topic is None:
            return score_output_bag(reader, out, o, config.detector.name,
                                    calib[1] if calib else None, html_report)
        node = node_camera_config(config_path)
        rectified = node.camera.rectified
        info_topic = o.info_topic
        if info_topic is not None:
            reader.require(info_topic, (CAMERA_INFO_TYPE,))
        else:
            infos = reader.topics_of_type(CAMERA_INFO_TYPE)
            sibling = _sibling_info_topic(image_topic)
            info_topic = sibling if sibling in infos else (infos[0] if len(infos) == 1
                                                          else None)
        invalid = 0
        if calib is not None:
            camera, source = calib[0], f"calibration file {o.calib}"
        elif node.camera.source == "parameters":
            camera, source = camera_from_parameters(node.camera), "node.camera.* parameters"
        elif node.camera.source == "none" or info_topic is None:
            camera = None
            source = ("none (node.camera.source=none)" if node.camera.source == "none"
                      else "none: no CameraInfo topic (homography-only; use --calib)")
        else:
            camera, invalid = first_camera_info(reader, info_topic, rectified)
            source = (f"CameraInfo on {info_topic}" if camera is not None else
                      f"none: no valid CameraInfo on {info_topic} (homography-only)")
        gt, gt_note = load_ground_truth(reader, o, calib[1] if calib else None)
        frames = BagFrames(reader, image_topic, camera, source, info_topic, gt, gt_note, o,
                           rectified, node.max_image_pixels, node.time)
        frames.counters["camera_info_invalid"] += invalid
        summary = run_sequence(frames, config, out, n_annotated, progress)
    from .report import write_report

    write_report(out, summary, html_report)
    return summary


# ---------------------------------------------------------------------- score node outputs
def _status_records(reader: BagReader, topic: str
                    ) -> tuple[list[StatusReport], dict[str, Any]]:
    """The reports of processed frames on a ``~/status`` topic (:class:`StatusReport` with a
    ``frame``), and the node's last counters. Messages that are not status reports (not
    JSON, unknown status or version) are skipped."""
    frames, counters = [], {}
    for raw in reader.messages([topic]):
        try:
            report = StatusReport.from_json(json.loads(reader.deserialize(raw).data),
                                            NodeStats.COUNTERS)
        except (MessageError, ValueError, AttributeError):  # StatusFormatError included
            continue
        counters = report.counters
        if report.frame is not None:
            frames.append(report)
    return frames, counters


def _relative_poses(reader: BagReader, topic: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(stamps_ns, poses (N,4,4), covariance (N,6,6), bag_times_ns)`` of a pose topic."""
    stamps, poses, covs, times = [], [], [], []
    for raw in reader.messages([topic]):
        try:
            msg = reader.deserialize(raw)
        except MessageError:
            continue
        p = msg.pose  # PoseWithCovariance in both PoseWithCovarianceStamped and Odometry
        stamps.append(stamp_to_ns(msg.header.stamp))
        poses.append(matrix_from_pose(p.pose))
        covs.append(np.asarray(p.covariance, dtype=np.float64).reshape(6, 6))
        times.append(raw.time_ns)
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return (np.asarray(stamps, dtype=np.int64)[order],
            np.asarray(poses).reshape(-1, 4, 4)[order],
            np.asarray(covs).reshape(-1, 6, 6)[order], np.asarray(times, dtype=np.int64))


def _node_detector(reader: BagReader) -> Optional[str]:
    """The detector the node reported on ``/diagnostics`` (last message), if recorded."""
    if reader.topics.get("/diagnostics", None) is None:
        return None
    detector = None
    for raw in reader.messages(["/diagnostics"]):
        try:
            msg = reader.deserialize(raw)
        except MessageError:
            continue
        for status in msg.status:
            for kv in status.values:
                if kv.key == "detector":
                    detector = kv.value
    return detector


def _topic_ending(reader: BagReader, msgtype: str, suffix: str) -> Optional[str]:
    topics = [t for t in reader.topics_of_type(msgtype) if t.rstrip("/").endswith(suffix)]
    return topics[0] if len(topics) == 1 else None


def _record(index: int, stamp: float, status: str, ref: int, T_ref_cur: np.ndarray,
            T_world_cam: np.ndarray, report: Optional[StatusReport] = None) -> FrameRecord:
    """The :class:`FrameRecord` of a node output: counts and timings from its status report
    (when recorded), pose and reference from the pose topics."""
    base = report.frame if report is not None else FrameRecord(index, stamp,
                                                               TrackingStatus(status), model="")
    return dataclasses.replace(base, index=index, sequence_index=index, stamp=stamp,
                               status=TrackingStatus(status), reference_index=ref,
                               R=T_ref_cur[:3, :3].copy(), t=T_ref_cur[:3, 3].copy(),
                               T_world_cam=T_world_cam)


def score_output_bag(reader: BagReader, out: Path, o: BagEvalOptions, detector: str,
                     T_body_cam: Optional[np.ndarray] = None, html_report: bool = False
                     ) -> dict[str, Any]:
    """Score a bag recorded from ``frontend_node`` against ground truth.

    Uses ``~/status`` (per-frame status, counts, timings, reference stamp) with
    ``~/relative_pose`` (``T_ref_cur``) and ``~/odometry`` (``T_odom_cam``) when present;
    with only one pose topic, each frame is taken relative to the previous one (the default
    ``tracker.reference: previous``) and the status is inferred (untracked when the
    covariance is unknown, LOW_PARALLAX for zero translation). Frames are renumbered in stamp
    order, so dropped frames just do not appear. ``fps`` is the rate of scored frames over
    the recording; ``input`` adds the node's counters (received, dropped, ...) and latency
    (image callback to publication) from its last / every status message.

    Raises:
        BagError: no usable pose topic.
    """
    status_topic, rel_topic, odom_topic = _output_topics(reader, o)
    used = tuple(t for t in (rel_topic, odom_topic) if t)
    gt, gt_note = load_ground_truth(reader, o, T_body_cam, exclude=used)
    statuses, node_counters = (_status_records(reader, status_topic) if status_topic
                               else ([], {}))
    rel = _relative_poses(reader, rel_topic) if rel_topic else None
    odo = _relative_poses(reader, odom_topic) if odom_topic else None
    base = rel if rel is not None else odo
    stamps_ns, n = base[0], len(base[0])
    records = _output_records(rel, odo, statuses)
    gt_poses = gt.at(records) if gt is not None and records else None
    errors = relative_pose_errors(records, gt_poses) if gt_poses is not None else None
    times = base[3]
    span = (times.max() - times.min()) * 1e-9 if len(times) > 1 else 0.0
    detector = _node_detector(reader) or f"{detector} (assumed: no /diagnostics recorded)"
    summary = summarize(records, gt_poses, span * n / max(n - 1, 1), detector, errors)
    gt_count = None  # ground-truth samples the node should have answered
    if gt is not None and gt.stamps_ns is not None and n:
        # a ground truth replayed with the images and recorded with the outputs covers the
        # whole replay; a file may cover far more than the recording: use the outputs' span
        inside = np.ones(len(gt.stamps_ns), bool) if o.gt is None else (
            (gt.stamps_ns >= stamps_ns[0]) & (gt.stamps_ns <= stamps_ns[-1]))
        gt_count = int(inside.sum())
    latency = np.array([r.latency_ms for r in statuses if r.latency_ms is not None],
                       dtype=np.float64)
    name = reader.path.stem if reader.path.suffix else reader.path.name
    summary.update(
        sequence=name, source=str(reader.path), skipped_frames=0, skipped=[],
        has_ground_truth=gt_poses is not None,
        input={"format": reader.format, "path": str(reader.path), "mode": "node output",
               "pose_topic": rel_topic or odom_topic, "odometry_topic": odom_topic,
               "status_topic": status_topic, "ground_truth": gt_note,
               "scored_frames": n, "ground_truth_samples_in_span": gt_count,
               "frames_without_output": (gt_count - n) if gt_count is not None else None,
               "node_counters": node_counters,
               "node_latency_ms_median": float(np.median(latency)) if latency.size else None,
               "node_latency_ms_p90": (float(np.percentile(latency, 90)) if latency.size
                                       else None),
               "read_errors": reader.read_errors[:5],
               "recording_s": round(span, 3)},
        config={})
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, name, records, gt_poses, summary, errors)
    from .report import write_report

    write_report(out, summary, html_report)
    return summary


def _output_topics(reader: BagReader, o: BagEvalOptions
                   ) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """``(status, relative pose, odometry)`` topics of a node recording (``--pose-topic``
    chooses the pose topic); raises BagError when there is no pose topic."""
    status_topic = _topic_ending(reader, STRING_TYPE, "/status")
    rel_topic = _topic_ending(reader, POSE_COV_TYPE, "relative_pose")
    odom_topic = _topic_ending(reader, ODOMETRY_TYPE, "odometry")
    if o.pose_topic is not None:
        info = reader.require(o.pose_topic, (ODOMETRY_TYPE, POSE_COV_TYPE))
        if info.msgtype == ODOMETRY_TYPE:
            odom_topic, rel_topic = o.pose_topic, None
        else:
            rel_topic, odom_topic = o.pose_topic, None
    if rel_topic is None and odom_topic is None:
        listing = ", ".join(f"{n} ({t.msgtype})" for n, t in sorted(reader.topics.items()))
        raise BagError(f"{reader.path}: no image topic to run on and no node output "
                       f"(~/relative_pose, ~/odometry) to score; topics: {listing or 'none'}")
    return status_topic, rel_topic, odom_topic


def _output_records(rel: Optional[tuple], odo: Optional[tuple], statuses: list[StatusReport]
                    ) -> list[FrameRecord]:
    """One :class:`FrameRecord` per recorded pose, in stamp order: the relative pose from
    ``~/relative_pose`` (else from consecutive ``~/odometry`` poses), status, counts and
    reference from ``~/status`` (else inferred), the chained pose and its covariance from
    ``~/odometry`` (else chained here)."""
    base = rel if rel is not None else odo
    stamps_ns = base[0]
    odo_at = {int(s): k for k, s in enumerate(odo[0])} if odo is not None else {}
    by_stamp = {round(r.stamp * 1e6): r for r in statuses}  # microsecond keys
    pos_of = {round(int(s) / 1e3): k for k, s in enumerate(stamps_ns)}
    records: list[FrameRecord] = []
    for k in range(len(stamps_ns)):
        s_ns = int(stamps_ns[k])
        info = by_stamp.get(round(s_ns / 1e3))
        if rel is not None:
            T_ref_cur = base[1][k]
        else:  # odometry only: relative to the previous frame
            T_ref_cur = (np.linalg.inv(odo[1][k - 1]) @ odo[1][k]) if k else np.eye(4)
            t = np.linalg.norm(T_ref_cur[:3, 3])
            if t > 0:
                T_ref_cur[:3, 3] /= t
        if info is not None:
            status = info.frame.status.value
            ref_stamp = info.frame.reference_stamp
            ref = pos_of.get(round(ref_stamp * 1e6), -1) if np.isfinite(ref_stamp) else -1
        else:
            ref, status = k - 1, _inferred_status(k, base[2][k], T_ref_cur)
        if s_ns in odo_at:
            T_world_cam = odo[1][odo_at[s_ns]]
        elif records and ref >= 0:
            T_world_cam = records[ref].T_world_cam @ T_ref_cur
        else:
            T_world_cam = records[-1].T_world_cam if records else np.eye(4)
        record = _record(k, s_ns * 1e-9, status, ref, T_ref_cur, T_world_cam, info)
        if s_ns in odo_at:  # the covariance the node published with its odometry
            record.odometry_covariance = odo[2][odo_at[s_ns]]
        records.append(record)
    return records


def _inferred_status(k: int, covariance: np.ndarray, T_ref_cur: np.ndarray) -> str:
    """The status of a frame recorded without ``~/status``: INITIALISING first, LOST where the
    covariance is unknown, LOW_PARALLAX without translation, else OK."""
    if k == 0:
        return TrackingStatus.INITIALISING.value
    if np.max(np.diag(covariance)) >= UNKNOWN_VARIANCE:
        return TrackingStatus.LOST.value
    return (TrackingStatus.OK.value if np.linalg.norm(T_ref_cur[:3, 3]) > 0.5
            else TrackingStatus.LOW_PARALLAX.value)


#: The per-bag columns of a fleet report (``dkp-slam bag-eval`` with several bags).
FLEET_COLUMNS = ("frames", "tracked_fraction", "rot_err_median_deg", "tdir_err_median_deg",
                 "pose_auc@5", "ate_sim3_rmse_m", "keypoints_median", "inliers_median")


@dataclass(frozen=True)
class BagEvalTask:
    """:func:`evaluate_bag` as one task of a fleet (:func:`dkp_slam.fleet.run_fleet`): the
    same arguments for every bag, no progress bar; returns the summary's numeric values as
    ``metrics`` and the path of its ``summary.json``."""

    config: FrontEndConfig
    options: BagEvalOptions = dataclasses.field(default_factory=BagEvalOptions)
    config_path: Optional[str] = None
    n_annotated: int = 4
    html_report: bool = False

    def __call__(self, path: str, output: str) -> dict[str, Any]:
        from ..runner import nothing_processed

        summary = evaluate_bag(path, self.config, output, self.options, self.config_path,
                               self.n_annotated, False, self.html_report)
        failed = nothing_processed(summary)
        if failed:
            raise BagError(failed)
        metrics = {k: v for k, v in summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {"metrics": metrics, "summary_json": str(Path(output) / "summary.json")}


__all__ = ["BagEvalOptions", "BagEvalTask", "BagFrames", "GroundTruth", "evaluate_bag",
           "score_output_bag", "FLEET_COLUMNS",
           "load_ground_truth", "detect_image_topic", "first_camera_info", "node_camera_config",
           "COUNTERS"]
