"""Load training data into the trainer's input schema on Spark.

Reading (:func:`read_sequences`) runs on Spark and turns each supported format into a
DataFrame with

- a sequence column: ``array<array<float>>`` (``[time][feature]``), ``array<float>``
  (univariate) or ``array<int>`` (token ids);
- a label column: ``int`` (class), ``float`` (target), ``array<float>`` (vector target) or an
  ``array`` of per-step labels;
- optionally an ``int`` length column.

Text is parsed with Spark SQL functions only (``split``, ``transform``, ``try_cast``): no
Python UDF and no per-row Python. A value that does not parse is found by one aggregation
job before anything trains, and reported as a ``ValueError`` naming the column, the number of
bad rows and the first bad row's text.

Writing (:func:`write_parquet_dataset`, :class:`ParquetDatasetWriter`) needs no Spark and lives
in :mod:`sparklstm.io.parquet`; both names are re-exported here.

This module imports pyspark lazily, inside :func:`read_sequences`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparklstm.io.parquet import (
    ParquetDatasetWriter,
    PathLike,
    check_column_name,
    check_path,
    write_parquet_dataset,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = [
    "FORMATS",
    "SEQUENCE_TYPES",
    "LABEL_TYPES",
    "read_sequences",
    "tune_parquet_reader",
    "ParquetDatasetWriter",
    "write_parquet_dataset",
]

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "json", "text")
SEQUENCE_TYPES = ("multivariate", "univariate", "tokens")
LABEL_TYPES = ("int", "float", "int_array", "float_array")

_INTEGRAL = ("byte", "short", "integer", "long")
_NUMERIC = _INTEGRAL + ("float", "double", "decimal")
_ROW = "__sparklstm_row"


# --------------------------------------------------------------------------------------------
# Reading on Spark
# --------------------------------------------------------------------------------------------


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} = {value!r}: must be one of {', '.join(map(repr, choices))}")
    return value


def _separator(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def _literal_regex(separator: str) -> str:
    """A Java regex matching ``separator`` literally (``split`` takes a regex)."""
    return "\\Q" + separator.replace("\\E", "\\E\\\\E\\Q") + "\\E"


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


def _type_name(data_type: Any) -> str:
    return data_type.typeName()


def _require_columns(df: DataFrame, where: str, **roles: str | None) -> None:
    present = df.columns
    for role, column in roles.items():
        if column is not None and column not in present:
            raise ValueError(
                f"{role} column {column!r} not found in {where}; columns are {present}"
            )


def _bad_float(v: Column) -> Column:
    from pyspark.sql import functions as F

    return v.isNull() | F.isnan(v) | (F.abs(v) == F.lit(float("inf")))


def _bad_int(v: Column) -> Column:
    return v.isNull()


def _parse_list(text: Column, separator: str, sql_type: str) -> Column:
    from pyspark.sql import functions as F

    return F.transform(F.split(text, _literal_regex(separator)), lambda v: v.try_cast(sql_type))


def _parse_features(
    df: DataFrame, column: str, sequence_type: str, step_sep: str, value_sep: str
) -> tuple[Column, list[tuple[str, Column]]]:
    """The parsed sequence column and ``(problem, bad-row condition)`` pairs."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    source = F.col(column)
    data_type = df.schema[column].dataType
    bad_value = _bad_int if sequence_type == "tokens" else _bad_float
    if isinstance(data_type, StringType):
        if sequence_type == "multivariate":
            parsed = F.transform(
                F.split(source, _literal_regex(step_sep)),
                lambda step: _parse_list(step, value_sep, "float"),
            )
            layout = f"'v{value_sep}v{step_sep}v{value_sep}v...' (steps split by {step_sep!r})"
        else:
            parsed = _parse_list(source, value_sep, "int" if sequence_type == "tokens" else "float")
            layout = f"'v{value_sep}v{value_sep}...'"
        what = "integer token ids" if sequence_type == "tokens" else "finite numbers"
        problem = f"features column {column!r} holds text that is not {layout} of {what}"
    elif isinstance(data_type, ArrayType):
        inner = data_type.elementType
        nested = isinstance(inner, ArrayType)
        leaf = inner.elementType if nested else inner
        expected_nested = sequence_type == "multivariate"
        wanted = {
            "multivariate": "array<array<number>>",
            "univariate": "array<number>",
            "tokens": "array<integer>",
        }[sequence_type]
        leaf_ok = _type_name(leaf) in (_INTEGRAL if sequence_type == "tokens" else _NUMERIC)
        if nested != expected_nested or not leaf_ok:
            raise TypeError(
                f"features column {column!r} has type {data_type.simpleString()}; "
                f"sequence_type={sequence_type!r} needs {wanted} (or a string to parse)"
            )
        target = {
            "multivariate": "array<array<float>>",
            "univariate": "array<float>",
            "tokens": "array<int>",
        }[sequence_type]
        parsed = source.try_cast(target)
        problem = f"features column {column!r} holds null, NaN or Inf values (or out-of-range ids)"
    else:
        raise TypeError(
            f"features column {column!r} has type {data_type.simpleString()}; expected a string "
            "to parse or an array"
        )
    if sequence_type == "multivariate":
        any_bad = F.exists(parsed, lambda step: step.isNull() | F.exists(step, bad_value))
    else:
        any_bad = F.exists(parsed, bad_value)
    problems = [
        (f"features column {column!r} is null", source.isNull()),
        (problem, any_bad),
        (f"features column {column!r} holds an empty sequence", F.size(parsed) == 0),
    ]
    if sequence_type == "multivariate":
        width = F.size(F.get(parsed, 0))
        problems.append(
            (
                f"features column {column!r} has steps with different numbers of features",
                F.exists(parsed, lambda step: F.size(step) != width),
            )
        )
    return parsed, problems


