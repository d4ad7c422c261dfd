"""Benchmark reporting: Markdown tables and plots from ``{method: {metric: value}}``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

from ..jsonable import jsonable


def format_value(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(results: dict[str, dict], columns: Sequence[str],
                   headers: Optional[Sequence[str]] = None, label: str = "method") -> str:
    """One row per method (``label`` heads that column), one column per metric key (missing
    keys shown as '-')."""
    headers = list(headers or columns)
    lines = [f"| {label} | " + " | ".join(headers) + " |",
             "|---|" + "---|" * len(headers)]
    for method, metrics in results.items():
        cells = [format_value(metrics.get(c, float("nan"))) for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out_dir: Path, name: str, results: dict[str, dict], table: str,
                  json_path: Optional[str], header: str = "") -> None:
    """``<out>/<name>.md`` (header + table) and ``<out>/<name>.json``; and ``json_path``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text((header + "\n\n" if header else "") + table + "\n")
    text = json.dumps(jsonable(results), indent=2)
    (out_dir / f"{name}.json").write_text(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text)


def plot_curves(path: Path, curves: dict[str, tuple[Sequence[float], Sequence[float]]],
                xlabel: str, ylabel: str, title: str) -> None:
    """Line plot, one curve per method (e.g. MMA against the pixel threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, (x, y) in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=method)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
