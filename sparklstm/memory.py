"""Process memory: keep the kernels' large temporaries on the heap, and read the peak RSS.

Every minibatch step allocates and frees the same large arrays (gate buffers, caches,
gradients: megabytes each). glibc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB at
start) with a fresh ``mmap`` and returns them with ``munmap`` on free, so each step pays for
page faults on all its temporaries. In an ordinary process glibc raises the threshold after
the first such free (its "dynamic mmap threshold") and later steps reuse heap pages. Measured
in Spark's Python workers, this adaptation does not happen: the same training steps run at
about half the speed of a one-process run; a one-process run started with
``MALLOC_MMAP_THRESHOLD_=131072`` (threshold pinned at the default) is slowed by the same
factor, and pinning it high instead restores the speed (see ``bench/spark.py``).

The adaptation fails in one process too, as soon as a step frees more than twice its largest
block (glibc's dynamic trim threshold): one LSTM layer at B256 T100 I64 H256 spent 40% of its
forward + backward in the kernel zeroing fresh pages (427 of 1,060 ms, 8,700 page faults per
step), and arrays above 32 MiB are mapped afresh whatever glibc learnt.

So every training, evaluation or inference entry point (one-process ``fit`` and
``fit_streams`` and the Spark tasks) sets both thresholds itself, once per process: blocks up
to :data:`MMAP_THRESHOLD` come from the heap, and the heap keeps up to :data:`TRIM_THRESHOLD` of
free memory at its top instead of giving it back after every step. A glibc that refuses a
threshold above 32 MiB (older releases capped it there) gets :data:`FALLBACK_MMAP_THRESHOLD`.
The cost is that a process may hold up to :data:`TRIM_THRESHOLD` of freed memory between
steps; its peak is unchanged.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache

__all__ = [
    "FALLBACK_MMAP_THRESHOLD",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "keep_large_allocations_on_heap",
    "peak_rss_bytes",
]


def peak_rss_bytes() -> int:
    """The peak resident memory of this process so far, in bytes (a Python worker is reused
    from task to task: its peak over its life). 0 where the platform does not say."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


logger = logging.getLogger(__name__)

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 2**30  # one layer's gate buffer at B256 T100 H256 is 100 MiB
FALLBACK_MMAP_THRESHOLD = 32 * 2**20  # the ceiling of glibc releases that cap the threshold
TRIM_THRESHOLD = 2**30


@cache
def keep_large_allocations_on_heap() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); False where that is not
    possible (not Linux, or a C library without a working ``mallopt``, e.g. musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        or mallopt(_M_MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD) == 1
    )
    done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    if not done:
        logger.debug("mallopt refused the thresholds; large temporaries stay on mmap")
    return done
