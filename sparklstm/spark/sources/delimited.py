"""CSV and JSON lines read into the trainer's schema, text columns parsed with Spark SQL.

The sequence, label and length columns are parsed or cast with Spark SQL functions only
(``split``, ``transform``, ``try_cast``): no Python UDF and no per-row Python
(:func:`_parse_features`, :func:`_parse_label`, :func:`_parse_length`). A value that does not
parse is found by one aggregation job before anything trains (:func:`_check`), and reported as
a ``ValueError`` naming the column, the number of bad rows and the first bad row's text.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sparklstm.spark.sources.files import (
    _PARQUET_MAGIC,
    _load,
    _Names,
    _require_columns,
    _short,
    _spark_reading,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

logger = logging.getLogger(__name__)

_INTEGRAL = ("byte", "short", "integer", "long")
_NUMERIC = _INTEGRAL + ("float", "double", "decimal")
_ROW = "__sparklstm_row"


def _literal_regex(separator: str) -> str:
    """A Java regex matching ``separator`` literally (``split`` takes a regex)."""
    return "\\Q" + separator.replace("\\E", "\\E\\\\E\\Q") + "\\E"


def _type_name(data_type: Any) -> str:
    return data_type.typeName()


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
