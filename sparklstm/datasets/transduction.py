"""String transduction datasets for sequence-to-sequence models: ``addition`` and ``dates``.

Each row is a source string and the target string a model should write for it, both as token
ids of one :class:`~sparklstm.data.vocabulary.CharVocabulary` (no start or end tokens):

- ``addition``: ``"3+45="`` -> ``"48"``. Each operand first draws its number of digits, uniform
  in ``1 .. max_digits``, then its value, uniform among the numbers of that many digits (0..9
  for one digit, no leading zeros), so every source length is common enough to train on and
  to hold out: with 3 digits the source lengths 4..8 come in the proportions 1:2:3:2:1.
- ``dates``: a day uniform between 1 January ``min_year`` and 31 December ``max_year``,
  written in one of :data:`DATE_FORMATS` (uniform; fixed English names, nothing depends on
  the locale) -> its ISO form ``"2021-03-05"``. The two-digit year of ``"Mar 5 21"`` is the
  one year of the range ending in those digits (hence a range of at most 100 years).

Rows are drawn in blocks of :data:`~sparklstm.datasets.generate.BLOCK_ROWS`, block ``b`` from
``numpy.random.default_rng([seed, b])`` (:func:`pairs`; whole blocks, so row ``i`` of the
drawn rows is the same whatever ``rows``), and :func:`split_rows` sends them to the splits:

- Without held-out lengths, the first ``rows`` rows drawn are kept and row ``i`` is a test row
  as for the other generated tasks (:func:`~sparklstm.datasets.generate.held_out`): exactly
  ``floor(rows * test_fraction)`` test rows, spread evenly.
- With held-out lengths (source lengths, in characters), the test split holds only rows whose
  source has one of these lengths and the train split none: whole blocks are drawn, each row
  going to the split its source length belongs to, in order, until the train split has
  ``rows - floor(rows * test_fraction)`` rows and the test split ``floor(rows *
  test_fraction)``; rows for a split already full are dropped. The sizes are those of a
  random split, and the rows depend only on the options, ``rows`` and ``seed``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from sparklstm.data.vocabulary import CharVocabulary
from sparklstm.datasets.generate import BLOCK_ROWS, held_out

__all__ = [
    "ADDITION_CHARACTERS",
    "DATE_CHARACTERS",
    "DATE_FORMATS",
    "MONTHS",
    "TASKS",
    "WEEKDAYS",
    "addition_pairs",
    "check_options",
    "date_pairs",
    "pairs",
    "source_lengths",
    "split_rows",
    "table",
    "vocabulary",
]

TASKS = ("addition", "dates")
ADDITION_CHARACTERS = "0123456789+="
#: Every character a date source or target may hold, in code-point order.
DATE_CHARACTERS = " ,-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_DIGITS = 18  # operands and sums stay within int64
# A held-out split is given up on after this many times --rows drawn rows (plus 100 blocks).
_DRAWN_PER_ROW = 100


def _month(date: datetime.date) -> str:
    return MONTHS[date.month - 1]


#: ``(example for 2021-03-05, writer)`` of each way a ``dates`` source is written, in the
#: order the generator numbers them.
DATE_FORMATS: tuple[tuple[str, Callable[[datetime.date], str]], ...] = (
    ("5 March 2021", lambda d: f"{d.day} {_month(d)} {d.year}"),
    ("march 5, 2021", lambda d: f"{_month(d).lower()} {d.day}, {d.year}"),
    ("05/03/2021", lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}"),
    ("Mar 5 21", lambda d: f"{_month(d)[:3]} {d.day} {d.year % 100:02d}"),
    ("2021 March 05", lambda d: f"{d.year} {_month(d)} {d.day:02d}"),
    ("Friday, 5 March 2021", lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {_month(d)} {d.year}"),
    ("05 MAR 2021", lambda d: f"{d.day:02d} {_month(d)[:3].upper()} {d.year}"),
    ("5.3.2021", lambda d: f"{d.day}.{d.month}.{d.year}"),
)


# ------------------------------------------------------------------------------ generators
def addition_pairs(n: int, max_digits: int, rng: np.random.Generator) -> tuple[list, list]:
    """``n`` sources ``"a+b="`` and targets ``"a+b"`` (the sum), operands of ``1 ..
    max_digits`` digits (uniform), each uniform among the numbers of its digits."""
    operands = []
    for _ in range(2):
        digits = rng.integers(1, max_digits + 1, size=n)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        operands.append(rng.integers(low, 10**digits).tolist())
    a, b = operands
    sources = [f"{x}+{y}=" for x, y in zip(a, b, strict=True)]
    targets = [str(x + y) for x, y in zip(a, b, strict=True)]
    return sources, targets


def date_pairs(n: int, min_year: int, max_year: int, rng: np.random.Generator) -> tuple[list, list]:
    """``n`` dates uniform over the days of ``min_year .. max_year``, each written in a format
    of :data:`DATE_FORMATS` drawn uniformly, and their ISO forms."""
    first = datetime.date(min_year, 1, 1).toordinal()
    last = datetime.date(max_year, 12, 31).toordinal()
    days = rng.integers(first, last + 1, size=n).tolist()
    formats = rng.integers(0, len(DATE_FORMATS), size=n).tolist()
    sources, targets = [], []
    for day, kind in zip(days, formats, strict=True):
        date = datetime.date.fromordinal(day)
        sources.append(DATE_FORMATS[kind][1](date))
        targets.append(f"{date.year:04d}-{date.month:02d}-{date.day:02d}")
    return sources, targets


def pairs(task: str, options: Mapping[str, Any], block: int, n: int) -> tuple[list, list]:
    """Rows ``block * BLOCK_ROWS ..`` of the drawn sequence: ``n`` (sources, targets) from
    ``numpy.random.default_rng([seed, block])``."""
    rng = np.random.default_rng([options["seed"], block])
    if task == "addition":
        return addition_pairs(n, options["max_digits"], rng)
    return date_pairs(n, options["min_year"], options["max_year"], rng)


def vocabulary(task: str) -> CharVocabulary:
    """The vocabulary of ``task``'s sources and targets (what ``vocabulary.json`` holds)."""
    return CharVocabulary(ADDITION_CHARACTERS if task == "addition" else DATE_CHARACTERS)


