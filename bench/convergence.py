"""Convergence of parameter averaging: Spark workers averaging every k steps vs one process.

    python -m bench.convergence [--config bench/configs/japanese_vowels.json] \\
        [--local-steps 1 2 4 epoch] [--workers 2 4] [--threshold 0.95] \\
        [--out bench/convergence.json]

Trains the config's model (same data, model, optimizer, batch size, epochs and seed) with:

- the one-process trainer (:meth:`sparklstm.SequenceModel.fit`);
- the Spark trainer (``local[2]``) with each number of workers (partitions) of ``--workers``
  (default: the config's ``num_partitions``), averaging every ``k`` local steps, for each
  ``k`` of ``--local-steps`` (``epoch``: one round per epoch, each worker runs through its
  whole partition). A round never spans two epochs, so ``k`` at or above the steps a worker
  makes per epoch is the same as ``epoch``. More workers than cores run in turns: their
  accuracy is what more workers would reach, their times are not.

After every epoch (one process) or round (Spark) the model is scored on the official **test**
split, to draw the accuracy curve. This is for the curve only: nothing is selected or stopped
on it (no early stopping; every run ends with its last parameters). Reported per run: the test
accuracy at the end, the training seconds, and the time to accuracy: the training seconds (the
scoring excluded) until the test accuracy first reaches ``--threshold``, with the epoch at that
point. The one-process run is done twice with the same seed, bit-identical parameters: with the
test scoring for the curve, and without it for the times. The Spark rounds' times exclude the
scoring by construction (each round's ``seconds`` ends before validation starts).

Prints a table and writes ``--out`` (JSON: every run's curve, the options, the machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import AccuracyConfig, load_accuracy_config, machine_info, write_dataset
from sparklstm.cli import JobArgumentParser, run_job, write_json

PROG = "convergence.py"
# Options of the Spark trainer that the one-process trainer takes under the same name.
LOCAL_FIT_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "optimizer_options",
    "weight_decay",
    "schedule",
    "clip_norm",
    "clip_value",
    "shuffle",
    "bucket",
)


def _local_steps(text: str) -> int | None:
    if text == "epoch":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer or 'epoch'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(
        prog="python -m bench.convergence",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--config", default="bench/configs/japanese_vowels.json")
    parser.add_argument(
        "--local-steps",
        type=_local_steps,
        nargs="+",
        default=[1, 2, 4, None],
        metavar="K",
        help="averaging intervals to compare (integers or 'epoch'; default 1 2 4 epoch)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        metavar="N",
        help="numbers of workers (partitions) to compare (default: the config's num_partitions)",
    )
    parser.add_argument("--threshold", type=float, default=0.95, help="accuracy to reach")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--out", default="bench/convergence.json")
    parser.add_argument("--work-dir", default="runs/convergence")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--no-local", action="store_true", help="skip the one-process trainer")
    parser.add_argument("--progress", action="store_true", help="per-round progress lines")
    return parser


def _arrays(config: AccuracyConfig, data_dir: Path, split: str, dtype: str):
    import pyarrow.parquet as pq

    from sparklstm.data.arrow import batch_to_numpy

    return batch_to_numpy(
        pq.read_table(data_dir / split),
        config.data.get("features_col", "features"),
        config.data.get("label_col", "label"),
        config.data.get("length_col"),
        dtype=np.dtype(dtype),
    )


def first_reaching(curve: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first point of the curve whose test accuracy is >= threshold, or None."""
    return next((point for point in curve if point["test_accuracy"] >= threshold), None)


def _result(label: str, curve: list[dict[str, Any]], threshold: float, **extra: Any) -> dict:
    reached = first_reaching(curve, threshold)
    return {
        "label": label,
        **extra,
        "final_test_accuracy": curve[-1]["test_accuracy"],
        "best_test_accuracy": max(point["test_accuracy"] for point in curve),
        "training_seconds": round(curve[-1]["seconds"], 3),
        "seconds_to_threshold": None if reached is None else round(reached["seconds"], 3),
        "epochs_to_threshold": None if reached is None else reached["epoch"],
        "curve": curve,
    }


def run_local(config: AccuracyConfig, data_dir: Path, seed: int, epochs: int | None) -> dict:
    """The one-process trainer: curve from a run scored every epoch, times from a twin run."""
    from sparklstm import SequenceModel

    dtype = config.model.get("dtype", "float32")
    x, lengths, y = _arrays(config, data_dir, "train", dtype)
    test = _arrays(config, data_dir, "test", dtype)
    options = {k: config.training[k] for k in LOCAL_FIT_KEYS if k in config.training}
    if epochs is not None:
        options["epochs"] = epochs
    classes = len(json.loads((data_dir / "classes.json").read_text())["classes"])
    histories = {}
    for scored in (True, False):
        model = SequenceModel(
            input_size=x.shape[2], output_size=classes, **{**config.model, "seed": seed}
        )
        validation = {"validation": (test[0], test[2], test[1])} if scored else {}
        histories[scored] = model.fit(
            x, y, lengths=lengths, seed=seed, progress=False, **options, **validation
        )
    if [r["loss"] for r in histories[True].rows] != [r["loss"] for r in histories[False].rows]:
        raise RuntimeError("the twin one-process runs differ; their times cannot be paired")
    elapsed, curve = 0.0, []
    for scored_row, timed_row in zip(histories[True].rows, histories[False].rows, strict=True):
        elapsed += timed_row["seconds"]
        curve.append(
            {
                "epoch": scored_row["epoch"],
                "seconds": elapsed,
                "train_loss": scored_row["loss"],
                "test_accuracy": scored_row["val_accuracy"],
            }
        )
    return curve


