"""Many recordings at once: ``bag-eval`` and ``bench odometry`` fanned out over inputs as Ray
tasks (docs/FLEET.md).

One input is one task: the same function a single run calls (``evaluate_bag``,
``bench_odometry``), writing into its own folder ``OUTPUT/<tag>/``, with a fixed number of
CPU threads (``threads``, default 1: DKPNet's float results depend on torch's thread count in
the last bits, so every task of a fleet and the sequential run of the same fleet use the
same). Inputs run on a local Ray instance started for the purpose (``workers`` CPUs), or on an
existing cluster (``ray_address``); ``sequential=True`` runs them one after the other in this
process instead, without Ray. Either way each task's returned summary and written files are
the same bit for bit, apart from its timings. A task that raises is reported with its reason
and the others go on. Ray is an optional extra (``pip install 'dkp_slam[fleet]'``).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from tqdm import tqdm

from .bench import report
from .config import file_tag
from .jsonable import jsonable

log = logging.getLogger(__name__)

#: ``summary.json`` values that describe a run (its times, memory, paths), not its results:
#: the rest is the same bit for bit in every fleet setting and in the sequential run.
RUN_KEYS = frozenset({"fps", "ms_per_frame", "ms_per_stage", "input", "source"})

#: A fleet task: ``(input path, output folder) -> JSON-able summary``.
Task = Callable[[str, str], dict]


class FleetError(ValueError):
    """Unusable fleet arguments: no input matched, Ray missing or unreachable."""


def expand_inputs(items: Sequence[str]) -> list[Path]:
    """The inputs named by ``items``, in order, each once: a path, a glob pattern (``*``,
    ``?``, ``[...]``, ``**``), or ``@LIST``: a text file with one path or pattern per line
    (blank lines and ``#`` comments skipped; relative entries are relative to the list file).

    Raises:
        FleetError: an item matches nothing, or a list file cannot be read.
    """
    out: list[Path] = []
    for item in items:
        if item.startswith("@"):
            listing = Path(item[1:])
            try:
                lines = listing.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise FleetError(f"cannot read input list {listing}: {err}") from None
            entries = [line.split("#", 1)[0].strip() for line in lines]
            entries = [e if Path(e).is_absolute() else str(listing.parent / e)
                       for e in entries if e]
            if not entries:
                raise FleetError(f"input list {listing} names no input")
            out += expand_inputs(entries)
            continue
        if glob.has_magic(item):
            matched = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matched:
                raise FleetError(f"no input matches {item!r}")
            out += matched
        else:
            path = Path(item)
            if not path.exists():
                raise FleetError(f"input not found: {path}")
            out.append(path)
    unique: dict[str, Path] = {}
    for p in out:
        unique.setdefault(str(p.resolve()), p)
    return list(unique.values())


def input_tags(inputs: Sequence[Path]) -> list[str]:
    """A distinct output-folder name per input: its file or folder name without the suffix
    (characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``), with the
    parent folder's name put before it where names repeat (``robot1_run``,
    ``robot2_run``), and a counter as the last resort."""
    def clean(text: str) -> str:
        return file_tag(text) or "input"

    tags = [clean(p.stem if p.suffix in (".mcap", ".db3", ".bag") else p.name)
            for p in inputs]
    repeated = {t for t in tags if tags.count(t) > 1}
    tags = [clean(f"{p.resolve().parent.name}_{t}") if t in repeated else t
            for p, t in zip(inputs, tags)]
    repeated = {t for t in tags if tags.count(t) > 1}
    seen: dict[str, int] = {}
    for k, tag in enumerate(tags):
        if tag in repeated:
            seen[tag] = seen.get(tag, 0) + 1
            tags[k] = f"{tag}_{seen[tag]}"
    return tags


@dataclass
class FleetResult:
    """One input's outcome: its summary, or the reason it failed."""

    input: str
    tag: str
    output: str
    ok: bool
    summary: dict = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0


def run_one(task: Task, path: str, tag: str, output: str, threads: int = 1) -> FleetResult:
    """Run ``task`` on one input with ``threads`` CPU threads (torch and OpenCV); any
    exception becomes a failed :class:`FleetResult` with a one-line reason."""
    import cv2
    import torch

    torch.set_num_threads(max(int(threads), 1))
    cv2.setNumThreads(max(int(threads), 1))
    t0 = time.perf_counter()
    try:
        summary = task(path, output)
        return FleetResult(path, tag, output, True, summary, seconds=time.perf_counter() - t0)
    except Exception as err:  # reported, and the other inputs go on
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
        return FleetResult(path, tag, output, False, error=reason.rstrip(": "),
                           seconds=time.perf_counter() - t0)


