"""Spark tasks keep the kernels' large temporaries on the heap (sparklstm.spark.memory).

The effect is checked by counting page faults, not by timing: in a process whose glibc mmap
threshold is pinned at its 128 KiB default (as measured in Spark's Python workers), every
allocate-touch-free of a 4 MiB array faults its pages in again; after
``keep_large_allocations_on_heap()`` the freed pages are reused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sparklstm.spark import rounds
from sparklstm.spark.memory import keep_large_allocations_on_heap

PROBE = """
import resource
import numpy as np
from sparklstm.spark.memory import keep_large_allocations_on_heap

def faults(repeats=50, size=4 * 2**20):
    np.ones(size // 8).sum()  # warm up NumPy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        block = np.empty(size // 8)
        block.fill(1.0)  # touch every page
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

pinned = faults()
assert keep_large_allocations_on_heap()
print(pinned, faults())
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt thresholds are a glibc feature",
)
def test_large_temporaries_reuse_heap_pages_after_the_call():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    pinned, on_heap = map(int, out.split())
    pages = 50 * (4 * 2**20) // os.sysconf("SC_PAGE_SIZE")
    assert pinned > 0.5 * pages  # each block faulted in again
    assert on_heap < 0.1 * pages  # the first block's pages, then reuse


def test_called_once_per_process_and_by_every_task_function():
    keep_large_allocations_on_heap()
    assert keep_large_allocations_on_heap.cache_info().currsize == 1
    source = open(rounds.__file__, encoding="utf-8").read()
    # train_partition and evaluate_partition both set it before any kernel runs.
    assert source.count("keep_large_allocations_on_heap()") == 2
