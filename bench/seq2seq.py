"""Accuracy of the sequence-to-sequence model (issue 16): one process, no Spark.

    python -m bench.seq2seq addition|dates|airline [--validation] [--quick] [--seeds 0 1 2]
        [--attention luong none] [--epochs N] [--hidden 128] [--lr 0.003] [--batch-size 64]
        [--rows N] [--held-out-lengths 6] [--bidirectional 0|1] [--reverse-target 0|1]
        [--sampling-rate P] [--schedule constant|cosine] [--out PATH]
        airline only: [--input-len L] [--values-per-step K] [--seasonal-difference 0|1]
        [--level none|input-mean] [--origin-year Y (with --validation)]

For each attention variant and seed the harness trains a
:class:`~sparklstm.model.seq2seq.Seq2SeqModel` with ``fit`` (Adam) on the training split and
scores the test split, which training never sees (no validation data, no early stopping on it):

- ``addition``, ``dates``: the rows ``python -m jobs.make_data addition|dates`` writes for the
  config's options (:func:`sparklstm.datasets.transduction.split_rows`, in memory). By default
  the test split holds only held-out source lengths (6 for addition, 14 for dates) and the
  train split none. Scored: exact-sequence and token accuracy of greedy decoding
  (:meth:`Seq2SeqModel.evaluate`) and exact-sequence accuracy of beam search
  (``beam_width`` 4), each computed by comparing the decoded ids with the targets.
- ``airline``: the windows ``make_data airline`` writes for ``bench/configs/airline.json``'s
  dataset options (:func:`sparklstm.datasets.generate.airline_split`: standardised
  year-on-year log growth, 12 months out, the scaler fit on the training months; ``input_len``
  months in), a float source window and a recursive decoder writing ``values_per_step`` (K)
  months per step (the model's ``output_size``; each step's K months are the next decoder
  input; K = 1 month by month, K = 12 all in one step). Scored as ``bench.accuracy`` scores the
  one-step forecaster: MAPE in passengers of one forecast of all 36 held-out months from the
  last training month, 12 months at a time, each block's inputs ending with the forecasts
  before it (:func:`sparklstm.datasets.airline.forecast_recursive`, which takes the
  ``Seq2SeqModel``; ``fixed_origin_mape``), and of 12-month forecasts from the observed months
  (``mape``), with the seasonal naive under both. ``ensemble`` scores the mean of the seeds'
  forecasts (compare it with an ensemble of the one-step forecaster's seeds, not with one
  model).

``reverse_target`` (the default for addition, chosen on validation) trains the model to write
the target backwards (the sum's least significant digit first); what it decodes is turned
around before it is compared with the target, so every score is of the target as written.

``--schedule cosine`` (addition, dates) anneals the learning rate from ``lr`` to 0 over the
run's updates (:class:`sparklstm.optim.CosineLR`; ``epochs * ceil(train rows / batch_size)``
updates, the minibatches ``fit`` cuts); the default keeps ``lr`` constant.

``--validation`` chooses settings without the test split: for ``addition``/``dates`` the rows
of the TRAIN split whose source length is in the config's ``validation.held_out_lengths`` are
taken out of training and scored instead (the held-out-length protocol moved inside the train
split); for ``airline`` the data is ``bench/configs/airline_validation.json``'s (1958-60
dropped, 1955-57 held out: origin Dec 1954), or with ``--origin-year 1953`` the series up to
1956 with 1954-56 held out (origin Dec 1953; nothing after 1957 is read either way). The output
then says ``"split": "validation"``. ``bench/seq2seq_airline_search.py`` is the search that
chose the airline settings.

It prints one line per run and a summary, and writes ``bench/accuracy/seq2seq_<task>.json``
(``seq2seq_<task>_validation.json`` with ``--validation``; ``--out`` to choose): the config
used, the overrides, every run's result, the mean over seeds of each attention variant, the
machine and the seconds. ``--quick`` runs tiny settings in a few seconds (for the tests).
"""

from __future__ import annotations

