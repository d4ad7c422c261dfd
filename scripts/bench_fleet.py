#!/usr/bin/env python3
"""Throughput of a fleet ``bag-eval`` on this machine: the same bags with 1 and 2 local Ray
workers (and in one process without Ray), in one run (docs/FLEET.md).

    python scripts/bench_fleet.py [--bags 8] [--frames 20] [--workers 1,2] [--set KEY=VALUE]

Makes BAGS bags of FRAMES consecutive KITTI07 frames each (different parts of the drive) in a
temporary folder, then runs ``dkp-slam bag-eval`` on all of them once per setting (a fresh
process each: Ray's start-up is part of the measured time) and prints a Markdown table of the
wall time, frames per second and inputs per minute. Checks that every setting gave the same
results (the per-bag summaries without their timings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkp_slam.bags.writer import MakeBagOptions, make_bag  # noqa: E402
from dkp_slam.datasets import load_kitti  # noqa: E402
from dkp_slam.fleet import RUN_KEYS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence",
                        default=str(ROOT.parent / "shared/data/sequences/kitti07_0000-0159"))
    parser.add_argument("--bags", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    seq = load_kitti(args.sequence)
    step = max((len(seq) - args.frames) // max(args.bags - 1, 1), 1)
    with tempfile.TemporaryDirectory(prefix="dkp_fleet_") as tmp:
        folder = Path(tmp)
        for k in range(args.bags):
            start = min(k * step, len(seq) - args.frames)
            make_bag(seq.subset(start, start + args.frames), folder / "bags" / f"bag{k}",
                     MakeBagOptions(), progress=False)
        settings = [("one process, no Ray", ["--sequential"])] + [
            (f"local Ray, {w} worker(s)", ["--workers", w]) for w in args.workers.split(",")]
        rows, results = [], {}
        for name, extra in settings:
            out = folder / f"out_{len(rows)}"
            cmd = [sys.executable, "-m", "dkp_slam.cli", "bag-eval", str(folder / "bags" / "*"),
                   "--output", str(out), "--no-progress", *extra,
                   *[x for s in args.set for x in ("--set", s)]]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                return 1
            report = json.loads((out / "fleet_summary.json").read_text())
            frames = sum(row["frames"] for row in report["rows"])
            rows.append((name, len(report["rows"]), frames, wall, frames / wall,
                         60 * len(report["rows"]) / wall))
            results[name] = {
                row["input"]: {k: v for k, v in json.loads(
                    (out / row["input"] / "summary.json").read_text()).items()
                    if k not in RUN_KEYS} for row in report["rows"]}
        same = all(r == next(iter(results.values())) for r in results.values())
    print(f"`python scripts/bench_fleet.py --bags {args.bags} --frames {args.frames} "
          f"--workers {args.workers}{''.join(' --set ' + s for s in args.set)}`; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| setting | bags | frames | wall time (s) | frames/s | bags/min |")
    print("|---|---|---|---|---|---|")
    for name, n, frames, wall, fps, per_min in rows:
        print(f"| {name} | {n} | {frames} | {wall:.1f} | {fps:.2f} | {per_min:.1f} |")
    print(f"\nper-bag results identical in every setting: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
