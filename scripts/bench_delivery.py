#!/usr/bin/env python3
"""How many camera frames arrive at the front-end's image subscription, over real DDS.

For every (size, encoding) x publisher QoS x subscriber QoS case, two fresh processes are
started: a **subscriber** with the QoS the front-end node subscribes with (by default exactly
``node.qos.reliability`` / ``node.qos.depth`` of :class:`dkp_slam.interface.QosConfig`, keep
last, volatile) and a **publisher** (``reliable``: reliable, keep last 10, like
``ros2 topic pub`` / ``image_transport`` defaults; ``sensor``: ``qos_profile_sensor_data``,
best effort keep last 5, like most camera drivers). Both wait until they are matched, then the
publisher sends ``--frames`` ``sensor_msgs/Image`` at ``--rate`` Hz (absolute schedule) and the
subscriber counts the distinct frames it receives (sequence number in ``header.frame_id``)
until 1.5 s after the last one was sent. Prints a Markdown table with the machine and load.

``--profile PATH`` sets ``FASTRTPS_DEFAULT_PROFILES_FILE`` and ``FASTDDS_DEFAULT_PROFILES_FILE``
(Fast DDS XML profile, 2.x and 3.x names) for both
processes, or only for the subscriber with ``--profile-subscriber-only`` (a camera driver we
do not control). ``--sub-env`` / ``--pub-env KEY=VALUE`` set other variables on one side
(e.g. ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``). Export a private ``ROS_DOMAIN_ID``.

Examples::

    ROS_DOMAIN_ID=77 python scripts/bench_delivery.py
    ROS_DOMAIN_ID=77 python scripts/bench_delivery.py --profile config/fastdds_frontend.xml
    ROS_DOMAIN_ID=77 python scripts/bench_delivery.py --sub-qos node reliable:2 \\
        --profile config/fastdds_frontend.xml --profile-subscriber-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ("640x480:mono8", "640x480:bgr8", "1280x720:bgr8")
CHANNELS = {"mono8": 1, "8UC1": 1, "bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono16": 2}
TOPIC = "bench_delivery/image"
#: Environment variables naming a Fast DDS XML profile file (Fast DDS 2.x, 3.x).
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


# ---------------------------------------------------------------------- QoS
def node_default_qos() -> tuple[str, int]:
    """``(reliability, depth)`` of the front-end's image subscription by default."""
    try:
        sys.path.insert(0, str(ROOT))
        from dkp_slam.interface import QosConfig

        q = QosConfig()
        return q.reliability, int(q.depth)
    except Exception as exc:  # pragma: no cover - only without the package
        print(f"warning: cannot read dkp_slam.interface.QosConfig ({exc}); "
              "assuming best_effort depth 5", file=sys.stderr)
        return "best_effort", 5


def sub_qos_spec(spec: str) -> tuple[str, int]:
    """``node`` (the node's default) or ``best_effort:DEPTH`` / ``reliable:DEPTH``."""
    if spec == "node":
        return node_default_qos()
    rel, _, depth = spec.partition(":")
    if rel not in ("best_effort", "reliable"):
        raise argparse.ArgumentTypeError(f"bad subscriber QoS {spec!r}")
    return rel, int(depth or 5)


def make_qos(kind: str):
    """rclpy QoS of a publisher ``reliable[:depth]`` / ``sensor`` or a subscriber spec."""
    from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                           qos_profile_sensor_data)

    if kind == "sensor":
        return qos_profile_sensor_data
    rel, _, depth = kind.partition(":")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth or 10),
                      reliability=(ReliabilityPolicy.RELIABLE if rel == "reliable"
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=DurabilityPolicy.VOLATILE)


def describe_pub(kind: str) -> str:
    if kind == "sensor":
        return "sensor data (best effort, keep last 5)"
    rel, _, depth = kind.partition(":")
    return f"{rel.replace('_', ' ')}, keep last {depth or 10}"


def describe_sub(rel: str, depth: int, spec: str) -> str:
    text = f"{rel.replace('_', ' ')}, keep last {depth}"
    return text + (" (node default)" if spec == "node" else "")