import argparse
import copy
import logging
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import dataset_options, load_accuracy_config, machine_info, summarize
from sparklstm.cli import write_json

logger = logging.getLogger("bench.seq2seq")

TASKS = ("addition", "dates", "airline")
ROOT = Path(__file__).resolve().parent
AIRLINE_CONFIGS = {
    False: ROOT / "configs" / "airline.json",
    True: ROOT / "configs" / "airline_validation.json",
}

#: The settings of each task (chosen with --validation, never on the test split; see README).
CONFIGS: dict[str, dict[str, Any]] = {
    "addition": {
        "dataset": {
            "rows": 13000,
            "test_fraction": 0.2,
            "seed": 0,
            "max_digits": 3,
            "held_out_lengths": [6],
        },
        "validation": {"held_out_lengths": [5]},
        "model": {
            "cell": "lstm",
            "hidden_sizes": [128],
            "bidirectional": True,
            "embedding_dim": 32,
        },
        "attention": ["luong", "none"],
        "training": {"epochs": 12, "batch_size": 64, "lr": 0.003, "clip_norm": 5.0},
        "reverse_source": False,
        "reverse_target": True,
        "beam_width": 4,
        "length_penalty": 0.6,
        "seeds": [0, 1, 2],
    },
    "dates": {
        "dataset": {
            "rows": 20000,
            "test_fraction": 0.2,
            "seed": 0,
            "min_year": 1950,
            "max_year": 2049,
            "held_out_lengths": [14],
        },
        "validation": {"held_out_lengths": [13]},
        "model": {
            "cell": "lstm",
            "hidden_sizes": [64],
            "bidirectional": True,
            "embedding_dim": 32,
        },
        "attention": ["luong", "none"],
        "training": {"epochs": 10, "batch_size": 64, "lr": 0.003, "clip_norm": 5.0},
        "beam_width": 4,
        "length_penalty": 0.6,
        "seeds": [0, 1, 2],
    },
    "airline": {
        # Changes to the dataset options of bench/configs/airline[_validation].json (only
        # input_len, level and seasonal_difference: the protocol's horizon and months stay).
        # These defaults are the harness's first settings (24 months in, as the one-step
        # forecaster). The settings the validation search chose (bench/seq2seq_airline_search.py:
        # 12 months in and lr 0.001 on the Dec 1954 origin; 12 months per decoder step over the
        # Dec 1953 and Dec 1954 origins) run with explicit flags, as the README rows say
        # (bench/accuracy/seq2seq_airline_input12.json, seq2seq_airline_direct12.json).
        "dataset": {"input_len": 24},
        "model": {
            "cell": "lstm",
            "hidden_sizes": [64],
            "bidirectional": False,
        },
        "attention": ["luong", "none"],
        "training": {"epochs": 200, "batch_size": 8, "lr": 0.003, "clip_norm": 1.0},
        # Months each decoder step writes (the model's output_size): 1 writes the 12 months one
        # at a time, each fed back as the next input; 12 writes them all in one step.
        "values_per_step": 1,
        "seeds": [0, 1, 2, 3, 4],
    },
}

#: The dataset options a run may change for airline (the others define the protocol).
AIRLINE_DATASET_CHANGES = ("input_len", "level", "seasonal_difference")

#: What --quick changes: tiny data and models, a few seconds in all.
QUICK: dict[str, dict[str, Any]] = {
    "addition": {
        "dataset": {"rows": 400},
        "model": {"hidden_sizes": [16], "embedding_dim": 8},
        "training": {"epochs": 2, "batch_size": 32},
        "beam_width": 2,
        "seeds": [0],
    },
    "dates": {
        "dataset": {"rows": 300},
        "model": {"hidden_sizes": [16], "embedding_dim": 8},
        "training": {"epochs": 1, "batch_size": 32},
        "beam_width": 2,
        "seeds": [0],
    },
    "airline": {
        "model": {"hidden_sizes": [8]},
        "training": {"epochs": 2},
        "seeds": [0],
    },
}


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _column(history: Any, *keys: str) -> list[float]:
    """One column of ``fit``'s history (a ``History``, or a list of rows), the first of
    ``keys`` the rows hold."""
    rows = list(getattr(history, "rows", history))
    for key in keys:
        if rows and key in rows[-1]:
            return [float(row[key]) for row in rows]
    raise KeyError(f"none of {keys} in the training history ({sorted(rows[-1]) if rows else []})")


