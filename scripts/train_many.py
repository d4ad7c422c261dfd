#!/usr/bin/env python3
"""Train the runs of a plan side by side on one machine (one GPU) within a wall-time budget.

A plan (e.g. ``config/train/v3_plan.yaml``) names one training config and, per run, the
``--set`` overrides that make it differ. Every run is a plain ``dkp-slam train`` process; they
share the machine, so their speed is only known once they all run. Hence two phases:

1. a speed probe: every run trains for ``--probe-seconds`` side by side (in ``OUT/probe/``);
   its steady speed is read from the ``it_s`` column of each ``log.csv`` (first third dropped);
2. the runs proper, all with the same iteration count (the slowest run's speed x the time left
   x ``--safety``), so that every cosine schedule completes and all rows of an ablation see
   the same data and iterations; ``--max-minutes`` is passed as a hard stop as well. Runs
   named in ``--own-iterations`` (a teacher row several times slower, say) get their own
   speed's count instead, and so fewer iterations than the others.

Writes ``OUT/<run>/`` (the trainer's files + ``train_stdout.log``), ``OUT/commands.txt`` (the
exact command of every run) and ``OUT/train_many.json`` (probe speeds, iterations, exit codes,
wall times). Exit code: 0 when every run finished its iterations, 1 otherwise.

    python scripts/train_many.py config/train/v3_plan.yaml --output runs/v3 --minutes 6 \\
        --device cuda
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml


def run_commands(plan: dict, out: Path, device: str, extra_sets: list[str],
                 iterations: dict[str, int], minutes: float) -> dict[str, list[str]]:
    """``dkp-slam train`` command of each run of the plan (``iterations`` per run)."""
    commands = {}
    for name, sets in plan["runs"].items():
        cmd = [sys.executable, "-m", "dkp_slam.cli", "train", "--config", plan["config"],
               "--output", str(out / name), "--no-progress", "--no-resume",
               "--iterations", str(iterations[name]), "--max-minutes", f"{minutes:.3f}"]
        if device:
            cmd += ["--device", device]
        for item in [*extra_sets, *(sets or [])]:
            cmd += ["--set", item]
        commands[name] = cmd
    return commands


def launch(commands: dict[str, list[str]], out: Path, log_name: str
           ) -> dict[str, tuple[subprocess.Popen, float]]:
    procs = {}
    for name, cmd in commands.items():
        folder = Path(cmd[cmd.index("--output") + 1])
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / log_name, "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time())
    return procs


def wait_all(procs: dict[str, tuple[subprocess.Popen, float]]) -> dict[str, dict]:
    done = {}
    for name, (proc, t0) in procs.items():
        rc = proc.wait()
        done[name] = {"exit_code": rc, "wall_s": round(time.time() - t0, 1)}
    return done


def steady_speed(log_csv: Path) -> float:
    """Median iterations per second of a ``log.csv`` without its first third (start-up)."""
    with open(log_csv) as f:
        rows = [float(r["it_s"]) for r in csv.DictReader(f) if r.get("it_s")]
    rows = rows[len(rows) // 3:]
    return statistics.median(rows) if rows else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plan", help="plan YAML: config + runs (name -> list of KEY=VALUE)")
    ap.add_argument("--output", required=True, help="folder of the runs")
    ap.add_argument("--minutes", type=float, required=True,
                    help="wall time of the whole thing, probe included")
    ap.add_argument("--probe-seconds", type=float, default=45.0)
    ap.add_argument("--safety", type=float, default=0.9,
                    help="share of the measured speed x time left that is planned")
    ap.add_argument("--device", default="", help="passed to every run (auto | cpu | cuda)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every run (before the run's own)")
    ap.add_argument("--only", default="", help="comma-separated run names (default: all)")
    ap.add_argument("--own-iterations", default="",
                    help="comma-separated runs whose iteration count comes from their own speed "
                         "instead of the slowest run's (e.g. a much slower teacher row)")
    ap.add_argument("--min-iterations", type=int, default=100,
                    help="give up when fewer iterations than this fit in the time left")
    args = ap.parse_args(argv)

    t_start = time.time()
    plan = yaml.safe_load(Path(args.plan).read_text())
    if not isinstance(plan, dict) or "config" not in plan or not isinstance(plan.get("runs"), dict):
        print(f"error: {args.plan}: a plan needs 'config' and a 'runs' mapping", file=sys.stderr)
        return 2
    if args.only:
        keep = [n.strip() for n in args.only.split(",") if n.strip()]
        missing = [n for n in keep if n not in plan["runs"]]
        if missing:
            print(f"error: no run(s) {missing} in {args.plan}", file=sys.stderr)
            return 2
        plan["runs"] = {n: plan["runs"][n] for n in keep}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    # 1. speed probe, all runs side by side
    probe_minutes = args.probe_seconds / 60.0
    probe = run_commands(plan, out / "probe", args.device, args.set,
                         dict.fromkeys(plan["runs"], 10**7), probe_minutes)
    print(f"probe: {len(probe)} runs for {args.probe_seconds:.0f} s", flush=True)
    probe_done = wait_all(launch(probe, out / "probe", "train_stdout.log"))
    speeds = {}
    for name in probe:
        log_csv = out / "probe" / name / "log.csv"
        speeds[name] = steady_speed(log_csv) if log_csv.is_file() else math.nan
        print(f"  {name}: {speeds[name]:.2f} it/s (exit {probe_done[name]['exit_code']})",
              flush=True)
    finite = [s for s in speeds.values() if math.isfinite(s) and s > 0]
    if len(finite) != len(speeds):
        bad = [n for n, s in speeds.items() if not (math.isfinite(s) and s > 0)]
        print(f"error: the probe of {bad} gave no speed; see {out / 'probe'}/*/train_stdout.log",
              file=sys.stderr)
        return 1

    # 2. the runs proper: one iteration count for all but the --own-iterations runs
    left_s = args.minutes * 60.0 - (time.time() - t_start)
    own = {n.strip() for n in args.own_iterations.split(",") if n.strip()} & set(speeds)
    shared = min(s for n, s in speeds.items() if n not in own) if len(own) < len(speeds) else 0
    iterations = {n: int((speeds[n] if n in own else shared) * left_s * args.safety) // 10 * 10
                  for n in speeds}
    if min(iterations.values()) < args.min_iterations:
        print(f"error: only {iterations} iterations fit in the time left ({left_s:.0f} s)",
              file=sys.stderr)
        return 1
    commands = run_commands(plan, out, args.device, args.set, iterations, left_s / 60.0)
    with open(out / "commands.txt", "w") as f:
        for name, cmd in commands.items():
            f.write(f"# {name}\n{shlex.join(['dkp-slam', *cmd[3:]])}\n")
    print(f"training: {len(commands)} runs, iterations {iterations} ({left_s:.0f} s left)",
          flush=True)
    done = wait_all(launch(commands, out, "train_stdout.log"))
    complete = True
    for name, res in done.items():
        summary_path = out / name / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        res["iterations_done"] = summary.get("iteration", summary.get("iterations"))
        res["status"] = summary.get("status")
        complete &= res["exit_code"] == 0 and res["status"] == "completed"
        print(f"  {name}: exit {res['exit_code']}, {res['status']}, {res['wall_s']} s",
              flush=True)
    (out / "train_many.json").write_text(json.dumps(
        {"plan": args.plan, "probe_seconds": args.probe_seconds, "probe_it_s": speeds,
         "iterations": iterations, "runs": done, "host_cpus": os.cpu_count(),
         "wall_s": round(time.time() - t_start, 1)}, indent=2))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
