"""``train.py --stream-col``: training on a table of steps (long streams) by truncated BPTT
with carried state (:func:`sparklstm.spark.streams.fit_streams_distributed`).

What the training job does with long streams, apart from the sequence path: the flags that
only streams take (:func:`add_stream_flags`), which of the job's options apply and which are
refused before Spark starts (:func:`check_stream_options`), and the run itself
(:func:`train_streams`). The stream options (``--forward-length``, ``--backward-length``,
``--state-at-round-start``) sit in the ``training`` section of a ``--config`` file.
"""

from __future__ import annotations

import argparse
import inspect
import time
from typing import Any

from sparklstm.cli import add_option_flags, add_stream_options, read_data
from sparklstm.options import option_of, options_of
from sparklstm.spark.streams import (
    STATES_AT_ROUND_START,
    STREAM_TRAIN_OPTIONS,
    StreamColumns,
    evaluate_stream_table,
    fit_streams_distributed,
)
from sparklstm.training.options import TrainOptions
from sparklstm.training.streams import StreamOptions

__all__ = [
    "STREAM_TRAINING_KEYS",
    "add_stream_flags",
    "check_stream_options",
    "split_stream_options",
    "train_streams",
]

S = argparse.SUPPRESS
_STATE_OPTION = "state_at_round_start"
# The options of the training section that only streams take.
STREAM_TRAINING_KEYS = (*(option.name for option in options_of(StreamOptions)), _STATE_OPTION)
_STATE_DEFAULT = inspect.signature(fit_streams_distributed).parameters[_STATE_OPTION].default
_WHERE = "long streams (--stream-col)"


def add_stream_flags(parser: argparse.ArgumentParser) -> None:
    """The "long streams" group: the table's columns, StreamOptions' flags (from their
    definitions) and ``--state-at-round-start`` (dests ``data.*`` and ``training.*``)."""
    group = parser.add_argument_group(
        "long streams (a table of steps: one row per stream, position)"
    )
    add_stream_options(group)
    add_option_flags(group, options_of(StreamOptions), "training")
    group.add_argument(
        "--state-at-round-start",
        dest=f"training.{_STATE_OPTION}",
        choices=STATES_AT_ROUND_START,
        default=S,
        help="the recurrent state at the start of a round: carry (each worker's, where its last "
        f"round left it) or reset (zero, as at a stream's start) (default: {_STATE_DEFAULT})",
    )


