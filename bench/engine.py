"""What Spark costs over one process, on classic and Spark Connect sessions (prints figures).

    python -m bench.engine [--partitions 2 8] [--json bench/results/engine.json]

The workload has the shape of a small real speech task: 2,400 training sequences of 13
features (MFCC-like: a class-dependent trajectory plus noise), 6 to 88 steps, 10 classes, and
600 held-out sequences; LSTM(64), Adam (lr 0.005), batch 32, 8 epochs, one round per epoch.
It is generated (``--seed``), so that the benchmark needs no download.

Each configuration runs in its own process, one BLAS thread per worker:

* ``one-process``: :meth:`sparklstm.SequenceModel.fit` on all 2,400 sequences;
* ``classic P`` and ``connect P``: :func:`~sparklstm.spark.trainer.fit_distributed` with P
  partitions on ``local[2]`` (a Connect server on ``local[2]`` started by the benchmark, with
  the same settings), run twice in the same session: ``cold`` (the session's first job
  starts the JVM's compilers and the Python workers) and ``warm`` (the Python workers are
  reused; what a second training in a notebook or a tuning loop pays).

Printed per configuration: wall seconds (preparation included), preparation seconds (before
the first round: profiling, checking and encoding the data), the mean round and how much of it
is not training (scheduling, parameter transport, reduction: ``round - compute``), the held-out
accuracy, the median time of a Spark job that runs an empty Python task on every partition
(the floor under any round: one job per round), and the peak resident memory of the driver's
Python process and of the JVM (the driver's in local mode; the server's on Connect).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import answer_as_child, machine_line

EPOCHS, BATCH, LR, HIDDEN = 8, 32, 0.005, 64
FEATURES, CLASSES, MIN_LEN, MAX_LEN = 13, 10, 6, 88
NOISE = 3.0  # standard deviation of the noise: hard enough that accuracy stays below 1


def workload(rows: int, seed: int, split: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rows`` MFCC-like sequences: class ``c`` follows ``a_c sin(w_c t + p_c) + b_c`` per
    feature (amplitudes, frequencies, phases and offsets drawn once from ``seed``), plus
    Gaussian noise of deviation NOISE drawn from ``(seed, split, rows)``; zero-padded
    ``[rows, 88, 13]`` float32, lengths 6..88, labels 0..9. Split 0 is the training set, 1
    the held-out one."""
    shape_rng = np.random.default_rng(seed)
    amplitude = shape_rng.uniform(0.5, 1.5, (CLASSES, FEATURES))
    frequency = shape_rng.uniform(0.05, 0.3, (CLASSES, FEATURES))
    phase = shape_rng.uniform(0, 2 * np.pi, (CLASSES, FEATURES))
    offset = shape_rng.normal(0, 0.5, (CLASSES, FEATURES))
    rng = np.random.default_rng([seed, split, rows])
    labels = rng.integers(0, CLASSES, rows)
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, rows)
    steps = np.arange(MAX_LEN)[None, :, None]
    wave = np.sin(frequency[labels][:, None, :] * steps + phase[labels][:, None, :])
    clean = amplitude[labels][:, None, :] * wave + offset[labels][:, None, :]
    x = clean + NOISE * rng.normal(size=(rows, MAX_LEN, FEATURES))
    x[np.arange(MAX_LEN)[None, :] >= lengths[:, None]] = 0
    return x.astype(np.float32), labels, lengths


def _model_options() -> dict[str, Any]:
    return {"input_size": FEATURES, "hidden_sizes": [HIDDEN], "output_size": CLASSES, "seed": 0}


