"""Memory of the running process, as the benchmarks and ``bag-eval`` report it."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size (MiB) from /proc, 0 where unavailable."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """Largest resident set size of this process so far (MiB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


__all__ = ["rss_mb", "peak_rss_mb"]
