"""Fleet runs (dkp_slam.fleet): ``bag-eval`` and ``bench odometry`` over several inputs as Ray
tasks, on a Ray head the test starts on localhost with 2 CPUs and on a local instance, against
the sequential run of the same inputs, with a broken input among them."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shared_data

from dkp_slam.bags.writer import MakeBagOptions, make_bag
from dkp_slam.datasets import load_kitti
from dkp_slam.fleet import RUN_KEYS, FleetError, expand_inputs, input_tags

#: Columns of frames.csv that are measured times (they differ between any two runs).
TIMING_COLUMNS = {"detect_ms", "match_ms", "geometry_ms", "track_ms", "total_ms"}


def _cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dkp_slam.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Three 6-frame KITTI07 bags from different places of the drive, and a broken one."""
    folder = tmp_path_factory.mktemp("fleet_bags")
    seq = load_kitti(shared_data("sequences", "kitti07_0000-0159"))
    for start in (0, 40, 80):
        make_bag(seq.subset(start, start + 6), folder / f"kitti07_{start:03d}",
                 MakeBagOptions(), progress=False)
    (folder / "broken.mcap").write_bytes(b"not a bag at all")
    return folder


def test_inputs_from_paths_patterns_and_lists(tmp_path, bags):
    listing = tmp_path / "bags.txt"
    listing.write_text(f"# the fleet\n{bags}/kitti07_040\n\n{bags}/kitti07_0[08]*  # two\n")
    inputs = expand_inputs([f"@{listing}", str(bags / "kitti07_000")])
    assert [p.name for p in inputs] == ["kitti07_040", "kitti07_000", "kitti07_080"]
    assert [p.name for p in expand_inputs([str(bags / "*")])] == [
        "broken.mcap", "kitti07_000", "kitti07_040", "kitti07_080"]
    with pytest.raises(FleetError, match="no input matches"):
        expand_inputs([str(bags / "*.db3")])
    with pytest.raises(FleetError, match="not found"):
        expand_inputs([str(bags / "missing")])
    with pytest.raises(FleetError, match="cannot read input list"):
        expand_inputs([f"@{tmp_path / 'none.txt'}"])
    robot = [tmp_path / "robot1" / "run.mcap", tmp_path / "robot2" / "run.mcap",
             tmp_path / "a b.bag"]
    assert input_tags(robot) == ["robot1_run", "robot2_run", "a_b"]


@pytest.fixture
def ray_head():
    """``ray start --head`` on localhost with 2 CPUs (token authentication, as Ray >= 2.59
    enables by default); yields the environment and address for a client."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_cli is None:
        pytest.skip("the ray command is not installed next to this Python")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    temp = Path(f"/tmp/dkp_ray_{os.getpid()}")
    head = subprocess.Popen(
        [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp}", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        # up when `ray status` answers (on a busy machine the head takes its time)
        deadline = time.monotonic() + 300
        while subprocess.run([ray_cli, "status", f"--address={address}"], env=env,
                             capture_output=True, timeout=120).returncode != 0:
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not come up in 300 s"
            time.sleep(2)
        yield env, address
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        time.sleep(1)
        try:
            os.killpg(head.pid, signal.SIGKILL)  # the head's own children, if any remain
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


def _frames(path: Path) -> list[dict]:
    with open(path / "frames.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS}
                for row in csv.DictReader(f)]


def _summary(path: Path) -> dict:
    return {k: v for k, v in json.loads((path / "summary.json").read_text()).items()
            if k not in RUN_KEYS}


def test_bag_eval_fleet_on_a_ray_head_equals_the_sequential_run(tmp_path, bags, ray_head):
    env, address = ray_head
    args = ["bag-eval", str(bags / "kitti07_*"), str(bags / "broken.mcap"),
            "--set", "detector.name=orb", "--no-progress"]
    seq = _cli(*args, "--sequential", "--output", tmp_path / "seq", env=env)
    assert seq.returncode == 1, seq.stderr  # one input failed; the others ran
    ray = _cli(*args, "--ray-address", address, "--output", tmp_path / "ray",
               "--json", tmp_path / "ray.json", env=env)
    assert ray.returncode == 1, ray.stderr
    assert f"Ray cluster {address}" in ray.stdout
    assert "broken.mcap: BagError: cannot open bag" in ray.stderr
    report = json.loads((tmp_path / "ray.json").read_text())
    assert report["aggregate"]["inputs"] == 4 and report["aggregate"]["failed"] == 1
    rows = {row["input"]: row for row in report["rows"]}
    assert set(rows) == {"kitti07_000", "kitti07_040", "kitti07_080", "broken"}
    assert not rows["broken"]["ok"] and "File magic" in rows["broken"]["error"]
    for tag in ("kitti07_000", "kitti07_040", "kitti07_080"):
        a, b = tmp_path / "seq" / tag, tmp_path / "ray" / tag
        assert rows[tag]["ok"] and rows[tag]["frames"] == 6
        assert _frames(a) == _frames(b) and len(_frames(a)) == 6
        assert _summary(a) == _summary(b)
        for name in ("trajectory_tum.txt", "trajectory_gtscale_tum.txt"):
            assert (a / name).read_bytes() == (b / name).read_bytes()
    table = (tmp_path / "ray" / "fleet_report.md").read_text()
    assert "| kitti07_040 | ok |" in table and "| broken | FAILED: BagError" in table
    assert "median over inputs" in table and (tmp_path / "ray" / "fleet_errors.png").is_file()


def test_bench_odometry_fleet_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    empty = tmp_path / "empty_sequence"
    empty.mkdir()
    sequences = [shared_data("sequences", "kitti07_0000-0159"),
                 shared_data("sequences", "kitti06_0000-0049"), empty]
    args = ["bench", "odometry", *sequences, "--methods", "orb", "--max-frames", 5,
            "--no-progress"]
    ray = _cli(*args, "--workers", 2, "--output", tmp_path / "ray", "--json",
               tmp_path / "r.json")
    seq = _cli(*args, "--sequential", "--output", tmp_path / "seq", "--json",
               tmp_path / "s.json")
    assert ray.returncode == seq.returncode == 1, ray.stderr + seq.stderr
    assert "local Ray, 2 CPUs" in ray.stdout
    rows = {r["input"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    rows_seq = {r["input"]: r for r in json.loads((tmp_path / "s.json").read_text())["rows"]}
    assert not rows["empty_sequence"]["ok"] and rows["empty_sequence"]["error"]
    for tag in ("kitti07_0000-0159", "kitti06_0000-0049"):
        a, b = (json.loads((tmp_path / m / tag / "odometry.json").read_text())["orb"]
                for m in ("ray", "seq"))
        timing = {"ms_per_frame", "fps"}
        assert {k: v for k, v in a.items() if k not in timing} == \
            {k: v for k, v in b.items() if k not in timing}
        assert rows[tag]["orb / tracked_fraction"] == rows_seq[tag]["orb / tracked_fraction"] == 1