# ---------------------------------------------------------------------- child processes
def _spin_in_thread(node):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor()
    ex.add_node(node)
    th = threading.Thread(target=lambda: _spin(ex, rclpy), daemon=True)
    th.start()
    return ex, th


def _close(node, spinning) -> None:
    """Stop the spinning thread, then destroy the node and shut down: a participant left to
    the interpreter's exit keeps its Fast DDS shared-memory segment in /dev/shm."""
    import rclpy

    ex, th = spinning
    rclpy.try_shutdown()
    th.join(timeout=5)
    ex.shutdown()
    node.destroy_node()


def _spin(ex, rclpy):
    try:
        while rclpy.ok():
            ex.spin_once(timeout_sec=0.05)
    except Exception:  # shutdown races
        pass


def _say(obj) -> None:
    print(json.dumps(obj), flush=True)


def run_subscriber(qos: str, match_timeout: float) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_delivery_sub")
    got: dict[int, float] = {}
    lat: list[float] = []
    lock = threading.Lock()

    def on_image(msg: Image) -> None:
        now = time.time()
        try:
            seq = int(msg.header.frame_id)
        except ValueError:
            return
        sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with lock:
            if seq not in got:
                got[seq] = now
                lat.append(now - sent)

    node.create_subscription(Image, TOPIC, on_image, make_qos(qos))
    spinning = _spin_in_thread(node)
    t0 = time.monotonic()
    while node.count_publishers(TOPIC) < 1 and time.monotonic() - t0 < match_timeout:
        time.sleep(0.02)
    _say({"event": "ready", "publishers": node.count_publishers(TOPIC)})
    sys.stdin.readline()  # "stop" from the parent
    with lock:
        seqs = sorted(got)
        res = {"event": "result", "arrived": len(seqs), "seqs": seqs,
               "latency_ms_median": (statistics.median(lat) * 1e3 if lat else None),
               "latency_ms_max": (max(lat) * 1e3 if lat else None)}
    _say(res)
    _close(node, spinning)
    return 0


def run_publisher(qos: str, width: int, height: int, encoding: str, frames: int, rate: float,
                  match_timeout: float, settle: float) -> int:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_delivery_pub")
    pub = node.create_publisher(Image, TOPIC, make_qos(qos))
    ch = CHANNELS.get(encoding, 1)
    rng = np.random.default_rng(0)
    msg = Image()
    msg.height, msg.width, msg.encoding, msg.is_bigendian = height, width, encoding, 0
    bpp = 2 if encoding == "mono16" else 1
    msg.step = width * ch * (bpp if ch == 2 else 1)
    msg.data = rng.integers(0, 256, size=msg.step * height, dtype=np.uint8).tobytes()
    spinning = _spin_in_thread(node)
    t0 = time.monotonic()
    while pub.get_subscription_count() < 1 and time.monotonic() - t0 < match_timeout:
        time.sleep(0.02)
    _say({"event": "matched", "subscriptions": pub.get_subscription_count()})
    sys.stdin.readline()  # "go" from the parent (the subscriber has matched too)
    time.sleep(settle)
    period = 1.0 / rate
    start = time.monotonic()
    late = 0
    pub_ms: list[float] = []
    for i in range(frames):
        target = start + i * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            late += 1
        now = time.time()
        msg.header.stamp.sec = int(now)
        msg.header.stamp.nanosec = int((now - int(now)) * 1e9)
        msg.header.frame_id = str(i)
        t = time.monotonic()
        pub.publish(msg)
        pub_ms.append((time.monotonic() - t) * 1e3)
    elapsed = time.monotonic() - start
    _say({"event": "sent", "sent": frames, "elapsed_s": elapsed, "late": late,
          "publish_ms_median": statistics.median(pub_ms), "publish_ms_max": max(pub_ms)})
    sys.stdin.readline()  # "stop": keep the writer alive until the subscriber is done
    _close(node, spinning)
    return 0


