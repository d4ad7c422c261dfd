"""Process-wide tuning of glibc's memory allocator for the front-end's entry points.

glibc serves every allocation above its mmap threshold (128 KiB, raised adaptively up to
32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, and it returns freed heap tops to the
OS above its trim threshold. A front-end allocates the same multi-MB buffers on every frame
(network activations, score maps, similarity matrices), so each frame faults the pages of
those buffers in again. Measured on the 2-core development VM: DKPNet at 640x480 in PyTorch
takes 23.7-24.5 ms per frame with glibc's defaults and 14.2-15.0 ms with
:func:`keep_freed_memory` (``python scripts/bench_backends_network.py [--glibc-defaults]``;
docs/DEPLOY.md, Speed).

Only the programs call this (``dkp-slam``, ``frontend_node``, the benchmark children): a
library import never changes the process's allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold_bytes: int = 256 << 20) -> bool:
    """Keep blocks below ``threshold_bytes`` in the heap after ``free`` (glibc ``mallopt``
    ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``), so that buffers reused frame after frame
    are not unmapped and faulted in again. Resident memory then stays at the working set's
    peak instead of shrinking between frames.

    Returns True when applied; False where the C library is not glibc (nothing changes).
    """
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(threshold_bytes)))
    log.debug("glibc mallopt mmap/trim threshold %d bytes: %s", threshold_bytes, ok)
    return ok


__all__ = ["keep_freed_memory"]
