"""Add a trained model's predictions to a dataset and write it as Parquet.

    spark-submit jobs/predict.py --model runs/sines-model --data data/sines/test \\
        --output runs/sines-predictions

Every input row is written once, with its columns unchanged and the new columns appended:
"prediction" (class index as a double, a regression value, or an array per step for per-step
models) and, for classifiers, "probability" (array<double>). The columns the model was trained
with (recorded in the model file by jobs/train.py) are the defaults for --features-col and
--length-col.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Sequence
from typing import NoReturn

from sparklstm.cli import (
    data_and_model,
    invoked_name,
    model_job_parser,
    read_data,
    run_job,
)
from sparklstm.spark.inference import predict_dataframe
from sparklstm.spark.session import get_session

PROG = "predict.py"  # in usage and error lines, unless started otherwise
COMMAND = "sparklstm-predict"
S = argparse.SUPPRESS


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = model_job_parser(prog, __doc__, "data to predict (required)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", required=True, help="Parquet directory to write")
    out.add_argument(
        "--mode",
        choices=("error", "overwrite"),
        default="error",
        help="what to do if --output exists (default: error)",
    )
    out.add_argument("--prediction-col", default="prediction")
    out.add_argument(
        "--probability-col",
        default="probability",
        help="class probabilities (classifiers); 'none' leaves it out",
    )
    out.add_argument(
        "--drop-features", action="store_true", help="leave the sequence column out of the output"
    )
    out.add_argument("--batch-size", type=int, default=512, help="rows per forward pass")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(argv)
    options, model = data_and_model(args, ("features_col", "length_col"))
    data = options["data"]
    features_col = data.get("features_col", "features")
    probability_col = None if args.probability_col.lower() == "none" else args.probability_col
    if model.config.task != "classification":
        probability_col = None

    spark = get_session("sparklstm-predict", master=args.master, remote=args.remote)
    started = time.perf_counter()
    frame = read_data(spark, data, data["path"], labelled=False)
    predicted = predict_dataframe(
        model,
        frame,
        features_col=features_col,
        length_col=data.get("length_col"),
        prediction_col=args.prediction_col,
        probability_col=probability_col,
        batch_size=args.batch_size,
    )
    if args.drop_features:
        predicted = predicted.drop(features_col)
    predicted.write.mode(args.mode).parquet(args.output)
    written = spark.read.parquet(args.output).count()
    summary = {
        "model": args.model,
        "output": args.output,
        "rows": written,
        "columns": predicted.columns,
        "seconds": round(time.perf_counter() - started, 2),
    }
    print("summary: " + json.dumps(summary))
    return 0


def command() -> NoReturn:
    """The ``sparklstm-predict`` command (and ``jobs/predict.py``'s entry point)."""
    prog = invoked_name(COMMAND)
    run_job(functools.partial(main, prog=prog), prog)


if __name__ == "__main__":
    command()
