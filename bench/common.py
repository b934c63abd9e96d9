"""What the benchmark harnesses share: running themselves in a child process for one
measurement, and the one-line description of the machine they print first."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["answer_as_child", "machine_line"]


def answer_as_child(
    args: argparse.Namespace, runners: Mapping[str, Callable[[argparse.Namespace], Any]]
) -> bool:
    """When ``args.child`` names one of ``runners`` (the harness started itself as a child
    process for one measurement, so that each gets a fresh interpreter and memory peak), run
    it, print its result as one JSON line for the parent, and return True."""
    runner = runners.get(args.child) if args.child else None
    if runner is None:
        return False
    print(json.dumps(runner(args)))
    return True


def machine_line(workload: str) -> str:
    """``machine: <arch>, <cores> cores, Python <v>, NumPy <v>; <workload>``."""
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, NumPy {np.__version__}; {workload}"
    )
