"""``dkp-slam`` command line: ``demo``, ``run``, ``bench``, ``train``, ``info`` and the bag tools
``bag-eval``, ``bag-play``, ``bag-record``, ``make-bag`` (:mod:`dkp_slam.bags.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence as Seq


from . import __version__, fleet
from .allocator import keep_freed_memory
from .bags import cli as bags_cli
from .config import (ConfigError, FrontEndConfig, load_config, method_config, method_overrides,
                     parse_set_options)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (plain or ROS 2 parameters file)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set detector.name=sift (repeatable)")
    p.add_argument("--output", help="output folder (default: outputs/<sequence>_<detector>)")
    p.add_argument("--json", help="also write the summary JSON here")
    p.add_argument("--annotated", type=int, default=4, help="annotated frames to save")
    p.add_argument("--max-frames", type=int, default=0, help="process at most this many")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_frame_selection(p: argparse.ArgumentParser) -> None:
    """``--start``/``--step`` of a sequence (:meth:`dkp_slam.sequence.Sequence.select`)."""
    p.add_argument("--start", type=int, default=0, help="first frame")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame")


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
    _add_frame_selection(p)
    p.add_argument("--calib", help="intrinsics for the frames (replacing any the sequence has): "
                                   "ROS camera_info YAML, OpenCV calibration YAML, Kalibr "
                                   "camchain or EuRoC sensor.yaml")
    p.add_argument("--calib-camera", help="camera of a Kalibr camchain (cam0, cam1, ...)")
    _add_common(p)

    sub.add_parser("info", help="versions, devices, detectors and the default configuration")

    bench = sub.add_parser("bench", help="measure detectors side by side (accuracy, speed)")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--methods", default="orb,sift",
                        help="comma-separated detector ids (see `dkp-slam info`), each "
                        "optionally with options of its own section, e.g. "
                        "dkp,dkp:weights=dkp_v3_rot.pt,dkp:n_levels=1")
    common.add_argument("--max-keypoints", type=int, default=1000, help="keypoint budget")
    common.add_argument("--output", default="outputs/bench", help="output folder")
    common.add_argument("--json", help="also write {method: {metric: value}} here")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    common.add_argument("--config", help="base YAML config (detector name/budget are overridden)")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set detector.dkp.weights=W.pt")
    p = bsub.add_parser("homography", parents=[common],
                        help="HPatches-layout scenes, or synthetic pairs from a photo folder")
    p.add_argument("path", help="HPatches-layout folder (scenes with H_1_k) or photo folder")
    p.add_argument("--pairs", type=int, default=100,
                   help="synthetic pairs to generate from a photo folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic pairs")
    p.add_argument("--resize-max", type=int, default=0,
                   help="resize so the longer side is at most this (0 = keep)")
    p.add_argument("--scenes", default="",
                   help="comma-separated scenes of an HPatches-layout folder (default: all)")
    p.add_argument("--photos", default="", metavar="START:STOP",
                   help="use only these photographs of the folder's sorted list, e.g. 0:50")
    p = bsub.add_parser("robustness", parents=[common],
                        help="accuracy against in-plane rotation and zoom (synthetic pairs)")
    p.add_argument("path", help="folder of photographs")
    p.add_argument("--photos", default="", metavar="START:STOP",
                   help="use only these photographs of the folder's sorted list, e.g. 50:100")
    p.add_argument("--num-photos", type=int, default=20,
                   help="photographs per sweep value (the first of the list or range)")
    p.add_argument("--rotations", help="in-plane rotations in degrees (comma-separated; "
                   "default 0 to 180 in 15-deg steps; '' = no sweep)")
    p.add_argument("--scales", help="zoom factors (comma-separated; default 0.25 to 4 in "
                   "sqrt(2) steps; '' = no sweep)")
    p = bsub.add_parser("odometry", parents=[common],
                        help="relative pose and trajectory errors on a sequence")
    p.add_argument("path", nargs="+",
                   help="sequence (KITTI, TUM, EuRoC, image folder, video); several, glob "
                        "patterns or @LIST run as a fleet: one Ray task per sequence and one "
                        "report (docs/FLEET.md)")
    p.add_argument("--max-frames", type=int, default=0, help="use at most this many frames")
    _add_frame_selection(p)
    fleet.add_fleet_options(p)
    p = bsub.add_parser("pose", parents=[common],
                        help="relative pose on image pairs with ground truth (pose AUC)")
    p.add_argument("path", help="pairs file in the SuperGlue / LoFTR format (pairs_with_gt.txt:"
                                " name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16))")
    p = bsub.add_parser("speed", parents=[common],
                        help="per-stage latency, throughput and peak memory")
    p.add_argument("path", nargs="?", help="sequence (default: the synthetic corridor)")
    p.add_argument("--sizes", default="640x480,native", help="WxH list or 'native'")
    p.add_argument("--frames", type=int, default=50, help="timed frames per measurement")
    p.add_argument("--device", default="cpu",
                   help="torch device of the front-end (matching and learned detectors)")
    p.add_argument("--backends",
                   help="DKPNet inference backends to compare, e.g. "
                        "torch,onnxruntime,tensorrt or torch:fp16 (backend[:precision]), for "
                        "each dkp method of --methods (e.g. dkp,dkp:weights=dkp_v3_rot.pt; "
                        "others are left out; none: dkp); --json then writes "
                        "{backend: {detector_ms, frontend_fps, ...}}")

    p = sub.add_parser("export", help="export DKPNet to ONNX for onnxruntime / TensorRT "
                                      "(see docs/DEPLOY.md)")
    p.add_argument("--output", required=True, help="ONNX file to write")
    p.add_argument("--weights", default="", help="weight file (default: the shipped model)")
    p.add_argument("--variant", choices=("deformconv", "decomposed"), default="deformconv",
                   help="deformconv: ONNX DeformConv (TensorRT >= 10.1, onnxruntime); "
                        "decomposed: GridSample + 1x1 conv (TensorRT 8.5/8.6, JetPack 5/6.0)")
    p.add_argument("--height", type=int, default=480, help="input height (multiple of 8)")
    p.add_argument("--width", type=int, default=640, help="input width (multiple of 8)")
    p.add_argument("--dynamic", action="store_true", help="free input height and width")
    p.add_argument("--opset", type=int, help="ONNX opset (default 19; decomposed: 16-19)")
    p.add_argument("--check-image", help="grey image for the numerical check against "
                                         "PyTorch (default: a generated corridor frame)")
    p.add_argument("--no-check", action="store_true", help="skip the numerical check")

    p = sub.add_parser("train", help="train DKPNet self-supervised on unlabeled images "
                                     "(see docs/TRAINING.md)")
    p.add_argument("--config", help="training YAML, e.g. config/train/default.yaml "
                                    "(default: the built-in defaults)")
    p.add_argument("--output", help="run folder: checkpoints, logs, model.pt "
                                    "(default: runs/<config name>)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUTPUT/last.pt when it exists (default: yes)")
    p.add_argument("--iterations", type=int, help="total iterations of the run")
    p.add_argument("--max-minutes", type=float,
                   help="stop and save after this many minutes (resume later)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training option, e.g. --set optimizer.lr=3e-4 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    bags_cli.add_parsers(sub, _add_common)  # bag-eval, bag-play, bag-record, make-bag
    return parser


def main(argv: Optional[Seq[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # per-frame buffers stay mapped (dkp_slam/allocator.py)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "info":
            return _info()
        if args.command == "bench":
            return _bench(args)
        if args.command == "train":
            return _train(args)
        if args.command == "export":
            return _export(args)
        if args.command in bags_cli.COMMANDS:
            return bags_cli.run(args)
        config = load_config(args.config, args.set)
        if args.command == "demo":
            from .synthetic import make_synthetic_sequence

            sequence = make_synthetic_sequence(n_frames=args.frames, seed=args.seed
                                               ).select(max_frames=args.max_frames)
        else:
            from .datasets import open_sequence

            sequence = open_sequence(args.path, fps=args.fps).select(args.start, args.step,
                                                                     args.max_frames)
            if args.calib:
                sequence.camera = _calibration_for(sequence, args.calib, args.calib_camera)
        return _run(sequence, config, args)
    except (ConfigError, FileNotFoundError, ValueError, IOError) as err:
        print(f"dkp-slam: error: {err}", file=sys.stderr)
        return 2


def _run(sequence, config: FrontEndConfig, args) -> int:
    from .runner import format_summary, nothing_processed, run_sequence

    out = Path(args.output or Path("outputs") / f"{sequence.name}_{config.detector.name}")
    if sequence.camera is None:
        print("note: no intrinsics found: homography-only mode (no relative pose); give the "
              "camera with --calib FILE")
    from .model.backends import BackendError
    from .model.weights import WeightsError

    try:
        summary = run_sequence(sequence, config, out, args.annotated, not args.no_progress)
    except (WeightsError, BackendError) as err:  # weights, ONNX file, a TensorRT engine
        print(f"dkp-slam: error: {err}", file=sys.stderr)
        return 2
    print(f"\n{sequence.name} ({len(sequence)} frames) -> {out}/")
    print(format_summary(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text((out / "summary.json").read_text())
        print(f"summary JSON: {args.json}")
    failed = nothing_processed(summary)
    if failed:
        print(f"dkp-slam: error: {failed}", file=sys.stderr)
        return 1
    return 0


def _train(args) -> int:
    from .training.trainer import load_train_config, train

    overrides = parse_set_options(args.set)
    for key, value in (("iterations", args.iterations), ("max_minutes", args.max_minutes),
                       ("device", args.device)):
        if value is not None:
            overrides[key] = value
    if args.no_progress:
        overrides["progress"] = False
    config = load_train_config(args.config, overrides)
    out = Path(args.output or Path("runs") / (Path(args.config).stem if args.config
                                                else "default"))
    try:
        summary = train(config, out, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    return 0 if summary["status"] in ("completed", "time_budget", "SIGINT", "SIGTERM") else 1


def _export(args) -> int:
    import numpy as np

    from .model.export import ExportError, check_onnx, export_onnx, onnx_ops
    from .model.weights import WeightsError, load_model

    try:
        net = load_model(args.weights or None)
        meta = export_onnx(net, args.output, args.variant, args.height, args.width,
                           args.dynamic, args.opset)
    except (ExportError, WeightsError) as err:
        print(f"dkp-slam: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({Path(args.output).stat().st_size / 2**20:.2f} MiB): "
          f"variant {meta['dkp_slam.variant']}, opset {meta['dkp_slam.opset']}, input "
          f"{meta['dkp_slam.input']}, model {meta['dkp_slam.model_hash']}")
    print(f"ops: {', '.join(onnx_ops(args.output))}")
    if args.no_check:
        return 0
    if args.check_image:
        from .datasets import read_image
        from .image import to_gray_uint8

        image = to_gray_uint8(read_image(args.check_image))
    else:
        from .synthetic import make_synthetic_sequence

        image = make_synthetic_sequence(n_frames=1).load_image(0)
    if not args.dynamic:  # a fixed-size export takes exactly its size
        import cv2

        image = cv2.resize(image, (args.width, args.height), interpolation=cv2.INTER_AREA)
    r = check_onnx(net, args.output, np.asarray(image))
    ok = (r["max_abs_scores"] <= 1e-4 and r["max_abs_descriptors"] <= 1e-4
          and r["topk_identical"] >= 0.99)
    print(f"check against PyTorch (onnxruntime CPU): max |d score| {r['max_abs_scores']:.2e}, "
          f"max |d descriptor| {r['max_abs_descriptors']:.2e}, top-{r['topk']} keypoints "
          f"identical {100 * r['topk_identical']:.2f} % (exact position "
          f"{100 * r['topk_exact']:.2f} %): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def _calibration_for(sequence, path: str, camera_name: Optional[str]):
    """The camera of calibration file ``path``, checked against the size of the first frame.

    Raises:
        ValueError: an unusable file, or intrinsics for another image size."""
    from .datasets import load_calibration

    camera, _, _ = load_calibration(path, camera_name)
    if len(sequence):
        height, width = sequence.load_image(0).shape[:2]
        if (width, height) != (camera.width, camera.height):
            raise ValueError(f"{path}: the calibration is for {camera.width}x{camera.height} "
                             f"images, the frames of {sequence.name} are {width}x{height}")
    return camera


def _bench(args) -> int:
    """``dkp-slam bench homography|robustness|odometry|pose|speed``: run, then write and print
    the table."""
    from .bench import report

    methods = _bench_methods(args.methods)
    base = load_config(args.config, args.set)
    for method in methods:  # each method's own options are checked before anything runs
        method_config(base, method)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.bench_command == "robustness":
        return _bench_robustness(args, methods, base, out)
    if args.bench_command == "odometry" and fleet.is_fleet(args.path):
        return _bench_odometry_fleet(args, methods, base, out)
    run = {"homography": _bench_homography, "odometry": _bench_odometry,
           "pose": _bench_pose, "speed": _bench_speed}[args.bench_command]
    results, columns, name = run(args, methods, base, out)
    table = report.markdown_table(results, columns)
    report.write_results(out, name, results, table, args.json,
                         header=f"`dkp-slam {' '.join(sys.argv[1:]) or 'bench'}`")
    print(table)
    print(f"\nwritten: {out / (name + '.md')}, {out / (name + '.json')}")
    return 0


def _bench_methods(text: str) -> list[str]:
    """The ``--methods`` list, each a registered detector, optionally with options of its own
    section (``dkp:weights=dkp_v3_rot.pt``; :func:`dkp_slam.config.method_overrides`)."""
    from .registry import DETECTORS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if method_overrides(m)["detector.name"] not in DETECTORS]
    if unknown or not methods:
        raise ConfigError(f"unknown method(s) {unknown or methods}; available: "
                          f"{', '.join(sorted(DETECTORS))}")
    return methods


def _bench_homography(args, methods: list[str], base: FrontEndConfig, out: Path
                      ) -> tuple[dict, list[str], str]:
    """Homography pairs (HPatches layout or synthetic); also the MMA curve plot."""
    from .bench import report
    from .bench.homography import METRIC_KEYS, bench_homography
    from .bench.pairs import parse_photo_range

    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()] or None
    photo_range = parse_photo_range(args.photos) if args.photos else None
    results, label = bench_homography(args.path, methods, args.max_keypoints, args.pairs,
                                      args.seed, args.resize_max or None, not args.no_progress,
                                      base.detector, scenes=scenes, photo_range=photo_range)
    columns = [k for k in METRIC_KEYS if k in next(iter(results.values()))]
    name = f"homography_{label}_k{args.max_keypoints}"
    per_scene = {f"{m} / {scene}": r for m, res in results.items()
                 for scene, r in res.get("per_scene", {}).items()}
    if per_scene:
        keys = ["repeatability", "mma@1", "mma@3", "hom_acc@1", "hom_acc@3", "hom_acc@5", "pairs"]
        (out / f"{name}_per_scene.md").write_text(
            "Per scene (method / scene):\n\n" + report.markdown_table(per_scene, keys) + "\n")
    report.plot_curves(out / f"{name}_mma.png",
                       {m: (list(range(1, 11)), [r[f"mma@{t}"] for t in range(1, 11)])
                        for m, r in results.items()},
                       "threshold [px]", "MMA", f"{label}, {args.max_keypoints} keypoints")
    return results, columns, name


def _float_list(text: str, what: str) -> list[float]:
    """A comma-separated list of numbers ('' = empty); ValueError naming ``what``."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _bench_robustness(args, methods: list[str], base: FrontEndConfig, out: Path) -> int:
    """Accuracy against rotation and zoom: curves (PNG), one table per sweep (Markdown) and
    ``{method: {"rotation": {angle: metrics}, "scale": {s: metrics}}}`` (JSON)."""
    from .bench import report
    from .bench.pairs import parse_photo_range
    from .bench.robustness import (DEFAULT_ROTATIONS, DEFAULT_SCALES, bench_robustness,
                                   plot_robustness, robustness_tables)

    rotations = (DEFAULT_ROTATIONS if args.rotations is None
                 else _float_list(args.rotations, "--rotations"))
    scales = DEFAULT_SCALES if args.scales is None else _float_list(args.scales, "--scales")
    if not rotations and not scales:
        raise ValueError("nothing to sweep: give --rotations and/or --scales")
    if any(s <= 0 for s in scales):
        raise ValueError(f"--scales must be > 0, got {args.scales!r}")
    photo_range = parse_photo_range(args.photos) if args.photos else None
    results, label = bench_robustness(args.path, methods, args.max_keypoints, photo_range,
                                      args.num_photos, rotations, scales, base.detector,
                                      progress=not args.no_progress)
    name = f"robustness_{label}_k{args.max_keypoints}"
    tables = "\n\n".join(robustness_tables(results, m) for m in ("mma@3", "hom_acc@3"))
    report.write_results(out, name, results, tables, args.json,
                         header=f"`dkp-slam {' '.join(sys.argv[1:]) or 'bench robustness'}`")
    plot_robustness(out / f"{name}.png", results, f"{label}, {args.max_keypoints} keypoints")
    print(tables)
    print(f"\nwritten: {out / (name + '.md')}, {out / (name + '.json')}, {out / (name + '.png')}")
    return 0