# ------------------------------------------------------------------------------ transduction
def transduction_splits(task: str, config: Mapping[str, Any], validation: bool) -> dict[str, Any]:
    """``{"train": (sources, targets), "eval": (sources, targets), "vocabulary": ...}``: token
    id arrays of the rows ``make_data`` writes; ``eval`` is the test split, or with
    ``validation`` the train rows of the validation lengths (then left out of ``train``)."""
    from sparklstm.datasets import generate, transduction

    options = {key: option.default for key, option in generate.task_options(task).items()}
    options.update(config["dataset"])
    options["held_out_lengths"] = tuple(options["held_out_lengths"] or ())
    transduction.check_options(task, options)
    vocab = transduction.vocabulary(task)
    rows: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "test": ([], [])}
    for split, sources, targets in transduction.split_rows(task, options):
        rows[split][0].extend(sources)
        rows[split][1].extend(targets)
    train, test = rows["train"], rows["test"]
    if validation:
        held = set(config["validation"]["held_out_lengths"])
        if held & set(options["held_out_lengths"]):
            raise ValueError("validation lengths must differ from the test split's")
        inside = [len(source) in held for source in train[0]]
        test = tuple([x for x, v in zip(part, inside, strict=True) if v] for part in train)
        train = tuple([x for x, v in zip(part, inside, strict=True) if not v] for part in train)
        if not test[0] or not train[0]:
            raise ValueError(f"validation lengths {sorted(held)} leave an empty split")

    def encode(part: tuple[list[str], list[str]]) -> tuple[list, list]:
        return [vocab.encode(s) for s in part[0]], [vocab.encode(t) for t in part[1]]

    return {
        "train": encode(train),
        "eval": encode(test),
        "vocabulary": vocab,
        "split": "validation" if validation else "test",
    }


