"""Speed and memory benchmark: per-stage latency (median, p90), throughput and peak memory of
the whole front-end, per detector, image size and device.

Each (method, size) runs in a fresh Python process so that peak memory and thread state of one
method never leak into the next. ``python -m dkp_slam.bench.speed --method orb ...`` is that
child process; :func:`bench_speed` drives it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Optional, Sequence as Seq

import cv2
import numpy as np

from ..memory import peak_rss_mb, rss_mb

STAGES = ("detect", "match", "geometry", "track", "total")


def _load_sequence(path: Optional[str]):
    if path:
        from ..datasets import open_sequence

        return open_sequence(path)
    from ..synthetic import make_synthetic_sequence

    return make_synthetic_sequence()


def measure(method: str, size: Optional[tuple[int, int]], frames: int, max_keypoints: int,
            device: str, path: Optional[str], warmup: int = 3,
            overrides: Optional[dict] = None) -> dict:
    """Run ``frames`` frames (after ``warmup``) through a fresh front-end; see module doc.

    ``size`` is (width, height) or None for the sequence's native resolution. Images are loaded
    and resized before timing, so I/O is not measured. ``overrides`` are further config values
    (``{"geometry.ransac_method": "usac_default"}``). ``after_detection_ms`` is the median of
    total minus detection: matching, geometry, tracking and the bookkeeping between them
    (descriptor preparation, undistortion, result assembly).
    """
    from ..config import FrontEndConfig, method_overrides
    from ..frontend import FrontEnd

    seq = _load_sequence(path)
    n = min(len(seq), frames + warmup)
    images = [seq.load_image(i) for i in range(n)]
    h0, w0 = images[0].shape[:2]
    camera = seq.camera
    if size is not None and size != (w0, h0):
        images = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images]
        if camera is not None:
            camera = camera.scaled(size[0] / w0, size[1] / h0)
    conf = FrontEndConfig.from_dict({**(overrides or {}), **method_overrides(method),
                                     "detector.max_keypoints": max_keypoints,
                                     "matcher.device": device})
    fe = FrontEnd(conf, camera)
    rss_before = rss_mb()
    timings, keypoints = [], []
    t_start = None
    for i, im in enumerate(images):
        if i == warmup:
            t_start = time.perf_counter()
        r = fe.process(im, float(seq.stamps[i]))
        if i >= warmup:
            timings.append([r.timings[s] for s in STAGES])
            keypoints.append(len(r.keypoints))
    wall = time.perf_counter() - t_start
    a = np.array(timings)
    peak = peak_rss_mb()
    h, w = images[0].shape[:2]
    backend = getattr(fe.detector, "backend", None)
    out = {"method": method, "device": device, "width": w, "height": h,
           "backend": backend.name if backend is not None else "",
           "backend_description": backend.description if backend is not None else "",
           "frontend_fps": 1000.0 / float(np.median(a[:, -1])),
           "frames": len(timings), "keypoints_median": float(np.median(keypoints)),
           "ms_per_frame": float(np.median(a[:, -1])), "fps": len(timings) / wall,
           "detector_ms": float(np.median(a[:, 0])),
           "after_detection_ms": float(np.median(a[:, -1] - a[:, 0])),
           "peak_rss_mb": peak, "rss_growth_mb": peak - rss_before}
    for k, s in enumerate(STAGES):
        out[f"{s}_ms_median"] = float(np.median(a[:, k]))
        out[f"{s}_ms_p90"] = float(np.percentile(a[:, k], 90))
    return out


def bench_speed(methods: Seq[str], sizes: Seq[Optional[tuple[int, int]]], frames: int = 50,
                max_keypoints: int = 1000, device: str = "cpu", path: Optional[str] = None,
                overrides: Optional[dict] = None) -> dict[str, dict]:
    """Measure each method at each size in its own process (``overrides``: see :func:`measure`).

    Returns ``{"<method>@<W>x<H>": {metric: value}}`` with the keys of :func:`measure`.
    """
    results = {}
    for method in methods:
        for size in sizes:
            cmd = [sys.executable, "-m", "dkp_slam.bench.speed", "--method", method,
                   "--frames", str(frames), "--keypoints", str(max_keypoints),
                   "--device", device]
            if size is not None:
                cmd += ["--size", f"{size[0]}x{size[1]}"]
            if path:
                cmd += ["--path", str(path)]
            if overrides:
                cmd += ["--overrides", json.dumps(overrides)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"speed benchmark of {method} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results[f"{method}@{r['width']}x{r['height']}"] = r
    return results


def bench_backends(backends: Seq[str], sizes: Seq[Optional[tuple[int, int]]], frames: int = 50,
                   max_keypoints: int = 1000, device: str = "cpu", path: Optional[str] = None,
                   overrides: Optional[dict] = None, methods: Seq[str] = ("dkp",)
                   ) -> tuple[dict[str, dict], dict[str, str]]:
    """The DKPNet front-end once per backend (``name`` or ``name:precision``, e.g.
    ``torch:fp16``) and DKPNet method (``dkp``, ``dkp:weights=dkp_v3_rot.pt``: see
    :func:`dkp_slam.config.method_overrides`), each in its own process (:func:`bench_speed`).

    Returns ``({key: metrics}, {key: reason})``: keys are the backend names (``<method> /
    <backend>`` when several methods are measured, with ``@WxH`` when several sizes are); a
    backend that fell back to another one (e.g. tensorrt without TensorRT) is not reported
    under its name but listed with the reason. ``detector_ms`` is the median detection time,
    ``frontend_fps`` 1000 / the median time of the whole front-end per frame.
    """
    results, skipped = {}, {}
    for method in methods:
        for spec in backends:
            name, _, precision = spec.partition(":")
            conf = {**(overrides or {}), "detector.dkp.backend": name,
                    "detector.dkp.precision": precision or "auto"}
            key = spec if len(methods) == 1 else f"{method} / {spec}"
            try:
                measured = bench_speed([method], sizes, frames, max_keypoints, device, path, conf)
            except RuntimeError as exc:
                skipped[key] = str(exc).strip().splitlines()[-1]
                continue
            for size_key, r in measured.items():
                if r["backend"] != name:
                    skipped[key] = f"fell back to {r['backend_description']}"
                    break
                label = key if len(sizes) == 1 else f"{key}@{size_key.rsplit('@', 1)[1]}"
                results[label] = {**r, "backend": r["backend_description"]}
    return results, skipped


def parse_size(text: str) -> Optional[tuple[int, int]]:
    """``"640x480"`` -> (640, 480); ``"native"`` -> None."""
    if text == "native":
        return None
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: Optional[Seq[str]] = None) -> int:
    p = argparse.ArgumentParser(description="one speed measurement (child process)")
    p.add_argument("--method", required=True)
    p.add_argument("--size", default="native")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--keypoints", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--path")
    p.add_argument("--overrides", default="{}", help="JSON {dotted.key: value}")
    a = p.parse_args(argv)
    from ..allocator import keep_freed_memory

    keep_freed_memory()  # as the dkp-slam and frontend_node programs do
    print(json.dumps(measure(a.method, parse_size(a.size), a.frames, a.keypoints, a.device,
                             a.path, overrides=json.loads(a.overrides))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
