#!/usr/bin/env python3
"""Relative pose where robots really are: every synthetic scenario of
``dkp_slam.synthetic.SCENARIOS`` (dominant plane, looking down, pure rotation, creeping,
handheld, a distorting lens; exact ground truth) x detectors x ``tracker.reference``.

Per run: status counts, two-view models, keyframes, median / p90 rotation error over the
frames with a pose, and median / p90 translation-direction error over the frames whose status
claims a translation (``OK``), and how many of those are more than 20 deg off. Prints a
Markdown table (docs/BENCHMARKS.md) and writes JSON.

    python scripts/bench_scenarios.py --methods orb,dkp --frames 60 --json out.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkp_slam.config import FrontEndConfig, parse_set_options  # noqa: E402
from dkp_slam.runner import run_sequence  # noqa: E402
from dkp_slam.sequence import Sequence  # noqa: E402
from dkp_slam.synthetic import SCENARIOS, make_scenario  # noqa: E402

COLUMNS = ("scenario", "method", "reference", "OK", "LOW_PARALLAX", "FEW_MATCHES / LOST",
           "essential / homography / rotation", "keyframes", "rot median / p90 (deg)",
           "t-dir median / p90 (deg)", "t-dir > 20 deg")


def rendered(name: str, frames: int, seed: int) -> Sequence:
    """The scenario's frames rendered once (every configuration then reads the same images)."""
    seq = make_scenario(name, n_frames=frames, seed=seed)
    images = [seq.load_image(i) for i in range(len(seq))]
    return Sequence(seq.name, seq.stamps, lambda i: images[i], seq.camera, seq.gt_poses,
                    dict(seq.meta))


def wrong_directions(frames_csv: Path, bound_deg: float = 20.0) -> int:
    """Frames of a run whose claimed translation direction is off by more than ``bound_deg``."""
    with open(frames_csv) as f:
        errors = [r["tdir_err_deg"] for r in csv.DictReader(f)]
    return sum(1 for e in errors if e and float(e) > bound_deg)


def row(scenario: str, method: str, reference: str, s: dict, wrong: int) -> dict:
    st, models = s["status_counts"], s["model_counts"]
    return {"scenario": scenario, "method": method, "reference": reference,
            "OK": st.get("OK", 0), "LOW_PARALLAX": st.get("LOW_PARALLAX", 0),
            "FEW_MATCHES / LOST": st.get("FEW_MATCHES", 0) + st.get("LOST", 0),
            "models": models, "keyframes": s["keyframes"],
            "rot_median": s["rot_err_median_deg"], "rot_p90": s["rot_err_p90_deg"],
            "tdir_median": s["tdir_err_median_deg"], "tdir_p90": s["tdir_err_p90_deg"],
            "tdir_over_20deg": wrong,
            "ms_per_frame": s["ms_per_frame"]}


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        m = r["models"]
        lines.append(
            f"| {r['scenario']} | {r['method']} | {r['reference']} | {r['OK']} | "
            f"{r['LOW_PARALLAX']} | {r['FEW_MATCHES / LOST']} | {m.get('essential', 0)} / "
            f"{m.get('homography', 0)} / {m.get('rotation', 0)} | {r['keyframes']} | "
            f"{r['rot_median']:.3f} / {r['rot_p90']:.3f} | "
            + ("- |" if r["tdir_median"] != r["tdir_median"]
               else f"{r['tdir_median']:.2f} / {r['tdir_p90']:.2f} |")
            + f" {r['tdir_over_20deg']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--methods", default="orb,dkp")
    parser.add_argument("--references", default="previous,keyframe")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (textures, phases)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="front-end option for every run, e.g. geometry.min_parallax_px=2")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    overrides = parse_set_options(args.set)
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenarios.split(","):
            seq = rendered(scenario, args.frames, args.seed)
            for method in args.methods.split(","):
                for reference in args.references.split(","):
                    conf = FrontEndConfig.from_dict({**overrides, "detector.name": method,
                                                     "tracker.reference": reference})
                    out = Path(tmp) / f"{scenario}_{method}_{reference}"
                    s = run_sequence(seq, conf, out, n_annotated=0, progress=False)
                    rows.append(row(scenario, method, reference, s,
                                    wrong_directions(out / "frames.csv")))
                    print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"`python scripts/bench_scenarios.py {' '.join(sys.argv[1:])}`, {args.frames} frames "
          f"at 20 Hz per scenario, seed {args.seed}, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.2f} at the end, {time.time() - t0:.0f} s\n")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
