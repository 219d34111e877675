"""Keep glibc from handing large freed blocks back to the OS between training batches.

Without this, every large temporary in a training step is page-faulted back in, which
made the same BPR epoch take 0.30 s or 1.2 s depending on the process. No library does
this for us, hence the few lines of ctypes.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds once per process; True if applied."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        return False
    _done = True
    return True