def run_fleet(task: Task, inputs: Sequence[Path], output: str | Path, *, workers: int = 0,
              ray_address: Optional[str] = None, sequential: bool = False, threads: int = 1,
              progress: bool = True) -> list[FleetResult]:
    """Run ``task`` on every input (into ``output/<tag>/``, tags from :func:`input_tags`);
    results in input order.

    Args:
        workers: CPUs of the local Ray instance (0: all of this machine's); ignored with
            ``ray_address``.
        ray_address: an existing Ray cluster (``HOST:PORT`` or ``auto``); every node needs
            dkp_slam installed and the inputs and ``output`` at the same paths (shared
            storage).
        sequential: one input after the other in this process, without Ray.
        threads: CPU threads per task (Ray reserves as many CPUs for it).

    Raises:
        FleetError: Ray is not installed or the cluster cannot be reached.
    """
    out = Path(output)
    jobs = [(str(p), tag, str(out / tag)) for p, tag in zip(inputs, input_tags(inputs))]
    bar = tqdm(total=len(jobs), desc="inputs", unit="input", disable=not progress)
    results: dict[str, FleetResult] = {}

    def done(r: FleetResult) -> None:
        results[r.tag] = r
        bar.update(1)
        bar.set_postfix_str(f"{r.tag}: {'ok' if r.ok else 'FAILED'}")
        if not r.ok:
            log.warning("%s failed: %s", r.input, r.error)

    try:
        if sequential:
            for path, tag, folder in jobs:
                done(run_one(task, path, tag, folder, threads))
        else:
            _run_on_ray(task, jobs, workers, ray_address, threads, done)
    finally:
        bar.close()
    return [results[tag] for _, tag, _ in jobs]


def _run_on_ray(task: Task, jobs: list[tuple[str, str, str]], workers: int,
                ray_address: Optional[str], threads: int,
                done: Callable[[FleetResult], None]) -> None:
    try:
        import ray
    except ImportError:
        raise FleetError("several inputs run as Ray tasks, and Ray is not installed: "
                         "pip install 'dkp_slam[fleet]' (or 'ray'), or pass --sequential"
                         ) from None
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.WARNING)
        try:
            if ray_address:
                ray.init(address=ray_address, **kwargs)
            else:
                ray.init(num_cpus=workers or None, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = ray_address or "a local instance"
            raise FleetError(f"cannot start or reach Ray ({where}): "
                             f"{str(err).strip().splitlines()[0]}") from None
    try:
        remote = ray.remote(num_cpus=max(int(threads), 1), max_retries=0)(run_one)
        pending = [remote.remote(task, path, tag, folder, threads)
                   for path, tag, folder in jobs]
        lookup = {ref: job for ref, job in zip(pending, jobs)}
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    done(ray.get(ref))
                except Exception as err:  # the worker itself died (out of memory, killed)
                    path, tag, folder = lookup[ref]
                    done(FleetResult(path, tag, folder, False,
                                     error=f"Ray task failed: {type(err).__name__}"))
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------- the report
def write_fleet_report(output: str | Path, results: Sequence[FleetResult],
                       columns: Sequence[str], title: str, wall_s: float,
                       workers: str) -> dict[str, Any]:
    """``fleet_summary.json`` (every input's row, returned values or error, the aggregate and
    the wall time), ``fleet_report.md`` (one row per input, then the aggregate) and
    ``fleet_errors.png`` (the per-input values of the first two columns). ``columns`` are keys
    of each task's returned ``metrics``. The aggregate: inputs, failures, inputs per minute, and
    per column the median over the inputs that have a value."""
    import numpy as np

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        metrics = r.summary.get("metrics", {}) if r.ok else {}
        rows.append({"input": r.tag, "ok": r.ok, "error": r.error, "seconds": r.seconds,
                     **{c: metrics.get(c) for c in columns}})
    ok = [row for row in rows if row["ok"]]
    aggregate: dict[str, Any] = {"inputs": len(rows), "failed": len(rows) - len(ok),
                                 "wall_s": wall_s, "workers": workers}
    for c in columns:
        values = [float(row[c]) for row in ok if _finite(row[c])]
        aggregate[f"{c}_median"] = float(np.median(values)) if values else None
    aggregate["inputs_per_minute"] = 60.0 * len(rows) / wall_s if wall_s > 0 else None
    summary = {"title": title, "aggregate": aggregate, "rows": rows,
               "results": [asdict(r) for r in results]}
    (out / "fleet_summary.json").write_text(
        json.dumps(jsonable(summary, non_finite_as_null=True), indent=1))
    nan = float("nan")
    table = {row["input"]: {"status": "ok" if row["ok"] else f"FAILED: {row['error']}",
                            "seconds": row["seconds"],
                            **{c: row[c] if _finite(row[c]) else nan for c in columns}}
             for row in rows}
    table["**median over inputs**"] = {
        "status": f"{len(ok)} ok", "seconds": "",
        **{c: nan if aggregate[f"{c}_median"] is None else aggregate[f"{c}_median"]
           for c in columns}}
    (out / "fleet_report.md").write_text(
        f"# {title}\n\n{len(rows)} inputs, {aggregate['failed']} failed; {wall_s:.1f} s wall "
        f"time ({workers}).\n\n"
        + report.markdown_table(table, ["status", *columns, "seconds"], label="input") + "\n")
    _plot(out / "fleet_errors.png", ok, list(columns)[:2], title)
    return summary


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plot(path: Path, rows: list[dict], columns: list[str], title: str) -> None:
    if not rows or not columns:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 0.3 * len(rows) + 2),
                             squeeze=False)
    for ax, c in zip(axes[0], columns):
        values = [row[c] if _finite(row[c]) else float("nan") for row in rows]
        ax.barh([row["input"] for row in rows], values)
        ax.set_xlabel(c)
        ax.invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------- the command line