def _training_options() -> dict[str, Any]:
    return {"epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "seed": 0}


def _peak_rss_mib(pid: int | None = None) -> float | None:
    """Peak resident memory (VmHWM) of ``pid``, or of this process, in MiB."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_one_process(args: argparse.Namespace) -> dict[str, Any]:
    from sparklstm import SequenceModel

    x, y, lengths = workload(args.rows, args.seed)
    xt, yt, lt = workload(args.test_rows, args.seed, split=1)
    model = SequenceModel(**_model_options())
    started = time.perf_counter()
    model.fit(x, y, lengths, progress=False, **_training_options())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accuracy": float(model.evaluate(xt, yt, lt)["accuracy"]),
        "python_peak_mib": _peak_rss_mib(),
    }


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.spark.connect_server import LocalConnectServer
    from sparklstm.spark.session import get_session
    from sparklstm.spark.trainer import fit_distributed

    conf = {"spark.driver.memory": "2g"}
    server = None
    if args.kind == "connect":
        server = LocalConnectServer.start("local[2]", conf)
        spark = get_session(remote=server.url)
        jvm_pid = server.process.pid  # spark-submit execs the JVM
    else:
        spark = get_session(master="local[2]", conf=conf)
        jvm_pid = spark.sparkContext._gateway.proc.pid
    try:
        x, y, lengths = workload(args.rows, args.seed)
        xt, yt, lt = workload(args.test_rows, args.seed, split=1)
        df = spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(args.partitions[0])
        df = df.persist()
        df.count()  # the input in memory: preparation measures our work, not the upload
        runs = {}
        for name in ("cold", "warm"):
            started = time.perf_counter()
            model, history = fit_distributed(
                df, _model_options(), _training_options(), progress=False
            )
            seconds = time.perf_counter() - started
            rows = history.rows
            rounds = sum(r["seconds"] for r in rows)
            compute = sum(r["compute_seconds"] for r in rows)
            runs[name] = {
                "seconds": seconds,
                "prepare_seconds": seconds - rounds,
                "rounds": len(rows),
                "round_seconds": rounds / len(rows),
                "round_overhead_seconds": (rounds - compute) / len(rows),
                "accuracy": float(model.evaluate(xt, yt, lt)["accuracy"]),
            }
        runs["job_floor_seconds"] = _job_floor(df)
        runs["python_peak_mib"] = _peak_rss_mib()
        runs["jvm_peak_mib"] = _peak_rss_mib(jvm_pid)
        return runs
    finally:
        spark.stop()
        if server is not None:
            server.stop()


def _one_row(batches: Any) -> Any:
    """A ``mapInArrow`` task that reads its input and answers one row (no training)."""
    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict(
        {"partition": pa.array([0], pa.int32()), "result": pa.array([b""], pa.binary())}
    )


def _job_floor(df: Any, repeats: int = 11) -> float:
    """Median seconds of a Spark job that runs a Python task on every partition of ``df`` and
    brings one row per task back: what any round costs before it trains (Spark's scheduling,
    the Python workers' task set-up, the result's way back)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        df.mapInArrow(_one_row, "partition int, result binary").toArrow()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _child(args: argparse.Namespace, mode: str, **extra: Any) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.engine", "--child", mode]
    for key in ("rows", "test_rows", "seed"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    for key, value in extra.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "OPENBLAS_NUM_THREADS": "1"}
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: benchmark child {mode} {extra} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--kinds", nargs="+", choices=("classic", "connect"), default=None)
    parser.add_argument("--rows", type=int, default=2400)
    parser.add_argument("--test-rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", choices=("one-process", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=("classic", "connect"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if answer_as_child(args, {"one-process": run_one_process, "spark": run_spark}):
        return

    print(
        machine_line(
            f"{args.rows} sequences of {FEATURES} features, {MIN_LEN}-{MAX_LEN} steps, "
            f"LSTM({HIDDEN}), Adam, batch {BATCH}, {EPOCHS} epochs"
        )
    )
    results: dict[str, Any] = {"one-process": _child(args, "one-process")}
    base = results["one-process"]
    print(
        f"{'one-process':<12} {base['seconds']:6.2f} s   accuracy {base['accuracy']:.3f}   "
        f"Python peak {base['python_peak_mib']:.0f} MiB",
        flush=True,
    )
    for partitions in args.partitions:
        for kind in args.kinds or ("classic", "connect"):
            name = f"{kind} {partitions}"
            runs = _child(args, "spark", kind=kind, partitions=partitions)
            results[name] = runs
            for run in ("cold", "warm"):
                r = runs[run]
                overhead_ms = 1000 * r["round_overhead_seconds"]
                print(
                    f"{name + ' ' + run:<17} {r['seconds']:6.2f} s = "
                    f"{r['seconds'] / base['seconds']:.2f}x one process | prepare "
                    f"{r['prepare_seconds']:5.2f} s | {r['rounds']} rounds of "
                    f"{1000 * r['round_seconds']:4.0f} ms, {overhead_ms:4.0f} ms not training "
                    f"| accuracy {r['accuracy']:.3f}",
                    flush=True,
                )
            print(
                f"{'':<17} a job of one empty Python task per partition: "
                f"{1000 * runs['job_floor_seconds']:.0f} ms | peak memory: driver Python "
                f"{runs['python_peak_mib']:.0f} MiB, JVM {runs['jvm_peak_mib']:.0f} MiB",
                flush=True,
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
