#!/usr/bin/env python3
"""Fault soak of ``frontend_node`` over real ROS 2 / DDS: camera-rate input with a fault
injected every few seconds, for minutes.

The node is started as users start it (the ``frontend_node`` console script with
``config/frontend.yaml`` and the launch file's Fast DDS profile); this process publishes KITTI07
frames (resized to ``--size``, played forward and backward) as ``sensor_msgs/Image`` bgr8 with
a CameraInfo each, at ``--rate`` Hz (with ``--transport compressed``: JPEG
``sensor_msgs/CompressedImage`` on ``image/compressed``, the node started with
``node.image_transport:=compressed``), and every ``--fault-every`` seconds injects the next fault
of the cycle below. For every fault it records what the node said on ``~/status`` (status,
counter), and how many processed frames it took to be back to ``OK``. The node's RSS is sampled
every 10 s. At the end the node gets SIGINT and must exit 0.

Faults: an unknown encoding and data shorter than step x height (raw), or an unsupported
compressed format, a JPEG with 400 bytes flipped in the middle (libjpeg decodes it with a
warning) and a JPEG cut in half (compressed); then for both a stamp repeated, a stamp 0.3 s
back, a stamp of 0, a 100 s jump back in time (the stream continues from there), a gap of 5
frames, a CameraInfo with a changed focal length (kept until the next such fault, which changes
it back), an implausible CameraInfo (principal point 1e7), a ``~/reset`` call, and a burst of
frames at 5x the rate for 2 s.

Prints a Markdown table (recorded in docs/ROS.md) and, with ``--json``, the raw numbers.

    python scripts/soak_faults.py --minutes 10
    python scripts/soak_faults.py --minutes 10 --transport compressed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_ros_node import load_frames, rss_mib, status_record  # noqa: E402

NS_PER_S = 1_000_000_000
#: fault -> (what the node should report on ~/status, the counter that should grow)
IMAGE_FAULTS = {
    "raw": {
        "unknown encoding": ("INPUT_ERROR", "invalid_images"),
        "truncated image data": ("INPUT_ERROR", "invalid_images"),
    },
    "compressed": {
        "unsupported compressed format": ("INPUT_ERROR", "invalid_images"),
        "corrupt JPEG (400 bytes flipped)": ("INPUT_ERROR", "invalid_images"),
        "truncated JPEG": ("INPUT_ERROR", "invalid_images"),
    },
}
#: faults of both transports
TIME_AND_CONTROL_FAULTS = {
    "repeated stamp": ("INPUT_ERROR", "stamp_duplicate"),
    "stamp 0.3 s back": ("INPUT_ERROR", "stamp_backwards"),
    "stamp 0": ("INPUT_ERROR", "stamp_invalid"),
    "100 s jump back in time": ("TIME_RESET", "stamp_resets"),
    "5 frames missing upstream": ("OK", "frames_missing_upstream"),
    "CameraInfo changed (fx x1.02)": ("INITIALISING", None),
    "implausible CameraInfo": ("INPUT_ERROR", "invalid_camera_info"),
    "~/reset": ("INITIALISING", None),
    "burst at 5x rate for 2 s": ("OK", "dropped_busy"),
}


class Soak:
    """Publisher, reset client and ~/status collector (one rclpy context, its own thread)."""

    def __init__(self, domain: int, ns: str, frames, camera, transport: str = "raw") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from dkp_slam.ros.conversions import array_to_image

        self.rclpy, self.Trigger, self.array_to_image = rclpy, Trigger, array_to_image
        self.frames = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames]
        self.transport = transport
        if transport == "compressed":
            self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                          for f in self.frames]
            self.CompressedImage = CompressedImage
        self.camera = camera
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("soak_faults", context=self.context)
        self.image_pub = self.node.create_publisher(
            *((CompressedImage, f"{ns}/image/compressed") if transport == "compressed"
              else (Image, f"{ns}/image")), qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{ns}/camera_info",
                                                   qos_profile_sensor_data)
        self.reset = self.node.create_client(Trigger, f"{ns}/frontend/reset")
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.statuses: list[dict] = []
        self.status_sub = self.node.create_subscription(
            String, f"{ns}/frontend/status", self._on_status, reliable)
        self.CameraInfo = CameraInfo
        self.fx_scale = 1.0
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.k = 0
        self.t_ns = 1000 * NS_PER_S

    def _on_status(self, msg) -> None:
        data = status_record(msg)
        if data is not None:
            with self.lock:
                self.statuses.append(data)

    def info(self, stamp, implausible: bool = False):
        cam = self.camera
        msg = self.CameraInfo(width=cam.width, height=cam.height, distortion_model="")
        fx, fy = cam.fx * self.fx_scale, cam.fy * self.fx_scale
        msg.k = [fx, 0.0, cam.cx, 0.0, fy, 1e7 if implausible else cam.cy, 0.0, 0.0, 1.0]
        msg.header.stamp, msg.header.frame_id = stamp, "camera_optical_frame"
        return msg

    def publish(self, period_ns: int, *, stamp_ns: int | None = None, encoding: str = "",
                truncate: bool = False, flip_bytes: int = 0,
                implausible_info: bool = False) -> None:
        """The next frame; ``stamp_ns`` overrides the clock (which then continues from the
        clock's own value unless the caller moves it). ``encoding`` replaces the encoding
        (raw) or format (compressed), ``truncate`` cuts the data in half, ``flip_bytes``
        inverts that many bytes in the middle of a JPEG."""
        from std_msgs.msg import Header

        self.t_ns += period_ns
        t = self.t_ns if stamp_ns is None else stamp_ns
        header = Header(frame_id="camera_optical_frame")
        header.stamp.sec, header.stamp.nanosec = divmod(t, NS_PER_S)
        k = self.k % len(self.frames)
        self.k += 1
        if self.transport == "compressed":
            data = bytearray(self.jpegs[k])
            if flip_bytes:
                mid = len(data) // 2
                data[mid:mid + flip_bytes] = bytes(255 - b for b in data[mid:mid + flip_bytes])
            msg = self.CompressedImage(header=header, format=encoding or "jpeg")
            msg.data = bytes(data[:len(data) // 2] if truncate else data)
        else:
            msg = self.array_to_image(self.frames[k], header, "bgr8")
            msg.encoding = encoding or "bgr8"
            if truncate:
                msg.data = msg.data[:len(msg.data) // 2]
        self.info_pub.publish(self.info(header.stamp, implausible_info))
        self.image_pub.publish(msg)

    def ready(self) -> bool:
        return self.image_pub.get_subscription_count() > 0 and \
            self.status_sub.get_publisher_count() > 0

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def start_node(domain: int, ns: str, log: Path, params: list[str]) -> subprocess.Popen:
    exe = shutil.which("frontend_node") or str(Path(sys.executable).parent / "frontend_node")
    cmd = [exe, "--ros-args", "--params-file", str(ROOT / "config" / "frontend.yaml"),
           "-r", f"__ns:={ns}", "-p", "node.log_throttle_s:=0.0"]
    for p in params:
        cmd += ["-p", p]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def inject(soak: Soak, fault: str, period_ns: int, rate: float) -> None:
    if fault == "unknown encoding":
        soak.publish(period_ns, encoding="yuv422_odd")
    elif fault in ("truncated image data", "truncated JPEG"):
        soak.publish(period_ns, truncate=True)
    elif fault == "unsupported compressed format":
        soak.publish(period_ns, encoding="bgr8; compressedDepth png")
    elif fault == "corrupt JPEG (400 bytes flipped)":
        soak.publish(period_ns, flip_bytes=400)
    elif fault == "repeated stamp":
        soak.publish(0)  # the clock does not move: the last frame's stamp again
    elif fault == "stamp 0.3 s back":
        soak.publish(0, stamp_ns=soak.t_ns - 300_000_000)
    elif fault == "stamp 0":
        soak.publish(0, stamp_ns=0)
    elif fault == "100 s jump back in time":
        soak.t_ns -= 100 * NS_PER_S
        soak.publish(period_ns)
    elif fault == "5 frames missing upstream":
        soak.t_ns += 5 * period_ns
        soak.publish(period_ns)
    elif fault == "CameraInfo changed (fx x1.02)":
        soak.fx_scale = 1.02 if soak.fx_scale == 1.0 else 1.0
        soak.publish(period_ns)
    elif fault == "implausible CameraInfo":
        soak.publish(period_ns, implausible_info=True)
    elif fault == "~/reset":
        soak.reset.call_async(soak.Trigger.Request())
        soak.publish(period_ns)
    elif fault == "burst at 5x rate for 2 s":
        end = time.perf_counter() + 2.0
        while time.perf_counter() < end:
            soak.publish(period_ns // 5)
            time.sleep(1.0 / (5 * rate))
    else:  # pragma: no cover
        raise ValueError(fault)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=10.0, help="camera rate (Hz)")
    p.add_argument("--fault-every", type=float, default=4.0, help="seconds between faults")
    p.add_argument("--size", default="640x480")
    p.add_argument("--transport", choices=sorted(IMAGE_FAULTS), default="raw",
                   help="sensor_msgs/Image or JPEG CompressedImage")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
    p.add_argument("--domain", type=int, default=150 + os.getpid() % 80)
    p.add_argument("--log", default="outputs/soak_faults.log")
    p.add_argument("--json")
    args = p.parse_args(argv)
    profile = str(ROOT / "config" / "fastdds_frontend.xml")  # as frontend.launch.py sets it
    for var in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        os.environ[var] = profile
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames, camera = load_frames("kitti", width, height, 120)
    ns = f"/soak{os.getpid()}"
    log = ROOT / args.log
    log.parent.mkdir(parents=True, exist_ok=True)
    faults = {**IMAGE_FAULTS[args.transport], **TIME_AND_CONTROL_FAULTS}
    proc = start_node(args.domain, ns, log,
                      [f"node.image_transport:={args.transport}", *args.param])
    soak = Soak(args.domain, ns, frames, camera, args.transport)
    period_ns = int(NS_PER_S / args.rate)
    names = list(faults)
    events: list[dict] = []  # {fault, status_index}
    rss: list[tuple[float, float]] = []
    load0 = os.getloadavg()
    crashed = False
    try:
        t0 = time.monotonic()
        while not soak.ready():
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                raise RuntimeError(f"node did not start; see {log}")
            time.sleep(0.05)
        start = time.perf_counter()
        next_t, next_fault, next_rss, n_fault = start, start + 10.0, start, 0
        while time.perf_counter() - start < args.minutes * 60:
            now = time.perf_counter()
            if now >= next_rss:
                rss.append((now - start, rss_mib(proc.pid)))
                next_rss += 10.0
            if now >= next_fault:
                fault = names[n_fault % len(names)]
                n_fault += 1
                with soak.lock:
                    index = len(soak.statuses)
                events.append({"fault": fault, "status_index": index, "t": now - start})
                inject(soak, fault, period_ns, args.rate)
                next_fault = time.perf_counter() + args.fault_every
            else:
                soak.publish(period_ns)
            if proc.poll() is not None:
                crashed = True
                break
            next_t += 1.0 / args.rate
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()
        time.sleep(2.0)
        rss.append((time.perf_counter() - start, rss_mib(proc.pid)))
    finally:
        soak.close()
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    with soak.lock:
        statuses = list(soak.statuses)
    result = summarise(events, statuses, rss, rc, crashed, args, load0, faults)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if rc == 0 and not crashed and result["all_recovered"] else 1


def summarise(events, statuses, rss, rc, crashed, args, load0, faults) -> dict:
    """Per fault kind: times injected, statuses and counter growth seen, frames to OK."""
    rows: dict[str, dict] = defaultdict(lambda: {"injected": 0, "reported": defaultdict(int),
                                                  "counter_grew": 0, "frames_to_ok": []})
    for k, ev in enumerate(events):
        end = events[k + 1]["status_index"] if k + 1 < len(events) else len(statuses)
        window = statuses[ev["status_index"]:end]
        row = rows[ev["fault"]]
        row["injected"] += 1
        expected_status, counter = faults[ev["fault"]]
        before = statuses[ev["status_index"] - 1] if ev["status_index"] else {}
        for s in window:
            if s.get("status") != "OK":
                row["reported"][s["status"]] += 1
        if counter and window and window[-1].get(counter, 0) > before.get(counter, 0):
            row["counter_grew"] += 1
        processed = 0
        for s in window:  # processed frames (with an index) until the first OK
            if "index" in s:
                processed += 1
                if s["status"] == "OK":
                    break
        else:
            processed = None  # never OK before the next fault
        row["frames_to_ok"].append(processed)
    t = np.array([a for a, _ in rss])
    mem = np.array([b for _, b in rss])
    warm = t >= min(60.0, 0.2 * args.minutes * 60)
    table = []
    for fault, (expected, counter) in faults.items():
        row = rows.get(fault)
        if row is None:
            continue
        ok = [f for f in row["frames_to_ok"] if f is not None]
        table.append({"fault": fault, "expected_status": expected, "counter": counter,
                      "injected": row["injected"], "reported": dict(row["reported"]),
                      "counter_grew": row["counter_grew"],
                      "recovered": len(ok), "frames_to_ok_max": max(ok) if ok else None,
                      "frames_to_ok_median": float(np.median(ok)) if ok else None})
    return {"minutes": args.minutes, "rate_hz": args.rate, "fault_every_s": args.fault_every,
            "size": args.size, "transport": args.transport, "params": args.param,
            "faults": len(events),
            "machine": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})",
            "load_before": load0, "load_after": os.getloadavg(), "node_exit_code": rc,
            "crashed": crashed, "statuses": len(statuses),
            "rss_mib_after_warmup": float(mem[warm][0]) if warm.any() else float("nan"),
            "rss_mib_end": float(mem[-1]), "rss_mib_max": float(mem.max()),
            "rss_samples": [[round(a, 1), round(b, 1)] for a, b in rss],
            "all_recovered": all(r["recovered"] == r["injected"] for r in table),
            "table": table}


def markdown(r: dict) -> str:
    what = "JPEG CompressedImage" if r.get("transport") == "compressed" else "bgr8 Image"
    lines = [f"{r['minutes']:g} min at {r['rate_hz']:g} Hz, {r['size']} {what}, a fault every "
             f"{r['fault_every_s']:g} s ({r['faults']} faults), {r['machine']}, load average "
             f"{r['load_before'][0]:.2f} before / {r['load_after'][0]:.2f} after; node exit "
             f"code {r['node_exit_code']}, crashed: {'yes' if r['crashed'] else 'no'}; RSS "
             f"{r['rss_mib_after_warmup']:.0f} MiB after the warm-up, {r['rss_mib_end']:.0f} "
             f"MiB at the end (max {r['rss_mib_max']:.0f})", "",
             "| fault | injected | ~/status reported (not OK) | counter (grew / injected) | "
             "back to OK | processed frames to OK (median / max) |",
             "|---|---|---|---|---|---|"]
    for t in r["table"]:
        rep = ", ".join(f"{k} x{v}" for k, v in sorted(t["reported"].items())) or "-"
        counter = f"`{t['counter']}` ({t['counter_grew']} / {t['injected']})" if t["counter"] \
            else "-"
        frames = (f"{t['frames_to_ok_median']:g} / {t['frames_to_ok_max']}"
                  if t["frames_to_ok_max"] is not None else "-")
        lines.append(f"| {t['fault']} | {t['injected']} | {rep} | {counter} | "
                     f"{t['recovered']} / {t['injected']} | {frames} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