def split_stream_options(training: dict[str, Any], streams: bool) -> dict[str, Any]:
    """Take the stream options out of the ``training`` section (in place) and return them,
    checked by their definitions; given without ``streams`` (no stream column), they are an
    error naming the flag."""
    found = {key: training.pop(key) for key in STREAM_TRAINING_KEYS if key in training}
    if not streams:
        if found:
            raise ValueError(
                f"{_flag(next(iter(found)))} applies to long streams only; give --stream-col "
                "(a table of steps) or leave it out"
            )
        return {}
    state = found.pop(_STATE_OPTION, _STATE_DEFAULT)
    if state not in STATES_AT_ROUND_START:
        raise ValueError(
            f"--state-at-round-start {state!r}: must be one of {', '.join(STATES_AT_ROUND_START)}"
        )
    for name, value in found.items():
        try:
            option_of(StreamOptions, name).check(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{_flag(name)}: {exc}") from None
    stream_options = StreamOptions(**found)
    return {
        "forward_length": stream_options.forward_length,
        "backward_length": stream_options.backward_length,
        _STATE_OPTION: state,
    }


def _flag(name: str) -> str:
    if name == _STATE_OPTION:
        return "--state-at-round-start"
    return option_of(StreamOptions, name).flag_name


# The data options of independent sequences (and seq2seq targets), with their flags.
_SEQUENCE_DATA = {
    "validation_fraction": "--validation-fraction",
    "length_col": "--length-col",
    "sequence_type": "--sequence-type",
    "label_type": "--label-type",
    "dictionary": "--dictionary",
    "target_col": "--target-col",
    "target_length_col": "--target-length-col",
}


def check_stream_options(options: dict[str, dict[str, Any]]) -> None:
    """What a stream run takes, checked before Spark starts (one line naming the flag): a
    Parquet table of steps, a one-direction model with ``--head all`` (the default here), and
    the training options of :data:`STREAM_TRAIN_OPTIONS`. Sets the model's head."""
    data, model, training = options["data"], options["model"], options["training"]
    for key, flag in _SEQUENCE_DATA.items():
        if data.get(key) is not None:
            remedy = (
                "give a held-out table of steps with --validation"
                if key == "validation_fraction"
                else "leave it out"
            )
            raise ValueError(f"{flag} does not apply to {_WHERE}; {remedy}")
    if data.get("format", "parquet") != "parquet":
        raise ValueError(
            f"--format {data['format']}: {_WHERE} are read from Parquet; write the table of "
            "steps as Parquet"
        )
    head = model.setdefault("head", "all")
    if head != "all":
        raise ValueError(
            f"--head {head}: {_WHERE} need --head all (one output per step, read chunk by "
            "chunk); leave --head out"
        )
    if model.get("bidirectional"):
        raise ValueError(
            f"--bidirectional: {_WHERE} are read chunk by chunk and cannot see their future; "
            "leave it out"
        )
    known = {option.name: option for option in options_of(TrainOptions)}
    for name in training:
        # A name that is no training option at all is TrainOptions.coerce's to report.
        if name in known and name not in STREAM_TRAIN_OPTIONS:
            flag = known[name].flag_name or f"training.{name}"
            raise ValueError(f"{flag} does not apply to {_WHERE}; leave it out")


def train_streams(
    spark: Any,
    options: dict[str, dict[str, Any]],
    columns: StreamColumns,
    stream_options: dict[str, Any],
    tracker: Any = None,
) -> dict[str, Any]:
    """Train on the table of steps ``--data`` (validated on ``--validation``, a table of
    steps too), write the model (a SequenceModel's files, the columns and stream options in
    its metadata) and return the job's summary. With ``tracker`` (``--mlflow``), the options
    given, every round's metrics, the model's configuration, the summary and the model's
    files (the run's artifacts under ``model/``) go to its MLflow run."""
    data, output = options["data"], options["output"]
    started = time.perf_counter()
    frame = read_data(spark, data, data["path"])
    validation = read_data(spark, data, data["validation"]) if data.get("validation") else None
    training = dict(options["training"])
    if tracker is not None:
        tracker.log_params({"data": data, "training": training, "streams": stream_options})
    model, history = fit_streams_distributed(
        frame,
        dict(options["model"]),
        training,
        columns=columns,
        **stream_options,
        validation=validation,
        checkpoint_dir=output.get("checkpoint_dir"),
        resume=bool(output.get("resume")),
        metrics_path=output.get("metrics"),
        progress=not output.get("quiet"),
        on_round=None if tracker is None else tracker.log_round,
    )
    recorded = {
        "features_col": columns.features,
        "label_col": columns.label,
        "length_col": None,
        "stream_col": columns.stream,
        "position_col": columns.position,
    }
    path = model.save(
        output["model"],
        metadata={
            "columns": recorded,
            "data": data,
            "training": training,
            "streams": stream_options,
        },
    )
    last = history.rows[-1] if history.rows else {}
    # A stream round's rate counts the steps it trained on ("seq/s" of its progress line).
    steps = sum(row.get("sequences_per_second", 0.0) * row["seconds"] for row in history.rows)
    compute = sum(row.get("seconds", 0.0) for row in history.rows)
    summary: dict[str, Any] = {
        "model": str(path),
        "workers": history.summary.get("workers"),
        "rounds": len(history),
        "rounds_per_epoch": history.summary.get("rounds_per_epoch"),
        "local_steps": history.summary.get("local_steps"),
        "seed": history.summary.get("seed"),
        "epochs": last.get("epoch"),
        **stream_options,
        "stopped_early": history.stopped_early,
        "best_round": history.best_round,
        "job_seconds": round(time.perf_counter() - started, 2),
        "steps_per_second": round(steps / compute, 1) if compute and steps else None,
        "train": {k: last[k] for k in ("train_loss", "train_accuracy", "train_rmse") if k in last},
    }
    if validation is not None:
        summary["validation"] = evaluate_stream_table(
            validation,
            model,
            columns=columns,
            chunk_length=stream_options["forward_length"],
            batch_size=training.get("batch_size", option_of(TrainOptions, "batch_size").default),
            num_partitions=history.summary.get("workers"),
        )
    summary["parameters"] = model.num_parameters()
    if tracker is not None:
        tracker.log_params({"model": model.config.to_dict()})
        tracker.log_summary(summary)
        tracker.client.log_artifacts(tracker.run_id, summary["model"], "model")
        summary["mlflow"] = {
            "run_id": tracker.run_id,
            "model_files": f"runs:/{tracker.run_id}/model",
        }
    return summary