# ---------------------------------------------------------------------- parent
def _read_event(proc: subprocess.Popen, want: str, timeout: float) -> dict:
    """Next JSON line ``{"event": want, ...}`` of ``proc`` (other lines are echoed)."""
    box: dict = {}

    def reader() -> None:
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if obj.get("event") == want:
                    box["obj"] = obj
                    return
            elif line:
                print(f"  [{proc.args[-1]}] {line}", file=sys.stderr)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    th.join(timeout)
    if "obj" not in box:
        raise TimeoutError(f"no {want!r} from child within {timeout:.0f} s")
    return box["obj"]


def _send(proc: subprocess.Popen, text: str) -> None:
    try:
        proc.stdin.write(text + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def _env(base: dict, profile: str | None, extra: list[str]) -> dict:
    env = dict(base)
    if profile:  # Fast DDS 2.x reads the first name, 3.x the second
        for var in PROFILE_VARIABLES:
            env[var] = str(Path(profile).resolve())
    for kv in extra:
        k, _, v = kv.partition("=")
        if v == "":
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_case(args, size: str, encoding: str, pub_kind: str, sub_rel: str, sub_depth: int,
             ) -> dict:
    w, h = (int(x) for x in size.lower().split("x"))
    base = dict(os.environ)
    if args.no_profile_inherit:
        for var in PROFILE_VARIABLES:
            base.pop(var, None)
    sub_env = _env(base, args.profile, args.sub_env)
    pub_env = _env(base, None if args.profile_subscriber_only else args.profile, args.pub_env)
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--match-timeout", str(args.match_timeout)]
    sub = subprocess.Popen(me + common + ["--qos", f"{sub_rel}:{sub_depth}", "--role", "sub"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=sub_env)
    pub = subprocess.Popen(me + common + ["--qos", pub_kind, "--size", size, "--encoding",
                                          encoding, "--frames", str(args.frames), "--rate",
                                          str(args.rate), "--settle", str(args.settle),
                                          "--role", "pub"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=pub_env)
    row = {"size": size, "encoding": encoding, "bytes": w * h * CHANNELS.get(encoding, 1),
           "pub_qos": pub_kind, "sub_qos": f"{sub_rel}:{sub_depth}", "sent": 0,
           "arrived": 0, "matched": False}
    try:
        ready = _read_event(sub, "ready", args.match_timeout + 20)
        matched = _read_event(pub, "matched", args.match_timeout + 20)
        row["matched"] = bool(ready["publishers"] and matched["subscriptions"])
        if row["matched"]:
            _send(pub, "go")
            sent = _read_event(pub, "sent", args.frames / args.rate * 3 + 30)
            row.update({k: sent[k] for k in ("sent", "elapsed_s", "late", "publish_ms_median",
                                              "publish_ms_max")})
            time.sleep(args.tail)
        _send(sub, "stop")
        res = _read_event(sub, "result", 20)
        row.update({k: res[k] for k in ("arrived", "latency_ms_median", "latency_ms_max")})
        seqs = res["seqs"]
        row["gaps"] = (sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
                       + (1 if seqs and seqs[0] != 0 else 0))
    except TimeoutError as exc:
        row["error"] = str(exc)
    finally:
        _send(pub, "stop")
        for p in (sub, pub):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return row


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def sysctl(name: str) -> str:
        try:
            return Path("/proc/sys/net/core/" + name).read_text().strip()
        except OSError:
            return "?"

    try:
        from importlib.metadata import version

        fastdds = version("ros_fastdds")
        rmw = version("ros_rmw_fastrtps_cpp")
    except Exception:
        fastdds = rmw = "?"
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), Linux "
            f"{platform.release()}, Python {platform.python_version()}, "
            f"RMW {os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)')}, "
            f"rmw_fastrtps_cpp {rmw}, Fast DDS {fastdds}, net.core.rmem_max={sysctl('rmem_max')}"
            f" rmem_default={sysctl('rmem_default')} wmem_max={sysctl('wmem_max')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second (30)")
    ap.add_argument("--frames", type=int, default=90, help="frames per case (90)")
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES),
                    help="WIDTHxHEIGHT:ENCODING ... (640x480:mono8 640x480:bgr8 1280x720:bgr8)")
    ap.add_argument("--pub-qos", nargs="+", default=["reliable", "sensor"],
                    help="publisher QoS: reliable[:DEPTH] (depth 10) and/or sensor "
                    "(qos_profile_sensor_data)")
    ap.add_argument("--sub-qos", nargs="+", default=["node"],
                    help="subscriber QoS: node (the front-end's default) or "
                    "best_effort:DEPTH / reliable:DEPTH")
    ap.add_argument("--profile", help="Fast DDS XML profile (FASTRTPS_DEFAULT_PROFILES_FILE)")
    ap.add_argument("--profile-subscriber-only", action="store_true",
                    help="apply --profile to the subscriber only (publisher not ours)")
    ap.add_argument("--no-profile-inherit", action="store_true",
                    help="drop FASTRTPS_DEFAULT_PROFILES_FILE inherited from the environment")
    ap.add_argument("--sub-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the subscriber (KEY= removes it)")
    ap.add_argument("--pub-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the publisher (KEY= removes it)")
    ap.add_argument("--match-timeout", type=float, default=8.0,
                    help="seconds to wait for the match (incompatible QoS never matches)")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds between matching and the first frame")
    ap.add_argument("--tail", type=float, default=1.5,
                    help="seconds the subscriber keeps counting after the last frame")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    # internal: child roles
    ap.add_argument("--role", choices=("sub", "pub"), help=argparse.SUPPRESS)
    ap.add_argument("--qos", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--encoding", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.role == "sub":
        return run_subscriber(args.qos, args.match_timeout)
    if args.role == "pub":
        w, h = (int(x) for x in args.size.lower().split("x"))
        return run_publisher(args.qos, w, h, args.encoding, args.frames, args.rate,
                             args.match_timeout, args.settle)

    if "ROS_DOMAIN_ID" not in os.environ:
        print("note: ROS_DOMAIN_ID is not set; export a private one", file=sys.stderr)
    subs = [(spec, *sub_qos_spec(spec)) for spec in args.sub_qos]
    load0 = os.getloadavg()
    t0 = time.monotonic()
    rows = []
    for case in args.cases:
        size, _, encoding = case.partition(":")
        encoding = encoding or "bgr8"
        for pub_kind in args.pub_qos:
            for spec, rel, depth in subs:
                row = run_case(args, size, encoding, pub_kind, rel, depth)
                row["sub_desc"] = describe_sub(rel, depth, spec)
                rows.append(row)
                print(f"  {size} {encoding} pub={pub_kind} sub={rel}:{depth}: "
                      f"{row['arrived']}/{row['sent']}"
                      + ("" if row["matched"] else " (no match)"), file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    prof = args.profile or next((os.environ[v] for v in PROFILE_VARIABLES if v in os.environ),
                                None)
    where = ("subscriber only" if args.profile_subscriber_only else "both processes")
    print(f"\nMachine: {machine()}")
    print(f"Load average (1/5/15 min) before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; "
          f"{time.monotonic() - t0:.0f} s in all")
    print(f"Fast DDS profile: {prof + ' (' + where + ')' if prof else 'none (built-in defaults)'}"
          + (f"; subscriber env {args.sub_env}" if args.sub_env else "")
          + (f"; publisher env {args.pub_env}" if args.pub_env else ""))
    print(f"{args.frames} frames at {args.rate:g} Hz per case, publisher and subscriber in "
          "separate processes, ROS_DOMAIN_ID="
          f"{os.environ.get('ROS_DOMAIN_ID', '0')}\n")
    print("| size | encoding | sample | publisher QoS | subscriber QoS | sent | arrived | "
          "gaps | latency median / max (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["matched"]:
            arrived = "no match" + (f" ({r['error']})" if "error" in r else "")
        else:
            arrived = str(r["arrived"]) + (f" ({r['error']})" if "error" in r else "")
        lat = ("-" if r.get("latency_ms_median") is None else
               f"{r['latency_ms_median']:.1f} / {r['latency_ms_max']:.1f}")
        print(f"| {r['size']} | {r['encoding']} | {r['bytes'] / 1e6:.2f} MB | "
              f"{describe_pub(r['pub_qos'])} | {r['sub_desc']} | {r['sent']} | {arrived} | "
              f"{r.get('gaps', '-')} | {lat} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "load_before": load0,
                                               "load_after": load1, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
