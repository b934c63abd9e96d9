"""Keep each Spark task's BLAS to the cores the task holds.

A Python worker that lets OpenBLAS start one thread per machine core while Spark runs one task
per core oversubscribes the machine (N tasks x N threads). Spark sets ``OMP_NUM_THREADS`` to
``spark.task.cpus`` for its Python workers, but a user's ``OPENBLAS_NUM_THREADS`` or a worker
reused across settings can override that, so every task also sets the limit itself.

``threadpoolctl`` is used when installed; otherwise the OpenBLAS that NumPy loaded is found
among the process's mapped libraries and told directly through its C API.
"""

from __future__ import annotations

import ctypes
import logging
from functools import cache

__all__ = ["blas_threads", "limit_blas_threads"]

logger = logging.getLogger(__name__)

# (setter, getter) symbol pairs of the OpenBLAS builds NumPy ships or links against.
_OPENBLAS_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _mapped_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (Linux ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(path for path in paths if path.startswith("/"))


@cache
def _openblas() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:
    import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded before looking for it)

    for path in _mapped_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _OPENBLAS_SYMBOLS:
            if hasattr(library, setter) and hasattr(library, getter):
                set_threads, get_threads = getattr(library, setter), getattr(library, getter)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                get_threads.argtypes, get_threads.restype = [], ctypes.c_int
                return set_threads, get_threads
    return None


def limit_blas_threads(threads: int) -> bool:
    """Limit the BLAS of this process to ``threads`` threads; False if no BLAS could be told."""
    threads = max(1, int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=threads, user_api="blas")
        return True
    functions = _openblas()
    if functions is None:
        logger.debug("no OpenBLAS found in this process; BLAS threads left as they are")
        return False
    functions[0](threads)
    return True


def blas_threads() -> int | None:
    """The number of threads NumPy's BLAS will use, or None if it cannot be told."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
        return max(counts) if counts else None
    functions = _openblas()
    return None if functions is None else int(functions[1]())
