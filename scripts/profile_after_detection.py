#!/usr/bin/env python3
"""Where the time after detection goes: the pieces behind docs/FOUNDATION.md's speed section.

    python scripts/profile_after_detection.py     (needs ../shared/data; ~1 minute)

Prints, in ms (median of repeated calls): the 1000 x 1000 similarity product for 256-D (ORB's
bits as +-1 floats), 128-D and 64-D descriptors, and ORB's as the int8 product the matcher
uses on CPU; the whole mutual-NN matcher on ORB; the
essential matrix with each RANSAC flavour; and dkp_slam's full two-view estimator, on ORB
matches between KITTI07 frames 10 and 11.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import torch

from dkp_slam.config import FrontEndConfig
from dkp_slam.datasets import load_kitti
from dkp_slam.features import create_detector
from dkp_slam.geometry import estimate_relative_pose
from dkp_slam.matching import Matcher

KITTI = Path(__file__).resolve().parents[1].parent / "shared/data/sequences/kitti07_0000-0159"


def ms(fn, repeat: int = 50) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}, OpenCV {cv2.__version__}")
    for dim in (256, 128, 64):
        a, b = torch.randn(1000, dim), torch.randn(1000, dim)
        print(f"similarity product 1000x1000x{dim}: {ms(lambda: a @ b.T):.2f} ms")
    a8 = (torch.randint(0, 2, (1000, 256)) * 2 - 1).to(torch.int8)
    b8 = (torch.randint(0, 2, (1000, 256)) * 2 - 1).to(torch.int8)
    print(f"int8 product 1000x1000x256 (binary descriptors on CPU): "
          f"{ms(lambda: torch._int_mm(a8, b8.T)):.2f} ms")
    seq = load_kitti(KITTI)
    conf = FrontEndConfig.from_dict({"detector.name": "orb"})
    det = create_detector(conf.detector)
    f0, f1 = det(seq.load_image(10)), det(seq.load_image(11))
    matcher = Matcher()
    d0, d1 = matcher.prepare(f0["descriptors"]), matcher.prepare(f1["descriptors"])
    print(f"mutual-NN matcher, ORB 1000 vs 1000: {ms(lambda: matcher.match(d0, d1, True)):.2f} ms")
    m, _ = matcher.match(d0, d1, True)
    K = seq.camera.K
    p0 = seq.camera.undistort_pixels(f0["keypoints"][m[:, 0]])
    p1 = seq.camera.undistort_pixels(f1["keypoints"][m[:, 1]])
    print(f"{len(m)} matches")
    for name in ("USAC_MAGSAC", "USAC_FAST", "USAC_DEFAULT", "RANSAC"):
        flag = getattr(cv2, name)
        t = ms(lambda: cv2.findEssentialMat(p0, p1, K, method=flag, prob=0.999, threshold=1.0,
                                            maxIters=1000))
        print(f"findEssentialMat {name}: {t:.2f} ms")
    t = ms(lambda: estimate_relative_pose(p0, p1, K, conf.geometry))
    print(f"estimate_relative_pose (everything of the geometry stage): {t:.2f} ms")


if __name__ == "__main__":
    main()