def _bench_odometry(args, methods: list[str], base: FrontEndConfig, out: Path
                    ) -> tuple[dict, list[str], str]:
    """The whole front-end per method on a sequence."""
    from .bench.odometry import ODOMETRY_METRICS, bench_odometry
    from .datasets import open_sequence

    sequence = open_sequence(args.path[0]).select(args.start, args.step, args.max_frames)
    results = bench_odometry(sequence, methods, base, out, args.max_keypoints,
                             not args.no_progress)
    return (results, list(ODOMETRY_METRICS),
            f"odometry_{sequence.name}_n{len(sequence)}_k{args.max_keypoints}")


def _bench_odometry_fleet(args, methods: list[str], base: FrontEndConfig, out: Path) -> int:
    """``bench odometry`` on several sequences: one fleet task per sequence (docs/FLEET.md)."""
    from .bench.odometry import OdometryBenchTask

    task = OdometryBenchTask(tuple(methods), base, args.max_keypoints, args.max_frames,
                             args.start, args.step)
    columns = tuple(f"{m} / {k}" for m in methods for k in (
        "rot_err_median_deg", "tdir_err_median_deg", "pose_auc@5", "tracked_fraction"))
    return fleet.run_fleet_command(args, task, args.path, out, columns,
                                   f"bench odometry: {', '.join(methods)}, "
                                   f"{args.max_keypoints} keypoints")


