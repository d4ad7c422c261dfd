"""Frame delivery with the node's default QoS (best effort, keep last 5) over real Fast DDS
between two processes, with the shipped profile config/fastdds_frontend.xml that the launch
file applies: colour frames larger than Fast DDS's default 512 KiB shared-memory segment
arrive from reliable and from sensor-data publishers (docs/ROS.md, "Frame delivery").

The figures at 30 Hz, and without the profile, are measured by scripts/bench_delivery.py; here
5 Hz leaves the subscriber 200 ms per frame, so the count does not depend on the machine's
load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ros_harness import ROOT, domain_id

pytest.importorskip("rclpy")


def test_default_qos_with_the_shipped_profile_delivers_large_frames(tmp_path):
    out = tmp_path / "delivery.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_delivery.py"), "--cases",
         "640x480:bgr8", "1280x720:bgr8", "--frames", "10", "--rate", "5",
         "--profile", str(ROOT / "config" / "fastdds_frontend.xml"), "--no-profile-inherit",
         "--json", str(out)],
        env=dict(os.environ, ROS_DOMAIN_ID=str(domain_id(19))), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["size"], r["pub_qos"]) for r in rows} == {
        (size, pub) for size in ("640x480", "1280x720") for pub in ("reliable", "sensor")}
    for r in rows:
        assert r["matched"] and r["sub_qos"] == "best_effort:5", r  # the node default QoS
        assert r["arrived"] == r["sent"] == 10, r