def _parse_label(
    df: DataFrame, column: str, label_type: str | None, value_sep: str
) -> tuple[Column, list[tuple[str, Column]]]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    source = F.col(column)
    data_type = df.schema[column].dataType
    name = _type_name(data_type)
    if label_type is None:
        if isinstance(data_type, StringType) or name in _INTEGRAL:
            label_type = "int"
        elif name in _NUMERIC:
            label_type = "float"
        elif isinstance(data_type, ArrayType) and _type_name(data_type.elementType) in _NUMERIC:
            integral = _type_name(data_type.elementType) in _INTEGRAL
            label_type = "int_array" if integral else "float_array"
        else:
            raise TypeError(
                f"label column {column!r} has type {data_type.simpleString()}; expected a "
                "number, an array of numbers, or a string to parse"
            )
    scalar = label_type in ("int", "float")
    sql_type = "int" if label_type.startswith("int") else "float"
    bad_value = _bad_int if sql_type == "int" else _bad_float
    hint = " (pass label_type='float' for real-valued targets)" if sql_type == "int" else ""
    if isinstance(data_type, StringType):
        parsed = source.try_cast(sql_type) if scalar else _parse_list(source, value_sep, sql_type)
        what = "an integer" if label_type == "int" else "a finite number"
        if not scalar:
            what = f"a '{value_sep}'-separated list of " + (
                "integers" if sql_type == "int" else "finite numbers"
            )
        problem = f"label column {column!r} holds text that is not {what}{hint}"
        bad = bad_value(parsed) if scalar else F.exists(parsed, bad_value)
    elif scalar and name in _NUMERIC:
        parsed = source.try_cast(sql_type)
        problem = f"label column {column!r} holds values that are not {label_type}s{hint}"
        bad = bad_value(parsed) | ((parsed != source) if sql_type == "int" else F.lit(False))
    elif not scalar and isinstance(data_type, ArrayType):
        if _type_name(data_type.elementType) not in _NUMERIC:
            raise TypeError(
                f"label column {column!r} has type {data_type.simpleString()}; "
                f"label_type={label_type!r} needs an array of numbers"
            )
        parsed = source.try_cast(f"array<{sql_type}>")
        problem = f"label column {column!r} holds null, NaN or non-{sql_type} values{hint}"
        bad = F.exists(parsed, bad_value)
        if sql_type == "int":
            bad = bad | F.exists(source, lambda v: v != F.floor(v))
    else:
        raise TypeError(
            f"label column {column!r} has type {data_type.simpleString()}, which "
            f"label_type={label_type!r} cannot convert"
        )
    return parsed, [(f"label column {column!r} is null", source.isNull()), (problem, bad)]


