"""Train an LSTM/GRU on Spark by parameter averaging and save the model.

    spark-submit jobs/train.py --data data/sines/train --validation data/sines/test \\
        --hidden-sizes 64 --epochs 8 --local-steps 8 --output runs/sines-model

Options may also come from a JSON (or YAML) file given with --config, whose sections "data",
"model", "training" and "output" hold the library's option names (hidden_sizes, local_steps,
...); options given on the command line override the file. The master is spark-submit's
(--master), or local[*] when run as `python jobs/train.py`.

--head seq2seq trains an encoder-decoder (sequence-to-sequence model): the sequence column
(--features-col) is its source and --target-col (or --label-col) its target sequence, token ids
(array<int>: greedy-decoded sequence and token accuracy are reported) or values (array<float>:
a multi-step forecaster; RMSE, MAE and MAPE per horizon step), each with an optional length
column (--length-col, --target-length-col). The "seq2seq model" options apply to it only, and
the model options of the other heads that it has no use for (--dropout, --vocab-size, ...)
are refused; the data decide the vocabulary sizes unless given.

--stream-col trains on long streams instead: --data (and --validation) is a Parquet table of
steps, one row per (stream, position) (--stream-col, --position-col, --features-col a token id,
a number or an array of numbers, --label-col the step's target), trained by truncated BPTT
with carried state (--forward-length, --backward-length) in rounds of parameter averaging;
--batch-size is the streams a worker reads side by side, --local-steps the chunk updates per
round, --state-at-round-start what the recurrent state does at a round's start. The model
(--head all, one direction) is written like any other; the options of independent sequences
(--bucket, --validation-fraction, --length-col, ...) are refused. With --mlflow the model is
logged as its files (the run's artifacts under model/).

With --mlflow (the mlflow extra: pip install 'sparklstm[mlflow]'), the run is logged to MLflow:
its options as parameters, every round's metrics with the round as the step, the summary and
the model (an MLflow model that mlflow.pyfunc.load_model and spark_udf score; a seq2seq model's
files are logged as the run's artifacts under model/).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from sparklstm.cli import (
    DATA_READ_KEYS,
    JobArgumentParser,
    add_data_options,
    add_option_flags,
    add_session_options,
    add_target_options,
    check_input_path,
    check_target_columns,
    flag_default,
    invoked_name,
    load_config_file,
    merge_sections,
    read_data,
    run_job,
    stream_columns,
    write_json,
)
from sparklstm.io.runlock import RunLock, lock_path_for
from sparklstm.jobs.train_streams import (
    add_stream_flags,
    check_stream_options,
    split_stream_options,
    train_streams,
)
from sparklstm.model.config import ModelConfig
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.options import Option, option_of, options_of
from sparklstm.spark.schema import default_task, sequence_kind_of
from sparklstm.spark.session import get_session
from sparklstm.spark.trainer import evaluate_distributed, fit_distributed
from sparklstm.tracking import RunTracker
from sparklstm.tracking.job_flags import add_mlflow_flags, check_mlflow_flags, job_tracking
from sparklstm.training.options import TrainOptions, train_options

PROG = "train.py"  # in usage and error lines, unless started otherwise
COMMAND = "sparklstm-train"
S = argparse.SUPPRESS


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = JobArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--config", help="JSON/YAML file of options (see above)")
    add_session_options(parser)

    data = add_data_options(parser, "training data path (required)")
    data.add_argument(
        "--validation",
        dest="data.validation",
        default=S,
        help="held-out data path (same format and columns)",
    )
    data.add_argument(
        "--validation-fraction",
        dest="data.validation_fraction",
        type=float,
        default=S,
        help="hold out this fraction of --data instead",
    )

    add_target_options(data)

    # The model's and the trainer's options, from their one definition.
    add_option_flags(parser.add_argument_group("model"), _model_options(), "model")
    add_option_flags(
        parser.add_argument_group("seq2seq model (--head seq2seq)"), _seq2seq_options(), "model"
    )
    add_option_flags(parser.add_argument_group("training"), train_options("spark"), "training")
    add_stream_flags(parser)

    out = parser.add_argument_group("output")
    out.add_argument(
        "--output", dest="output.model", default=S, help="model directory to write (required)"
    )
    out.add_argument(
        "--overwrite",
        dest="output.overwrite",
        action="store_true",
        default=S,
        help="replace an existing --output model (refused by default)",
    )
    out.add_argument(
        "--metrics", dest="output.metrics", default=S, help="JSON-lines file, one object per round"
    )
    out.add_argument("--checkpoint-dir", dest="output.checkpoint_dir", default=S)
    out.add_argument(
        "--resume",
        dest="output.resume",
        action="store_true",
        default=S,
        help="continue from the newest checkpoint in --checkpoint-dir",
    )
    out.add_argument(
        "--summary", dest="output.summary", default=S, help="also write the final summary JSON here"
    )
    out.add_argument(
        "--quiet",
        dest="output.quiet",
        action="store_true",
        default=S,
        help="no per-round progress lines",
    )
    add_mlflow_flags(parser, "output.mlflow", "output.mlflow_experiment", default=S)
    return parser


SEQ2SEQ = "seq2seq"  # the head that makes a run train an encoder-decoder


def _model_options() -> list[Option]:
    """ModelConfig's options, ``head`` taking ``seq2seq`` too (an encoder-decoder,
    :class:`Seq2SeqConfig`, whose own options are :func:`_seq2seq_options`)."""
    options = list(options_of(ModelConfig))
    for i, option in enumerate(options):
        if option.name == "head":
            options[i] = dataclasses.replace(
                option,
                choices=(*option.choices, SEQ2SEQ),
                help=f"{option.help}; {SEQ2SEQ}: an encoder-decoder writing a target sequence "
                "(--target-col) of its own length",
            )
    return options


def _seq2seq_options() -> list[Option]:
    """The options of Seq2SeqConfig that ModelConfig does not have (attention, vocabularies,
    start/end tokens, scheduled sampling); the shared ones (cell, hidden_sizes, ...) take the
    model group's flags."""
    shared = {option.name for option in options_of(ModelConfig)}
    return [option for option in options_of(Seq2SeqConfig) if option.name not in shared]


