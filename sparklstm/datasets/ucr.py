"""Time-series classification datasets of the UCR/UEA archive, as shipped inside aeon's wheel.

aeon (the ``datasets`` extra) includes a few archive problems with their official train/test
split as ``.ts`` files under ``aeon/datasets/data/<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts``:
GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1 (univariate), BasicMotions,
JapaneseVowels (multivariate), PickupGestureWiimoteZ (variable length), ... This module finds
those files without importing aeon, never downloads anything, and parses them itself into the
core's arrays (zero-padded ``[n, time, channels]`` float64, lengths, class ids ``0..K-1``).

Class ids follow the sorted class names: by numeric value when every name is a number
(``"1" < "2" < "10"``), else by string; ties keep string order. The same name therefore has
the same id in both splits and on every machine.

The ``.ts`` format: ``#`` (or ``%``) comment lines, ``@key value`` header lines up to
``@data``, then one case per line, its channels separated by ``:`` (each a comma-separated
series) and the class name last. ``?`` marks a missing value and is read as NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sparklstm.data.padding import pad_sequences
from sparklstm.datasets.extra import package_dir

__all__ = ["LabelledSequences", "SPLITS", "ucr_names", "ucr_files", "load_ucr", "read_ts"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
_NEEDED_FOR = "sparklstm.datasets.ucr (the .ts files shipped in aeon's wheel)"


class LabelledSequences(NamedTuple):
    """A labelled set of (possibly variable-length) multichannel series.

    Attributes
    ----------
    features : np.ndarray
        ``float64 [n, T, C]``: series padded with zeros after their length; ``T`` is the
        longest length.
    lengths : np.ndarray
        ``int64 [n]``: valid steps of each series.
    labels : np.ndarray
        ``int64 [n]``: class ids in ``[0, len(classes))``.
    classes : tuple of str
        The original class names; ``classes[k]`` is the name of id ``k``.
    """

    features: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# The .ts format
# --------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-comment (``#``, ``%``) lines."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text and not text.startswith(("#", "%")):
                yield number, text


def _read_header(lines: Iterator[tuple[int, str]], path: Path) -> dict[str, list[str]]:
    """The ``@key value...`` lines up to ``@data`` as ``{key in lower case: [values]}``."""
    header: dict[str, list[str]] = {}
    for number, text in lines:
        if not text.startswith("@"):
            raise ValueError(f"{path}:{number}: expected a header line '@...' before @data")
        key, *values = text[1:].split()
        key = key.lower()
        if key == "data":
            return header
        header[key] = values
    raise ValueError(f"{path}: no @data line")


def _flag(header: dict[str, list[str]], key: str) -> bool:
    values = header.get(key)
    return bool(values) and values[0].lower() == "true"


def _declared_classes(path: Path) -> tuple[str, ...] | None:
    """Class names of a classification file without timestamps, else None."""
    try:
        header = _read_header(_lines(path), path)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not _flag(header, "classlabel") or _flag(header, "timestamps"):
        return None
    return tuple(header["classlabel"][1:])


def _parse_channel(text: str, path: Path, number: int) -> np.ndarray:
    values = text.split(",")
    try:
        series = np.array(["nan" if v.strip() == "?" else v for v in values], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}:{number}: not a comma-separated series of numbers") from None
    return series


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], tuple[str, ...]]:
    """Read a classification ``.ts`` file (no timestamps).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    series : list of np.ndarray
        One ``float64 [t_i, C]`` array per case (channels last).
    labels : list of str
        The class name of each case.
    declared : tuple of str
        The class names listed in the ``@classLabel`` header line.

    Raises
    ------
    ValueError
        Naming the file and line: no ``@classLabel true`` header, timestamps, a value that is
        not a number, a case with another number of channels than the others (or than
        ``@dimensions``), channels of unequal length, or a class not in the header.
    """
    path = Path(path)
    lines = _lines(path)
    header = _read_header(lines, path)
    if not _flag(header, "classlabel"):
        raise ValueError(f"{path}: not a classification file (no '@classLabel true' header)")
    if _flag(header, "timestamps"):
        raise ValueError(f"{path}: series with timestamps are not supported")
    declared = tuple(header["classlabel"][1:])
    channels = int(header["dimensions"][0]) if header.get("dimensions") else None
    known = set(declared)
    series: list[np.ndarray] = []
    labels: list[str] = []
    for number, text in lines:
        *fields, label = text.split(":")
        label = label.strip()
        if not fields:
            raise ValueError(f"{path}:{number}: expected 'series:...:class', found no ':'")
        if channels is None:
            channels = len(fields)
        if len(fields) != channels:
            raise ValueError(f"{path}:{number}: {len(fields)} channels, expected {channels}")
        if known and label not in known:
            raise ValueError(
                f"{path}:{number}: class {label!r} is not among the declared {list(declared)}"
            )
        parsed = [_parse_channel(field, path, number) for field in fields]
        sizes = {len(p) for p in parsed}
        if len(sizes) != 1:
            raise ValueError(f"{path}:{number}: channels of unequal lengths {sorted(sizes)}")
        series.append(np.stack(parsed, axis=1))
        labels.append(label)
    if not series:
        raise ValueError(f"{path}: no cases after @data")
    return series, labels, declared


def _class_order(names: set[str]) -> tuple[str, ...]:
    """Numeric order when every name is a number, else string order (deterministic)."""
    try:
        return tuple(sorted(names, key=lambda s: (float(s), s)))
    except ValueError:
        return tuple(sorted(names))


# --------------------------------------------------------------------------------------------
# The shipped datasets
# --------------------------------------------------------------------------------------------


def _data_dir() -> Path:
    return package_dir("aeon", "aeon", _NEEDED_FOR) / "datasets" / "data"


def ucr_files() -> dict[str, tuple[Path, Path]]:
    """``{name: (train file, test file)}`` for every classification problem shipped in aeon.

    A problem qualifies when both ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` exist in one
    folder and declare ``@classLabel true`` without timestamps (regression problems such as
    Covid3Month are left out).

    Raises
    ------
    ImportError
        aeon is not installed (``pip install 'sparklstm[datasets]'``).
    """
    found: dict[str, tuple[Path, Path]] = {}
    for train in sorted(_data_dir().glob("*/*_TRAIN.ts")):
        name = train.name[: -len("_TRAIN.ts")]
        test = train.with_name(f"{name}_TEST.ts")
        if not test.is_file():
            continue
        if _declared_classes(train) is None or _declared_classes(test) is None:
            continue
        found[name] = (train, test)
    return found


def ucr_names() -> tuple[str, ...]:
    """Names :func:`load_ucr` accepts, sorted (e.g. ``"GunPoint"``, ``"JapaneseVowels"``)."""
    return tuple(sorted(ucr_files(), key=lambda s: (s.lower(), s)))


def load_ucr(name: str, split: str = "train") -> LabelledSequences:
    """Load one split of a UCR/UEA classification problem shipped with aeon (no download).

    Parameters
    ----------
    name : str
        Problem name as in :func:`ucr_names` (case-sensitive), e.g. ``"GunPoint"``,
        ``"BasicMotions"``, ``"JapaneseVowels"``.
    split : {"train", "test"}, default "train"
        The archive's official split.

    Returns
    -------
    LabelledSequences
        ``(features [n, T, C] float64, lengths [n] int64, labels [n] int64, classes)``. The
        class names and ids are the same for both splits (the union of the names the two
        files declare, in the order described in the module docstring).

    Raises
    ------
    ValueError
        ``name`` is not a shipped classification problem (the message lists those that are),
        ``split`` is not ``"train"``/``"test"``, or the file is malformed.
    ImportError
        aeon is not installed (``pip install 'sparklstm[datasets]'``).

    Examples
    --------
    >>> x, lengths, y, classes = load_ucr("GunPoint", "test")  # doctest: +SKIP
    >>> x.shape, classes
    ((150, 150, 1), ('1', '2'))
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if split not in SPLITS:
        raise ValueError(f"split = {split!r}: must be 'train' or 'test'")
    files = ucr_files()
    if name not in files:
        available = ", ".join(sorted(files, key=lambda s: (s.lower(), s)))
        raise ValueError(
            f"name = {name!r}: not a classification dataset shipped with aeon; "
            f"available: {available}"
        )
    train_path, test_path = files[name]
    path = train_path if split == "train" else test_path
    series, names, declared = read_ts(path)
    other = _declared_classes(test_path if split == "train" else train_path) or ()
    classes = _class_order(set(declared) | set(other) | set(names))
    ids = {c: k for k, c in enumerate(classes)}
    features, lengths = pad_sequences(series, dtype=np.float64)
    labels = np.fromiter((ids[c] for c in names), dtype=np.int64, count=len(names))
    logger.debug(
        "%s %s: %d series, %d channels, lengths %d..%d, %d classes",
        name,
        split,
        len(series),
        features.shape[2],
        int(lengths.min()),
        int(lengths.max()),
        len(classes),
    )
    return LabelledSequences(features, lengths.astype(np.int64), labels, classes)
