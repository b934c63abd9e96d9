"""Train a sequence model in one process on a generated dataset, then save and reload it.

    python -m jobs.train_local                       # the README's demo (noisy sine classes)
    python -m jobs.train_local --task adding --epochs 20 --cell gru

This is the one-process trainer's job; the Spark trainer's job is ``jobs/train.py``. With
``--mlflow`` (the mlflow extra) the run is logged to MLflow: its options, every epoch's metrics
(the epoch as the step, logged when training ends), the summary and the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from typing import NoReturn

import numpy as np

from sparklstm import SequenceModel
from sparklstm.cli import JobArgumentParser, add_option_flags, merge_sections
from sparklstm.data.synthetic import adding_problem, noisy_sines
from sparklstm.model.config import ModelConfig
from sparklstm.options import options_of
from sparklstm.tracking.job_flags import add_mlflow_flags, check_mlflow_flags, job_tracking
from sparklstm.training.options import TrainOptions, train_options

TASKS = ("sines", "adding")


# The demo's own settings where they differ from the library's defaults.
DEMO_DEFAULTS = {"epochs": 8, "batch_size": 64, "lr": 3e-3, "clip_norm": 5.0, "seed": 0}


def _parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    data = parser.add_argument_group("data")
    data.add_argument("--task", choices=TASKS, default="sines", help="generated dataset")
    data.add_argument("--train-size", type=int, default=4000)
    data.add_argument("--test-size", type=int, default=1000)
    data.add_argument("--seq-len", type=int, default=60, help="longest sequence")
    data.add_argument("--min-len", type=int, default=20, help="shortest sequence")
    model = [o for o in options_of(ModelConfig) if o.name in MODEL_FLAGS]
    add_option_flags(parser.add_argument_group("model"), model, "model")
    local = [
        dataclasses.replace(o, view_defaults={"flag": DEMO_DEFAULTS.get(o.name, o.default)})
        for o in train_options("local")
        if o.name != "validation_split"
    ]
    add_option_flags(parser.add_argument_group("training"), local, "training")
    parser.add_argument("--output", default="runs/demo-model", help="where to save the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_mlflow_flags(parser)
    return parser


# The model options the demo takes (the task and sizes come from the generated data).
MODEL_FLAGS = ("cell", "hidden_sizes", "bidirectional", "dropout", "dtype")


def _data(args, rng):
    n = args.train_size + args.test_size
    if args.task == "sines":
        x, y, lengths = noisy_sines(n, args.seq_len, 4, rng, min_len=args.min_len)
        options = dict(task="classification", output_size=4)
    else:
        x, y, lengths = adding_problem(n, args.seq_len, rng, min_len=args.min_len)
        options = dict(task="regression", output_size=1)
    split = args.train_size
    train = (x[:split], y[:split], lengths[:split])
    test = (x[split:], y[split:], lengths[split:])
    return train, test, options, x.shape[2]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = merge_sections({}, args)
    training = {**DEMO_DEFAULTS, **sections["training"]}
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    rng = np.random.default_rng(training["seed"])
    try:
        check_mlflow_flags(args.mlflow, args.mlflow_experiment)
        train, test, options, input_size = _data(args, rng)
        model = SequenceModel(
            input_size=input_size, seed=training["seed"], **sections["model"], **options
        )
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"task={args.task}  train={len(train[0])}  test={len(test[0])}  {model!r}")
    with job_tracking(args.mlflow, args.mlflow_experiment) as tracker:
        history, summary = _train(args, model, train, test, training)
        if tracker is not None:
            summary["mlflow"] = _log_to_mlflow(tracker, args, model, training, history, summary)
    print("final: " + json.dumps(summary))
    return 0 if summary["reload_identical_predictions"] else 1


def _train(args, model, train, test, training):
    """Fit, evaluate, save and reload: the fit's history and the run's summary."""
    started = time.perf_counter()
    history = model.fit(
        *train,
        validation=test,
        progress=not args.no_progress,
        **training,
    )
    seconds = time.perf_counter() - started
    metrics = model.evaluate(*test)
    path = model.save(args.output)
    reloaded = SequenceModel.load(path)
    same = np.array_equal(reloaded.predict(test[0], test[2]), model.predict(test[0], test[2]))
    summary = {
        "task": args.task,
        "epochs": len(history),
        "train_seconds": round(seconds, 2),
        "sequences_per_second": round(args.train_size * len(history) / seconds, 1),
        "test": {k: round(v, 4) for k, v in metrics.items()},
        "model": str(path),
        "reload_identical_predictions": bool(same),
    }
    return history, summary


def _log_to_mlflow(tracker, args, model, training, history, summary) -> dict:
    """The run's options, its epochs (the epoch as the step: the one-process trainer has no
    per-epoch callback, so they are logged when it ends), the summary and the model; returns
    where they are (the run, the model's URI)."""
    data = ("task", "train_size", "test_size", "seq_len", "min_len")
    tracker.log_params(
        {
            "data": {key: getattr(args, key) for key in data},
            "model": model.config.to_dict(),
            "training": TrainOptions.for_scope("local", training).to_dict("local"),
        }
    )
    tracker.log_history(history)
    tracker.log_summary(summary)
    info = tracker.log_model(model)
    return {"run_id": tracker.run_id, "model_uri": info.model_uri}


def command() -> NoReturn:
    """The ``sparklstm-train-local`` command (and ``python -m jobs.train_local``'s)."""
    raise SystemExit(main())


if __name__ == "__main__":
    command()
