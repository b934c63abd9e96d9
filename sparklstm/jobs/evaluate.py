"""Score a trained model on labelled data and write the metrics as JSON.

    spark-submit jobs/evaluate.py --model runs/sines-model --data data/sines/test \\
        --output runs/sines-metrics.json

Classification: accuracy, per-class precision/recall/F1 and support, macro and weighted F1,
and the confusion matrix (rows: true class, columns: predicted). Regression: RMSE, MAE, MAPE
(percent, over non-zero labels) and R^2. Per-step models are scored over every valid step. The
model's mean loss on the data is included. The columns the model was trained with are the
defaults for the column options.

A seq2seq model (--head seq2seq in jobs/train.py) is scored on (source, target) pairs
(--features-col, --target-col, their optional length columns): the teacher-forced loss, and for
token targets the sequence accuracy (greedy-decoded sequences equal to the target) and token
accuracy (decoded tokens equal to the target's at the same position, over the target tokens);
for real-valued targets RMSE, MAE and MAPE (percent, over non-zero targets) of the recursive
forecast of the target's length, over all values and per horizon step ("per_step").

A model trained on long streams (train.py --stream-col; or --stream-col given here) is scored
on a Parquet table of steps (--stream-col, --position-col, --features-col, --label-col), every
stream read chunk by chunk (--chunk-length steps, which bound memory, not the figures) with
its state carried, on the executors, --batch-size streams side by side: the loss per step, and
accuracy and bits per step (class targets) or RMSE and MAE; the same figures as the model's
evaluate_streams on the same streams in one process.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from sparklstm.cli import (
    add_option_flags,
    data_and_model,
    invoked_name,
    model_job_parser,
    read_data,
    run_job,
    stream_columns,
    write_json,
)
from sparklstm.model.seq2seq import per_step_metrics
from sparklstm.options import option_of
from sparklstm.spark.evaluation import evaluate_predictions
from sparklstm.spark.inference import predict_dataframe
from sparklstm.spark.session import get_session
from sparklstm.spark.streams import evaluate_stream_table
from sparklstm.spark.trainer import evaluate_distributed
from sparklstm.training.options import TrainOptions

PROG = "evaluate.py"  # in usage and error lines, unless started otherwise
COMMAND = "sparklstm-evaluate"
_CHUNK_DEFAULT = inspect.signature(evaluate_stream_table).parameters["chunk_length"].default


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = model_job_parser(prog, __doc__, "labelled data (required)", targets=True, streams=True)
    parser.add_argument("--output", help="metrics JSON file to write (also printed)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=512,
        help="rows per forward pass (long streams: streams read side by side)",
    )
    parser.add_argument(
        "--chunk-length",
        type=int,
        default=_CHUNK_DEFAULT,
        help=f"long streams: steps read at a time, the state carried between (default: "
        f"{_CHUNK_DEFAULT})",
    )
    add_option_flags(parser, [option_of(TrainOptions, "cache_dir")], "training")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(argv)
    options, model = data_and_model(
        args,
        (
            "features_col",
            "label_col",
            "length_col",
            "target_length_col",
            "stream_col",
            "position_col",
        ),
    )
    data = options["data"]
    steps_columns = stream_columns(data)
    if steps_columns is not None:
        _check_stream_flags(args, options, model)
    columns = {
        "features_col": data.get("features_col", "features"),
        "label_col": data.get("label_col", "label"),
        "length_col": data.get("length_col"),
    }

    spark = get_session("sparklstm-evaluate", master=args.master, remote=args.remote)
    started = time.perf_counter()
    frame = read_data(spark, data, data["path"])
    if steps_columns is not None:
        report = _stream_report(model, frame, steps_columns, args, data)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if args.output:
            write_json(args.output, report)
        print("metrics: " + json.dumps(report))
        return 0
    if model.config.head == "seq2seq":
        columns["target_length_col"] = data.get("target_length_col")
        report = _seq2seq_report(model, frame, columns, args, options)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if args.output:
            write_json(args.output, report)
        print("metrics: " + json.dumps(report))
        return 0
    predicted = predict_dataframe(
        model,
        frame,
        features_col=columns["features_col"],
        length_col=columns["length_col"],
        prediction_col="__prediction",
        probability_col=None,
        batch_size=args.batch_size,
    )
    metrics = evaluate_predictions(
        predicted,
        model.config.task,
        label_col=columns["label_col"],
        prediction_col="__prediction",
        num_classes=model.config.output_size if model.config.task == "classification" else None,
    )
    loss = evaluate_distributed(
        model,
        frame,
        batch_size=args.batch_size,
        cache_dir=options["training"].get("cache_dir"),
        **columns,
    )
    report = {
        "model": args.model,
        "data": data["path"],
        "task": model.config.task,
        "loss": loss["loss"],
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if args.output:
        write_json(args.output, report)
    print("metrics: " + json.dumps(report))
    return 0


def _check_stream_flags(
    args: argparse.Namespace, options: dict[str, dict[str, Any]], model: Any
) -> None:
    """A table of steps is read as Parquet by a one-direction per-step model; the options
    of independent sequences do not apply. One line, before Spark starts."""
    data = options["data"]
    if options["training"].get("cache_dir") is not None:
        raise ValueError("--cache-dir does not apply to long streams (--stream-col); leave it out")
    for key, flag in (
        ("length_col", "--length-col"),
        ("sequence_type", "--sequence-type"),
        ("label_type", "--label-type"),
        ("dictionary", "--dictionary"),
    ):
        if data.get(key) is not None:
            raise ValueError(f"{flag} does not apply to long streams (--stream-col); leave it out")
    if data.get("format", "parquet") != "parquet":
        raise ValueError(
            f"--format {data['format']}: long streams (--stream-col) are read from Parquet"
        )
    config = model.config
    if config.head != "all" or getattr(config, "bidirectional", False):
        raise ValueError(
            f"the --model {args.model} (head {config.head!r}) cannot score long streams "
            "(--stream-col): that needs a one-direction model with head 'all'"
        )
    for flag, value in (("--chunk-length", args.chunk_length), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{flag} {value}: must be >= 1")


def _stream_report(
    model: Any, frame: Any, columns: Any, args: argparse.Namespace, data: dict[str, Any]
) -> dict[str, Any]:
    """A stream model's figures on a table of steps, scored with carried state on the
    executors (:func:`evaluate_stream_table`)."""
    metrics = evaluate_stream_table(
        frame, model, columns=columns, chunk_length=args.chunk_length, batch_size=args.batch_size
    )
    report: dict[str, Any] = {
        "model": args.model,
        "data": data["path"],
        "task": model.config.task,
        "streams": metrics.pop("streams"),
        "steps": metrics.pop("steps"),
        **metrics,
    }
    return report


def _seq2seq_report(
    model: Any,
    frame: Any,
    columns: dict[str, Any],
    args: argparse.Namespace,
    options: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A seq2seq model's scores on the executors (:func:`evaluate_distributed`): the loss and
    sequence/token accuracy of greedy decoding, or the forecasts' RMSE, MAE and MAPE in all
    and per horizon step."""
    metrics = evaluate_distributed(
        model,
        frame,
        batch_size=args.batch_size,
        cache_dir=options["training"].get("cache_dir"),
        **columns,
    )
    report: dict[str, Any] = {
        "model": args.model,
        "data": options["data"]["path"],
        "task": "seq2seq",
        "targets": "tokens" if model.config.token_target else "values",
        "loss": metrics["loss"],
    }
    if model.config.token_target:
        report["decoding"] = "greedy"
        for name in ("sequence_accuracy", "token_accuracy"):
            report[name] = metrics[name]
        return report
    per_step = per_step_metrics(metrics)
    report.update({name: metrics.get(name) for name in ("rmse", "mae", "mape")})
    report["horizon"] = len(per_step)
    report["per_step"] = per_step
    return report


def command() -> NoReturn:
    """The ``sparklstm-evaluate`` command (and ``jobs/evaluate.py``'s entry point)."""
    prog = invoked_name(COMMAND)
    run_job(functools.partial(main, prog=prog), prog)


if __name__ == "__main__":
    command()
