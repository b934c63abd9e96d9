"""Benchmark of a round's reduction at many partitions (prints figures; not a test).

A model of about one million parameters (LSTM(500) on one feature, Adam, optimizer state
averaged: each partition's result carries 3 x 1M values) trains a few rounds of one local
step on 8 rows per partition, at each partition count asked, once with every result collected
by the driver ("direct") and once through the executors' tree step ("tree"; see
:mod:`sparklstm.spark.reduction`). Each run is its own process (fresh JVM, fresh peak-memory
counters) on ``local[2]``; it reports the mean time of the rounds after the first, the rows
the driver collected per round, and the peak resident memory of the Python driver and of the
JVM (which in local mode holds the driver and the executors).

Usage::

    python -m bench.reduction --partitions 8 64 512 --driver-memory 2g
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(partitions: int, mode: str, rounds: int, hidden: int, driver_memory: str) -> dict:
    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.data.synthetic import noisy_sines
    from sparklstm.spark import reduction
    from sparklstm.spark.session import get_session
    from sparklstm.spark.trainer import fit_distributed

    reduction.TREE_MERGE_BYTES = 1 << 60 if mode == "direct" else 0
    spark = get_session(
        "bench-reduction",
        master="local[2]",
        conf={"spark.driver.memory": driver_memory, "spark.ui.showConsoleProgress": "false"},
        log_level="ERROR",
    )
    rows = 8 * partitions
    x, y, lengths = noisy_sines(rows, 5, 2, np.random.default_rng(0), min_len=5)
    df = spark.createDataFrame(numpy_to_arrow(x, y, lengths))
    model = {"input_size": 1, "hidden_sizes": [hidden], "output_size": 2, "seed": 0}
    options = {
        "rounds": rounds,
        "local_steps": 1,
        "batch_size": 8,
        "num_partitions": partitions,
        "seed": 0,
    }
    started = time.perf_counter()
    trained, history = fit_distributed(df, model, options, progress=False)
    seconds = time.perf_counter() - started
    later = history.rows[1:] or history.rows
    jvm = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    return {
        "partitions": partitions,
        "mode": mode,
        "parameters": int(sum(v.size for v in trained.params.values())),
        "seconds": seconds,
        "round_seconds": sum(r["seconds"] for r in later) / len(later),
        "results_collected": later[-1]["results_collected"],
        "driver_python_peak_mib": _peak_rss_mib(),
        "jvm_peak_mib": _peak_rss_mib(jvm.pid) if jvm is not None else float("nan"),
    }


def _child(args: argparse.Namespace, partitions: int, mode: str) -> dict:
    command = [sys.executable, "-m", "bench.reduction", "--child", mode]
    command += ["--partitions", str(partitions), "--rounds", str(args.rounds)]
    command += ["--hidden", str(args.hidden), "--driver-memory", args.driver_memory]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"partitions": partitions, "mode": mode, "failed": last[:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[8, 64, 512])
    parser.add_argument(
        "--modes", nargs="+", choices=("direct", "tree"), default=["direct", "tree"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", choices=("direct", "tree"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run_one(
            args.partitions[0], args.child, args.rounds, args.hidden, args.driver_memory
        )
        print(json.dumps(result))
        return 0
    results = []
    print(f"{'partitions':>10} {'mode':>6} {'round s':>8} {'rows':>5} {'py MiB':>7} {'JVM MiB':>8}")
    for partitions in args.partitions:
        for mode in args.modes:
            result = _child(args, partitions, mode)
            results.append(result)
            if "failed" in result:
                print(f"{partitions:>10} {mode:>6}  failed: {result['failed']}")
                continue
            print(
                f"{partitions:>10} {mode:>6} {result['round_seconds']:>8.2f} "
                f"{result['results_collected']:>5} {result['driver_python_peak_mib']:>7.0f} "
                f"{result['jvm_peak_mib']:>8.0f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
