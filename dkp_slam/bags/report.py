"""The evaluation report (``report.md``, optionally ``report.html``) with its plots, built from
the files a run writes (``summary.json`` content, ``frames.csv``, ``trajectory_tum.txt``,
``groundtruth_tum.txt``), so it works for any output folder of ``run`` or ``bag-eval``.

Plots: ``trajectory_sim3.png`` (the chained unit-step estimate after the Sim(3) alignment to
the ground truth, top view), ``errors.png`` (relative rotation and translation-direction error
per frame over time), ``inliers.png`` (keypoints, matches and inliers per frame over time).
"""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..datasets import load_tum_trajectory
from ..evaluation import align_sim3
from ..runner import format_summary
from ..viz import plot_series, plot_trajectory


def read_frames_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a ``frames.csv`` (numbers as float arrays, NaN for empty cells; ``status``
    and ``model`` as string arrays)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, np.ndarray] = {}
    for key in (rows[0].keys() if rows else ()):
        values = [r[key] for r in rows]
        if key in ("status", "model"):
            cols[key] = np.array(values, dtype=object)
        else:
            cols[key] = np.array([float(v) if v not in ("", None) else math.nan for v in values])
    return cols


def _sim3_plot(out: Path, title: str) -> Optional[str]:
    """``trajectory_sim3.png`` from the trajectory files; None without ground truth."""
    gt_file, est_file = out / "groundtruth_tum.txt", out / "trajectory_tum.txt"
    if not (gt_file.is_file() and est_file.is_file()):
        return None
    gt_t, gt = load_tum_trajectory(gt_file)
    est_t, est = load_tum_trajectory(est_file)
    idx = {round(t * 1e6): k for k, t in enumerate(est_t)}
    pairs = [(idx[round(t * 1e6)], j) for j, t in enumerate(gt_t) if round(t * 1e6) in idx]
    if len(pairs) < 3:
        return None
    e, g = (np.array(v) for v in zip(*pairs))
    aligned = align_sim3(est[e], gt[g])
    if aligned is None:
        return None
    plot_trajectory(out / "trajectory_sim3.png", aligned, gt[g], title,
                    "estimate after Sim(3) alignment")
    return "trajectory_sim3.png"


def write_plots(out: str | Path, summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Write the report's plots into ``out``; return ``[(caption, file name), ...]``."""
    out = Path(out)
    cols = read_frames_csv(out / "frames.csv") if (out / "frames.csv").is_file() else {}
    plots: list[tuple[str, str]] = []
    title = f"{summary.get('sequence', '')} - {summary.get('detector', '')}"
    sim3 = _sim3_plot(out, title)
    if sim3:
        plots.append(("Trajectory after Sim(3) alignment to the ground truth (unit-step chain "
                      "scaled and rotated by Umeyama)", sim3))
    if cols and len(cols.get("stamp", [])):
        t = cols["stamp"] - cols["stamp"][0]
        if "rot_err_deg" in cols and np.any(np.isfinite(cols["rot_err_deg"])):
            plot_series(out / "errors.png", t, {
                "rotation error [deg]": cols["rot_err_deg"],
                "translation-direction error [deg]": cols["tdir_err_deg"]},
                "time [s]", "error [deg]", f"{title}: relative pose errors", log_y=True)
            plots.append(("Relative pose errors per frame", "errors.png"))
        plot_series(out / "inliers.png", t, {k: cols[k] for k in ("keypoints", "matches",
                                                                  "inliers") if k in cols},
                    "time [s]", "count", f"{title}: keypoints, matches, inliers")
        plots.append(("Keypoints, matches and inliers per frame", "inliers.png"))
    return plots


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += _flat(v, f"{prefix}{k}.")
        elif isinstance(v, list):
            if v and k != "rss_mb_samples":
                rows.append((prefix + k, "; ".join(map(str, v))))
        elif isinstance(v, float):
            rows.append((prefix + k, f"{v:.4g}"))
        elif v is not None:
            rows.append((prefix + k, str(v)))
    return rows


def write_report(out: str | Path, summary: dict[str, Any], html_too: bool = False) -> Path:
    """Write ``report.md`` (and ``report.html`` with ``html_too``) with the summary, the input
    description and counters, the skipped frames and the plots; return the Markdown path."""
    out = Path(out)
    plots = write_plots(out, summary)
    name = summary.get("sequence", "")
    blocks: list[tuple[str, Any]] = [
        ("h1", f"Evaluation: {name}"),
        ("p", f"Source: `{summary.get('source', '')}`"),
        ("pre", format_summary(summary)),
        ("h2", "Input"),
        ("table", _flat(summary.get("input", {}))),
    ]
    skipped = summary.get("skipped", [])
    if skipped:
        blocks += [("h2", f"Skipped frames ({summary.get('skipped_frames', len(skipped))}, "
                          f"first {len(skipped)} listed)"),
                   ("table", [(str(s["frame"]), s["reason"]) for s in skipped])]
    blocks.append(("h2", "Plots"))
    for caption, file in plots:
        blocks.append(("img", (caption, file)))
    md = out / "report.md"
    md.write_text(_render(blocks, "md"))
    if html_too:
        (out / "report.html").write_text(_render(blocks, "html"))
    return md


def _render(blocks: list[tuple[str, Any]], fmt: str) -> str:
    """Markdown or (self-contained apart from the PNGs) HTML of the report blocks."""
    lines: list[str] = []
    esc = html.escape
    for kind, value in blocks:
        if fmt == "md":
            if kind in ("h1", "h2"):
                lines += [("# " if kind == "h1" else "## ") + value, ""]
            elif kind == "p":
                lines += [value, ""]
            elif kind == "pre":
                lines += ["```", value, "```", ""]
            elif kind == "table":
                lines += ["| key | value |", "|---|---|"]
                lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in value] + [""]
            elif kind == "img":
                lines += [f"![{value[0]}]({value[1]})", "", f"*{value[0]}*", ""]
        else:
            if kind in ("h1", "h2"):
                lines.append(f"<{kind}>{esc(value)}</{kind}>")
            elif kind == "p":
                lines.append(f"<p>{esc(value.replace('`', ''))}</p>")
            elif kind == "pre":
                lines.append(f"<pre>{esc(value)}</pre>")
            elif kind == "table":
                lines.append("<table border='1' cellspacing='0' cellpadding='3'>" + "".join(
                    f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in value)
                    + "</table>")
            elif kind == "img":
                lines.append(f"<figure><img src='{esc(value[1])}' alt='{esc(value[0])}'>"
                             f"<figcaption>{esc(value[0])}</figcaption></figure>")
    if fmt == "html":
        return "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dkp_slam report" \
               "</title></head><body>\n" + "\n".join(lines) + "\n</body></html>\n"
    return "\n".join(lines)


__all__ = ["write_report", "write_plots", "read_frames_csv"]