def sequence_accuracy(decoded: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Fraction of rows whose decoded ids equal the target ids exactly."""
    right = [
        np.array_equal(np.asarray(d), np.asarray(t)) for d, t in zip(decoded, targets, strict=True)
    ]
    return float(np.mean(right))


def token_accuracy(decoded: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Target tokens the decoded sequence has at the same position (from the start), over all
    target tokens (as :meth:`Seq2SeqModel.evaluate` counts them)."""
    right = total = 0
    for d, t in zip(decoded, targets, strict=True):
        d, t = np.asarray(d), np.asarray(t)
        shared = min(len(d), len(t))
        right += int(np.sum(d[:shared] == t[:shared]))
        total += len(t)
    return right / total


def training_options(config: Mapping[str, Any], train_rows: int) -> dict[str, Any]:
    """``fit``'s options: ``config["training"]``, and with ``config["schedule"]`` "cosine" a
    cosine annealing of ``lr`` to 0 over the run's updates,
    ``lr_k = lr (1 + cos(pi k / K)) / 2`` at update ``k`` of ``K = epochs * ceil(rows / batch)``
    (``fit`` cuts ``ceil(rows / batch_size)`` minibatches an epoch, bucketed or not)."""
    training = dict(config["training"])
    schedule = config.get("schedule", "constant")
    if schedule == "cosine":
        steps = int(training["epochs"]) * -(-int(train_rows) // int(training["batch_size"]))
        training["schedule"] = {"name": "cosine", "lr": float(training["lr"]), "total_steps": steps}
    elif schedule != "constant":
        raise ValueError(f"schedule {schedule!r}: use 'constant' or 'cosine'")
    return training


def run_transduction(
    task: str, config: Mapping[str, Any], attention: str, seed: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    from sparklstm.model.seq2seq import Seq2SeqModel

    vocab = data["vocabulary"]
    (src, tgt), (eval_src, eval_tgt) = data["train"], data["eval"]
    # The representation the model sees: sources and/or targets written backwards (the Keras
    # example reverses its queries). The model trains on and decodes the reversed ids; the
    # decoded ids are reversed back before anything is scored against the targets as written.
    flip_source = bool(config.get("reverse_source", False))
    flip_target = bool(config.get("reverse_target", False))

    def source_side(rows: list) -> list:
        return [row[::-1] for row in rows] if flip_source else rows

    def target_side(rows: list) -> list:
        return [row[::-1] for row in rows] if flip_target else rows

    model = Seq2SeqModel(
        source_vocab_size=vocab.size,
        target_vocab_size=vocab.size,
        attention=attention,
        seed=seed,
        **config["model"],
    )
    started = time.perf_counter()
    # A validation run scores the validation rows after every epoch (for choosing epochs); a
    # test run never looks at the test rows before training ends.
    watch = (
        (source_side(eval_src), target_side(eval_tgt)) if data["split"] == "validation" else None
    )
    history = model.fit(
        source_side(src),
        target_side(tgt),
        seed=seed,
        validation=watch,
        progress=True,
        **training_options(config, len(src)),
    )
    seconds = time.perf_counter() - started
    scores = model.evaluate(source_side(eval_src), target_side(eval_tgt))
    max_len = max(len(t) for t in eval_tgt) + 1
    greedy = target_side(model.greedy_decode(source_side(eval_src), max_len=max_len).sequences)
    beam = model.beam_search(
        source_side(eval_src),
        beam_width=int(config["beam_width"]),
        max_len=max_len,
        length_penalty=float(config["length_penalty"]),
    )
    beam_sequences = target_side(beam.sequences)
    examples = [
        {
            "source": vocab.decode(eval_src[i]),
            "target": vocab.decode(eval_tgt[i]),
            "greedy": vocab.decode(greedy[i]),
            "beam": vocab.decode(beam_sequences[i]),
        }
        for i in range(min(5, len(eval_src)))
    ]
    return {
        "seed": seed,
        "attention": attention,
        "train_rows": len(src),
        "eval_rows": len(eval_src),
        "parameters": model.num_parameters(),
        "training_seconds": round(seconds, 2),
        "final_train_loss": _column(history, "loss", "train_loss")[-1],
        "train_loss_per_epoch": [round(v, 5) for v in _column(history, "loss", "train_loss")],
        "lr_per_epoch": [float(v) for v in _column(history, "lr")],
        "eval_loss": scores["loss"],
        "greedy_sequence_accuracy": sequence_accuracy(greedy, eval_tgt),
        "token_accuracy": token_accuracy(greedy, eval_tgt),
        "beam_sequence_accuracy": sequence_accuracy(beam_sequences, eval_tgt),
        "evaluate_sequence_accuracy": scores["sequence_accuracy"],
        "evaluate_token_accuracy": scores["token_accuracy"],
        "examples": examples,
        **(
            {
                "validation_sequence_accuracy_per_epoch": [
                    round(v, 4) for v in _column(history, "val_sequence_accuracy")
                ]
            }
            if watch is not None
            else {}
        ),
    }


# ------------------------------------------------------------------------------ airline
def airline_data(
    validation: bool, changes: Mapping[str, Any] | None = None, origin_year: int | None = None
) -> dict[str, Any]:
    """The windows and series of ``bench/configs/airline[_validation].json`` (the one-step
    forecaster's data, through the same library functions), with ``changes`` to its
    ``input_len``, ``level`` or ``seasonal_difference``.

    ``origin_year`` (validation only) moves the validation origin from December 1954 to
    December of that year: the series ends ``test_months`` after it, so a second validation
    fold (e.g. 1953: train 1949-1953, forecast 1954-56) reads no month after 1957 either."""
    from sparklstm.datasets import generate
    from sparklstm.datasets.airline import holdout_windows, load_airline

    path = AIRLINE_CONFIGS[validation]
    accuracy_config = load_accuracy_config(path)
    options = dataset_options(accuracy_config.dataset, None)
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(AIRLINE_DATASET_CHANGES))
    if unknown:
        raise ValueError(
            f"airline dataset changes {unknown}: only {list(AIRLINE_DATASET_CHANGES)} may "
            "change (horizon and test_months define the protocol)"
        )
    options.update(changes)
    full = {key: option.default for key, option in generate.task_options("airline").items()}
    full.update(options)
    if origin_year is None:
        split = generate.airline_split(**options)
        _, series = generate.airline_series(int(full["test_months"]), bool(full["validation"]))
    else:
        months, passengers = load_airline()
        first, test_months = int(str(months[0])[:4]), int(full["test_months"])
        kept = (origin_year - first + 1) * 12 + test_months
        last_allowed = len(passengers) - test_months  # the test months are never read
        if not validation or not test_months < kept <= last_allowed:
            raise ValueError(
                f"--origin-year {origin_year}: needs --validation and a December from which "
                f"{test_months} months end by month {last_allowed} (December {first} to "
                f"{first + (last_allowed - test_months) // 12 - 1})"
            )
        if full["level"] != "none":
            raise ValueError("--origin-year: only with --level none")
        series = passengers[:kept]
        split = holdout_windows(
            series,
            int(full["input_len"]),
            int(full["horizon"]),
            test_months,
            bool(full["seasonal_difference"]),
        )
        full["origin"] = f"{origin_year}-12"
    return {
        "config": str(path.relative_to(ROOT.parent)),
        "options": full,
        "split": split,
        "series": np.asarray(series, dtype=np.float64),
    }


def run_airline(
    config: Mapping[str, Any], attention: str, seed: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    from sparklstm.datasets.airline import forecast, forecast_recursive, mape, seasonal_naive
    from sparklstm.model.seq2seq import Seq2SeqModel

    split, series, options = data["split"], data["series"], data["options"]
    input_len, horizon = int(options["input_len"]), int(options["horizon"])
    test_months, level = int(options["test_months"]), options["level"]
    per_step = int(config["values_per_step"])
    if per_step < 1 or horizon % per_step:
        raise ValueError(f"values_per_step = {per_step}: must divide the horizon, {horizon} months")
    model = Seq2SeqModel(
        input_size=1, output_size=per_step, attention=attention, seed=seed, **config["model"]
    )
    # Targets (n, H) -> (n, H / K, K): decoder step j writes months j K .. j K + K - 1.
    targets = split.y_train.reshape(len(split.y_train), horizon // per_step, per_step)
    started = time.perf_counter()
    history = model.fit(split.x_train, targets, seed=seed, **config["training"])
    seconds = time.perf_counter() - started
    cut = len(series) - test_months
    fixed = forecast_recursive(
        model, split.scaler, series[:cut], input_len, test_months, level=level, horizon=horizon
    )
    truth = series[cut:]
    starts = cut + horizon * np.arange(test_months // horizon)
    reach = input_len + split.scaler.lag
    windows = np.stack([series[s - reach : s] for s in starts])
    window_truth = np.stack([series[s : s + horizon] for s in starts])
    rolling = forecast(model, split.scaler, windows, level=level, horizon=horizon)
    return {
        "seed": seed,
        "attention": attention,
        "train_windows": len(split.x_train),
        "parameters": model.num_parameters(),
        "training_seconds": round(seconds, 2),
        "final_train_loss": _column(history, "loss", "train_loss")[-1],
        "fixed_origin_mape": mape(truth, fixed),
        "mape": mape(window_truth, rolling),
        "fixed_origin_seasonal_naive_mape": mape(truth, seasonal_naive(series[:cut], test_months)),
        "seasonal_naive_mape": mape(window_truth, seasonal_naive(windows, horizon)),
        "fixed_origin_predicted": [round(float(v), 2) for v in fixed],
        "predicted": [round(float(v), 2) for v in rolling.ravel()],
    }


def airline_ensembles(runs: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> dict:
    """Per attention variant, the MAPE of the seeds' mean forecast (in passengers): one
    ensemble of all the seeds' models, for comparing with an ensemble of the one-step
    forecaster's seeds (a single model's figure is the per-seed mean of the summary)."""
    from sparklstm.datasets.airline import mape

    series, options = data["series"], data["options"]
    truth = series[len(series) - int(options["test_months"]) :]
    out: dict[str, Any] = {}
    for attention in dict.fromkeys(run["attention"] for run in runs):
        mine = [run for run in runs if run["attention"] == attention]
        fixed = np.mean([run["fixed_origin_predicted"] for run in mine], axis=0)
        rolling = np.mean([run["predicted"] for run in mine], axis=0)
        out[attention] = {
            "seeds": [run["seed"] for run in mine],
            "fixed_origin_mape": mape(truth, fixed),
            "mape": mape(truth, rolling),
            "fixed_origin_predicted": [round(float(v), 2) for v in fixed],
        }
    return out


# ------------------------------------------------------------------------------ the job
METRICS = {
    "addition": ("greedy_sequence_accuracy", "beam_sequence_accuracy", "token_accuracy"),
    "dates": ("greedy_sequence_accuracy", "beam_sequence_accuracy", "token_accuracy"),
    "airline": ("fixed_origin_mape", "mape"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seq2seq", description=__doc__.split("\n")[0]
    )
    parser.add_argument("task", choices=TASKS)
    parser.add_argument(
        "--validation", action="store_true", help="score a validation split, not the test split"
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings (a few seconds)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--attention", nargs="+", choices=("luong", "none"))
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--hidden", type=lambda s: [int(x) for x in s.split(",")], help="e.g. 128 or 64,64"
    )
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--sampling-rate", type=float, help="scheduled sampling rate of fit")
    parser.add_argument("--clip-norm", type=float)
    parser.add_argument(
        "--schedule",
        choices=("constant", "cosine"),
        help="addition, dates: learning rate constant, or cosine-annealed to 0 over the run",
    )
    parser.add_argument("--rows", type=int, help="rows of both splits (addition, dates)")
    parser.add_argument(
        "--held-out-lengths",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        help="source lengths only the test split holds, as make_data ('' for a random split)",
    )
    parser.add_argument("--bidirectional", type=int, choices=(0, 1))
    parser.add_argument("--embedding-dim", type=int)
    parser.add_argument("--cell", choices=("lstm", "gru"))
    parser.add_argument("--reverse-source", type=int, choices=(0, 1))
    parser.add_argument("--reverse-target", type=int, choices=(0, 1))
    parser.add_argument("--input-len", type=int, help="airline: months in each input window")
    parser.add_argument(
        "--origin-year",
        type=int,
        help="airline --validation: forecast from December of this year (default 1954)",
    )
    parser.add_argument(
        "--level", choices=("none", "input-mean"), help="airline: window level taken out"
    )
    parser.add_argument(
        "--seasonal-difference",
        type=int,
        choices=(0, 1),
        help="airline: 1 year-on-year log growth, 0 standardised log levels",
    )
    parser.add_argument(
        "--values-per-step",
        type=int,
        help="airline: months each decoder step writes (1: one at a time; 12: all at once)",
    )
    parser.add_argument(
        "--out", help="output JSON (default bench/accuracy/seq2seq_<task>[_validation].json)"
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    model = {
        key: value
        for key, value in (
            ("hidden_sizes", args.hidden),
            ("bidirectional", None if args.bidirectional is None else bool(args.bidirectional)),
            ("embedding_dim", args.embedding_dim),
            ("cell", args.cell),
            ("sampling_rate", args.sampling_rate),
        )
        if value is not None
    }
    training = {
        key: value
        for key, value in (
            ("epochs", args.epochs),
            ("lr", args.lr),
            ("batch_size", args.batch_size),
            ("clip_norm", args.clip_norm),
        )
        if value is not None
    }
    if model:
        changes["model"] = model
    if training:
        changes["training"] = training
    dataset = {
        key: value
        for key, value in (
            ("rows", args.rows),
            ("held_out_lengths", args.held_out_lengths),
            ("input_len", args.input_len),
            ("level", args.level),
            (
                "seasonal_difference",
                None if args.seasonal_difference is None else bool(args.seasonal_difference),
            ),
        )
        if value is not None
    }
    if args.values_per_step is not None:
        changes["values_per_step"] = args.values_per_step
    if dataset:
        changes["dataset"] = dataset
    if args.seeds:
        changes["seeds"] = list(args.seeds)
    if args.schedule is not None:
        changes["schedule"] = args.schedule
    for key in ("reverse_source", "reverse_target"):
        if getattr(args, key) is not None:
            changes[key] = bool(getattr(args, key))
    if args.attention:
        changes["attention"] = list(args.attention)
    return changes


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the harness and return the document it writes."""
    parser = _parser()
    args = parser.parse_args(argv)
    task = args.task
    if task == "airline" and args.schedule == "cosine":
        parser.error("--schedule cosine: addition and dates only (airline keeps lr constant)")
    config = CONFIGS[task]
    if args.quick:
        config = _merge(config, QUICK[task])
    overrides = _overrides(args)
    config = _merge(config, overrides)
    if task == "airline":
        config.pop("validation", None)
    started = time.perf_counter()
    if task == "airline":
        data = airline_data(args.validation, config.get("dataset"), args.origin_year)
        config["dataset"] = {"config": data["config"], **data["options"]}
    else:
        data = transduction_splits(task, config, args.validation)
        if not args.validation:
            config.pop("validation", None)
    suffix = "_validation" if args.validation else ""
    out = Path(args.out) if args.out else ROOT / "accuracy" / f"seq2seq_{task}{suffix}.json"
    command = "python -m bench.seq2seq " + shlex.join(sys.argv[1:] if argv is None else argv)
    document: dict[str, Any] = {
        "task": task,
        "split": "validation" if args.validation else "test",
        "command": command,
        "quick": args.quick,
        "config": config,
        "overrides": overrides,
        "runs": [],
    }
    for attention in config["attention"]:
        for seed in config["seeds"]:
            if task == "airline":
                result = run_airline(config, attention, seed, data)
            else:
                result = run_transduction(task, config, attention, seed, data)
            document["runs"].append(result)
            shown = ", ".join(f"{m} {result[m]:.4f}" for m in METRICS[task])
            logger.info(
                "%s attention=%s seed %d: %s (%.0f s training)",
                task,
                attention,
                seed,
                shown,
                result["training_seconds"],
            )
            document["summary"] = _summary(task, document["runs"])
            if task == "airline":
                document["ensemble"] = airline_ensembles(document["runs"], data)
            document["machine"] = machine_info()
            document["seconds"] = round(time.perf_counter() - started, 2)
            write_json(out, document)
    document["output"] = str(out)
    for attention, metrics in document["summary"].items():
        shown = ", ".join(
            f"{m} {v['mean']:.4f} (seeds {v['per_seed']})" for m, v in metrics.items()
        )
        logger.info("%s %s, attention=%s: %s", task, document["split"], attention, shown)
    logger.info("wrote %s (%.0f s)", out, document["seconds"])
    return document


def _summary(task: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for attention in dict.fromkeys(run["attention"] for run in runs):
        mine = [run for run in runs if run["attention"] == attention]
        summary[attention] = {
            metric: {
                **summarize([run[metric] for run in mine]),
                "per_seed": [round(run[metric], 4) for run in mine],
                "seeds": [run["seed"] for run in mine],
            }
            for metric in METRICS[task] + ("training_seconds",)
        }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("sparklstm").setLevel(logging.WARNING)
    logging.getLogger("sparklstm.model.seq2seq").setLevel(logging.INFO)  # fit's epoch lines
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