def run_spark(
    spark: Any,
    config: AccuracyConfig,
    data_dir: Path,
    seed: int,
    local_steps: int | None,
    epochs: int | None,
    progress: bool,
    workers: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from sparklstm.spark.sources import read_sequences
    from sparklstm.spark.trainer import fit_distributed

    columns = {
        "features_col": config.data.get("features_col", "features"),
        "label_col": config.data.get("label_col", "label"),
        "length_col": config.data.get("length_col"),
    }
    train = read_sequences(spark, str(data_dir / "train"), **config.data)
    test = read_sequences(spark, str(data_dir / "test"), **config.data)
    training = {
        **config.training,
        "seed": seed,
        "local_steps": local_steps,
        "validate_every": 1,
        "early_stopping": None,
    }
    if workers is not None:
        training["num_partitions"] = workers
    if epochs is not None:
        training["epochs"] = epochs
    started = time.perf_counter()
    _, history = fit_distributed(
        train,
        {**config.model, "seed": seed},
        training,
        **columns,
        validation=test,
        progress=progress,
    )
    wall = time.perf_counter() - started
    rounds_per_epoch = history.summary["rounds_per_epoch"]
    elapsed, curve = 0.0, []
    for row in history.rows:
        elapsed += row["seconds"]
        curve.append(
            {
                "round": row["round"],
                "epoch": round(row["round"] / rounds_per_epoch, 4),
                "seconds": elapsed,
                "train_loss": row["train_loss"],
                "test_accuracy": row["val_accuracy"],
            }
        )
    info = {
        "local_steps": history.summary["local_steps"],
        "rounds_per_epoch": rounds_per_epoch,
        "rounds": len(history.rows),
        "workers": history.summary["training_partitions"],
        "wall_seconds_with_scoring": round(wall, 2),
    }
    return curve, info


def _table(runs: list[dict[str, Any]], threshold: float) -> str:
    head = (
        f"{'trainer':<34} {'rounds':>6} {'test acc':>8} {'train s':>8} "
        f"{f'time to {threshold:.0%}':>12} {'epoch':>6}"
    )
    lines = [head, "-" * len(head)]
    for run in runs:
        reached = run["seconds_to_threshold"]
        lines.append(
            f"{run['label']:<34} {run.get('rounds', '-')!s:>6} "
            f"{run['final_test_accuracy']:>8.4f} {run['training_seconds']:>8.1f} "
            f"{'not reached' if reached is None else f'{reached:.1f} s':>12} "
            f"{'-' if reached is None else run['epochs_to_threshold']!s:>6}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_accuracy_config(args.config)
    if config.metric != "accuracy":
        raise ValueError(f"{args.config}: convergence needs a classification (ucr) config")
    if not 0 < args.threshold <= 1:
        raise ValueError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.workers and min(args.workers) < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    work = Path(args.work_dir)
    data_dir = work / "data"
    make_argv = write_dataset(config, data_dir, None)

    from sparklstm.spark.session import get_session

    spark = get_session("sparklstm-convergence", master=args.master)
    runs: list[dict[str, Any]] = []
    if not args.no_local:
        curve = run_local(config, data_dir, args.seed, args.epochs)
        runs.append(_result("one process", curve, args.threshold, trainer="local", rounds="-"))
        print(_table(runs[-1:], args.threshold).splitlines()[-1], flush=True)
    for workers in args.workers or [None]:
        for k in args.local_steps:
            curve, info = run_spark(
                spark, config, data_dir, args.seed, k, args.epochs, args.progress, workers
            )
            every = "epoch" if k is None else f"{k} step{'s' if k > 1 else ''}"
            label = f"spark {info['workers']} workers, avg every {every}"
            runs.append(_result(label, curve, args.threshold, trainer="spark", **info))
            print(_table(runs[-1:], args.threshold).splitlines()[-1], flush=True)
    document = {
        "config_file": config.path,
        "config": config.document,
        "seed": args.seed,
        "epochs": args.epochs or config.training.get("epochs"),
        "threshold": args.threshold,
        "note": (
            "test_accuracy is measured on the official test split after every epoch/round to "
            "draw the curve only; no model selection or early stopping uses it. Times are "
            "training seconds without the scoring."
        ),
        "command": "python -m bench.convergence "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "make_data": "python -m jobs.make_data " + shlex.join(make_argv),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(spark),
        "runs": runs,
    }
    write_json(args.out, document)
    print(_table(runs, args.threshold))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    run_job(main, PROG)