def _parse_length(df: DataFrame, column: str) -> tuple[Column, list[tuple[str, Column]]]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    source = F.col(column)
    data_type = df.schema[column].dataType
    if not isinstance(data_type, StringType) and _type_name(data_type) not in _INTEGRAL:
        raise TypeError(
            f"length column {column!r} has type {data_type.simpleString()}; expected integers"
        )
    parsed = source.try_cast("int")
    return parsed, [
        (
            f"length column {column!r} holds values that are not integers >= 1",
            parsed.isNull() | (parsed < 1),
        )
    ]


def _check(df: DataFrame, problems: list[tuple[str, Column]], shown: Column, where: str) -> int:
    """Count the rows of ``df`` and the rows breaking each problem's condition (one Spark job).

    A row counts for the first problem it breaks. Raises ValueError naming every problem found,
    with its count and the text of the first bad row (in file order); returns the row count.
    """
    from pyspark.sql import functions as F

    numbered = df.withColumn(_ROW, F.monotonically_increasing_id())
    earlier = F.lit(False)
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, (_, condition) in enumerate(problems):
        bad = F.coalesce(condition, F.lit(True)) & ~earlier
        earlier = earlier | F.coalesce(condition, F.lit(True))
        aggregates.append(F.sum(F.when(bad, 1).otherwise(0)).alias(f"count{i}"))
        aggregates.append(F.min_by(shown, F.when(bad, F.col(_ROW))).alias(f"example{i}"))
    result = numbered.agg(*aggregates).first()
    rows = int(result["rows"])
    if rows == 0:
        raise ValueError(f"{where} holds no rows")
    found = []
    for i, (problem, _) in enumerate(problems):
        count = int(result[f"count{i}"] or 0)
        if count:
            example = result[f"example{i}"]
            shown_text = "null" if example is None else repr(_short(str(example)))
            found.append(f"{problem}: {count} of {rows} row(s), first {shown_text}")
    if found:
        raise ValueError(f"{where}: " + "; ".join(found))
    return rows


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_delimited(
    spark: SparkSession,
    path: str,
    format: str,
    features_col: str,
    label_col: str | None,
    length_col: str | None,
    sequence_type: str,
    label_type: str | None,
    step_sep: str,
    value_sep: str,
    csv_sep: str,
    header: bool,
    validate: bool,
    names: _Names,
) -> DataFrame:
    from pyspark.sql import functions as F

    if format == "csv":
        raw = _load(
            path,
            format,
            lambda p: spark.read.csv(p, header=header, sep=csv_sep, mode="PERMISSIVE"),
            names,
        )
        if header and raw.columns and raw.columns[0].startswith(_PARQUET_MAGIC.decode()):
            # Parquet read as CSV (a remote path, which was not sniffed): binary "column names".
            raise ValueError(
                f"{names.path()} {path} is Parquet, not CSV (its first bytes are 'PAR1'); "
                + ("drop --format csv" if names.flag else "pass format='parquet' (the default)")
            )
    else:
        raw = _load(path, format, lambda p: spark.read.json(p, mode="PERMISSIVE"), names)
    where = f"{path} (format {format!r})"
    _require_columns(raw, where, features=features_col, label=label_col, length=length_col)
    features, problems = _parse_features(raw, features_col, sequence_type, step_sep, value_sep)
    if "_corrupt_record" in raw.columns and features_col != "_corrupt_record":
        problems.insert(
            0, (f"{format} input holds malformed records", F.col("_corrupt_record").isNotNull())
        )
    replaced = {features_col: features}
    if label_col is not None:
        label, label_problems = _parse_label(raw, label_col, label_type, value_sep)
        problems += label_problems
        replaced[label_col] = label
    if length_col is not None:
        length, length_problems = _parse_length(raw, length_col)
        problems += length_problems
        replaced[length_col] = length
    if validate:
        shown = F.to_json(F.struct(*[F.col(c) for c in replaced]))
        if "_corrupt_record" in raw.columns and "_corrupt_record" not in replaced:
            shown = F.coalesce(F.col("_corrupt_record"), shown)
        with _spark_reading(path, format, names):  # the first job that reads the files
            rows = _check(raw, problems, shown, where)
        logger.info("read %d rows from %s (%s)", rows, path, format)
    out = raw.withColumns(replaced)
    if "_corrupt_record" in out.columns and "_corrupt_record" not in replaced:
        out = out.drop("_corrupt_record")
    return out