def _check_model_options(model: dict[str, Any], data: dict[str, Any]) -> None:
    """The model options and the target columns fit the kind of model asked for (``--head``):
    each valid by its definition, none of the other kind's, and a seq2seq configuration
    consistent as far as it goes without the data's sizes. One line, before Spark starts."""
    seq2seq = model.get("head") == SEQ2SEQ
    head = f"--head {model.get('head', flag_default(option_of(ModelConfig, 'head')))}"
    check_target_columns(data, seq2seq, head)
    kind = Seq2SeqConfig if seq2seq else ModelConfig
    definitions = {option.name: option for option in options_of(kind)}
    seq2seq_only = {option.name for option in _seq2seq_options()}
    for name, value in model.items():
        if name == "head":
            continue
        option = definitions.get(name)
        if option is None:
            flag = _flag_of(name)
            if seq2seq or name not in seq2seq_only:
                # The data decide the sizes; the seed is the training's (--seed).
                given = [n for n in definitions if n not in ("input_size", "output_size", "seed")]
                known = ", ".join(_flag_of(n) for n in given)
                noun = "seq2seq models (--head seq2seq)" if seq2seq else f"models of {head}"
                raise ValueError(
                    f"{flag} is not an option of {noun}; leave it out (their model options: "
                    f"{known})"
                )
            raise ValueError(f"{flag} applies to --head {SEQ2SEQ} only; leave it out with {head}")
        try:
            option.check(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{_flag_of(name)}: {exc}") from None
    if seq2seq:
        # The sides the data will size are stood in for, so that the rest is checked now.
        placeholder = dict(model)
        if placeholder.get("input_size") is None and placeholder.get("source_vocab_size") is None:
            placeholder["source_vocab_size"] = 2**31
        if placeholder.get("target_vocab_size") is None and placeholder.get("output_size") is None:
            placeholder["target_vocab_size"] = 2**31
        Seq2SeqConfig.from_dict(placeholder)


def _flag_of(name: str) -> str:
    """The command-line flag of a model option (its config-file name if it has none)."""
    for option in (*_model_options(), *_seq2seq_options()):
        if option.name == name and option.flag_name:
            return option.flag_name
    return f"model.{name}"


_DATA_KEYS = DATA_READ_KEYS | {
    "path",
    "validation",
    "validation_fraction",
    "target_col",
    "target_length_col",
    "stream_col",
    "position_col",
}
_OUTPUT_KEYS = {
    "model",
    "metrics",
    "checkpoint_dir",
    "resume",
    "summary",
    "quiet",
    "overwrite",
    "mlflow",
    "mlflow_experiment",
}


def _options(
    argv: Sequence[str] | None, prog: str = PROG
) -> tuple[argparse.Namespace, dict[str, dict[str, Any]]]:
    args = _parser(prog).parse_args(argv)
    config = load_config_file(args.config) if args.config else {}
    options = merge_sections(config, args)
    for section, known in (("data", _DATA_KEYS), ("output", _OUTPUT_KEYS)):
        unknown = sorted(set(options[section]) - known)
        if unknown:
            raise ValueError(f"unknown {section} option(s) {unknown}; known: {sorted(known)}")
    for section, key, flag in (("data", "path", "--data"), ("output", "model", "--output")):
        if not options[section].get(key):
            raise ValueError(f"{flag} is required (or {section}.{key} in --config)")
    check_input_path("--data", options["data"]["path"])
    if options["data"].get("validation"):
        check_input_path("--validation", options["data"]["validation"])
    if options["data"].get("dictionary"):
        check_input_path("--dictionary", options["data"]["dictionary"])
    fraction = options["data"].get("validation_fraction")
    if fraction is not None:
        if options["data"].get("validation"):
            raise ValueError("give --validation or --validation-fraction, not both")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"--validation-fraction must be in (0, 1), got {fraction}")
    output = options["output"]
    check_mlflow_flags(output.get("mlflow"), output.get("mlflow_experiment"))
    if output.get("resume") and not output.get("checkpoint_dir"):
        raise ValueError("--resume needs --checkpoint-dir")
    if _occupied(output["model"]) and not output.get("overwrite"):
        raise ValueError(
            f"--output {output['model']} already holds a model; choose another --output, or "
            "pass --overwrite to replace it"
        )
    options["training"].setdefault("seed", flag_default(option_of(TrainOptions, "seed")))
    # Fail on bad model and training options now, before Spark starts.
    streams = stream_columns(options["data"]) is not None
    options["streams"] = split_stream_options(options["training"], streams)
    if streams:
        check_stream_options(options)
    _check_model_options(options["model"], options["data"])
    TrainOptions.coerce(options["training"])
    return args, options


