"""The bag subcommands of ``dkp-slam``: ``bag-eval``, ``bag-play``, ``bag-record`` and
``make-bag`` (parsers and handlers; :mod:`dkp_slam.cli` hooks them in)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from .. import fleet

#: The subcommands defined here.
COMMANDS = ("bag-eval", "bag-play", "bag-record", "make-bag")


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the bag subcommands to ``dkp-slam``'s subparsers (``add_common``: the ``--config``,
    ``--set``, ``--output``, ``--json``, ``--annotated``, ``--max-frames``, ``--no-progress``
    options shared with ``run``)."""
    p = sub.add_parser("bag-eval", help="run the front-end on a bag (or score a bag recorded "
                                        "from the node) against ground truth (docs/BAGS.md)")
    p.add_argument("bag", nargs="+",
                   help="rosbag2 folder / .db3 / .mcap, or ROS 1 .bag; several, glob patterns "
                        "('runs/**/*.mcap', quoted) or @LIST (a file with one per line) run "
                        "as a fleet: one Ray task per bag and one report (docs/FLEET.md)")
    p.add_argument("--image-topic", help="Image or CompressedImage topic (default: detected)")
    p.add_argument("--info-topic", help="CameraInfo topic (default: beside the image topic)")
    p.add_argument("--calib", help="calibration file instead of CameraInfo: ROS camera_info "
                                   "YAML, Kalibr camchain or EuRoC sensor.yaml")
    p.add_argument("--calib-camera", help="camera of a Kalibr camchain (cam0, cam1, ...)")
    p.add_argument("--gt", help="ground-truth file: TUM, KITTI poses (times.txt beside it) "
                                "or EuRoC csv")
    p.add_argument("--gt-topic", help="ground-truth topic: PoseStamped, "
                                      "PoseWithCovarianceStamped, Odometry, TransformStamped "
                                      "or TF (default: the bag's only pose topic)")
    p.add_argument("--gt-frame", help="child frame of a TF ground truth")
    p.add_argument("--gt-body", action="store_true",
                   help="the ground truth is the body/IMU pose: apply T_body_cam of --calib")
    p.add_argument("--gt-max-dt", type=float, default=0.02,
                   help="max. seconds between an image and the ground-truth samples used")
    p.add_argument("--stamps", choices=("header", "bag"), default="header",
                   help="image time: header stamp (as the node) or bag receive time")
    p.add_argument("--start", type=float, default=0.0, help="skip seconds from the bag start")
    p.add_argument("--pose-topic", help="score this node output (Odometry or "
                                        "PoseWithCovarianceStamped) instead of running")
    p.add_argument("--html", action="store_true", help="also write report.html")
    add_common(p)
    fleet.add_fleet_options(p)

    p = sub.add_parser("make-bag", help="convert KITTI / TUM / EuRoC / image folder / video "
                                        "into a bag with CameraInfo and ground truth")
    p.add_argument("source", help="sequence path (format detected as by `run`)")
    p.add_argument("output", help="rosbag2 folder to create, or a .bag file (ROS 1)")
    p.add_argument("--storage", choices=("mcap", "sqlite3", "ros1"),
                   help="storage (default: ros1 for *.bag, else mcap)")
    p.add_argument("--compressed", action="store_true",
                   help="sensor_msgs/CompressedImage on <image-topic>/compressed")
    p.add_argument("--compressed-format", choices=("png", "jpeg"), default="png",
                   help="compression (png is lossless)")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--encoding", choices=("mono8", "bgr8", "rgb8", "mono16"),
                   help="raw image encoding (default: as stored)")
    p.add_argument("--image-topic", default="/camera/image_raw")
    p.add_argument("--info-topic", default="/camera/camera_info", help="'' for none")
    p.add_argument("--gt-topic", default="/ground_truth/pose", help="'' for none")
    p.add_argument("--gt-type", choices=("pose", "odometry"), default="pose",
                   help="geometry_msgs/PoseStamped or nav_msgs/Odometry")
    p.add_argument("--frame-id", default="camera_optical_frame")
    p.add_argument("--repeat", type=int, default=1,
                   help="play the sequence N times (ping-pong: continuous motion) for large "
                        "bags")
    p.add_argument("--fps", type=float, default=10.0,
                   help="frame rate of image folders without timestamps")
    p.add_argument("--start", type=int, default=0, help="first frame")
    p.add_argument("--max-frames", type=int, default=0, help="frames to take from the source")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("bag-play", help="publish a bag over ROS 2 at its recorded rate")
    p.add_argument("bag")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor")
    p.add_argument("--loop", action="store_true", help="play again at the end")
    p.add_argument("--start", type=float, default=0.0, help="skip seconds from the bag start")
    p.add_argument("--duration", type=float, default=0.0, help="seconds of bag time to play")
    p.add_argument("--topics", nargs="+", default=[], help="topics to play (default: all)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="publish bag topic FROM as TO (repeatable)")
    p.add_argument("--clock", action="store_true", help="publish /clock (use_sim_time)")
    p.add_argument("--clock-hz", type=float, default=100.0)
    p.add_argument("--wait-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS until every topic has a subscriber")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("bag-record", help="record ROS 2 topics into a rosbag2")
    p.add_argument("output", help="rosbag2 folder to create")
    p.add_argument("--topics", nargs="+", required=True, help="topics to record")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--duration", type=float, default=0.0, help="stop after SECONDS")
    p.add_argument("--idle-stop", type=float, default=0.0, metavar="SECONDS",
                   help="stop when nothing arrived for SECONDS after the first message")
    p.add_argument("--stop-after", action="append", default=[], metavar="TOPIC=COUNT",
                   help="stop once TOPIC has COUNT messages (repeatable: all of them)")
    p.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time")


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; errors propagate to :func:`dkp_slam.cli.main` (exit 2)."""
    return {"bag-eval": _bag_eval, "make-bag": _make_bag, "bag-play": _bag_play,
            "bag-record": _bag_record}[args.command](args)


def _bag_eval(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..runner import format_summary, nothing_processed
    from .eval import BagEvalOptions, evaluate_bag

    config = load_config(args.config, args.set)
    options = BagEvalOptions(
        image_topic=args.image_topic, info_topic=args.info_topic, calib=args.calib,
        calib_camera=args.calib_camera, gt=args.gt, gt_topic=args.gt_topic,
        gt_frame=args.gt_frame, gt_body=args.gt_body, gt_max_dt=args.gt_max_dt,
        stamps=args.stamps, start_s=args.start, max_frames=args.max_frames,
        pose_topic=args.pose_topic)
    if fleet.is_fleet(args.bag):
        from .eval import FLEET_COLUMNS, BagEvalTask

        out = Path(args.output or Path("outputs") / f"fleet_{config.detector.name}")
        task = BagEvalTask(config, options, args.config, args.annotated, args.html)
        return fleet.run_fleet_command(args, task, args.bag, out, FLEET_COLUMNS,
                                       f"bag-eval: detector {config.detector.name}")
    bag = Path(args.bag[0])
    out = Path(args.output or Path("outputs") / f"bag_{bag.stem or bag.name}_"
                                                f"{config.detector.name}")
    summary = evaluate_bag(bag, config, out, options, args.config, args.annotated,
                           not args.no_progress, args.html)
    info = summary["input"]
    print(f"\n{summary['sequence']} ({info.get('format')}, {summary['frames']} frames) -> {out}/")
    print(format_summary(summary))
    counters = info.get("counters") or info.get("node_counters") or {}
    problems = {k: v for k, v in counters.items() if v and k not in (
        "images", "camera_info_messages", "received", "processed")}
    print(f"  input: {info.get('camera_source') or info.get('mode')}; ground truth: "
          f"{info.get('ground_truth')}; problems: "
          f"{', '.join(f'{k}={v}' for k, v in problems.items()) or 'none'}")
    if "throughput_fps" in info:
        print(f"  throughput: {info['throughput_fps']:.1f} frames/s, "
              f"{info['throughput_mb_s']:.1f} MB/s; RSS {info['rss_mb_first']:.0f} -> "
              f"{info['rss_mb_last']:.0f} MiB (max {info['rss_mb_max']:.0f})")
    print(f"  report: {out / 'report.md'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text((out / "summary.json").read_text())
        print(f"summary JSON: {args.json}")
    failed = nothing_processed(summary)
    if failed:
        print(f"dkp-slam: error: {failed}", file=sys.stderr)
        return 1
    return 0


def _make_bag(args: argparse.Namespace) -> int:
    from ..datasets import open_sequence
    from .writer import MakeBagOptions, make_bag

    sequence = open_sequence(args.source, fps=args.fps).subset(
        args.start, args.start + args.max_frames if args.max_frames > 0 else None)
    options = MakeBagOptions(
        storage=args.storage, image_topic=args.image_topic, info_topic=args.info_topic,
        gt_topic=args.gt_topic, gt_type=args.gt_type, frame_id=args.frame_id,
        compressed=args.compressed, compressed_format=args.compressed_format,
        jpeg_quality=args.jpeg_quality, encoding=args.encoding, repeat=args.repeat)
    stats = make_bag(sequence, args.output, options, not args.no_progress)
    print(f"{sequence.name} -> {stats['path']} ({stats['storage']}): {stats['frames']} frames, "
          f"{stats['bytes'] / 2 ** 20:.1f} MiB in {stats['seconds']:.1f} s; topics "
          + ", ".join(f"{t} ({n})" for t, n in stats["topics"].items())
          + (f"; {stats['skipped']} unreadable frames skipped" if stats["skipped"] else ""))
    if sequence.camera is None:
        print("note: the source has no intrinsics: no CameraInfo written")
    return 0


def _parse_remap(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if ":=" not in item:
            raise ValueError(f"--remap expects FROM:=TO, got {item!r}")
        a, b = item.split(":=", 1)
        out[a.strip()] = b.strip()
    return out


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends recording / playing like Ctrl-C (installed after rclpy's own handlers,
    which would otherwise end the process before the bag is closed)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _bag_play(args: argparse.Namespace) -> int:
    from .play import BagPlayer, PlayOptions

    options = PlayOptions(rate=args.rate, loop=args.loop, start_s=args.start,
                          duration_s=args.duration, topics=args.topics,
                          remap=_parse_remap(args.remap), clock=args.clock,
                          clock_hz=args.clock_hz, wait_subscribers_s=args.wait_subscribers)
    player = BagPlayer(args.bag, options)
    _interrupt_on_sigterm()
    try:
        stats = player.play(not args.no_progress)
    except KeyboardInterrupt:
        stats = {"published": dict(player.published), "interrupted": True}
    finally:
        player.close()
    if player.skipped_topics:
        print("not published (type not installed here): " + "; ".join(
            f"{t}: {why}" for t, why in player.skipped_topics.items()), file=sys.stderr)
    print(json.dumps(stats))
    return 0


def _bag_record(args: argparse.Namespace) -> int:
    from .reader import BagError
    from .record import BagRecorder, RecordOptions

    stop_after = {}
    for item in args.stop_after:
        topic, _, count = item.rpartition("=")
        if not topic or not count.isdigit():
            raise BagError(f"--stop-after {item!r}: expected TOPIC=COUNT")
        stop_after[topic] = int(count)
    options = RecordOptions(topics=args.topics, storage=args.storage,
                            duration_s=args.duration, idle_stop_s=args.idle_stop,
                            stop_after=stop_after, use_sim_time=args.use_sim_time)
    recorder = BagRecorder(args.output, options)
    _interrupt_on_sigterm()
    try:
        stats = recorder.record()
    except KeyboardInterrupt:
        recorder.close()
        stats = {"output": args.output, "received": dict(recorder.received),
                 "interrupted": True}
    print(json.dumps(stats))
    return 0


__all__ = ["COMMANDS", "add_parsers", "run"]