def _blank(text: Column) -> Column:
    """True for text holding only whitespace (tabs too, as ``str.strip`` sees it; Spark's
    ``trim`` removes spaces only)."""
    return ~text.rlike("(?U)\\S")


def _split_tab(text: Column) -> tuple[Column, Column]:
    from pyspark.sql import functions as F

    parts = F.split(text, "\t", 2)
    return F.get(parts, 0), F.get(parts, 1)


def _read_dictionary(
    spark: SparkSession, dictionary: str, unknown_token: str, names: _Names
) -> tuple[DataFrame, list[float]]:
    """The dictionary as ``(_word, _vector)`` rows, and the vector for unknown tokens."""
    from pyspark.sql import functions as F

    lines = _load(dictionary, "text", spark.read.text, names, "dictionary")
    lines = lines.filter(~_blank(F.col("value")))
    word, values = _split_tab(F.col("value"))
    vector = _parse_list(values, ",", "float")
    entries = lines.select(
        F.col("value"), word.alias("_word"), values.alias("_values"), vector.alias("_vector")
    )
    width = F.size(F.col("_vector"))
    where = f"dictionary {dictionary}"
    problems = [
        ("lines without a tab (expected 'word<TAB>v1,v2,...')", F.col("_values").isNull()),
        ("lines with an empty word", F.col("_word") == ""),
        ("lines with values that are not finite numbers", F.exists(F.col("_vector"), _bad_float)),
    ]
    # A line counts for the first problem it has, as in _check.
    conditions, earlier = [], F.lit(False)
    for _, condition in problems:
        condition = F.coalesce(condition, F.lit(True))
        conditions.append(condition & ~earlier)
        earlier = earlier | condition
    numbered = entries.withColumn(_ROW, F.monotonically_increasing_id())
    with _spark_reading(dictionary, "text", names, "dictionary"):
        result = numbered.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct(F.col("_word")).alias("words"),
            F.min(width).alias("min_width"),
            F.max(width).alias("max_width"),
            F.first(F.when(F.col("_word") == unknown_token, F.col("_vector")), True).alias("unk"),
            *[F.sum(F.when(c, 1).otherwise(0)).alias(f"n{i}") for i, c in enumerate(conditions)],
            *[
                F.min_by(F.col("value"), F.when(c, F.col(_ROW))).alias(f"e{i}")
                for i, c in enumerate(conditions)
            ],
        ).first()
    rows = int(result["rows"])
    if rows == 0:
        raise ValueError(f"{where} holds no word vectors (the file is empty)")
    found = [
        f"{problem}: {rows_bad} of {rows} line(s), first {_short(str(result[f'e{i}']))!r}"
        for i, (problem, _) in enumerate(problems)
        if (rows_bad := int(result[f"n{i}"] or 0))
    ]
    if found:
        raise ValueError(f"{where}: " + "; ".join(found))
    if result["min_width"] != result["max_width"]:
        raise ValueError(
            f"{where}: vectors have between {result['min_width']} and {result['max_width']} "
            "values; every vector must have the same dimension"
        )
    if int(result["words"]) != rows:
        duplicate = (
            entries.groupBy("_word").count().filter(F.col("count") > 1).select("_word").first()
        )
        raise ValueError(
            f"{where}: {rows - int(result['words'])} duplicate word(s), e.g. {duplicate[0]!r}"
        )
    dim = int(result["max_width"])
    unknown = result["unk"]
    if unknown is None:
        logger.info("%s has no %r row: unknown tokens get a zero vector", dictionary, unknown_token)
        unknown = [0.0] * dim
    logger.info("dictionary %s: %d words of dimension %d", dictionary, rows, dim)
    return entries.select("_word", "_vector"), [float(v) for v in unknown]


