#!/usr/bin/env python3
"""Per-stage front-end latency: detection, and everything after it (matching, RANSAC
geometry, tracking), at a fixed keypoint budget.

Prints a Markdown table (median and p90 per stage, in ms). Runs on KITTI07 from
../shared/data when present, else on the generated corridor sequence.

    python scripts/bench_frontend.py --keypoints 1000 --detectors orb,sift --frames 100
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from dkp_slam.config import FrontEndConfig
from dkp_slam.frontend import FrontEnd

ROOT = Path(__file__).resolve().parents[1]
KITTI = ROOT.parent / "shared" / "data" / "sequences" / "kitti07_0000-0159"


def load_sequence(frames: int):
    if KITTI.is_dir():
        from dkp_slam.datasets import load_kitti

        return load_kitti(KITTI).subset(0, frames)
    from dkp_slam.synthetic import make_synthetic_sequence

    return make_synthetic_sequence(n_frames=frames)


def bench(sequence, detector: str, keypoints: int, warmup: int = 3) -> dict:
    conf = FrontEndConfig.from_dict({"detector.name": detector,
                                     "detector.max_keypoints": keypoints})
    fe = FrontEnd(conf, sequence.camera)
    images = [sequence.load_image(i) for i in range(len(sequence))]  # I/O outside the timing
    rows, kps = [], []
    for i, (stamp, image) in enumerate(zip(sequence.stamps, images)):
        r = fe.process(image, float(stamp))
        if i >= warmup:
            t = r.timings
            rows.append([t["detect"], t["match"], t["geometry"], t["track"],
                         t["match"] + t["geometry"] + t["track"], t["total"]])
            kps.append(len(r.keypoints))
    a = np.array(rows)
    names = ["detect", "match", "geometry", "track", "after_detection", "total"]
    out = {f"{n}_ms_median": float(np.median(a[:, k])) for k, n in enumerate(names)}
    out.update({f"{n}_ms_p90": float(np.percentile(a[:, k], 90)) for k, n in enumerate(names)})
    out["keypoints_median"] = float(np.median(kps))
    out["frames"] = len(rows)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keypoints", type=int, default=1000)
    p.add_argument("--detectors", default="orb,sift")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--json", help="write results here")
    args = p.parse_args()
    seq = load_sequence(args.frames)
    h, w = seq.load_image(0).shape[:2]
    print(f"sequence {seq.name} ({len(seq)} frames, {w}x{h}), budget {args.keypoints} keypoints,"
          f" {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, python {platform.python_version()}\n")
    results = {d: bench(seq, d, args.keypoints) for d in args.detectors.split(",")}
    stages = ["detect", "match", "geometry", "track", "after_detection", "total"]
    print("| detector | keypoints | " + " | ".join(f"{s} ms (med / p90)" for s in stages) + " |")
    print("|---|---|" + "---|" * len(stages))
    for d, r in results.items():
        cells = " | ".join(f"{r[f'{s}_ms_median']:.2f} / {r[f'{s}_ms_p90']:.2f}" for s in stages)
        print(f"| {d} | {r['keypoints_median']:.0f} | {cells} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
