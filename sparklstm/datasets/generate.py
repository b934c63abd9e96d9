"""Build the named datasets and write them as Parquet in the trainer's input schema (no Spark).

:func:`write_dataset` makes one dataset by name (:data:`DATASETS`) and writes its ``train`` and
``test`` splits under one directory with :class:`sparklstm.io.parquet.ParquetDatasetWriter`,
plus the JSON files a model needs to read the data back (class names, scalers, vocabulary):

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> written = write_dataset("parity", out, rows=10, seq_len=4, test_fraction="0.2")
>>> [(split.name, split.rows) for split in written.splits]
[('train', 8), ('test', 2)]

Each dataset's options are defined once, here (:func:`task_options`: name, parser, default,
one line of help); ``python -m jobs.make_data`` derives its command line from them
(``seq_len`` is ``--seq-len``), and error messages name the options as that command spells
them. If anything fails, no partial dataset is left behind.

- Generated tasks (``adding``, ``sines``, ``copy``, ``parity``; :mod:`sparklstm.data.synthetic`)
  are made in blocks of :data:`BLOCK_ROWS` rows, block ``b`` drawing from
  ``numpy.random.default_rng([seed, b])``: memory stays bounded for any number of rows, and
  the rows depend only on the task options, ``rows`` and ``seed``. :func:`held_out` picks the
  test rows.
- ``addition``, ``dates``: string transduction for sequence-to-sequence models
  (:mod:`sparklstm.datasets.transduction`), generated the same way: ``source`` and ``target``
  token ids, the vocabulary in ``vocabulary.json``; ``held_out_lengths`` makes the test split
  the rows whose sources have those lengths, and the train split the others.
- ``reference-text``: the reference project's ``label<TAB>tok1,tok2,...`` examples and word
  vector dictionary (:mod:`sparklstm.data.embeddings`), as vectors or token ids.
- ``ucr``, ``airline``, ``kjv``: the public datasets of :mod:`sparklstm.datasets` with their
  official splits (:func:`ucr_splits`, :func:`airline_split`, :func:`airline_series`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from sparklstm.data.embeddings import load_word_vectors, read_labelled_token_file
from sparklstm.data.synthetic import adding_problem, copy_task, noisy_sines, parity
from sparklstm.data.text import next_token_windows
from sparklstm.datasets.airline import LEVELS, window_levels
from sparklstm.io.parquet import ParquetDatasetWriter

__all__ = [
    "BLOCK_ROWS",
    "DATASETS",
    "DatasetOption",
    "GENERATED_OPTIONS",
    "OUTPUT_OPTIONS",
    "OptionError",
    "WrittenDataset",
    "WrittenFile",
    "WrittenSplit",
    "airline_series",
    "airline_split",
    "channel_stats",
    "held_out",
    "resolve_options",
    "standardize",
    "task_options",
    "ucr_splits",
    "write_dataset",
]

BLOCK_ROWS = 4096
TOKEN_BLOCK_BYTES = 32 * 2**20
SPLITS = ("train", "test")


# ------------------------------------------------------------------------------ the options
class OptionError(ValueError):
    """A value an option does not take; the message names the value (the caller, the option)."""


def _integer(value: Any) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise OptionError(f"{value!r} is not an integer")


def _integer_at_least(name: str, *bounds: int) -> Callable[[Any], int]:
    """A parser of integers (or their text) that are >= each of ``bounds``, checked in turn:
    the message names the first bound the value is below."""

    def parse(value: Any) -> int:
        number = _integer(value)
        for bound in bounds:
            if number < bound:
                raise OptionError(f"{value} must be >= {bound}")
        return number

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = _integer_at_least("positive_int", 1)
seed_int = _integer_at_least("seed_int", 0)
class_count = _integer_at_least("class_count", 1, 2)


def fraction(value: Any) -> Fraction:
    """A number in ``[0, 1)``, exactly as written: ``"0.29"`` (and the float ``0.29``) is
    29/100, not the nearest binary float."""
    if isinstance(value, Fraction):
        number = value
    elif isinstance(value, str) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    ):
        try:
            number = Fraction(str(value).strip())
        except (ValueError, ZeroDivisionError):
            raise OptionError(f"{value!r} is not a number") from None
    else:
        raise OptionError(f"{value!r} is not a number")
    if not 0 <= number < 1:
        raise OptionError(f"{value} must be in [0, 1)")
    return number


def year(value: Any) -> int:
    """A year of four digits (1000 .. 9999)."""
    number = _integer(value)
    if not 1000 <= number <= 9999:
        raise OptionError(f"{value} must be a year in 1000..9999")
    return number


def lengths(value: Any) -> tuple[int, ...]:
    """Sequence lengths, distinct and ascending: text ``"6"`` or ``"5,7"`` (``""`` for none),
    or integers."""
    if isinstance(value, str):
        items: list[Any] = [piece.strip() for piece in value.split(",")] if value.strip() else []
    elif isinstance(value, (int, np.integer)):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise OptionError(f"{value!r} is not a list of lengths")
    return tuple(sorted({positive_int(item) for item in items}))


def text(value: Any) -> str:
    """A str, as given."""
    if not isinstance(value, str):
        raise OptionError(f"{value!r} is not a string")
    return value


def switch(value: Any) -> bool:
    """True or False (an option that is on or off)."""
    if not isinstance(value, bool):
        raise OptionError(f"{value!r} is not true or false")
    return value


@dataclasses.dataclass(frozen=True)
class DatasetOption:
    """One option of a dataset: its name, how a value is read (``parse``: a str from a command
    line or a value from a config; raises :class:`OptionError` or ValueError), its default and
    one line of help. A ``positional`` option is given by value alone (``ucr NAME``)."""

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    help: str | None = None
    required: bool = False
    positional: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    @property
    def switch(self) -> bool:
        """Whether the option is on or off (a flag without a value on a command line)."""
        return self.parse is switch

    @property
    def flag(self) -> str:
        """The option on a command line: ``--seq-len`` for ``seq_len``."""
        return "--" + self.name.replace("_", "-")

    def value(self, given: Any) -> Any:
        """``given`` checked and converted; ValueError naming the option if it is not taken."""
        try:
            value = self.parse(given)
        except (OptionError, TypeError, ValueError) as exc:
            raise OptionError(f"{self.name}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{self.name} = {value!r}: must be one of {list(self.choices)}")
        return value


_ROWS = DatasetOption("rows", positive_int, 10_000, "rows in all splits")
_SEQ_LEN = DatasetOption("seq_len", positive_int, 50, "(longest) length")
_SEED = DatasetOption("seed", seed_int, 0)
_MIN_LEN = DatasetOption("min_len", positive_int, None, "shortest length (default: all --seq-len)")
#: The options every generated task (adding, sines, parity) takes; copy takes the first four.
GENERATED_OPTIONS = _GENERATED = (
    _ROWS,
    _SEQ_LEN,
    _SEED,
    DatasetOption("test_fraction", fraction, Fraction("0.2"), "default 0.2", metavar="F"),
    _MIN_LEN,
)

_TRANSDUCTION = (_ROWS, _SEED, _GENERATED[3])  # rows, seed, test_fraction

#: Where and how :func:`write_dataset` writes, for every dataset (its keyword arguments).
OUTPUT_OPTIONS = (
    DatasetOption("out", text, help="output directory (gets train/ and test/)", required=True),
    DatasetOption("rows_per_file", positive_int, 100_000, metavar="N"),
    DatasetOption("overwrite", switch, False, "replace datasets already at OUT/train, OUT/test"),
)

_OPTIONS: dict[str, tuple[DatasetOption, ...]] = {
    "adding": _GENERATED,
    "sines": (
        *_GENERATED,
        DatasetOption("classes", class_count, 4, ">= 2 (default 4)"),
        DatasetOption("noise", float, 0.3),
    ),
    "parity": _GENERATED,
    "copy": (
        *_GENERATED[:4],
        DatasetOption("symbols", positive_int, 8, "data symbols (ids 1..N)"),
    ),
    "reference-text": (
        DatasetOption("input", text, help="lines label<TAB>tok1,tok2,...", required=True),
        DatasetOption("dictionary", text, help="lines word<TAB>v1,v2,...", required=True),
        DatasetOption("unknown_token", text, "UNKNOWN"),
        DatasetOption(
            "token_ids", switch, False, "write token ids (array<int>) instead of vectors"
        ),
        DatasetOption("test_fraction", fraction, Fraction(0), "default 0", metavar="F"),
    ),
    "ucr": (
        DatasetOption(
            "name",
            text,
            help="e.g. GunPoint, BasicMotions, JapaneseVowels",
            required=True,
            positional=True,
            metavar="NAME",
        ),
        DatasetOption(
            "standardize",
            switch,
            False,
            "scale each channel by the training split's mean and std (-> OUT/standardize.json)",
        ),
    ),
    "airline": (
        DatasetOption("input_len", positive_int, 24, "default 24", metavar="L"),
        DatasetOption("horizon", positive_int, 12, "default 12", metavar="H"),
        DatasetOption("test_months", positive_int, 36, "held out (default 36)", metavar="N"),
        DatasetOption(
            "level",
            text,
            "none",
            "subtract each window's mean scaled input from its inputs and targets (input-mean)",
            choices=LEVELS,
        ),
        DatasetOption(
            "seasonal_difference",
            switch,
            False,
            "windows of standardised year-on-year log differences log x[t] - log x[t-12]",
        ),
        DatasetOption(
            "validation",
            switch,
            False,
            "drop the held-out months and hold out the --test-months before them instead",
        ),
    ),
    "addition": (
        *_TRANSDUCTION,
        DatasetOption("max_digits", positive_int, 3, "digits of each operand, at most (default 3)"),
        DatasetOption(
            "held_out_lengths",
            lengths,
            (6,),
            "source lengths (e.g. 6 or 5,7) only the test split holds, the train split none; "
            "'' for a random split (default 6, of 4..8 with 3 digits)",
            metavar="L,...",
        ),
    ),
    "dates": (
        *_TRANSDUCTION,
        DatasetOption("min_year", year, 1950, "earliest year (default 1950)"),
        DatasetOption("max_year", year, 2049, "latest year (default 2049)"),
        DatasetOption(
            "held_out_lengths",
            lengths,
            (14,),
            "source lengths only the test split holds, the train split none; '' for a random "
            "split (default 14, of 8..28)",
            metavar="L,...",
        ),
    ),
    "kjv": (
        DatasetOption("seq_len", positive_int, 100, "window length (default 100)"),
        DatasetOption("stride", positive_int, None, "training window step (default --seq-len)"),
        DatasetOption(
            "max_chars",
            positive_int,
            None,
            "use only the first N characters of each split (quick runs)",
            metavar="N",
        ),
    ),
    "delayed-copy": (
        DatasetOption("streams", positive_int, 8, "training streams (default 8)", metavar="N"),
        DatasetOption("test_streams", positive_int, 2, "test streams (default 2)", metavar="N"),
        DatasetOption(
            "stream_length", positive_int, 10_000, "steps per stream (default 10000)", metavar="L"
        ),
        DatasetOption("delay", positive_int, 3, "the target is the input this many steps back"),
        DatasetOption("symbols", positive_int, 4, "symbol ids 0..N-1 (default 4)", metavar="N"),
        _SEED,
    ),
    "kjv-stream": (
        DatasetOption(
            "streams",
            positive_int,
            32,
            "contiguous streams the training text is cut into (default 32)",
            metavar="N",
        ),
        DatasetOption(
            "max_chars",
            positive_int,
            None,
            "use only the first N characters of each split (quick runs)",
            metavar="N",
        ),
        DatasetOption(
            "validation",
            switch,
            False,
            "split the training text alone: its first 9/10 train, its last 1/10 the test stream",
        ),
    ),
}

#: The datasets :func:`write_dataset` makes, each with one line saying what its rows hold.
DATASETS: Mapping[str, str] = MappingProxyType(
    {
        "adding": "adding problem: [T, 2] float inputs, float target",
        "sines": "noisy sine classification: [T, 1] inputs, int class",
        "parity": "bit parity: [T, 1] bits, int 0/1",
        "copy": "copy task: token ids, per-step int labels (sequences of 2 * seq-len + 1)",
        "reference-text": "reference text format + dictionary file -> Parquet",
        "ucr": "UCR/UEA classification problem shipped with aeon: [T, C] floats, int class, length",
        "airline": "Airline passengers forecasting windows: [L, 1] floats, [H] float targets",
        "kjv": "King James Bible next-character windows: token ids, per-step int labels",
        "addition": "seq2seq '3+45=' -> '48': source and target token ids, vocabulary.json",
        "dates": "seq2seq date normalisation '5 March 2021' -> '2021-03-05': token ids",
        "delayed-copy": "long streams as a table of steps (stream, position, features, label): "
        "random symbols, the target the input --delay steps back",
        "kjv-stream": "King James Bible as a table of steps: the training text in --streams "
        "contiguous streams, the test text one stream; char id -> next char id",
    }
)
GENERATED = ("adding", "sines", "parity", "copy")


def task_options(task: str) -> dict[str, DatasetOption]:
    """``{name: option}`` of a dataset's own options, in order (not those of
    :data:`OUTPUT_OPTIONS`): what :func:`write_dataset` takes as ``**options``."""
    if task not in _OPTIONS:
        raise ValueError(f"task = {task!r}: must be one of {sorted(_OPTIONS)}")
    return {option.name: option for option in _OPTIONS[task]}


def resolve_options(task: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``task``: the given ones checked and converted, the others their
    defaults (None counts as not given). ValueError names an unknown, missing or bad option."""
    known = task_options(task)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {task!r}; known: {list(known)}")
    resolved = {}
    for name, option in known.items():
        given = options.get(name)
        if given is None and option.required:
            raise ValueError(f"{name} is required for {task!r}")
        resolved[name] = option.default if given is None else option.value(given)
    return resolved


