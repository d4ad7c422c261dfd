#!/usr/bin/env python3
"""DKPNet alone (no keypoint extraction, no front-end) per backend at one image size.

    python scripts/bench_backends_network.py [--size 640x480] [--runs 50] [--json PATH]

Rows: PyTorch with the ``grid_sample`` deformable convolution (the torch backend), PyTorch
with ``torchvision.ops.deform_conv2d``, and onnxruntime (CPU) on the ``deformconv`` and
``decomposed`` exports, each as the backends of ``dkp_slam.model.backends`` run it (same
threads, same session options). Inputs: KITTI07 frames resized (``../shared/data``), or
generated corridor frames without it. The process keeps freed memory mapped, as the
``dkp-slam`` and ``frontend_node`` programs do (``--glibc-defaults``: it does not, to measure
what that tuning is worth). Median and p90 over ``--runs`` frames after 5
warm-up runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkp_slam.allocator import keep_freed_memory  # noqa: E402
from dkp_slam.model.backends import OnnxRuntimeBackend, TorchBackend  # noqa: E402
from dkp_slam.model.export import export_onnx, variant_net  # noqa: E402
from dkp_slam.model.weights import load_model  # noqa: E402

KITTI = ROOT.parent / "shared" / "data" / "sequences" / "kitti07_0000-0159"


def frames(width: int, height: int, n: int = 20) -> list[torch.Tensor]:
    if KITTI.is_dir():
        paths = sorted((KITTI / "image_0").glob("*.png"))[:n]
        images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    else:
        from dkp_slam.synthetic import make_synthetic_sequence

        seq = make_synthetic_sequence(n_frames=n)
        images = [seq.load_image(i) for i in range(n)]
    return [torch.from_numpy(cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA))
            .float().div_(255.0)[None, None] for im in images]


def time_ms(fn, inputs: list[torch.Tensor], runs: int) -> tuple[float, float]:
    for i in range(5):
        fn(inputs[i % len(inputs)])
    t = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(inputs[i % len(inputs)])
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), float(np.percentile(t, 90))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (multiples of 8)")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--weights", default="", help="weight file (default: the shipped model)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="leave glibc's allocator as it is (without dkp_slam.allocator)")
    a = p.parse_args()
    if not a.glibc_defaults:
        keep_freed_memory()
    width, height = (int(v) for v in a.size.lower().split("x"))
    inputs = frames(width, height)
    net = load_model(a.weights or None)
    cpu = torch.device("cpu")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        candidates = {
            "torch (grid_sample DCN; the torch backend)": TorchBackend(net, cpu),
            "torch (torchvision deform_conv2d)": TorchBackend(variant_net(net, "deformconv"), cpu),
        }
        for variant in ("deformconv", "decomposed"):
            path = Path(tmp) / f"{variant}.onnx"
            export_onnx(net, path, variant=variant, height=height, width=width)
            candidates[f"onnxruntime ({variant} export)"] = OnnxRuntimeBackend(path, cpu)
        for name, backend in candidates.items():
            median, p90 = time_ms(backend, inputs, a.runs)
            rows[name] = {"ms_median": median, "ms_p90": p90}
    base = rows["torch (grid_sample DCN; the torch backend)"]["ms_median"]
    print(f"DKPNet alone at {width}x{height}, {torch.get_num_threads()} threads, "
          f"{a.runs} frames (median / p90 ms; speed-up against the torch backend)\n")
    print("| backend | median (ms) | p90 (ms) | speed-up |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        r["speedup_vs_torch_backend"] = base / r["ms_median"]
        print(f"| {name} | {r['ms_median']:.2f} | {r['ms_p90']:.2f} | "
              f"{r['speedup_vs_torch_backend']:.2f}x |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"size": [width, height], "threads":
                                            torch.get_num_threads(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
