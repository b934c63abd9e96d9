"""Accuracy on public datasets from versioned configs: Spark training, official test splits.

    python -m bench.accuracy bench/configs/japanese_vowels.json [--seeds 0 1 2] \\
        [--out bench/accuracy]

For each seed the job trains with the Spark trainer (``fit_distributed``, local mode,
``local[2]`` unless ``--master`` says otherwise) and scores the official test split, which
training never sees (no validation data, no early stopping on it):

- ``ucr``: accuracy of ``argmax`` predictions on the test series;
- ``airline``: MAPE (percent) in passengers of one recursive forecast of all held-out months
  from the last training month (``fixed_origin_mape``, the published protocol), the
  forecasts' scaling and level undone; also of re-forecasts every ``horizon`` months from the
  observed months (``mape``), and the seasonal naive under both protocols;
- ``kjv``: bits per character of the held-out last 10% of the text
  (:func:`sparklstm.datasets.bits_per_char`).

It prints one line per seed and the mean, and writes ``OUT/<config name>.json``: the results of
every seed (metric, training seconds, rounds, the test predictions), their mean and standard
deviation, the target and whether the mean meets it, the published references, the config
used, any overrides, the machine (cores, BLAS, load) and the command. Data, models and
per-round metrics go to ``--work-dir`` (default ``runs/accuracy/<config name>``).

The config (JSON or YAML) holds the sections ``jobs/train.py --config`` reads, under the
library's option names, plus what this job needs:

- ``dataset``: the dataset and its options (``{"task": "ucr", "name": "JapaneseVowels",
  "standardize": true}``; :func:`sparklstm.datasets.generate.task_options`, the options of
  ``python -m jobs.make_data``); the job writes the data with
  :func:`sparklstm.datasets.generate.write_dataset` and records the equivalent command;
- ``data``: reader options (``features_col``, ``label_col``, ``length_col``); the paths are
  the job's own;
- ``model``: :class:`sparklstm.model.config.ModelConfig` options (sizes come from the data);
- ``training``: :class:`sparklstm.spark.config.DistributedConfig` options except ``seed``;
- ``output``: ``quiet`` (no per-round progress lines);
- ``evaluation``: ``batch_size``, and ``seq_len`` for kjv (window of the bits/char score);
- ``seeds``: list of training seeds (``--seeds`` overrides);
- ``target``: ``{"value": ...}`` the mean must reach (accuracy >=, MAPE <=, bits/char <=),
  and optionally ``max_training_seconds`` per seed;
- ``references``: published results to compare with (``{"FCN": 0.993}``);
- ``description``, ``notes``: free text.

Unknown sections or options are errors naming them. ``--epochs N`` and ``--limit-rows N`` (the
first N rows of each split) make quick smoke runs; the output records them as overrides.
``--resume`` keeps the seeds an earlier run of the same config and overrides already wrote to
the output file (it is rewritten after every seed) and runs only the others; the file then
lists the earlier commands under ``resumed_from``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm.cli import DATA_READ_KEYS, JobArgumentParser, read_document, run_job, write_json
from sparklstm.datasets import generate
from sparklstm.model.config import ModelConfig
from sparklstm.spark.config import DistributedConfig

PROG = "accuracy.py"
METRICS = {"ucr": "accuracy", "airline": "fixed_origin_mape", "kjv": "bits_per_char"}
HIGHER_IS_BETTER = {"accuracy": True, "fixed_origin_mape": False, "bits_per_char": False}
TRAIN_SECTIONS = ("data", "model", "training", "output")
SECTIONS = ("dataset", *TRAIN_SECTIONS, "evaluation", "target")
TOP_LEVEL = (*SECTIONS, "seeds", "references", "description", "notes")
OUTPUT_KEYS = frozenset({"quiet"})
EVALUATION_KEYS = {
    "ucr": {"batch_size"},
    "airline": {"batch_size"},
    "kjv": {"batch_size", "seq_len"},
}
TARGET_KEYS = frozenset({"value", "max_training_seconds"})

logger = logging.getLogger("bench.accuracy")


# ------------------------------------------------------------------------------ the config
@dataclass(frozen=True)
class AccuracyConfig:
    """A validated config file (see the module docstring)."""

    name: str
    path: str
    document: dict[str, Any]
    dataset: dict[str, Any]
    data: dict[str, Any]
    model: dict[str, Any]
    training: dict[str, Any]
    output: dict[str, Any]
    evaluation: dict[str, Any]
    target: dict[str, Any]
    seeds: tuple[int, ...]
    references: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.dataset["task"]

    @property
    def metric(self) -> str:
        return METRICS[self.task]


def _read_document(path: Path) -> dict[str, Any]:
    """The file as a dict (JSON, or YAML read safely: nothing in it is ever executed)."""
    document = read_document(path)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected an object with the keys {list(TOP_LEVEL)}")
    return document


def _unknown(path: Path, where: str, given: Mapping[str, Any], known: Any) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(f"{where}{key}" for key in unknown)
        raise ValueError(f"{path}: unknown key(s) {names}; known: {sorted(known)}")


def _check_dataset(path: Path, dataset: Any) -> dict[str, Any]:
    if not isinstance(dataset, dict) or "task" not in dataset:
        raise ValueError(f'{path}: "dataset" must be an object with a "task" ({sorted(METRICS)})')
    task = dataset["task"]
    if task not in METRICS:
        raise ValueError(f"{path}: dataset.task = {task!r}: must be one of {sorted(METRICS)}")
    options = {k: v for k, v in dataset.items() if k != "task"}
    _unknown(path, "dataset.", options, generate.task_options(task))
    for key, option in generate.task_options(task).items():
        if option.required and options.get(key) is None:
            raise ValueError(f"{path}: dataset.{key} is required for the {task!r} task")
    try:
        generate.resolve_options(task, options)
    except ValueError as exc:
        raise ValueError(f"{path}: dataset.{exc}") from None
    return dict(dataset)


def _check_model(path: Path, task: str, model: dict[str, Any]) -> None:
    sizes = (
        {"vocab_size": 2, "output_size": 2}
        if task == "kjv"
        else {"input_size": 1, "output_size": 2}
    )
    try:
        ModelConfig.from_dict({**sizes, **model})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: model: {exc}") from None


def load_accuracy_config(path: str | Path) -> AccuracyConfig:
    """Read and validate a config; every error names the file and the offending key."""
    path = Path(path)
    document = _read_document(path)
    _unknown(path, "", document, TOP_LEVEL)
    for key in SECTIONS:
        if key in document and not isinstance(document[key], dict):
            raise ValueError(f"{path}: {key!r} must be an object")
    dataset = _check_dataset(path, document.get("dataset"))
    task = dataset["task"]
    data, model, training, output = (dict(document.get(k, {})) for k in TRAIN_SECTIONS)
    for key in ("path", "validation", "validation_fraction"):
        if key in data:
            raise ValueError(
                f"{path}: data.{key}: the job writes and reads its own data (under --work-dir); "
                "the test split is only scored, never used for validation"
            )
    _unknown(path, "data.", data, DATA_READ_KEYS)
    _unknown(path, "output.", output, OUTPUT_KEYS)
    _check_model(path, task, model)
    if "seed" in training:
        raise ValueError(f'{path}: training.seed: list the seeds in "seeds" instead')
    try:
        DistributedConfig.coerce(training)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: training: {exc}") from None
    evaluation = dict(document.get("evaluation", {}))
    _unknown(path, "evaluation.", evaluation, EVALUATION_KEYS[task])
    for key, value in evaluation.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: evaluation.{key} must be an integer >= 1, got {value!r}")
    target = dict(document.get("target", {}))
    _unknown(path, "target.", target, TARGET_KEYS)
    for key, value in target.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{path}: target.{key} must be a number > 0, got {value!r}")
    seeds = document.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
    ):
        raise ValueError(f"{path}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    references = document.get("references", {})
    if not isinstance(references, dict):
        raise ValueError(f"{path}: references must be an object")
    return AccuracyConfig(
        name=path.stem,
        path=str(path),
        document=document,
        dataset=dataset,
        data=data,
        model=model,
        training=training,
        output=output,
        evaluation=evaluation,
        target=target,
        seeds=tuple(seeds),
        references=dict(references),
    )


# ------------------------------------------------------------------------------ the data
def dataset_options(dataset: Mapping[str, Any], limit_rows: int | None) -> dict[str, Any]:
    """The options of the ``dataset`` section for :func:`generate.write_dataset` (as given);
    with ``limit_rows`` for kjv, ``max_chars`` cut to the characters those windows need."""
    task = dataset["task"]
    options = {key: dataset[key] for key in generate.task_options(task) if key in dataset}
    if task == "kjv" and limit_rows is not None:
        seq_len = int(dataset.get("seq_len", 100))
        stride = int(dataset.get("stride") or seq_len)
        chars = max((limit_rows - 1) * stride + seq_len + 1, seq_len + 1)
        if dataset.get("max_chars") is None or chars < int(dataset["max_chars"]):
            options["max_chars"] = chars
    return options


def make_data_argv(dataset: Mapping[str, Any], out: Path, limit_rows: int | None) -> list[str]:
    """The ``python -m jobs.make_data`` command line that writes the same data as
    :func:`write_dataset` (recorded next to the results, for running it by hand)."""
    task = dataset["task"]
    known = generate.task_options(task)
    argv = [task]
    for key, value in dataset_options(dataset, limit_rows).items():
        option = known[key]
        if option.positional:
            argv.append(str(value))
        elif option.switch:
            argv += [option.flag] if value else []
        elif value is not None:
            argv += [option.flag, str(value)]
    return argv + ["--out", str(out), "--overwrite"]


def write_dataset(config: AccuracyConfig, out: Path, limit_rows: int | None) -> list[str]:
    """Write the config's dataset to ``out`` (replacing one there); returns the equivalent
    ``jobs.make_data`` arguments."""
    options = dataset_options(config.dataset, limit_rows)
    generate.write_dataset(config.task, out, overwrite=True, **options)
    return make_data_argv(config.dataset, out, limit_rows)


def _test_arrays(config: AccuracyConfig, data_dir: Path, limit: int | None, dtype: str):
    """``(inputs, lengths, labels)`` of the test split as written (first ``limit`` rows)."""
    import pyarrow.parquet as pq

    from sparklstm.data.arrow import batch_to_numpy

    table = pq.read_table(data_dir / "test")
    if limit is not None:
        table = table.slice(0, limit)
    return batch_to_numpy(
        table,
        config.data.get("features_col", "features"),
        config.data.get("label_col", "label"),
        config.data.get("length_col"),
        dtype=np.dtype(dtype),
    )


# ------------------------------------------------------------------------------ scoring
def score_ucr(model: Any, config: AccuracyConfig, data_dir: Path, limit: int | None) -> dict:
    """Accuracy (and loss) on the test split; the predictions are kept for the record."""
    x, lengths, labels = _test_arrays(config, data_dir, limit, model.config.dtype)
    batch_size = config.evaluation.get("batch_size", 512)
    predictions = model.predict(x, lengths=lengths, batch_size=batch_size)
    loss = model.evaluate(x, labels, lengths=lengths, batch_size=batch_size)["loss"]
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "test_loss": float(loss),
        "test_rows": int(len(labels)),
        "predictions": predictions.astype(int).tolist(),
    }


def dataset_option(config: AccuracyConfig, key: str) -> Any:
    """An option of the config's dataset, or its default."""
    if key in config.dataset:
        return config.dataset[key]
    return generate.task_options(config.task)[key].default


