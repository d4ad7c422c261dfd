"""Same results in the pip and the distribution environment (issue 13, docs/ROS.md).

    python scripts/compare_environments.py dump OUT.json     # in each environment
    python scripts/compare_environments.py compare A.json B.json

``dump`` writes, for the running environment (its numpy / OpenCV versions recorded):

- ``distorted``: the distorted-camera case. For a plumb_bob and an equidistant (fisheye) camera,
  400 points of a 3-D scene are projected through the distortion (``Camera.project``), the
  distorted pixels undistorted again (``Camera.undistort_points``: the compatibility function on
  OpenCV 4 / 5) and the relative pose estimated (``estimate_relative_pose``: USAC,
  ``polish_essential``, cheirality, GRIC). Noise-free, so every environment must give the same
  keypoints and poses to 1e-6 (the true ones).
- ``kitti_plumb_bob``: the front-end on KITTI07 frames 0-19 with a plumb_bob camera declared
  (k1 = -0.05, k2 = 0.01): detected keypoints, their normalised undistorted coordinates, poses.
  The images are PNG files (decoded identically), so the keypoints agree; the poses agree to
  the accuracy of RANSAC, whose implementation differs between OpenCV 4.6 and 5.
``compare`` prints the largest difference of each quantity.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from dkp_slam.camera import Camera
from dkp_slam.config import FrontEndConfig, GeometryConfig
from dkp_slam.datasets import load_kitti
from dkp_slam.frontend import FrontEnd
from dkp_slam.geometry import estimate_relative_pose, so3_exp

KITTI = (Path(__file__).resolve().parents[2] / "shared" / "data" / "sequences"
         / "kitti07_0000-0159")
CAMERAS = {
    "plumb_bob": ("radtan", [-0.28, 0.07, 1e-4, -2e-4, 0.0]),
    "equidistant": ("equidistant", [-0.01, 0.05, -0.08, 0.04]),
}


def distorted_case(model: str, dist: list[float]) -> dict:
    cam = Camera(752, 480, 458.6, 457.3, 367.2, 248.4, model, np.array(dist))
    rng = np.random.default_rng(0)
    X0 = np.column_stack([rng.uniform(-3, 3, 400), rng.uniform(-2, 2, 400),
                          rng.uniform(4, 12, 400)])
    R, t = so3_exp([0.02, -0.05, 0.01]), np.array([0.6, 0.05, 0.2])
    X1 = (X0 - t) @ R
    uv0, uv1 = cam.project(X0), cam.project(X1)
    keep = np.all((uv0 > 0) & (uv0 < [752, 480]) & (uv1 > 0) & (uv1 < [752, 480]), axis=1)
    xy0, xy1 = cam.undistort_points(uv0[keep]), cam.undistort_points(uv1[keep])
    K = cam.K
    pix = lambda xy: xy * [cam.fx, cam.fy] + [cam.cx, cam.cy]  # noqa: E731
    res = estimate_relative_pose(pix(xy0), pix(xy1), K, GeometryConfig())
    return {"keypoints": xy0.tolist(), "R": res.R.tolist(), "t": res.t.tolist(),
            "model": res.model, "R_true": R.tolist(), "t_true": (t / np.linalg.norm(t)).tolist()}


def kitti_case(frames: int = 20) -> dict:
    seq = load_kitti(KITTI)
    c = seq.camera
    cam = Camera(c.width, c.height, c.fx, c.fy, c.cx, c.cy, "radtan",
                 np.array([-0.05, 0.01, 0.0, 0.0, 0.0]))
    fe = FrontEnd(FrontEndConfig(), cam)
    out = {"keypoints": [], "normalised": [], "R": [], "t": [], "status": []}
    for i in range(frames):
        r = fe.process(seq.load_image(i), float(seq.stamps[i]))
        out["keypoints"].append(r.keypoints.tolist())
        out["normalised"].append(cam.undistort_points(r.keypoints).tolist())
        out["status"].append(r.status.value)
        out["R"].append(None if r.R is None else np.asarray(r.R).tolist())
        out["t"].append(None if r.t is None else np.asarray(r.t).tolist())
    return out


def dump(path: str) -> None:
    data = {"numpy": np.__version__, "opencv": cv2.__version__,
            "distorted": {name: distorted_case(*spec) for name, spec in CAMERAS.items()}}
    if KITTI.exists():
        data["kitti_plumb_bob"] = kitti_case()
    Path(path).write_text(json.dumps(data))
    print(f"wrote {path} (numpy {np.__version__}, OpenCV {cv2.__version__})")


def _maxdiff(a, b) -> float:
    """Largest absolute difference of two equally shaped arrays; inf when they do not match."""
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def compare(path_a: str, path_b: str) -> None:
    a, b = json.loads(Path(path_a).read_text()), json.loads(Path(path_b).read_text())
    print(f"| quantity | A: numpy {a['numpy']}, OpenCV {a['opencv']} vs "
          f"B: numpy {b['numpy']}, OpenCV {b['opencv']} |\n|---|---|")
    for name in CAMERAS:
        da, db = a["distorted"][name], b["distorted"][name]
        kp = _maxdiff(da["keypoints"], db["keypoints"])
        print(f"| {name}: undistorted keypoints, max abs diff | {kp:.2e} |")
        for q in ("R", "t"):
            truth = _maxdiff(da[q], da[f"{q}_true"])
            print(f"| {name}: {q}, max abs diff (A vs truth {truth:.1e}) | "
                  f"{_maxdiff(da[q], db[q]):.2e} |")
        print(f"| {name}: model | {da['model']} / {db['model']} |")
    if "kitti_plumb_bob" in a and "kitti_plumb_bob" in b:
        ka, kb = a["kitti_plumb_bob"], b["kitti_plumb_bob"]
        kp = max(_maxdiff(x, y) for x, y in zip(ka["keypoints"], kb["keypoints"]))
        nm = max(_maxdiff(x, y) for x, y in zip(ka["normalised"], kb["normalised"]))
        dR = [_maxdiff(x, y) for x, y in zip(ka["R"], kb["R"])]
        dt = [_maxdiff(x, y) for x, y in zip(ka["t"], kb["t"])]
        R, t = max(dR), max(dt)
        same = sum(x == y for x, y in zip(ka["status"], kb["status"]))
        print(f"| KITTI07 0-19, plumb_bob: keypoints (px) | {kp:.2e} |")
        print(f"| KITTI07 0-19, plumb_bob: normalised keypoints | {nm:.2e} |")
        print(f"| KITTI07 0-19, plumb_bob: R / t, max abs diff | {R:.2e} / {t:.2e} |")
        print(f"| KITTI07 0-19, plumb_bob: R / t, median abs diff | {np.median(dR):.2e} / "
              f"{np.median(dt):.2e} |")
        print(f"| KITTI07 0-19, plumb_bob: same status | {same}/{len(ka['status'])} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
