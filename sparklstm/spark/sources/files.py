"""Where the data is and what it holds, before and while Spark reads it.

A local path's first data file is sniffed (:func:`_check_format`): data in another format than
the one asked for is one ``ValueError`` naming the file, what it holds and the option to pass.
Spark's own errors on reading a path become one line too (:func:`_spark_reading`,
:func:`_load`), as does a missing column (:func:`_require_columns`). :class:`_Names` says how
the messages name the path and the options: as a job's flags or as function arguments.

No pyspark at module level: the errors are imported where they are caught.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class _Names:
    """How error messages name the path and the options: as a job's flags (``--data X``,
    ``--format csv``) or as :func:`read_sequences`'s arguments (``path X``, ``format='csv'``)."""

    flag: str | None = None

    def path(self, argument: str = "path") -> str:
        """The name of ``path`` (or, with ``argument="dictionary"``, of the dictionary)."""
        if self.flag is None:
            return argument
        return self.flag if argument == "path" else f"--{argument}"

    def format(self, value: str) -> str:
        return f"--format {value}" if self.flag is not None else f"format={value!r}"

    def format_option(self) -> str:
        return "--format" if self.flag is not None else "format="


# A data file's first and last 4 bytes in Parquet; how much of a file the sniff reads.
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 4096
_SNIFF_FILES = 8  # empty files skipped before the sniff gives up
_GZIP_MAGIC = b"\x1f\x8b"
_TEXT_CONTROLS = frozenset(range(32)) - {9, 10, 12, 13}


def _local_path(path: str) -> Path | None:
    """The local file-system path of ``path`` (no URI scheme, or ``file:``); None for remote
    URIs (hdfs://, s3a://, ...) and glob patterns, which only Spark resolves."""
    if any(c in path for c in "*?[{"):
        return None
    if path.startswith("file:"):
        return Path("/" + path[len("file:") :].lstrip("/"))
    if "://" in path:
        return None
    return Path(path)


def _ignored(name: str) -> bool:
    """Names Spark's file listing skips: ``_SUCCESS``, ``_temporary``, ``.crc`` and other hidden
    files (a ``_key=value`` partition directory is data)."""
    return (
        (name.startswith("_") and "=" not in name)
        or name.startswith(".")
        or name.endswith((".crc", "._COPYING_"))
    )


def _data_files(root: Path) -> Iterator[Path]:
    """The data files under ``root`` in name order, files before subdirectories (partitioned
    ``key=value/`` directories recurse); ``root`` itself if it is a file."""
    if root.is_file():
        yield root
        return
    try:
        entries = sorted(e for e in root.iterdir() if not _ignored(e.name))
    except OSError:
        return
    directories = []
    for entry in entries:
        if entry.is_file():
            yield entry
        elif entry.is_dir():
            directories.append(entry)
    for directory in directories:
        yield from _data_files(directory)