def _read_reference_text(
    spark: SparkSession,
    path: str,
    dictionary: str,
    features_col: str,
    label_col: str | None,
    length_col: str | None,
    unknown_token: str,
    broadcast_dictionary: bool,
    validate: bool,
    names: _Names,
) -> DataFrame:
    from pyspark.sql import functions as F

    lines = _load(path, "text", spark.read.text, names)
    lines = lines.filter(~_blank(F.col("value")))
    label_text, rest = _split_tab(F.col("value"))
    tokens = F.split(rest, ",")
    examples = lines.select(
        F.col("value"),
        label_text.try_cast("int").alias("_label"),
        rest.alias("_rest"),
        tokens.alias("_tokens"),
    )
    where = f"{path} (format 'text', lines 'label<TAB>tok1,tok2,...')"
    if validate:
        problems = [
            ("lines without a tab", F.col("_rest").isNull()),
            ("labels that are not integers", F.col("_label").isNull()),
            ("empty token lists", _blank(F.col("_rest"))),
            ("empty tokens (two commas in a row?)", F.array_contains(F.col("_tokens"), "")),
        ]
        with _spark_reading(path, "text", names):
            rows = _check(examples, problems, F.col("value"), where)
        logger.info("read %d examples from %s", rows, path)
    words, unknown = _read_dictionary(spark, dictionary, unknown_token, names)
    if broadcast_dictionary:
        words = F.broadcast(words)
    numbered = examples.select(F.monotonically_increasing_id().alias(_ROW), "_label", "_tokens")
    exploded = numbered.select(
        _ROW, "_label", F.posexplode(F.col("_tokens")).alias("_pos", "_token")
    )
    joined = exploded.join(words, exploded["_token"] == words["_word"], "left")
    vector = F.coalesce(F.col("_vector"), F.lit(unknown).cast("array<float>"))
    grouped = joined.groupBy(_ROW, "_label").agg(
        F.array_sort(F.collect_list(F.struct(F.col("_pos"), vector.alias("v")))).alias("_steps")
    )
    columns = [F.transform(F.col("_steps"), lambda s: s["v"]).alias(features_col)]
    if label_col is not None:
        columns.append(F.col("_label").alias(label_col))
    if length_col is not None:
        columns.append(F.size(F.col("_steps")).alias(length_col))
    return grouped.select(*columns)


# --------------------------------------------------------------------------------------------
# Reader settings
# --------------------------------------------------------------------------------------------

# Spark's vectorized Parquet reader decodes this many rows at a time (4096 by default) into
# column vectors on the executor's heap, outside Spark's memory accounting: per value its 4 or
# 8 bytes, and in a nested column (a sequence) also its repetition and definition levels, null
# flag, offsets and lengths, each vector reserving twice what it holds when it grows. 4096 rows
# of 1000 steps x 2 features are ~130 MiB per task, and a 512 MiB driver runs out of heap.
READER_BATCH_SIZE = "spark.sql.parquet.columnarReaderBatchSize"
_READER_BATCH_BYTES = 4 * 2**20  # estimated vector bytes per reader batch
_NESTED_VALUE_BYTES = 12  # levels, null flag, offsets and lengths per value of a nested column
_PHYSICAL_BYTES = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
_SPARK_BYTES = {"boolean": 1, "byte": 1, "short": 2, "integer": 4, "float": 4, "date": 4}
_FOOTERS = 8  # data files whose footers are read (spread over the file list)
# Before decoding, the reader holds a row group's column chunks (compressed) on the heap. With
# Hadoop's vectored reads, parquet-mr's default, each chunk is one buffer: 37 MB for a row group
# of the Parquet writer's 64 MiB of 1000-step sequences, a large contiguous block to find in a
# small heap (two tasks reading failed so in a 512 MiB driver). Read plainly, the chunks come in
# pieces of 256 KiB, below G1's humongous-object size for any heap from 512 MiB.
_PARQUET_OPTIONS = {
    "parquet.hadoop.vectored.io.enabled": "false",
    "parquet.read.allocation.size": str(256 * 2**10),
}
_SAMPLED_ROWS = 64  # rows read to measure the width when no footer can be read


