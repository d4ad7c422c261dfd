"""``dkp-slam`` command line: ``demo``, ``run`` and ``info``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence as Seq

import yaml

from . import __version__
from .config import ConfigError, FrontEndConfig


def _parse_set(items: Seq[str]) -> dict:
    """``["detector.name=sift", "detector.max_keypoints=500"]`` -> typed dict (YAML scalars)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_config(path: Optional[str], overrides: Seq[str]) -> FrontEndConfig:
    """Defaults, then the YAML file (if any), then ``--set`` overrides."""
    sets = _parse_set(overrides)
    if path:
        return FrontEndConfig.from_yaml(path, sets)
    return FrontEndConfig.from_dict(sets)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (plain or ROS 2 parameters file)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set detector.name=sift (repeatable)")
    p.add_argument("--output", help="output folder (default: outputs/<sequence>_<detector>)")
    p.add_argument("--json", help="also write the summary JSON here")
    p.add_argument("--annotated", type=int, default=4, help="annotated frames to save")
    p.add_argument("--max-frames", type=int, default=0, help="process at most this many")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dkp-slam", description="dkp_slam visual-odometry front-end tools")
    parser.add_argument("--version", action="version", version=f"dkp_slam {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run on the built-in synthetic corridor sequence")
    _add_common(p)
    p.add_argument("--frames", type=int, default=120, help="number of generated frames")
    p.add_argument("--seed", type=int, default=0, help="scene and trajectory seed")

    p = sub.add_parser("run", help="run on an image folder, video, KITTI, TUM or EuRoC folder")
    p.add_argument("path", help="sequence path (format auto-detected)")
    p.add_argument("--fps", type=float, default=10.0,
                   help="frame rate for image folders without timestamps")
    p.add_argument("--start", type=int, default=0, help="first frame")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    _add_common(p)

    sub.add_parser("info", help="versions, devices, detectors and the default configuration")
    return parser


def main(argv: Optional[Seq[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "info":
            return _info()
        config = load_config(args.config, args.set)
        if args.command == "demo":
            from .synthetic import make_synthetic_sequence

            sequence = make_synthetic_sequence(n_frames=args.frames, seed=args.seed)
        else:
            from .datasets import open_sequence

            sequence = open_sequence(args.path, fps=args.fps).subset(args.start, None, args.step)
        if args.max_frames > 0:
            sequence = sequence.subset(0, args.max_frames)
        return _run(sequence, config, args)
    except (ConfigError, FileNotFoundError, ValueError, IOError) as err:
        print(f"dkp-slam: error: {err}", file=sys.stderr)
        return 2


def _run(sequence, config: FrontEndConfig, args) -> int:
    from .runner import format_summary, run_sequence

    out = Path(args.output or Path("outputs") / f"{sequence.name}_{config.detector.name}")
    if sequence.camera is None:
        print("note: no intrinsics found: homography-only mode (no relative pose)")
    summary = run_sequence(sequence, config, out, args.annotated, not args.no_progress)
    print(f"\n{sequence.name} ({len(sequence)} frames) -> {out}/")
    print(format_summary(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text((out / "summary.json").read_text())
        print(f"summary JSON: {args.json}")
    return 0


def _info() -> int:
    import cv2
    import numpy as np
    import torch

    from .features import DETECTORS

    print(f"dkp_slam {__version__}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, opencv {cv2.__version__}, "
          f"torch {torch.__version__}")
    cuda = torch.cuda.is_available()
    print(f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'not available'}")
    try:
        import rclpy  # noqa: F401

        print("rclpy: available")
    except ImportError:
        print("rclpy: not available (install the 'ros' extra or source a ROS 2 install)")
    print(f"detectors: {', '.join(sorted(DETECTORS))}")
    print("default configuration:")
    print(json.dumps(FrontEndConfig().to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