def _sniff(file: Path) -> tuple[str, str]:
    """What a file holds, by its first bytes: ``("parquet", "")``, ``("csv" | "json", first
    line)``, ``("gzip" | "binary", "")``, or ``("", "")`` when it cannot tell (a Parquet file
    without its footer, an empty or unreadable file)."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            size = handle.seek(0, os.SEEK_END)
            tail = b""
            if size >= 2 * len(_PARQUET_MAGIC):
                handle.seek(-len(_PARQUET_MAGIC), os.SEEK_END)
                tail = handle.read(len(_PARQUET_MAGIC))
    except OSError:
        return "", ""
    if not head:
        return "", ""
    if head.startswith(_PARQUET_MAGIC):
        return ("parquet" if tail == _PARQUET_MAGIC else ""), ""
    if head.startswith(_GZIP_MAGIC):
        return "gzip", ""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed bytes is still text.
        if exc.start < len(head) - 3:
            return "binary", ""
        text = head[: exc.start].decode("utf-8")
    if any(ord(c) in _TEXT_CONTROLS for c in text):
        return "binary", ""
    stripped = text.lstrip()
    if not stripped:
        return "", ""
    first_line = stripped.splitlines()[0]
    return ("json" if stripped[0] in "{[" else "csv"), first_line


def _sniffed(path: str) -> tuple[Path | None, str, str] | None:
    """``(file, kind, first line)`` for the first non-empty data file of a local ``path``;
    ``(None, "", "")`` for a directory without data files; None for a remote URI, a glob or a
    file that cannot be told."""
    local = _local_path(path)
    if local is None or not local.exists():
        return None
    count = -1
    for count, file in enumerate(_data_files(local)):
        if count == _SNIFF_FILES:
            break
        kind, first_line = _sniff(file)
        if kind:
            return file, kind, first_line
        try:
            if file.stat().st_size:
                return None  # data that cannot be told apart: Spark decides
        except OSError:
            return None
    return (None, "", "") if count < 0 and local.is_dir() else None


def _check_format(path: str, format: str, names: _Names, argument: str = "path") -> None:
    """Raise ValueError (one line naming the path, what it holds and the option to use) when a
    local ``path`` plainly does not hold ``format``: not Parquet for ``"parquet"``, Parquet for
    the text formats. Remote URIs and files that cannot be told are left to Spark."""
    found = _sniffed(path)
    if found is None:
        return
    file, kind, first_line = found
    label = f"{names.path(argument)} {path}"
    if file is None:
        raise ValueError(
            f"{label}: the directory holds no data files (names starting with '_' or '.', such "
            "as _SUCCESS, are not data)"
        )
    which = "it" if str(file) == str(_local_path(path)) else f"the file {file}"
    if format == "parquet" and kind != "parquet":
        if kind in ("csv", "json"):
            line = _short(first_line, 60)
            raise ValueError(
                f"{label}: not Parquet ({which} starts like {kind.upper()} text: {line!r}); "
                f"pass {names.format(kind)}"
            )
        if kind == "gzip":
            raise ValueError(
                f"{label}: not Parquet ({which} is gzip-compressed, as a .csv.gz or .json.gz "
                f"file is); pass {names.format('csv')} (or json) for compressed text"
            )
        raise ValueError(
            f"{label}: not Parquet ({which} is binary, unknown format: no 'PAR1' marker of "
            "Parquet); give data in Parquet, CSV, JSON lines or text, with "
            f"{names.format_option()} naming the format"
        )
    if format != "parquet" and kind == "parquet":
        if argument == "dictionary":
            raise ValueError(
                f"{label} is Parquet ({which}); the dictionary must be a text file of "
                "'word<TAB>v1,v2,...' lines"
            )
        remedy = (
            f"drop --format {format}"
            if names.flag is not None
            else "pass format='parquet' (the default)"
        )
        raise ValueError(f"{label} is Parquet ({which}), not {format.upper()}; {remedy}")


def _spark_failures() -> tuple[type[BaseException], ...]:
    """The exceptions Spark raises for data it cannot read: a JVM exception caught by PySpark
    (SparkRuntimeException, IllegalArgumentException, ...), or the raw Py4JJavaError."""
    from pyspark.errors import PySparkException

    failures: list[type[BaseException]] = [PySparkException]
    try:
        from py4j.protocol import Py4JJavaError

        failures.append(Py4JJavaError)
    except ImportError:  # pragma: no cover - Spark Connect clients have no py4j
        pass
    return tuple(failures)


def _spark_message(exc: BaseException) -> str:
    """The first line of Spark's message, and of its root cause when that says more."""
    java = getattr(exc, "java_exception", None)
    lines = []
    if java is not None:
        lines.append(str(java.getMessage() or java.toString()))
        cause = java
        while cause.getCause() is not None and cause.getCause() != cause:
            cause = cause.getCause()
        if cause != java:
            lines.append(str(cause.getMessage() or cause.toString()))
    else:
        lines.append(str(exc))
    firsts = []
    for text in lines:
        first = next((t.strip() for t in text.splitlines() if t.strip()), "")
        if first and first not in firsts:
            firsts.append(_short(first, 240))
    return "; ".join(firsts) or type(exc).__name__


@contextmanager
def _spark_reading(path: str, format: str, names: _Names, argument: str = "path") -> Iterator[None]:
    """Turn Spark's errors on reading ``path`` into one line: FileNotFoundError for a missing
    path, ValueError naming the path, the format and Spark's message otherwise."""
    from pyspark.errors import AnalysisException

    label = names.path(argument)
    try:
        yield
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            raise FileNotFoundError(f"{label}: no such file or directory: {path}") from None
        raise ValueError(_read_failure(label, path, format, names, exc)) from exc
    except _spark_failures() as exc:
        if isinstance(exc, (ValueError, TypeError)):
            raise  # PySpark's own argument checks (PySparkValueError...), not a failure to read
        raise ValueError(_read_failure(label, path, format, names, exc)) from exc


def _read_failure(label: str, path: str, format: str, names: _Names, exc: BaseException) -> str:
    return (
        f"{label} {path}: Spark could not read it as {format} ({_spark_message(exc)}); check "
        f"that {names.format(format)} is the data's format (parquet, csv, json or text)"
    )


def _load(path: str, format: str, reader: Any, names: _Names, argument: str = "path") -> DataFrame:
    """Call ``reader(path)`` with Spark's errors made one line (see :func:`_spark_reading`)."""
    with _spark_reading(path, format, names, argument):
        return reader(path)


def _require_columns(df: DataFrame, where: str, **roles: str | None) -> None:
    present = df.columns
    for role, column in roles.items():
        if column is not None and column not in present:
            raise ValueError(
                f"{role} column {column!r} not found in {where}; columns are {present}"
            )


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
