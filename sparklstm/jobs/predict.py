"""Add a trained model's predictions to a dataset and write it as Parquet.

    spark-submit jobs/predict.py --model runs/sines-model --data data/sines/test \\
        --output runs/sines-predictions

Every input row is written once, with its columns unchanged and the new columns appended:
"prediction" (class index as a double, a regression value, or an array per step for per-step
models) and, for classifiers, "probability" (array<double>). The columns the model was trained
with (recorded in the model file by jobs/train.py) are the defaults for --features-col and
--length-col.

A seq2seq model (trained with --head seq2seq; the model file says which kind it is) decodes
each source sequence on the executors: "prediction" is the written token ids (array<bigint>,
<end> left out; greedy, or beam search with --beam-width above 1) with their log-probability in
"logProbability", or, for real-valued targets, the recursive forecast of --horizon steps
(array<double>). The decoding options apply to seq2seq models only.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
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
)
from sparklstm.model.decoding import DecodeOptions
from sparklstm.options import options_of
from sparklstm.spark.decoding import decode_dataframe
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
    out.add_argument(
        "--log-probability-col",
        default="logProbability",
        help="seq2seq models with token targets: the decoded sequence's log-probability; "
        "'none' leaves it out",
    )
    out.add_argument("--batch-size", type=int, default=512, help="rows per forward pass")
    decoding = parser.add_argument_group("decoding (seq2seq models)")
    add_option_flags(decoding, options_of(DecodeOptions), "decode")
    return parser


# The decoding option of real-valued targets; the others are those of token targets.
_FORECAST_OPTIONS = frozenset({"horizon"})


def _flag(name: str) -> str:
    return next(o.flag_name for o in options_of(DecodeOptions) if o.name == name)


def decode_options(args: argparse.Namespace, model: Any) -> DecodeOptions | None:
    """The decoding options given (``decode.*`` dests), checked against ``model`` before Spark
    starts: None for a model that is not seq2seq (and none may be given), else
    :class:`DecodeOptions` that fit its targets (a forecaster needs ``--horizon``, which token
    targets have no use for, nor a forecaster for the token options)."""
    given = {
        dest.partition(".")[2]: value
        for dest, value in vars(args).items()
        if dest.startswith("decode.")
    }
    where = f"the --model {args.model}"
    if model.config.head != "seq2seq":
        if given:
            raise ValueError(
                f"{_flag(sorted(given)[0])} is for seq2seq models; {where} (head "
                f"{model.config.head!r}) predicts without decoding: leave it out"
            )
        return None
    forecaster = not model.config.token_target
    for name in sorted(given):
        if (name in _FORECAST_OPTIONS) != forecaster:
            writes = "real values (give --horizon)" if forecaster else "tokens"
            raise ValueError(f"{_flag(name)} does not apply: {where} writes {writes}")
    if forecaster and given.get("horizon") is None:
        raise ValueError(f"{where} forecasts real values: give --horizon (the steps to forecast)")
    try:
        return DecodeOptions(**given).for_model(model.config)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"decoding options: {exc}") from None


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(argv)
    options, model = data_and_model(args, ("features_col", "length_col"))
    decoding = decode_options(args, model)
    data = options["data"]
    features_col = data.get("features_col", "features")
    probability_col = None if args.probability_col.lower() == "none" else args.probability_col
    if model.config.task != "classification" or decoding is not None:
        probability_col = None
    log_prob_col = None if args.log_probability_col.lower() == "none" else args.log_probability_col

    spark = get_session("sparklstm-predict", master=args.master, remote=args.remote)
    started = time.perf_counter()
    frame = read_data(spark, data, data["path"], labelled=False)
    stream_col = model.metadata.get("columns", {}).get("stream_col")
    if stream_col and stream_col in frame.columns:
        raise ValueError(
            f"--data {data['path']} is a table of steps (stream column {stream_col!r}, as the "
            f"--model {args.model} was trained on): predict.py writes predictions of whole "
            "sequences, not of long streams; score them with evaluate.py"
        )
    if decoding is not None:
        predicted = decode_dataframe(
            model,
            frame,
            source_col=features_col,
            source_length_col=data.get("length_col"),
            prediction_col=args.prediction_col,
            log_prob_col=log_prob_col,
            batch_size=args.batch_size,
            **dataclasses.asdict(decoding),
        )
    else:
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
    if decoding is not None:
        summary["decoding"] = dataclasses.asdict(decoding)
    print("summary: " + json.dumps(summary))
    return 0


def command() -> NoReturn:
    """The ``sparklstm-predict`` command (and ``jobs/predict.py``'s entry point)."""
    prog = invoked_name(COMMAND)
    run_job(functools.partial(main, prog=prog), prog)


if __name__ == "__main__":
    command()