def _occupied(path: str) -> bool:
    """Whether ``path`` holds something (a file, or a directory that is not empty)."""
    target = Path(path)
    return target.is_file() or (target.is_dir() and any(target.iterdir()))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args, options = _options(argv, prog)
    # The output model is this run's until it is written: a second run aimed at it is refused
    # now, before Spark starts (the checkpoint directory has its own lock, in fit_distributed).
    output_lock = RunLock(
        lock_path_for(options["output"]["model"], inside=False),
        f"--output {options['output']['model']}",
    )
    output = options["output"]
    # The MLflow run (with --mlflow) starts before Spark does and ends FAILED if the job fails.
    tracking = job_tracking(output.get("mlflow"), output.get("mlflow_experiment"))
    with output_lock, tracking as tracker:
        return _train(args, options, tracker)


def _train(
    args: argparse.Namespace, options: dict[str, dict[str, Any]], tracker: RunTracker | None
) -> int:
    data, output = options["data"], options["output"]
    spark = get_session("sparklstm-train", master=args.master, remote=args.remote)
    columns_of_steps = stream_columns(data)
    if columns_of_steps is not None:
        summary = train_streams(spark, options, columns_of_steps, options["streams"], tracker)
        if output.get("summary"):
            write_json(output["summary"], summary)
        print("summary: " + json.dumps(summary))
        return 0
    started = time.perf_counter()
    frame = read_data(spark, data, data["path"])
    validation = read_data(spark, data, data["validation"]) if data.get("validation") else None
    seed = options["training"]["seed"]
    if data.get("validation_fraction"):
        fraction = data["validation_fraction"]
        frame, validation = frame.randomSplit([1.0 - fraction, fraction], seed=seed)
    columns = {
        "features_col": data.get("features_col", "features"),
        "label_col": data.get("label_col", "label"),
        "length_col": data.get("length_col"),
    }
    training = dict(options["training"])
    model_options = dict(options["model"])
    if model_options.get("head") == SEQ2SEQ:
        columns["target_length_col"] = data.get("target_length_col")
    else:
        model_options.setdefault("task", default_task(frame.schema, columns["label_col"]))
    if tracker is not None:
        tracker.log_params({"data": data, "training": TrainOptions.coerce(training).to_dict()})
    model, history = fit_distributed(
        frame,
        model_options,
        training,
        **columns,
        validation=validation,
        checkpoint_dir=output.get("checkpoint_dir"),
        resume=bool(output.get("resume")),
        metrics_path=output.get("metrics"),
        progress=not output.get("quiet"),
        on_round=None if tracker is None else tracker.log_round,
    )
    # Written to a temporary name and renamed into place: a reader never sees half a model.
    path = model.save(
        output["model"],
        metadata={"columns": columns, "data": data, "training": training},
    )
    last = history.rows[-1] if history.rows else {}
    examples = sum(row.get("examples", 0) for row in history.rows)
    compute = sum(row.get("seconds", 0.0) for row in history.rows)
    summary: dict[str, Any] = {
        "model": str(path),
        "rows": history.summary.get("rows"),
        "partitions": history.summary.get("training_partitions"),
        "rounds": len(history),
        "seed": history.summary.get("seed"),
        "epochs": last.get("epoch"),
        "stopped_early": history.stopped_early,
        "best_round": history.best_round,
        "job_seconds": round(time.perf_counter() - started, 2),
        "sequences_per_second": round(examples / compute, 1) if compute else None,
        "train": {k: last[k] for k in ("train_loss", "train_accuracy") if k in last},
        "skipped_rows": history.summary.get("skipped_rows"),
    }
    if validation is not None:
        summary["validation"] = evaluate_distributed(model, validation, **columns)
    summary["parameters"] = model.num_parameters()
    if tracker is not None:
        summary["mlflow"] = _log_to_mlflow(tracker, model, columns, frame.schema, summary)
    if output.get("summary"):
        write_json(output["summary"], summary)
    print("summary: " + json.dumps(summary))
    return 0


