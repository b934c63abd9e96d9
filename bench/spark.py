"""Benchmark of the Spark trainer against the one-process trainer (prints figures; not a test).

For the same generated dataset and the same total work (one pass over N sequences, same
model and batch size), it measures:

* the one-process trainer (``SequenceModel.fit``) with 1 BLAS thread (and others on request);
* two one-process trainers, each on half the data, run at the same time: the most that two
  cores of this machine give to this work, i.e. the ceiling for ``local[2] / local[1]``
  (shared or virtual machines often give much less than 2x);
* the Spark trainer on ``local[1]`` (1 partition) and ``local[2]`` (2 partitions), each with
  its default of one averaging round per epoch and with ``--local-steps`` steps per round;

and prints sequences/s, the data preparation time (validation + Arrow -> NumPy caching), the
per-round split (broadcast / compute / aggregate and scheduling) and the Spark overhead, i.e.
the share of round time not spent computing. Each configuration runs in its own process.

Usage::

    python -m bench.spark --rows 100000 --seq-len 50 --hidden 64
    python -m bench.spark --rows 10000 --only spark1-steps spark2-steps --json out.json

``--only`` runs a subset of the configurations (``one-process``, ``pair``, ``spark1``,
``spark2``, ``spark1-steps``, ``spark2-steps``); ``pair`` needs ``one-process`` for its ceiling
and adds it. ``bench.report`` uses it for the scaling series.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from bench.common import answer_as_child, machine_line


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sparklstm.data.synthetic import noisy_sines

    return noisy_sines(
        args.rows, args.seq_len, 4, np.random.default_rng(0), min_len=args.seq_len // 2
    )


def _model_options(args: argparse.Namespace) -> dict:
    return {"input_size": 1, "hidden_sizes": [args.hidden], "output_size": 4, "seed": 0}


def run_local(args: argparse.Namespace) -> dict:
    from sparklstm import SequenceModel

    x, y, lengths = _data(args)
    model = SequenceModel(**_model_options(args))
    started = time.perf_counter()
    history = model.fit(
        x, y, lengths, epochs=1, batch_size=args.batch_size, lr=0.01, seed=0, progress=False
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "sequences_per_second": args.rows / seconds,
        "train_loss": history["loss"][-1],
    }


def run_spark(args: argparse.Namespace) -> dict:
    from pyspark.sql import SparkSession

    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.spark.trainer import fit_distributed

    workers = args.workers
    spark = (
        SparkSession.builder.master(f"local[{workers}]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    x, y, lengths = _data(args)
    df = spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(workers).cache()
    df.count()  # materialise the input so that preparation time measures our conversion only
    options = {"epochs": 1, "batch_size": args.batch_size, "lr": 0.01, "seed": 0}
    if args.local_steps:
        options["local_steps"] = args.local_steps
    started = time.perf_counter()
    model, history = fit_distributed(df, _model_options(args), options, progress=False)
    seconds = time.perf_counter() - started
    rows = history.rows
    rounds_seconds = sum(r["seconds"] for r in rows)
    compute = sum(r["compute_seconds"] for r in rows)
    spark.stop()
    return {
        "seconds": seconds,
        "prepare_seconds": seconds - rounds_seconds,
        "rounds": len(rows),
        "round_seconds": rounds_seconds / len(rows),
        "broadcast_seconds": sum(r["broadcast_seconds"] for r in rows) / len(rows),
        "compute_seconds": compute / len(rows),
        "aggregate_seconds": sum(r["aggregate_seconds"] for r in rows) / len(rows),
        "overhead": 1 - compute / rounds_seconds,
        "sequences_per_second": args.rows / rounds_seconds,
        "sequences_per_second_with_prepare": args.rows / seconds,
        "train_loss": rows[-1]["train_loss"],
    }


def _child_command(args: argparse.Namespace, mode: str, **extra: object):
    command = [sys.executable, "-m", "bench.spark", "--child", mode]
    for key in ("rows", "seq_len", "hidden", "batch_size"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    if "threads" in extra:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(extra["threads"])
    return command, env


def _result(process: subprocess.Popen, what: str) -> dict:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"error: benchmark child {what} failed:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _start(args: argparse.Namespace, mode: str, **extra: object) -> subprocess.Popen:
    command, env = _child_command(args, mode, **extra)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _child(args: argparse.Namespace, mode: str, **extra: object) -> dict:
    return _result(_start(args, mode, **extra), f"{mode} {extra}")


def _concurrent_pair(args: argparse.Namespace) -> dict:
    """Two one-process trainers on half the rows each, started together (1 BLAS thread)."""
    half = argparse.Namespace(**{**vars(args), "rows": args.rows // 2})
    processes = [_start(half, "local", threads=1) for _ in range(2)]
    results = [_result(p, "local pair") for p in processes]
    seconds = max(r["seconds"] for r in results)
    return {"seconds": seconds, "sequences_per_second": 2 * half.rows / seconds}


CONFIGS = ("one-process", "pair", "spark1", "spark2", "spark1-steps", "spark2-steps")


def _selected(only: list[str] | None) -> set[str]:
    chosen = set(only or CONFIGS)
    if "pair" in chosen:
        chosen.add("one-process")  # the ceiling is the pair's speed over one process's
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--local-steps", type=int, default=100, help="steps per round of the second Spark run"
    )
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("local", "spark"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--one-process-threads",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="BLAS thread counts of extra one-process runs (1 always runs; more threads are "
        "often slower at these matrix sizes: OpenBLAS threads spin)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=CONFIGS,
        metavar="CONFIG",
        help=f"run only these configurations (of: {', '.join(CONFIGS)}; default all)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if answer_as_child(args, {"local": run_local, "spark": run_spark}):
        return

    print(
        machine_line(
            f"data: {args.rows} sequences, length {args.seq_len // 2}-{args.seq_len}, hidden "
            f"{args.hidden}, batch {args.batch_size}, float32, one epoch"
        )
    )
    results: dict[str, dict] = {}
    chosen = _selected(args.only)
    if "one-process" in chosen:
        for threads in sorted({1, *args.one_process_threads}):
            name = f"one-process, {threads} BLAS thread(s)"
            results[name] = _child(args, "local", threads=threads)
            print(f"{name:<44} {results[name]['sequences_per_second']:8.0f} seq/s", flush=True)
    ceiling = None
    if "pair" in chosen:
        name = "two one-process trainers at once"
        results[name] = _concurrent_pair(args)
        ceiling = (
            results[name]["sequences_per_second"]
            / results["one-process, 1 BLAS thread(s)"]["sequences_per_second"]
        )
        results[name]["ceiling"] = ceiling
        print(
            f"{name:<44} {results[name]['sequences_per_second']:8.0f} seq/s "
            f"(this machine's 2-core ceiling: {ceiling:.2f}x)",
            flush=True,
        )
    for local_steps in (0, args.local_steps):
        label = "1 round/epoch" if not local_steps else f"{local_steps} steps/round"
        for workers in (1, 2):
            if f"spark{workers}{'-steps' if local_steps else ''}" not in chosen:
                continue
            name = f"spark local[{workers}], {label}"
            r = _child(args, "spark", workers=workers, local_steps=local_steps, threads=1)
            results[name] = r
            print(
                f"{name:<44} {r['sequences_per_second']:8.0f} seq/s "
                f"(with preparation {r['sequences_per_second_with_prepare']:.0f}; prepare "
                f"{r['prepare_seconds']:.1f}s) | {r['rounds']} rounds of "
                f"{r['round_seconds']:.2f}s: broadcast {r['broadcast_seconds']:.3f}s, compute "
                f"{r['compute_seconds']:.2f}s, aggregate+scheduling "
                f"{r['aggregate_seconds']:.3f}s | overhead {100 * r['overhead']:.1f}%",
                flush=True,
            )
        one = results.get(f"spark local[1], {label}")
        two = results.get(f"spark local[2], {label}")
        if one and two:
            ratio = two["sequences_per_second"] / one["sequences_per_second"]
            line = f"  local[2] / local[1] ({label}): {ratio:.2f}x"
            if ceiling:
                line += f" ({100 * ratio / ceiling:.0f}% of the machine's {ceiling:.2f}x ceiling)"
            print(line)
    base = results.get("one-process, 1 BLAS thread(s)")
    spark_one = results.get("spark local[1], 1 round/epoch")
    if base and spark_one:
        ratio = spark_one["sequences_per_second"] / base["sequences_per_second"]
        print(f"spark local[1] / one-process (1 thread): {ratio:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