def _airline_setup(config: AccuracyConfig, data_dir: Path) -> dict[str, Any]:
    """What writing the Airline windows did: the scaler it fit (``OUT/scaler.json``) and
    the config's window options, with the series it split."""
    from sparklstm.datasets.airline import scaler_from_config

    setup = {
        key: int(dataset_option(config, key)) for key in ("input_len", "horizon", "test_months")
    }
    setup["level"] = dataset_option(config, "level")
    setup["months"], setup["series"] = generate.airline_series(
        setup["test_months"], dataset_option(config, "validation")
    )
    setup["scaler"] = scaler_from_config(json.loads((data_dir / "scaler.json").read_text()))
    return setup


def airline_forecasts(
    model: Any, config: AccuracyConfig, data_dir: Path, limit: int | None = None
) -> dict[str, Any]:
    """Forecasts of the held-out months in passengers, each window from the months before it.

    Undoes what writing the data did to the windows: the scaler (``OUT/scaler.json``, fit on the
    training months) and the window level (``dataset.level``)."""
    from sparklstm.datasets.airline import forecast

    setup = _airline_setup(config, data_dir)
    horizon, test_months = setup["horizon"], setup["test_months"]
    if model.config.output_size != horizon:
        raise ValueError(f"the model predicts {model.config.output_size} months, not {horizon}")
    months, series, scaler = setup["months"], setup["series"], setup["scaler"]
    cut = len(series) - test_months
    starts = cut + horizon * np.arange(test_months // horizon)
    if limit is not None:
        starts = starts[:limit]
    reach = setup["input_len"] + scaler.lag  # months of history one forecast reads
    history = np.stack([series[s - reach : s] for s in starts])
    truth = np.stack([series[s : s + horizon] for s in starts])
    return {
        "months": [str(m) for m in months[starts[0] : starts[-1] + horizon]],
        "history": history,
        "truth": truth,
        "predicted": forecast(model, scaler, history, level=setup["level"]),
    }


def fixed_origin_forecast(model: Any, config: AccuracyConfig, data_dir: Path) -> dict[str, Any]:
    """One forecast of all the held-out months from the last training month (the published
    protocol): ``horizon`` months at a time, each block's inputs ending with the forecasts
    before it (recursive), so no held-out value is ever an input."""
    from sparklstm.datasets.airline import forecast_recursive

    setup = _airline_setup(config, data_dir)
    series = setup["series"]
    cut = len(series) - setup["test_months"]
    predicted = forecast_recursive(
        model,
        setup["scaler"],
        series[:cut],
        setup["input_len"],
        setup["test_months"],
        level=setup["level"],
    )
    return {"truth": series[cut:], "predicted": predicted, "history": series[:cut]}


def score_airline(model: Any, config: AccuracyConfig, data_dir: Path, limit: int | None) -> dict:
    """MAPE in passengers of the rolling 12-month forecasts (``mape``) and of one forecast of
    all held-out months from the cut (``fixed_origin_mape``, the published protocol), each with
    the seasonal-naive MAPE under the same protocol."""
    from sparklstm.datasets.airline import mape, seasonal_naive

    found = airline_forecasts(model, config, data_dir, limit)
    horizon = found["truth"].shape[1]
    naive = seasonal_naive(found["history"], horizon)
    fixed = fixed_origin_forecast(model, config, data_dir)
    fixed_naive = seasonal_naive(fixed["history"], len(fixed["truth"]))
    return {
        "mape": mape(found["truth"], found["predicted"]),
        "seasonal_naive_mape": mape(found["truth"], naive),
        "fixed_origin_mape": mape(fixed["truth"], fixed["predicted"]),
        "fixed_origin_seasonal_naive_mape": mape(fixed["truth"], fixed_naive),
        "fixed_origin_predictions": np.round(fixed["predicted"], 3).tolist(),
        "test_windows": int(found["truth"].shape[0]),
        "months": found["months"],
        "predictions": np.round(found["predicted"].ravel(), 3).tolist(),
        "actual": found["truth"].ravel().tolist(),
    }


def score_kjv(model: Any, config: AccuracyConfig, data_dir: Path, limit: int | None) -> dict:
    """Bits per character of the test text (every character after the first predicted once,
    in windows of ``evaluation.seq_len`` from a zero state), and a short sample."""
    from sparklstm.data.text import CharVocab
    from sparklstm.datasets.kjv import bits_per_char, load_kjv, sample

    vocab = CharVocab.from_config(json.loads((data_dir / "vocab.json").read_text()))
    corpus = load_kjv()
    if vocab != corpus.vocab:
        raise ValueError(f"{data_dir / 'vocab.json'} is not the corpus's vocabulary")
    seq_len = config.evaluation.get("seq_len", config.dataset.get("seq_len", 100))
    ids = corpus.test_ids
    if limit is not None:
        ids = ids[: limit * seq_len + 1]
    started = time.perf_counter()
    bpc = bits_per_char(model, ids, seq_len, config.evaluation.get("batch_size", 64))
    return {
        "bits_per_char": bpc,
        "test_characters": int(len(ids)),
        "eval_seq_len": int(seq_len),
        "eval_seconds": round(time.perf_counter() - started, 2),
        "sample": sample(model, vocab, "And God said", 160, temperature=0.7, seed=0),
    }


SCORERS = {"ucr": score_ucr, "airline": score_airline, "kjv": score_kjv}


# ------------------------------------------------------------------------------ the record
def machine_info(spark: Any = None) -> dict[str, Any]:
    """Cores, BLAS and load of this machine (the figures depend on them)."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for pool in threadpool_info()
        ]
    except ImportError:  # pragma: no cover - threadpoolctl comes with the test extras
        info["blas"] = None
    if hasattr(os, "getloadavg"):
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    if spark is not None:
        info["spark"] = spark.version
        info["master"] = spark.sparkContext.master
    return info


def summarize(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def target_met(config: AccuracyConfig, mean: float, seconds: Sequence[float]) -> bool | None:
    if "value" not in config.target:
        return None
    value = config.target["value"]
    met = mean >= value if HIGHER_IS_BETTER[config.metric] else mean <= value
    limit = config.target.get("max_training_seconds")
    return bool(met and (limit is None or max(seconds) <= limit))


def _format(metric: str, value: float) -> str:
    if metric == "fixed_origin_mape":
        return f"fixed-origin MAPE {value:.2f}%"
    return f"{metric} {value:.4f}"


# ------------------------------------------------------------------------------ the job
def _parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(
        prog="python -m bench.accuracy",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("config", help="JSON/YAML config (bench/configs/*.json)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    parser.add_argument("--out", default="bench/accuracy", help="results directory")
    parser.add_argument(
        "--work-dir", help="data, models, metrics (default runs/accuracy/<config name>)"
    )
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--epochs", type=int, help="override training.epochs (smoke runs)")
    parser.add_argument(
        "--limit-rows", type=int, metavar="N", help="first N rows of each split (smoke runs)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-round progress lines")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the seeds already in OUT/<config name>.json (same config and overrides) and "
        "run only the others",
    )
    return parser


def earlier_document(out: Path, document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The output file of an earlier run of the same config (``--resume``), or None.

    It must hold the same config document and the same overrides; anything else is an error,
    so results of different settings are never mixed."""
    if not out.exists():
        return None
    try:
        earlier = json.loads(out.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--resume: {out} is not valid JSON: {exc}") from None
    for key in ("config", "overrides"):
        if earlier.get(key) != document[key]:
            raise ValueError(
                f"--resume: {out} was written with a different {key}; move it away or run "
                "without --resume"
            )
    return earlier


def _training_options(config: AccuracyConfig, seed: int, epochs: int | None) -> dict[str, Any]:
    training = {**config.training, "seed": seed}
    if epochs is not None:
        training["epochs"] = epochs
        training.pop("rounds", None)
    return training


def train_and_score(
    spark: Any,
    config: AccuracyConfig,
    seed: int,
    work: Path,
    epochs: int | None = None,
    limit_rows: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """One seed: fit_distributed on the training split, save the model, score the test split."""
    from sparklstm.spark.sources import read_sequences
    from sparklstm.spark.trainer import fit_distributed

    data_dir = work / "data"
    columns = {
        "features_col": config.data.get("features_col", "features"),
        "label_col": config.data.get("label_col", "label"),
        "length_col": config.data.get("length_col"),
    }
    train = read_sequences(spark, str(data_dir / "train"), **config.data)
    if limit_rows is not None:
        train = train.limit(limit_rows)
    run_dir = work / f"seed{seed}"
    training = _training_options(config, seed, epochs)
    model_options = {**config.model, "seed": seed}
    started = time.perf_counter()
    model, history = fit_distributed(
        train,
        model_options,
        training,
        **columns,
        metrics_path=run_dir / "metrics.jsonl",
        progress=not (quiet or config.output.get("quiet", False)),
    )
    seconds = time.perf_counter() - started
    model_path = model.save(run_dir / "model", metadata={"config": config.path, "seed": seed})
    result: dict[str, Any] = {"seed": seed}
    scores = SCORERS[config.task](model, config, data_dir, limit_rows)
    last = history.rows[-1] if history.rows else {}
    result[config.metric] = scores.pop(config.metric)
    result.update(
        training_seconds=round(seconds, 2),
        round_seconds=round(sum(row.get("seconds", 0.0) for row in history.rows), 2),
        rounds=len(history.rows),
        epochs=last.get("epoch"),
        local_steps=history.summary.get("local_steps"),
        workers=history.summary.get("training_partitions"),
        train_rows=history.summary.get("rows"),
        final_train_loss=last.get("train_loss"),
        model=str(model_path),
        metrics=str(run_dir / "metrics.jsonl"),
    )
    result.update(scores)
    return result


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the job and return the document it writes."""
    args = _parser().parse_args(argv)
    config = load_accuracy_config(args.config)
    for flag, value in (("--epochs", args.epochs), ("--limit-rows", args.limit_rows)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    seeds = tuple(args.seeds) if args.seeds else config.seeds
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds must be >= 0, got {list(seeds)}")
    work = Path(args.work_dir or Path("runs") / "accuracy" / config.name)
    out = Path(args.out) / f"{config.name}.json"
    command = "python -m bench.accuracy " + shlex.join(sys.argv[1:] if argv is None else argv)

    make_argv = write_dataset(config, work / "data", args.limit_rows)
    from sparklstm.spark.session import get_session

    spark = get_session("sparklstm-accuracy", master=args.master)
    document: dict[str, Any] = {
        "dataset": config.name,
        "task": config.task,
        "metric": config.metric,
        "higher_is_better": HIGHER_IS_BETTER[config.metric],
        "target": config.target,
        "references": config.references,
        "command": command,
        "make_data": "python -m jobs.make_data " + shlex.join(make_argv),
        "config_file": config.path,
        "config": config.document,
        "overrides": {
            k: v
            for k, v in (("epochs", args.epochs), ("limit_rows", args.limit_rows))
            if v is not None
        },
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(spark),
        "runs": [],
        "complete": False,
    }
    earlier = earlier_document(out, document) if args.resume else None
    done = {int(r["seed"]): r for r in earlier.get("runs", [])} if earlier else {}
    if done:
        document["resumed_from"] = {
            "commands": earlier.get("resumed_from", {}).get("commands", []) + [earlier["command"]],
            "seeds": sorted(seed for seed in done if seed in seeds),
        }
    for seed in seeds:
        if seed in done:
            document["runs"].append(done[seed])
            print(f"{config.name} seed {seed}: kept from {out}", flush=True)
            continue
        result = train_and_score(
            spark, config, seed, work, args.epochs, args.limit_rows, quiet=args.quiet
        )
        document["runs"].append(result)
        print(
            f"{config.name} seed {seed}: {_format(config.metric, result[config.metric])} | "
            f"training {result['training_seconds']:.1f} s | {result['rounds']} rounds, "
            f"{result['epochs']} epochs",
            flush=True,
        )
        write_json(out, document)  # a crash later keeps the seeds already done
    values = [r[config.metric] for r in document["runs"]]
    seconds = [r["training_seconds"] for r in document["runs"]]
    document.update(
        summary={config.metric: summarize(values), "training_seconds": summarize(seconds)},
        mean=float(np.mean(values)),
        target_met=target_met(config, float(np.mean(values)), seconds),
        complete=True,
    )
    document["machine"]["load_average_end"] = (
        [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    write_json(out, document)
    spread = document["summary"][config.metric]["std"]
    target = config.target.get("value")
    verdict = (
        ""
        if target is None
        else f" | target {target}: " + ("met" if document["target_met"] else "NOT met")
    )
    print(
        f"{config.name} mean over {len(values)} seed(s): {_format(config.metric, document['mean'])}"
        f" (std {spread:.4g}) | training {np.mean(seconds):.1f} s per seed{verdict} -> {out}",
        flush=True,
    )
    if not math.isfinite(document["mean"]):
        logger.warning("the metric is not finite")
    return document


def main(argv: Sequence[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    run_job(main, PROG)
