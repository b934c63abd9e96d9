"""Write training data as Parquet in the trainer's input schema (pyarrow only, no Spark).

    python -m jobs.make_data adding --rows 100000 --seq-len 50 --min-len 20 --out data/adding
    python -m jobs.make_data copy --rows 20000 --seq-len 10 --symbols 8 --out data/copy
    python -m jobs.make_data reference-text --input train.txt --dictionary vectors.txt \\
        --out data/behaviour

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
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NoReturn

import numpy as np

from sparklstm.data.embeddings import load_word_vectors, read_labelled_token_file
from sparklstm.data.synthetic import adding_problem, copy_task, noisy_sines, parity
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


def _writers(args: argparse.Namespace) -> dict[str, ParquetDatasetWriter]:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if not args.overwrite:
        for split in ("train", "test"):
            if (out / split).is_dir() and any((out / split).iterdir()):
                raise FileExistsError(f"{out / split} is not empty; pass --overwrite to replace it")
    writers: dict[str, ParquetDatasetWriter] = {}
    try:
        for split in ("train", "test"):
            writers[split] = ParquetDatasetWriter(
                out / split, rows_per_file=args.rows_per_file, overwrite=args.overwrite
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


def _write(
    args: argparse.Namespace, fill: Callable[[dict[str, ParquetDatasetWriter]], None]
) -> None:
    writers = _writers(args)
    try:
        fill(writers)
        done = {split: writer.close() for split, writer in writers.items()}
    except BaseException:
        _abort(writers.values())  # a writer already closed keeps its dataset
        raise
    for split, writer in writers.items():
        if writer.rows:
            print(f"{split}: {writer.rows} rows -> {writer.path} ({len(done[split])} files)")


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


def main(argv: list[str] | None = None) -> int:
    """Run the job; returns the exit status (2 for a user mistake, with one line on stderr)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.task == "reference-text":
            _make_reference_text(args)
        else:
            _make_generated(args)
    except (ValueError, TypeError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