def _log_to_mlflow(
    tracker: RunTracker,
    model: Any,
    columns: dict[str, Any],
    schema: Any,
    summary: dict[str, Any],
) -> dict[str, str]:
    """The trained model's configuration, the summary and the model itself (its signature
    declaring the features column as the training data held it), in the job's MLflow run;
    returns where they are (the run, the model's URI). A seq2seq model, which has no MLflow
    flavour, is logged as its model files (the run's artifacts under ``model/``)."""
    if model.config.head == SEQ2SEQ:
        tracker.log_params({"model": model.config.to_dict()})
        tracker.log_summary(summary)
        tracker.client.log_artifacts(tracker.run_id, summary["model"], "model")
        return {"run_id": tracker.run_id, "model_files": f"runs:/{tracker.run_id}/model"}
    try:
        sequence_type = sequence_kind_of(schema, columns["features_col"])
    except TypeError:  # not an array: a Spark ML Vector, one number per step
        sequence_type = "univariate"
    tracker.log_params({"model": model.config.to_dict()})
    tracker.log_summary(summary)
    info = tracker.log_model(
        model,
        features_col=columns["features_col"],
        length_col=columns["length_col"],
        sequence_type=sequence_type,
    )
    return {"run_id": tracker.run_id, "model_uri": info.model_uri}


def command() -> NoReturn:
    """The ``sparklstm-train`` command (and ``jobs/train.py``'s entry point)."""
    prog = invoked_name(COMMAND)
    run_job(functools.partial(main, prog=prog), prog)


if __name__ == "__main__":
    command()