def add_fleet_options(p: argparse.ArgumentParser) -> None:
    """The command-line options of a fleet run (``bag-eval``, ``bench odometry``)."""
    g = p.add_argument_group("several inputs (a fleet; docs/FLEET.md)")
    g.add_argument("--workers", type=int, default=0,
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    g.add_argument("--ray-address", help="an existing Ray cluster (HOST:PORT or auto) "
                                         "instead of a local instance")
    g.add_argument("--sequential", action="store_true",
                   help="one input after the other in this process, without Ray")
    g.add_argument("--threads-per-task", type=int, default=1,
                   help="CPU threads of each input's run (results are identical for the "
                        "same value, with Ray or --sequential)")


def is_fleet(items: list[str]) -> bool:
    """Several inputs, a pattern or a list file: a fleet run rather than a single one."""
    return len(items) > 1 or items[0].startswith("@") or glob.has_magic(items[0])


def run_fleet_command(args: argparse.Namespace, task: Any, items: list[str], output: Path,
                      columns: tuple[str, ...], title: str) -> int:
    """Run ``task`` over the inputs ``items`` names, write and print the fleet report; exit 1
    when any input failed (after all of them ran)."""
    inputs = expand_inputs(items)
    where = ("sequential" if args.sequential else
             f"Ray cluster {args.ray_address}" if args.ray_address else
             f"local Ray, {args.workers or 'all'} CPUs")
    print(f"{len(inputs)} inputs -> {output}/ ({where}, {args.threads_per_task} thread(s) "
          f"per input)")
    t0 = time.perf_counter()
    results = run_fleet(task, inputs, output, workers=args.workers,
                        ray_address=args.ray_address, sequential=args.sequential,
                        threads=args.threads_per_task, progress=not args.no_progress)
    summary = write_fleet_report(output, results, columns, title, time.perf_counter() - t0,
                                 where)
    print((output / "fleet_report.md").read_text())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text((output / "fleet_summary.json").read_text())
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"dkp-slam: error: {r.input}: {r.error}", file=sys.stderr)
    print(f"report: {output / 'fleet_report.md'}, {output / 'fleet_summary.json'}; "
          f"{summary['aggregate']['failed']} of {len(results)} inputs failed")
    return 1 if failed else 0


__all__ = ["FleetError", "FleetResult", "RUN_KEYS", "Task", "expand_inputs", "input_tags",
           "run_one", "run_fleet", "write_fleet_report", "add_fleet_options", "is_fleet",
           "run_fleet_command"]