def _footer_row_bytes(root: Path, columns: set[str]) -> int | None:
    """The reader's estimated vector bytes for the widest row group's average row, from the
    Parquet footers (values per column chunk and their physical types; the encoding and the
    compression do not matter) of up to ``_FOOTERS`` data files under ``root``."""
    files = list(_data_files(root))
    if len(files) > _FOOTERS:
        files = [files[round(i * (len(files) - 1) / (_FOOTERS - 1))] for i in range(_FOOTERS)]
    widest = 0
    for file in files:
        try:
            metadata = pq.read_metadata(file)
        except (OSError, ValueError, pa.ArrowException):
            continue
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            if row_group.num_rows <= 0:
                continue
            total = 0
            for j in range(row_group.num_columns):
                chunk = row_group.column(j)
                if chunk.path_in_schema.split(".")[0] not in columns:
                    continue
                values = max(chunk.num_values, 0)
                width = _PHYSICAL_BYTES.get(chunk.physical_type)
                if width is None:  # byte arrays: their decoded size
                    width = -(-chunk.total_uncompressed_size // max(values, 1))
                nested = metadata.schema.column(j).max_repetition_level > 0
                total += values * (width + (_NESTED_VALUE_BYTES if nested else 1))
            widest = max(widest, -(-total // row_group.num_rows))
    return widest or None


def _sampled_row_bytes(spark: SparkSession, df: DataFrame, columns: list[str]) -> int | None:
    """The estimated vector bytes of the widest of the first ``_SAMPLED_ROWS`` rows, read with
    a batch of that many rows (a path whose footers this process cannot read: remote storage,
    or a Spark Connect server's own files), doubled since later rows may be longer."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    def value_count(column: Any, data_type: Any) -> tuple[Any, Any]:
        depth = 0
        while isinstance(data_type, ArrayType):
            data_type, depth = data_type.elementType, depth + 1
            if depth > 1:
                column = F.flatten(column)
        return (F.size(column) if depth else F.lit(1)), (data_type, depth)

    sizes, kinds = [], []
    for name in columns:
        count, kind = value_count(F.col(name), df.schema[name].dataType)
        sizes.append(F.greatest(count, F.lit(0)).alias(f"n{len(sizes)}"))
        kinds.append(kind)
    previous = spark.conf.get(READER_BATCH_SIZE, None)
    spark.conf.set(READER_BATCH_SIZE, str(_SAMPLED_ROWS))
    try:
        rows = df.select(*sizes).limit(_SAMPLED_ROWS).collect()
    finally:
        if previous is None:
            spark.conf.unset(READER_BATCH_SIZE)
        else:
            spark.conf.set(READER_BATCH_SIZE, previous)
    widest = 0
    for row in rows:
        total = 0
        for i, (data_type, depth) in enumerate(kinds):
            width = _SPARK_BYTES.get(data_type.typeName(), 8)
            total += int(row[i] or 0) * (width + (_NESTED_VALUE_BYTES if depth else 1))
        widest = max(widest, total)
    return 2 * widest or None


def tune_parquet_reader(
    spark: SparkSession, path: PathLike, columns: Sequence[str] | None = None
) -> int | None:
    """Make the session's Parquet reader batch (``spark.sql.parquet.columnarReaderBatchSize``)
    follow the row width of the Parquet data at ``path``: as many rows as fit in about 4 MiB of
    the reader's column vectors, never more than the session's current value (4096 unless set;
    so a user's smaller setting, or a narrower one made for other data read in the same
    session, stays). :func:`read_sequences` calls it for Parquet data; call it before
    training on a DataFrame read otherwise.

    The width comes from the Parquet footers of a local path (the number of values each row
    group holds per column, and their types, for ``columns``: by default all), or else from
    the widest of the first rows (one small Spark job). A runtime SQL setting, set on the
    session: it applies to classic sessions and Spark Connect alike, from the next query on.
    Returns the batch size in effect, or None when the width could not be measured (the
    setting is then left alone).
    """
    text = check_path("path", path)
    wanted = set(columns) if columns is not None else None
    row_bytes = None
    local = _local_path(text)
    if local is not None and local.exists():
        if wanted is None:
            wanted = set(_schema_names(local))
        row_bytes = _footer_row_bytes(local, wanted)
    if row_bytes is None:
        df = spark.read.options(**_PARQUET_OPTIONS).parquet(text)
        names = [c for c in df.columns if wanted is None or c in wanted]
        row_bytes = _sampled_row_bytes(spark, df, names) if names else None
    if row_bytes is None:
        return None
    current = int(spark.conf.get(READER_BATCH_SIZE, None) or 4096)
    rows = max(1, min(current, _READER_BATCH_BYTES // row_bytes))
    if rows != current:
        spark.conf.set(READER_BATCH_SIZE, str(rows))
        logger.info(
            "%s: rows of ~%d KiB in the Parquet reader's vectors; %s %d -> %d",
            text,
            row_bytes // 1024,
            READER_BATCH_SIZE,
            current,
            rows,
        )
    return rows


def _schema_names(root: Path) -> list[str]:
    for file in _data_files(root):
        try:
            return list(pq.read_schema(file).names)
        except (OSError, ValueError, pa.ArrowException):
            continue
    return []


def read_sequences(
    spark: SparkSession,
    path: PathLike,
    format: str = "parquet",
    *,
    features_col: str = "features",
    label_col: str | None = "label",
    length_col: str | None = None,
    sequence_type: str = "multivariate",
    label_type: str | None = None,
    step_sep: str = ";",
    value_sep: str = ",",
    csv_sep: str = ",",
    header: bool = True,
    dictionary: PathLike | None = None,
    unknown_token: str = "UNKNOWN",
    broadcast_dictionary: bool = True,
    validate: bool = True,
    num_partitions: int | None = None,
    flag: str | None = None,
) -> DataFrame:
    """Load sequences into a DataFrame in the trainer's input schema.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    path : str or os.PathLike
        File or directory (any path Spark reads: local, HDFS, S3, ...).
    format : {"parquet", "csv", "json", "text"}, default "parquet"
        - ``"parquet"``: read as is; only the named columns' presence is checked (the trainer
          checks types and values). The session's Parquet reader batch is made to follow the
          width of the rows (:func:`tune_parquet_reader`), so that long sequences do not fill
          the executors' heap, and column chunks are read in pieces of 256 KiB rather than one
          buffer each (``parquet.hadoop.vectored.io.enabled=false``).
        - ``"csv"`` (all columns read as strings) and ``"json"`` (JSON lines): the sequence
          column is text such as ``"1.0,2.0;3.0,4.0"`` (steps split by ``step_sep``, features
          by ``value_sep``) or ``"1,2,3"``, parsed as ``sequence_type`` says; in JSON it may
          also be an array already, which is cast. The label and length columns are parsed or
          cast likewise. Other columns are kept unchanged.
        - ``"text"``: the reference project's labelled token file, one ``label<TAB>tok1,tok2,...``
          line per example. Each token is looked up in ``dictionary`` (lines
          ``word<TAB>v1,v2,...``); tokens not in it get the ``unknown_token`` row's vector (a
          zero vector if the dictionary has none). The result has the sequence column
          (``array<array<float>>``) and an ``int`` label column, and row order is not kept.
    features_col, label_col, length_col : str
        Column names; ``label_col=None`` reads data without labels (inference), and
        ``length_col`` (optional) names an integer column of valid lengths. For ``"text"``
        they name the output columns (the length column then holds the token counts).
    sequence_type : {"multivariate", "univariate", "tokens"}, default "multivariate"
        How csv/json sequence text is parsed: ``array<array<float>>``, ``array<float>`` or
        ``array<int>`` token ids.
    label_type : {"int", "float", "int_array", "float_array"}, optional
        How the csv/json label column is parsed: a class index, a real target, or a
        ``value_sep``-separated list (per-step labels or a vector target). By default text and
        integers become ``int``, floating numbers ``float`` and arrays keep their element kind.
    step_sep, value_sep : str, default ";" and ","
        Separators in sequence (and array label) text; taken literally, not as regexes.
        ``step_sep`` is used only for multivariate sequences, and must then differ from
        ``value_sep``.
    csv_sep : str, default ","
        CSV field separator (quote fields holding commas, as CSV does).
    header : bool, default True
        Whether CSV files start with a header line (otherwise columns are ``_c0``, ``_c1``...).
    dictionary : str or os.PathLike, optional
        The word-vector file, required for ``format="text"`` and used only there.
    unknown_token : str, default "UNKNOWN"
        Dictionary word whose vector unseen tokens get.
    broadcast_dictionary : bool, default True
        Broadcast the dictionary to the token join (right for dictionaries up to a few hundred
        thousand words); ``False`` lets Spark choose a shuffle join for larger ones.
    validate : bool, default True
        Run the one aggregation job that finds unparseable values (csv/json/text) and raise
        before training; ``False`` leaves bad values as nulls for the trainer's checks.
    num_partitions : int, optional
        Repartition the result into this many partitions.
    flag : str, optional
        The command-line flag ``path`` came from (a job passes ``"--data"``): error messages
        then name the path and options as flags (``--data X``, ``--format csv``) rather than
        as this function's arguments (``path X``, ``format='csv'``).

    Returns
    -------
    pyspark.sql.DataFrame

    Raises
    ------
    ValueError
        Unknown ``format``/``sequence_type``/``label_type``, data in another format than
        ``format`` (a local path's first data file is looked at before Spark reads it: Parquet
        files start and end with ``PAR1``; the message names the file and the format to pass),
        data Spark cannot read (one line with the first line of Spark's message), a missing
        column (the message lists the columns present), unparseable values (naming the column,
        the number of bad rows and the first bad row), a malformed dictionary, or no rows.
    TypeError
        A column of a type that cannot hold what was asked for.
    FileNotFoundError
        ``path`` or ``dictionary`` does not exist.

    Examples
    --------
    >>> df = read_sequences(spark, "data/train.csv", "csv", label_type="float")  # doctest: +SKIP
    >>> df.schema.simpleString()  # doctest: +SKIP
    'struct<features:array<array<float>>,label:float>'
    """
    if flag is not None and (not isinstance(flag, str) or not flag):
        raise TypeError(f"flag must be a non-empty str or None, got {flag!r}")
    names = _Names(flag)
    if flag is not None and (not isinstance(format, str) or format not in FORMATS):
        raise ValueError(
            f"--format {format!r} (reading {flag} {path}): must be one of " + ", ".join(FORMATS)
        )
    format = _choice("format", format, FORMATS)
    sequence_type = _choice("sequence_type", sequence_type, SEQUENCE_TYPES)
    if label_type is not None:
        label_type = _choice("label_type", label_type, LABEL_TYPES)
    features_col = check_column_name("features_col", features_col)
    label_col = check_column_name("label_col", label_col, optional=True)
    length_col = check_column_name("length_col", length_col, optional=True)
    named = [c for c in (features_col, label_col, length_col) if c is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"features_col, label_col and length_col must differ, got {named}")
    step_sep = _separator("step_sep", step_sep)
    value_sep = _separator("value_sep", value_sep)
    csv_sep = _separator("csv_sep", csv_sep)
    if step_sep == value_sep and format in ("csv", "json") and sequence_type == "multivariate":
        raise ValueError(
            f"step_sep and value_sep must differ to parse multivariate sequences, both are "
            f"{step_sep!r}"
        )
    if num_partitions is not None and (
        isinstance(num_partitions, bool)
        or not isinstance(num_partitions, (int, np.integer))
        or num_partitions < 1
    ):
        raise ValueError(f"num_partitions = {num_partitions!r}: must be an integer >= 1")
    path = check_path(names.path(), path)
    _check_format(path, format, names)
    if format == "text":
        if dictionary is None:
            raise ValueError("format='text' needs dictionary= (the word<TAB>v1,v2,... file)")
        if sequence_type != "multivariate":
            raise ValueError(
                "format='text' produces word vectors (sequence_type='multivariate'), got "
                f"sequence_type={sequence_type!r}"
            )
        if not isinstance(unknown_token, str) or not unknown_token:
            raise TypeError("unknown_token must be a non-empty str")
        dictionary = check_path(names.path("dictionary"), dictionary)
        _check_format(dictionary, "text", names, "dictionary")
        df = _read_reference_text(
            spark,
            path,
            dictionary,
            features_col,
            label_col,
            length_col,
            unknown_token,
            bool(broadcast_dictionary),
            bool(validate),
            names,
        )
    elif dictionary is not None:
        raise ValueError(f"dictionary is only used with format='text', not format={format!r}")
    elif format == "parquet":
        reader = spark.read.options(**_PARQUET_OPTIONS)
        df = _load(path, format, reader.parquet, names)  # reads a footer: the schema
        _require_columns(
            df,
            f"{path} (format 'parquet')",
            features=features_col,
            label=label_col,
            length=length_col,
        )
        try:
            tune_parquet_reader(spark, path, named)
        except Exception as exc:  # a setting that could not be tuned never fails the read
            logger.warning("%s: the Parquet reader's batch size was left alone (%s)", path, exc)
    else:
        df = _read_delimited(
            spark,
            path,
            format,
            features_col,
            label_col,
            length_col,
            sequence_type,
            label_type,
            step_sep,
            value_sep,
            csv_sep,
            bool(header),
            bool(validate),
            names,
        )
    if num_partitions is not None:
        df = df.repartition(int(num_partitions))
    return df