# ------------------------------------------------------------------------------ the result
@dataclasses.dataclass(frozen=True)
class WrittenSplit:
    """A split written: ``name`` (train or test), its directory, rows and Parquet files."""

    name: str
    path: Path
    rows: int
    files: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A JSON file written next to the splits (``classes.json``, ...) and what it holds."""

    name: str
    path: Path
    summary: str


@dataclasses.dataclass(frozen=True)
class WrittenDataset:
    """What :func:`write_dataset` wrote: the splits that have rows, then the JSON files."""

    task: str
    out: Path
    splits: tuple[WrittenSplit, ...]
    files: tuple[WrittenFile, ...]


def write_dataset(
    task: str,
    out: str | os.PathLike,
    *,
    rows_per_file: int = 100_000,
    overwrite: bool = False,
    **options: Any,
) -> WrittenDataset:
    """Make the dataset ``task`` and write its splits to ``out/train`` and ``out/test``.

    Parameters
    ----------
    task : str
        One of :data:`DATASETS`.
    out : str or os.PathLike
        Output directory; ``train/``, ``test/`` and the dataset's JSON files go there. They
        must not exist (or be empty) unless ``overwrite``.
    rows_per_file : int, default 100_000
        Rows per Parquet file.
    overwrite : bool, default False
        Replace datasets (and JSON files) already there.
    **options
        The dataset's options (:func:`task_options`), as values or as their text.

    Returns
    -------
    WrittenDataset
        The splits written (rows, files) and the JSON files, each with a one-line summary.

    Raises
    ------
    ValueError, TypeError, OSError
        For a bad option or output; nothing is left behind.
    ImportError
        When a public dataset's package (the ``datasets`` extra) is missing.
    """
    _, per_file, replace = OUTPUT_OPTIONS
    resolved = MappingProxyType(resolve_options(task, options))
    where = (Path(out), per_file.value(rows_per_file), replace.value(overwrite))
    return _MAKERS.get(task, _make_generated)(_Request(task, resolved, *where))


# ------------------------------------------------------------------------------ writing
@dataclasses.dataclass(frozen=True)
class _Request:
    """One :func:`write_dataset` call: the dataset with all its options, and where to write."""

    task: str
    options: Mapping[str, Any]
    out: Path
    rows_per_file: int
    overwrite: bool


def _writers(
    request: _Request, sidecars: Iterable[str] = (), **options: Any
) -> dict[str, ParquetDatasetWriter]:
    """A writer per split (``options`` go to each); ``sidecars`` are the OUT/*.json files
    the task writes, which must not exist yet unless overwrite."""
    out = request.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if not request.overwrite:
        for split in SPLITS:
            if (out / split).is_dir() and any((out / split).iterdir()):
                raise FileExistsError(f"{out / split} is not empty; pass --overwrite to replace it")
        for name in sidecars:
            if (out / name).exists():
                raise FileExistsError(f"{out / name} exists; pass --overwrite to replace it")
    writers: dict[str, ParquetDatasetWriter] = {}
    try:
        for split in SPLITS:
            writers[split] = ParquetDatasetWriter(
                out / split,
                rows_per_file=request.rows_per_file,
                overwrite=request.overwrite,
                **options,
            )
    except BaseException:
        _abort(writers.values())  # e.g. OUT/test is not empty: leave no OUT/train behind
        raise
    return writers


def _abort(writers: Iterable[ParquetDatasetWriter]) -> None:
    for writer in writers:
        writer.abort()


def _check_split(rows: int, test_fraction: float | Fraction) -> None:
    test = math.floor(rows * Fraction(test_fraction))
    if rows - test < 1:
        raise ValueError(
            f"--test-fraction {float(test_fraction):g} leaves no training rows out of {rows}"
        )


def _write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically (temporary name, then rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


Fill = Callable[[dict[str, ParquetDatasetWriter]], None]


def _write(
    request: _Request,
    fill: Fill,
    sidecars: Mapping[str, tuple[Any, str]] | None = None,
    **options: Any,
) -> WrittenDataset:
    """Fill both splits, then write ``sidecars`` (``{file name: (JSON document, summary)}``)
    to OUT."""
    sidecars = dict(sidecars or {})
    writers = _writers(request, sidecars, **options)
    try:
        fill(writers)
        done = {split: writer.close() for split, writer in writers.items()}
    except BaseException:
        _abort(writers.values())  # a writer already closed keeps its dataset
        raise
    splits = tuple(
        WrittenSplit(split, writer.path, writer.rows, tuple(done[split]))
        for split, writer in writers.items()
        if writer.rows
    )
    files = []
    for name, (document, summary) in sidecars.items():
        path = request.out / name
        _write_json(path, document)
        files.append(WrittenFile(name, path, summary))
    return WrittenDataset(request.task, request.out, splits, tuple(files))


# ------------------------------------------------------------------------------ generated
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


def _generate(request: _Request, block: int, n: int) -> tuple[np.ndarray, ...]:
    options = request.options
    rng = np.random.default_rng([options["seed"], block])
    seq_len = options["seq_len"]
    if request.task == "adding":
        return adding_problem(n, seq_len, rng, min_len=options["min_len"])
    if request.task == "sines":
        return noisy_sines(
            n,
            seq_len,
            options["classes"],
            rng,
            noise=options["noise"],
            min_len=options["min_len"],
        )
    if request.task == "parity":
        return parity(n, seq_len, rng, min_len=options["min_len"])
    return copy_task(n, seq_len, options["symbols"], rng)


def _blocks(request: _Request) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    rows = request.options["rows"]
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        yield start, _generate(request, block, min(BLOCK_ROWS, rows - start))


def _make_generated(request: _Request) -> WrittenDataset:
    test_fraction = request.options["test_fraction"]
    _check_split(request.options["rows"], test_fraction)
    _generate(request, 0, 1)  # bad task options fail here, before any directory is made

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for start, (x, y, lengths) in _blocks(request):
            test = held_out(start, len(x), test_fraction)
            for split, rows in (("train", ~test), ("test", test)):
                if rows.any():
                    writers[split].write(x[rows], y[rows], lengths[rows])

    return _write(request, fill)


# ------------------------------------------------------------------------------ reference text
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


def _make_reference_text(request: _Request) -> WrittenDataset:
    options = request.options
    for flag, path in (("--input", options["input"]), ("--dictionary", options["dictionary"])):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{flag} {path}: no such file")
    unknown, token_ids = options["unknown_token"], options["token_ids"]
    vocab, vectors = load_word_vectors(options["dictionary"], unknown_token=unknown)
    sequences, labels = read_labelled_token_file(options["input"], vocab, unknown_token=unknown)
    sizes = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    ids = np.concatenate(sequences)
    _check_split(len(labels), options["test_fraction"])
    test = held_out(0, len(labels), options["test_fraction"])

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, rows in (("train", ~test), ("test", test)):
            if not rows.any():
                continue
            split_ids = ids[np.repeat(rows, sizes)]
            split_sizes, split_labels = sizes[rows], labels[rows]
            step_bytes = 4 if token_ids else vectors[0].nbytes
            ends = np.cumsum(split_sizes)
            for first, stop in _token_blocks(split_sizes, step_bytes):
                block = split_ids[int(ends[first] - split_sizes[first]) : int(ends[stop - 1])]
                values = block if token_ids else vectors[block]
                writers[split].write_ragged(
                    values, split_sizes[first:stop], split_labels[first:stop]
                )

    return _write(request, fill)


# ------------------------------------------------------------------------------ UCR/UEA
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
    """``({"train": LabelledSequences, "test": ...}, stats)`` as the ``ucr`` dataset writes
    them: with ``standardize_channels`` the features are scaled by the training split's
    per-channel mean and std, and ``stats`` is the ``standardize.json`` document (else None)."""
    from sparklstm.datasets.ucr import load_ucr

    splits = {split: load_ucr(name, split) for split in SPLITS}
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


def _make_ucr(request: _Request) -> WrittenDataset:
    name = request.options["name"]
    splits, stats = ucr_splits(name, request.options["standardize"])
    classes = splits["train"].classes

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, data in splits.items():
            writers[split].write(data.features, data.labels, data.lengths)

    document = {"dataset": name, "classes": list(classes)}
    sidecars = {"classes.json": (document, f"{len(classes)} names")}
    if stats is not None:
        sidecars["standardize.json"] = (stats, f"{len(stats['mean'])} channels, train split")
    return _write(request, fill, sidecars, length_col="length")


# ------------------------------------------------------------------------------ Airline
def airline_series(test_months: int = 36, validation: bool = False) -> tuple[Any, Any]:
    """``(months, passengers)`` that the ``airline`` dataset splits: the whole series, or with
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
    """The windows the ``airline`` dataset writes (:func:`sparklstm.datasets.holdout_windows`
    of :func:`airline_series`, then each window's level subtracted, see
    :func:`~sparklstm.datasets.window_levels`)."""
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


def _make_airline(request: _Request) -> WrittenDataset:
    options = request.options
    data = airline_split(**options)

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        writers["train"].write(data.x_train, data.y_train)
        writers["test"].write(data.x_test, data.y_test)

    scaler = data.scaler
    kind = "seasonal log difference" if options["seasonal_difference"] else "log"
    summary = f"{kind}, then mean {scaler.mean:.6g} std {scaler.std:.6g}"
    sidecars = {"scaler.json": (scaler.to_config(), summary)}
    if options["level"] != "none" or options["seasonal_difference"] or options["validation"]:
        sidecars["windows.json"] = (dict(options), f"level {options['level']}, {kind}")
    return _write(request, fill, sidecars, per_step_labels=False)


# ------------------------------------------------------------------------------ King James Bible
def _next_char_blocks(
    ids: np.ndarray, seq_len: int, stride: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """``next_token_windows(ids, seq_len, stride)`` in blocks of BLOCK_ROWS windows."""
    count = (len(ids) - 1 - seq_len) // stride + 1
    for first in range(0, count, BLOCK_ROWS):
        stop = min(count, first + BLOCK_ROWS)
        piece = ids[first * stride : (stop - 1) * stride + seq_len + 1]
        yield next_token_windows(piece, seq_len, stride)


def _make_kjv(request: _Request) -> WrittenDataset:
    from sparklstm.datasets.kjv import load_kjv

    seq_len, max_chars = request.options["seq_len"], request.options["max_chars"]
    corpus = load_kjv()
    ids = {"train": corpus.train_ids, "test": corpus.test_ids}
    if max_chars is not None:
        ids = {split: part[:max_chars] for split, part in ids.items()}
    for split, part in ids.items():
        if len(part) < seq_len + 1:
            raise ValueError(
                f"--seq-len {seq_len}: the {split} split has only {len(part)} characters, "
                f"need at least {seq_len + 1}"
            )
    strides = {"train": request.options["stride"] or seq_len, "test": seq_len}

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, part in ids.items():
            for inputs, targets in _next_char_blocks(part, seq_len, strides[split]):
                writers[split].write(inputs, targets)

    vocab = corpus.vocab
    sidecars = {"vocab.json": (vocab.to_config(), f"{len(vocab)} symbols")}
    return _write(request, fill, sidecars, per_step_labels=True)


# ------------------------------------------------------------------------------ transduction
def _make_transduction(request: _Request) -> WrittenDataset:
    from sparklstm.datasets import transduction  # here: it imports this module

    options = request.options
    _check_split(options["rows"], options["test_fraction"])
    transduction.check_options(request.task, options)
    vocab = transduction.vocabulary(request.task)

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, sources, targets in transduction.split_rows(request.task, options):
            writers[split].write_table(transduction.table(vocab, sources, targets))

    summary = f"{vocab.size} tokens (<pad> <start> <end>, {len(vocab.characters)} characters)"
    return _write(request, fill, {"vocabulary.json": (vocab.to_config(), summary)})


# ------------------------------------------------------------------------------ long streams
def _make_delayed_copy(request: _Request) -> WrittenDataset:
    from sparklstm.datasets import streams as long_streams

    options = request.options
    length, delay, symbols = options["stream_length"], options["delay"], options["symbols"]
    long_streams.check_delayed_copy(length, delay, symbols)
    first_test = options["streams"]
    ids = {
        "train": range(first_test),
        "test": range(first_test, first_test + options["test_streams"]),
    }

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, streams in ids.items():
            for stream in streams:
                blocks = long_streams.delayed_copy_blocks(
                    options["seed"], stream, length, delay, symbols
                )
                for first, inputs, targets in blocks:
                    writers[split].write_table(
                        long_streams.step_table(stream, first, inputs, targets)
                    )

    return _write(request, fill)


def _make_kjv_stream(request: _Request) -> WrittenDataset:
    from sparklstm.datasets import streams as long_streams
    from sparklstm.datasets.kjv import load_kjv

    options = request.options
    corpus = load_kjv()
    splits = long_streams.kjv_streams(
        corpus.train_ids,
        corpus.test_ids,
        options["streams"],
        options["max_chars"],
        options["validation"],
    )

    def fill(writers: dict[str, ParquetDatasetWriter]) -> None:
        for split, streams in (("train", splits.train), ("test", splits.test)):
            for stream, ids in enumerate(streams):
                for first, inputs, targets in long_streams.next_id_blocks(ids):
                    writers[split].write_table(
                        long_streams.step_table(stream, first, inputs, targets)
                    )

    vocab = corpus.vocab
    sidecars = {"vocab.json": (vocab.to_config(), f"{len(vocab)} symbols")}
    return _write(request, fill, sidecars)


_MAKERS: dict[str, Callable[[_Request], WrittenDataset]] = {
    "reference-text": _make_reference_text,
    "ucr": _make_ucr,
    "airline": _make_airline,
    "kjv": _make_kjv,
    "addition": _make_transduction,
    "dates": _make_transduction,
    "delayed-copy": _make_delayed_copy,
    "kjv-stream": _make_kjv_stream,
}
