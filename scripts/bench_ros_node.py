#!/usr/bin/env python3
"""End-to-end benchmark of ``frontend_node`` over real ROS 2 / DDS.

Starts the node as a subprocess (the ``frontend_node`` console script with
``config/frontend.yaml``), publishes images + CameraInfo from this process and measures:

- **latency**: image published -> its ``~/features`` received (same clock, median and p90),
  publishing at camera rate (``--rate``, below the node's capacity so nothing queues);
- **sustained FPS**: ``~/features`` per second while publishing faster than the node can
  process (``--burst-rate``); the node drops frames instead of queueing, so FPS is its
  processing capacity and latency stays bounded;
- **memory**: the node's RSS (``VmRSS`` of ``/proc/<pid>/status``);
- **first frame**: latency of the first frame published once the node has subscribed (the
  node warms up before it subscribes, ``node.warm_up_frames``);
- **a shared CPU**: with ``--competitors 0,1,2`` both phases are repeated with 0, 1 and 2
  busy-loop Python processes running beside the node (each keeps one core busy), and the
  throughput is reported relative to the quiet one;
- with ``--soak-minutes M``: M minutes at camera rate, RSS sampled every ``--sample-s``
  seconds, growth reported after a warm-up (first 20 %, at most 60 s).

Frames: KITTI07 (``../shared/data/sequences/kitti07_0000-0159``) resized to ``--size`` (camera
scaled accordingly), or the synthetic corridor (``--source synthetic``), played forward and
backward so the motion stays continuous. Prints a Markdown table; ``--json`` saves the numbers.

Examples::

    python scripts/bench_ros_node.py --detector orb --duration 60
    python scripts/bench_ros_node.py --detector orb --soak-minutes 10
    python scripts/bench_ros_node.py --detector dkp --param detector.dkp.backend:=onnxruntime
    python scripts/bench_ros_node.py --detector dkp --competitors 0,1,2 --encoding rgb8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkp_slam.features import DETECTORS  # noqa: E402

KITTI = ROOT.parent / "shared" / "data" / "sequences" / "kitti07_0000-0159"


# ---------------------------------------------------------------------- inputs
def load_frames(source: str, width: int, height: int, n: int):
    """``(frames, camera)``: ``n`` grey uint8 frames at ``width x height`` and their camera."""
    if source == "kitti":
        from dkp_slam.datasets import load_kitti

        seq = load_kitti(KITTI)
        cam = seq.camera.scaled(width / seq.camera.width, height / seq.camera.height)
        frames = [cv2.resize(seq.load_image(i), (width, height), interpolation=cv2.INTER_AREA)
                  for i in range(min(n, len(seq)))]
    else:
        from dkp_slam.synthetic import make_synthetic_sequence

        seq = make_synthetic_sequence(n_frames=n, width=width, height=height)
        cam = seq.camera
        frames = [seq.load_image(i) for i in range(n)]
    frames = [np.ascontiguousarray(f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
              for f in frames]
    return frames + frames[-2:0:-1], cam  # forward then backward: continuous motion


def status_record(msg) -> dict | None:
    """The node's ``~/status`` record (a JSON ``std_msgs/String``), or None if it is not JSON."""
    try:
        return json.loads(msg.data)
    except ValueError:
        return None


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (NaN when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# ---------------------------------------------------------------------- ROS side
class Bench:
    """Publisher of frames + CameraInfo and collector of ~/features and ~/status."""

    def __init__(self, domain: int, ns: str, frames, camera, encoding: str = "mono8") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import String

        from dkp_slam.ros.conversions import array_to_image

        self.rclpy = rclpy
        self.array_to_image = array_to_image
        self.frames, self.camera, self.encoding = frames, camera, encoding
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("bench_ros_node", context=self.context)
        self.image_pub = self.node.create_publisher(Image, f"{ns}/image", qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{ns}/camera_info",
                                                   qos_profile_sensor_data)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.features_sub = self.node.create_subscription(
            PointCloud2, f"{ns}/frontend/features", self._on_features, reliable)
        self.node.create_subscription(String, f"{ns}/frontend/status", self._on_status, reliable)
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}  # stamp in ns -> perf_counter at publish
        self.latency_ms: dict[int, float] = {}
        self.received_at: dict[int, float] = {}
        self.status: dict = {}
        info = CameraInfo(width=camera.width, height=camera.height,
                          distortion_model="plumb_bob" if camera.has_distortion else "")
        info.k = [float(v) for v in camera.K.reshape(-1)]
        info.d = [float(v) for v in camera.dist]
        info.header.frame_id = "camera_optical_frame"
        self.info = info
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.k = 0

    def _on_features(self, msg) -> None:
        now = time.perf_counter()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            if key in self.sent:
                self.latency_ms[key] = (now - self.sent[key]) * 1e3
                self.received_at[key] = now

    def _on_status(self, msg) -> None:
        data = status_record(msg)
        if data is not None:
            with self.lock:
                self.status = data

    def ready(self) -> bool:
        return (self.image_pub.get_subscription_count() > 0 and
                self.info_pub.get_subscription_count() > 0 and
                self.features_sub.get_publisher_count() > 0)

    def publish_next(self) -> int:
        """Publish the next frame (+ CameraInfo); return its stamp key (ns)."""
        from std_msgs.msg import Header

        img = self.frames[self.k % len(self.frames)]
        self.k += 1
        key = 1_000_000_000 + self.k * 1_000_000  # unique stamps, 1 ms apart
        h = Header(frame_id="camera_optical_frame")
        h.stamp.sec, h.stamp.nanosec = divmod(key, 1_000_000_000)
        self.info.header = h
        if self.encoding != "mono8":
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if self.encoding == "rgb8"
                               else cv2.COLOR_GRAY2BGR)
        msg = self.array_to_image(img, h, self.encoding)
        self.info_pub.publish(self.info)
        with self.lock:
            self.sent[key] = time.perf_counter()
        self.image_pub.publish(msg)
        return key

    def run(self, rate: float, seconds: float, on_tick=None) -> list[int]:
        """Publish at ``rate`` Hz for ``seconds``; return the published keys."""
        keys, period = [], 1.0 / rate
        start = time.perf_counter()
        next_t = start
        while time.perf_counter() - start < seconds:
            keys.append(self.publish_next())
            if on_tick is not None:
                on_tick()
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()
        return keys

    def first_frame_ms(self, timeout: float = 60.0) -> float:
        """Latency of one frame published on its own (NaN when unanswered in ``timeout``),
        after CameraInfo as a running driver has sent it: without intrinsics the node skips
        the frame (``waiting_for_camera_info``)."""
        for _ in range(5):
            self.info_pub.publish(self.info)
            time.sleep(0.1)
        key = self.publish_next()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if key in self.latency_ms:
                    return self.latency_ms[key]
            time.sleep(0.005)
        return float("nan")

    def counters(self) -> dict[str, int]:
        """The node's drop counters from its latest ~/status."""
        with self.lock:
            return {k: int(self.status.get(k) or 0) for k in ("dropped_busy", "dropped_queue")}

    def summary(self, keys: list[int], seconds: float, before: dict[str, int]) -> dict:
        """What became of ``keys``; ``before``: :meth:`counters` when the phase started."""
        time.sleep(1.0)  # answers still in flight
        after = self.counters()
        with self.lock:
            lat = np.array([self.latency_ms[k] for k in keys if k in self.latency_ms])
            got = [self.received_at[k] for k in keys if k in self.received_at]
            answered = "".join("1" if k in self.latency_ms else "." for k in keys)
        fps = (len(got) - 1) / (max(got) - min(got)) if len(got) >= 2 else 0.0
        return {"published": len(keys), "processed": len(lat), "answered": answered,
                **{k: after[k] - before[k] for k in after},
                "published_hz": len(keys) / seconds, "fps": fps,
                "latency_ms_median": float(np.median(lat)) if lat.size else float("nan"),
                "latency_ms_p90": float(np.percentile(lat, 90)) if lat.size else float("nan")}

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def start_node(args, domain: int, ns: str, log: Path) -> subprocess.Popen:
    exe = shutil.which("frontend_node") or str(Path(sys.executable).parent / "frontend_node")
    cmd = [exe, "--ros-args", "--params-file", str(ROOT / "config" / "frontend.yaml"),
           "-r", f"__ns:={ns}", "-p", f"detector.name:={args.detector}",
           "-p", f"detector.max_keypoints:={args.max_keypoints}",
           "-p", f"matcher.device:={args.device}"]
    for param in args.param:  # e.g. detector.dkp.backend:=onnxruntime
        cmd += ["-p", param]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", default="orb", choices=sorted(DETECTORS))
    p.add_argument("--device", default="cpu", help="matcher.device (cpu, cuda)")
    p.add_argument("--max-keypoints", type=int, default=1000)
    p.add_argument("--source", choices=("kitti", "synthetic"), default="kitti")
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the published images")
    p.add_argument("--frames", type=int, default=120, help="distinct frames to cycle through")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of measurement: half latency at --rate, half at --burst-rate")
    p.add_argument("--rate", type=float, default=10.0, help="camera rate (Hz)")
    p.add_argument("--burst-rate", type=float, default=100.0,
                   help="publishing rate of the throughput phase (Hz)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    p.add_argument("--soak-minutes", type=float, default=0.0,
                   help="instead: publish at --rate this long and check the node's RSS")
    p.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling period (soak)")
    p.add_argument("--domain", type=int, default=150 + os.getpid() % 80, help="ROS_DOMAIN_ID")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, e.g. detector.dkp.backend:=onnxruntime")
    p.add_argument("--encoding", default="mono8", choices=("mono8", "bgr8", "rgb8"),
                   help="encoding of the published images")
    p.add_argument("--competitors", default="0",
                   help="comma-separated numbers of busy-loop processes to run beside the node, "
                        "one measurement each (e.g. 0,1,2)")
    p.add_argument("--dds-profile", default=str(ROOT / "config" / "fastdds_frontend.xml"),
                   help="Fast DDS XML profile of the node and of this publisher, as "
                        "frontend.launch.py sets it ('' = none: Fast DDS's defaults)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--log", default="outputs/bench_ros_node.log", help="node output")
    args = p.parse_args(argv)

    for var in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        if args.dds_profile:  # before this process creates its participant; the node inherits
            os.environ[var] = args.dds_profile
        else:
            os.environ.pop(var, None)
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames, camera = load_frames(args.source, width, height, args.frames)
    ns = f"/bench{os.getpid()}"
    log = ROOT / args.log
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_node(args, args.domain, ns, log)
    bench = Bench(args.domain, ns, frames, camera, args.encoding)
    results: dict = {"detector": args.detector, "device": args.device, "params": args.param,
                     "max_keypoints": args.max_keypoints, "source": args.source,
                     "size": f"{width}x{height}", "encoding": args.encoding,
                     "cpu_count": os.cpu_count(), "load_before": os.getloadavg(),
                     "dds_profile": Path(args.dds_profile).name if args.dds_profile else "none"}
    rc = 1
    try:
        t0 = time.monotonic()
        while not bench.ready():
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                raise RuntimeError(f"node did not start; see {log}")
            time.sleep(0.05)
        results["first_frame_ms"] = bench.first_frame_ms()
        bench.run(args.rate, args.warmup)  # warm-up: first frames, allocations, caches
        rss_start = rss_mib(proc.pid)
        if args.soak_minutes > 0:
            results.update(soak(bench, proc, args))
        else:
            half = args.duration / 2
            results["levels"] = []
            for n in (int(v) for v in args.competitors.split(",")):
                with competitors(n):
                    level = {"competitors": n}
                    for phase, rate in (("latency", args.rate), ("throughput", args.burst_rate)):
                        before = bench.counters()
                        level[phase] = bench.summary(bench.run(rate, half), half, before)
                level["latency"]["rate_hz"] = args.rate
                level["throughput"]["rate_hz"] = args.burst_rate
                results["levels"].append(level)
        with bench.lock:
            status = dict(bench.status)
        results["node_counters"] = {k: status.get(k) for k in (
            "received", "processed", "dropped", "dropped_busy", "dropped_queue",
            "invalid_images", "errors")}
        results["rss_mib_after_warmup"] = rss_start
        results["rss_mib_end"] = rss_mib(proc.pid)
        rc = 0
    finally:
        bench.close()
        node_rc = stop_node(proc)
    results["node_exit_code"] = node_rc
    print(markdown(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return rc if node_rc == 0 else 1


@contextlib.contextmanager
def competitors(n: int):
    """``n`` busy-loop Python processes (one core each) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0 if n else 0.0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def soak(bench: Bench, proc: subprocess.Popen, args) -> dict:
    """Publish at camera rate for ``--soak-minutes``, sampling the node's RSS."""
    total = args.soak_minutes * 60.0
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    last = [start - args.sample_s]

    def tick():
        now = time.monotonic()
        if now - last[0] >= args.sample_s:
            last[0] = now
            samples.append((now - start, rss_mib(proc.pid)))

    before = bench.counters()
    keys = bench.run(args.rate, total, tick)
    tick()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    warm = min(60.0, 0.2 * total)
    after = t >= warm
    slope = float(np.polyfit(t[after] / 60.0, rss[after], 1)[0]) if after.sum() >= 3 else \
        float("nan")
    out = bench.summary(keys, total, before)
    return {"soak": {**out, "minutes": args.soak_minutes, "rate_hz": args.rate,
                     "warmup_s": warm, "rss_mib_at_warmup": float(rss[after][0]),
                     "rss_mib_end": float(rss[-1]), "rss_mib_max": float(rss.max()),
                     "rss_growth_mib": float(rss[-1] - rss[after][0]),
                     "rss_slope_mib_per_min": slope,
                     "samples": [[round(a, 1), round(b, 1)] for a, b in samples]}}


def markdown(r: dict, args) -> str:
    """The results as Markdown."""
    lines = [f"`frontend_node`, detector `{r['detector']}` ({r['max_keypoints']} keypoints, "
             f"{r['device']}{', ' + ' '.join(r['params']) if r['params'] else ''}), "
             f"{r['source']} frames at {r['size']} {r['encoding']}, {r['cpu_count']} CPU cores, "
             f"load average before {r['load_before'][0]:.2f}, Fast DDS profile "
             f"{r['dds_profile']}; first frame after start-up "
             f"answered in {r['first_frame_ms']:.0f} ms", ""]
    if "soak" in r:
        s = r["soak"]
        lines += ["| soak | published | processed | latency median / p90 (ms) | RSS after "
                  "warm-up (MiB) | RSS end (MiB) | growth (MiB) | slope (MiB/min) |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {s['minutes']:g} min at {s['rate_hz']:g} Hz | {s['published']} | "
                  f"{s['processed']} | {s['latency_ms_median']:.1f} / {s['latency_ms_p90']:.1f} "
                  f"| {s['rss_mib_at_warmup']:.1f} | {s['rss_mib_end']:.1f} | "
                  f"{s['rss_growth_mib']:+.1f} | {s['rss_slope_mib_per_min']:+.2f} |"]
    else:
        lines += ["| busy-loop processes beside it | phase | publish rate (Hz) | published | "
                  "answered | dropped busy / in transport | FPS | of quiet FPS | "
                  "latency median (ms) | latency p90 (ms) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        quiet = r["levels"][0]["throughput"]["fps"] if r["levels"] else float("nan")
        for level in r["levels"]:
            for name in ("latency", "throughput"):
                s = level[name]
                share = (f"{s['fps'] / quiet:.0%}" if name == "throughput" and quiet > 0
                         else "")
                lines.append(f"| {level['competitors']} | {name} | {s['published_hz']:.1f} | "
                             f"{s['published']} | {s['processed']} | {s['dropped_busy']} / "
                             f"{s['dropped_queue']} | {s['fps']:.1f} | {share} "
                             f"| {s['latency_ms_median']:.1f} | {s['latency_ms_p90']:.1f} |")
        for level in r["levels"]:
            lines.append(f"\nAnswered at {level['latency']['rate_hz']:g} Hz with "
                         f"{level['competitors']} busy loops (1 = answered): "
                         f"`{level['latency']['answered']}`")
    c = r.get("node_counters", {})
    lines += ["", f"Node counters: received {c.get('received')}, processed {c.get('processed')}, "
              f"dropped {c.get('dropped')} (busy {c.get('dropped_busy')}, queue "
              f"{c.get('dropped_queue')}), invalid {c.get('invalid_images')}, errors "
              f"{c.get('errors')}. Node RSS {r['rss_mib_after_warmup']:.0f} MiB after warm-up, "
              f"{r['rss_mib_end']:.0f} MiB at the end; exit code {r['node_exit_code']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
