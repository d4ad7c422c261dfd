"""dkp_slam.allocator: the glibc mallopt tuning of the entry points, measured in a child process
(it changes process-wide state) by the page faults of a buffer allocated once per frame."""

from __future__ import annotations

import subprocess
import sys

CODE = r"""
import resource, sys
import numpy as np
from dkp_slam.allocator import keep_freed_memory
if sys.argv[1] == "1":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def frame():  # per-frame buffers of several sizes, one above glibc's 32 MiB adaptive limit
    return [np.ones(n << 20, dtype=np.uint8) for n in (48, 6, 2)]
for _ in range(3):
    frame()
f0 = faults()
for _ in range(20):
    frame()
print(faults() - f0)
"""


def _faults(tuned: bool) -> int:
    out = subprocess.run([sys.executable, "-c", CODE, "1" if tuned else "0"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_freed_buffers_are_not_faulted_in_again() -> None:
    default, tuned = _faults(False), _faults(True)
    # glibc default: the 48 MiB buffer is a fresh mmap every frame: its pages are faulted in
    # again every time (at least 24 faults a frame even with 2 MiB transparent huge pages)
    assert default >= 20 * 24, default
    # tuned: the freed blocks are reused from the heap; their pages stay resident
    assert tuned * 10 < default, (tuned, default)