def source_lengths(task: str, options: Mapping[str, Any]) -> list[int]:
    """Every length a source of ``task`` can have with these options, ascending."""
    if task == "addition":
        return list(range(4, 2 * options["max_digits"] + 3))
    # Any year has every weekday with both one- and two-digit days of every month, and every
    # year of 1000..9999 has four digits: the lengths do not depend on the range.
    lengths = set()
    for month in range(1, 13):
        for day in (1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16):
            date = datetime.date(2001, month, day)
            lengths.update(len(write(date)) for _, write in DATE_FORMATS)
    return sorted(lengths)


def check_options(task: str, options: Mapping[str, Any]) -> None:
    """ValueError (one line, naming the options as ``jobs.make_data`` spells them) for options
    that are each fine but do not go together."""
    if task == "addition" and options["max_digits"] > MAX_DIGITS:
        raise ValueError(f"--max-digits {options['max_digits']}: must be <= {MAX_DIGITS}")
    if task == "dates":
        low, high = options["min_year"], options["max_year"]
        if low > high:
            raise ValueError(f"--min-year {low} is after --max-year {high}")
        if high - low >= 100:
            raise ValueError(
                f"--min-year {low} .. --max-year {high}: at most 100 years, or the two-digit "
                "years ('Mar 5 21') would be ambiguous"
            )
    held = options["held_out_lengths"]
    if not held:
        return
    possible = source_lengths(task, options)
    flag = f"--held-out-lengths {','.join(map(str, held))}"
    impossible = [length for length in held if length not in possible]
    if impossible:
        raise ValueError(
            f"{flag}: no {task} source has length {impossible[0]} (possible: "
            f"{_ranges(possible)}); pass --held-out-lengths '' for a random split"
        )
    if set(possible) <= set(held):
        raise ValueError(f"{flag}: holds out every source length, leaving no training rows")


def _ranges(lengths: list[int]) -> str:
    """``"4..8"`` for consecutive lengths, else the list."""
    if lengths == list(range(lengths[0], lengths[-1] + 1)):
        return f"{lengths[0]}..{lengths[-1]}"
    return ",".join(map(str, lengths))


# ------------------------------------------------------------------------------ the splits
Rows = tuple[str, list, list]


def split_rows(task: str, options: Mapping[str, Any]) -> Iterator[Rows]:
    """``(split, sources, targets)`` pieces of the two splits, in order (see the module's
    description); ValueError when held-out lengths are so rare (or so common) that a split does
    not fill after ``100 * rows`` drawn rows (and at least 100 blocks)."""
    rows, fraction = options["rows"], options["test_fraction"]
    held = options["held_out_lengths"]
    if not held:
        for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
            sources, targets = pairs(task, options, block, BLOCK_ROWS)  # whole blocks, so
            n = min(BLOCK_ROWS, rows - start)  # row i is the same for any --rows > i
            sources, targets = sources[:n], targets[:n]
            test = held_out(start, n, fraction).tolist()
            for split, wanted in (("train", False), ("test", True)):
                picked = [i for i, is_test in enumerate(test) if is_test == wanted]
                if picked:
                    yield split, [sources[i] for i in picked], [targets[i] for i in picked]
        return
    test_rows = math.floor(rows * fraction)
    missing = {"train": rows - test_rows, "test": test_rows}
    blocks = max(100, math.ceil(_DRAWN_PER_ROW * rows / BLOCK_ROWS))
    held = set(held)
    for block in range(blocks):
        if not any(missing.values()):
            return
        sources, targets = pairs(task, options, block, BLOCK_ROWS)
        test = [len(source) in held for source in sources]
        for split, wanted in (("train", False), ("test", True)):
            picked = [i for i, is_test in enumerate(test) if is_test == wanted]
            picked = picked[: missing[split]]
            missing[split] -= len(picked)
            if picked:
                yield split, [sources[i] for i in picked], [targets[i] for i in picked]
    if any(missing.values()):
        split = "test" if missing["test"] else "train"
        lengths = ",".join(map(str, sorted(held)))
        raise ValueError(
            f"--held-out-lengths {lengths}: {blocks * BLOCK_ROWS} rows drawn did not fill the "
            f"{split} split ({missing[split]} rows missing); hold out lengths that are more "
            "common" + (" and fewer of them" if split == "train" else "")
        )


def _ids(vocab: CharVocabulary, texts: list[str]) -> pa.Array:
    """``array<int>`` of the ids of each text."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(text) for text in texts], out=offsets[1:])
    values = vocab.encode("".join(texts))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def table(vocab: CharVocabulary, sources: list[str], targets: list[str]) -> pa.Table:
    """The Parquet rows: ``source`` and ``target``, both ``array<int>`` token ids."""
    return pa.table({"source": _ids(vocab, sources), "target": _ids(vocab, targets)})