def _bench_pose(args, methods: list[str], base: FrontEndConfig, out: Path
                ) -> tuple[dict, list[str], str]:
    """Relative pose on pairs with ground truth, through the front-end's matcher and geometry."""
    from .bench.pose import POSE_METRICS, bench_pose

    results, label = bench_pose(args.path, methods, base, args.max_keypoints,
                                not args.no_progress)
    return results, list(POSE_METRICS), f"pose_{label}_k{args.max_keypoints}"


def _bench_speed(args, methods: list[str], base: FrontEndConfig, out: Path
                 ) -> tuple[dict, list[str], str]:
    """Speed and memory per method, or per DKPNet backend with ``--backends``."""
    from .bench.speed import bench_backends, bench_speed, parse_size

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    overrides = base.flat()  # the whole validated config travels to each child process
    if not args.backends:
        results = bench_speed(methods, sizes, args.frames, args.max_keypoints, args.device,
                              args.path, overrides=overrides)
        return (results, ["keypoints_median", "detector_ms", "after_detection_ms",
                          "ms_per_frame", "total_ms_p90", "fps", "peak_rss_mb"],
                f"speed_{args.device}_k{args.max_keypoints}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    dkp_methods = [m for m in methods if method_overrides(m)["detector.name"] == "dkp"] or ["dkp"]
    results, skipped = bench_backends(backends, sizes, args.frames, args.max_keypoints,
                                      args.device, args.path, overrides, dkp_methods)
    for b, why in skipped.items():
        print(f"{b}: not measured: {why}")
    if not results:
        raise ConfigError("none of the requested backends runs here")
    return (results, ["backend", "detector_ms", "frontend_fps", "after_detection_ms",
                      "ms_per_frame", "total_ms_p90", "peak_rss_mb"],
            f"speed_backends_{args.device}_k{args.max_keypoints}")


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
