"""Check a DataFrame against the trainer's input schema before any training work.

Everything here is Spark SQL (higher-order functions run in the JVM, not in Python): one job
profiles the data (row count, feature count, largest label and token id), a second counts the
rows that break each rule. A user then gets one clear error naming the column and the problem,
with an example row, before any round runs; or, with ``invalid_rows="skip"``, the bad rows are
dropped and counted in the job summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sparklstm.config import ModelConfig

__all__ = ["Columns", "DataProfile", "profile_data", "check_rows", "model_sizes", "default_task"]

logger = logging.getLogger(__name__)

_NUMERIC = ("byte", "short", "integer", "long", "float", "double", "decimal")
_INTEGRAL = ("byte", "short", "integer", "long")


@dataclass(frozen=True)
class Columns:
    """Column names of a training or inference DataFrame."""

    features: str = "features"
    label: str | None = "label"
    length: str | None = None

    def selected(self) -> list[str]:
        return [c for c in (self.features, self.label, self.length) if c is not None]


@dataclass(frozen=True)
class DataProfile:
    """What one pass over the data found."""

    rows: int
    sequence_kind: str  # "multivariate" | "univariate" | "tokens"
    num_features: int | None  # inner array size of a multivariate column (first row)
    max_token: int | None
    label_kind: str | None  # "int" | "float" | "array" | None
    max_label: float | None
    label_width: int | None  # size of an array label (vector target or per-step labels)
    skipped: dict[str, int] = field(default_factory=dict)


def _type_name(data_type: Any) -> str:
    return data_type.typeName()


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sequence_kind_of(schema: Any, column: str) -> str:
    """``"multivariate"``, ``"univariate"`` or ``"tokens"``; TypeError naming the column."""
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, column, "features").dataType
    if isinstance(data_type, ArrayType):
        inner = data_type.elementType
        if isinstance(inner, ArrayType) and _type_name(inner.elementType) in _NUMERIC:
            return "multivariate"
        if _type_name(inner) in _INTEGRAL:
            return "tokens"
        if _type_name(inner) in _NUMERIC:
            return "univariate"
    raise TypeError(
        f"features column {column!r} has type {data_type.simpleString()}; expected "
        "array<array<float>> ([time][feature]), array<float> (univariate) or array<int> (tokens)"
    )


def _field(schema: Any, column: str, role: str) -> Any:
    if column not in schema.fieldNames():
        raise ValueError(f"{role} column {column!r} not found; columns are {schema.fieldNames()}")
    return schema[column]


def _label_kind(schema: Any, column: str) -> str:
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, column, "label").dataType
    name = _type_name(data_type)
    if name in _INTEGRAL:
        return "int"
    if name in _NUMERIC:
        return "float"
    if isinstance(data_type, ArrayType) and _type_name(data_type.elementType) in _NUMERIC:
        return "array"
    raise TypeError(
        f"label column {column!r} has type {data_type.simpleString()}; expected a number "
        "(class index or target) or an array of numbers (vector target or per-step labels)"
    )


def profile_data(df: Any, columns: Columns) -> DataProfile:
    """Types and sizes of the data, from its schema and one aggregation job."""
    from pyspark.sql import functions as F

    schema = df.schema
    kind = sequence_kind_of(schema, columns.features)
    label_kind = _label_kind(schema, columns.label) if columns.label else None
    if columns.length is not None:
        length_type = _type_name(_field(schema, columns.length, "length").dataType)
        if length_type not in _INTEGRAL:
            raise TypeError(f"length column {columns.length!r} must be integer, got {length_type}")
    f = _q(columns.features)
    aggregates = [F.count(F.lit(1)).alias("rows")]
    if kind == "multivariate":
        aggregates.append(F.expr(f"first(size(try_element_at({f}, 1)), true)").alias("width"))
    if kind == "tokens":
        aggregates.append(F.expr(f"max(array_max({f}))").alias("max_token"))
    if label_kind in ("int", "float"):
        aggregates.append(F.max(F.col(columns.label)).alias("max_label"))
    elif label_kind == "array":
        lab = _q(columns.label)
        aggregates.append(F.expr(f"max(array_max({lab}))").alias("max_label"))
        aggregates.append(F.expr(f"max(size({lab}))").alias("label_width"))
    row = df.agg(*aggregates).first().asDict()
    rows = int(row["rows"])
    if rows == 0:
        raise ValueError("the input data is empty (0 rows)")
    width = row.get("width")
    if kind == "multivariate" and (width is None or width < 1):
        raise ValueError(
            f"features column {columns.features!r}: could not read the feature count from the "
            "first step of any row (empty or null inner arrays)"
        )
    max_label = row.get("max_label")
    return DataProfile(
        rows=rows,
        sequence_kind=kind,
        num_features=int(width) if width is not None else None,
        max_token=None if row.get("max_token") is None else int(row["max_token"]),
        label_kind=label_kind,
        max_label=None if max_label is None else float(max_label),
        label_width=None if row.get("label_width") is None else int(row["label_width"]),
    )


def model_sizes(profile: DataProfile, task: str, head: str) -> dict[str, int]:
    """``input_size`` or ``vocab_size``, and ``output_size``, as the data implies."""
    sizes: dict[str, int] = {}
    if profile.sequence_kind == "tokens":
        sizes["vocab_size"] = (profile.max_token or 0) + 1
    else:
        sizes["input_size"] = profile.num_features if profile.sequence_kind == "multivariate" else 1
    if profile.label_kind is not None:
        if task == "classification":
            sizes["output_size"] = max(2, int(profile.max_label or 0) + 1)
        elif profile.label_kind == "array" and head == "last":
            sizes["output_size"] = int(profile.label_width or 1)
        else:
            sizes["output_size"] = 1
    return sizes


def _rules(columns: Columns, profile: DataProfile, config: ModelConfig) -> list[tuple[str, str]]:
    """``(problem description, SQL condition that is true for a bad row)``."""
    f = _q(columns.features)
    finite = "(v IS NOT NULL AND NOT isnan(v) AND abs(v) != double('Infinity'))"
    rules = [
        (f"features column {columns.features!r} is null", f"{f} IS NULL"),
        (f"features column {columns.features!r} holds an empty sequence", f"size({f}) = 0"),
    ]
    if profile.sequence_kind == "multivariate":
        width = config.input_size
        rules.append(
            (
                f"features column {columns.features!r} has steps whose size is not the model's "
                f"input_size {width} (ragged or null inner arrays)",
                f"exists({f}, s -> s IS NULL OR size(s) != {width})",
            )
        )
        rules.append(
            (
                f"features column {columns.features!r} holds null, NaN or Inf values",
                f"exists({f}, s -> exists(s, v -> NOT {finite}))",
            )
        )
    elif profile.sequence_kind == "univariate":
        rules.append(
            (
                f"features column {columns.features!r} holds null, NaN or Inf values",
                f"exists({f}, v -> NOT {finite})",
            )
        )
    else:
        rules.append(
            (
                f"features column {columns.features!r} holds token ids outside "
                f"[0, vocab_size={config.vocab_size})",
                f"exists({f}, v -> v IS NULL OR v < 0 OR v >= {config.vocab_size})",
            )
        )
    length = f"size({f})"
    if columns.length is not None:
        n = _q(columns.length)
        rules.append(
            (
                f"length column {columns.length!r} is null, < 1 or longer than the sequence",
                f"{n} IS NULL OR {n} < 1 OR {n} > size({f})",
            )
        )
        length = n
    if columns.label is None:
        return rules
    lab = _q(columns.label)
    rules.append((f"label column {columns.label!r} is null", f"{lab} IS NULL"))
    classes = config.output_size
    in_range = f"(v IS NOT NULL AND v >= 0 AND v < {classes} AND v = floor(v))"
    if config.head == "all":
        if profile.label_kind != "array":
            raise TypeError(
                f"label column {columns.label!r}: head='all' needs one label per step (an array)"
            )
        rules.append(
            (
                f"label column {columns.label!r} has fewer per-step labels than the sequence",
                f"size({lab}) < {length}",
            )
        )
        check = in_range if config.task == "classification" else finite
        what = f"class ids outside [0, {classes})" if config.task == "classification" else "NaN"
        rules.append(
            (
                f"label column {columns.label!r} holds null or {what} values",
                f"exists(slice({lab}, 1, {length}), v -> NOT {check})",
            )
        )
    elif config.task == "classification":
        if profile.label_kind == "array":
            raise TypeError(
                f"label column {columns.label!r} is an array; head='last' classification needs "
                "one class index per row"
            )
        rules.append(
            (
                f"label column {columns.label!r} holds values that are not class ids in "
                f"[0, output_size={classes})",
                _scalar_class_rule(lab, classes),
            )
        )
    elif profile.label_kind == "array":
        rules.append(
            (
                f"label column {columns.label!r} holds vectors whose size is not output_size "
                f"{config.output_size}, or null/NaN/Inf values",
                f"size({lab}) != {config.output_size} OR exists({lab}, v -> NOT {finite})",
            )
        )
    else:
        rules.append(
            (
                f"label column {columns.label!r} holds NaN or Inf values",
                f"isnan({lab}) OR abs({lab}) = double('Infinity')",
            )
        )
    return rules


def _scalar_class_rule(label: str, classes: int) -> str:
    return f"NOT ({label} >= 0 AND {label} < {classes} AND {label} = floor({label}))"


def check_rows(
    df: Any, columns: Columns, profile: DataProfile, config: ModelConfig, invalid_rows: str
) -> tuple[Any, dict[str, int]]:
    """Count rows that break each rule (one job). ``invalid_rows="error"`` raises ValueError
    for the first rule broken, with an example; ``"skip"`` filters the bad rows out and
    returns the counts."""
    from pyspark.sql import functions as F

    rules = _rules(columns, profile, config)
    # A null inside a condition counts as "bad": coalesce(condition, true).
    conditions = [f"coalesce({condition}, true)" for _, condition in rules]
    # Rules are checked in order and a row counts for the first rule it breaks, so that e.g. a
    # null sequence is not also reported as empty.
    counts_row = df.agg(
        *[
            F.sum(
                F.when(
                    F.expr(cond) & ~F.expr(" OR ".join(["false"] + conditions[:i])), 1
                ).otherwise(0)
            ).alias(f"rule{i}")
            for i, cond in enumerate(conditions)
        ]
    ).first()
    counts = {rules[i][0]: int(counts_row[f"rule{i}"] or 0) for i in range(len(rules))}
    broken = {problem: count for problem, count in counts.items() if count}
    if not broken:
        return df, {}
    if invalid_rows == "error":
        problem, count = next(iter(broken.items()))
        index = [r[0] for r in rules].index(problem)
        example = df.filter(F.expr(conditions[index])).select(*columns.selected()).first()
        shown = {k: _short(v) for k, v in example.asDict().items()} if example else {}
        raise ValueError(
            f"{problem}: {count} row(s), e.g. {shown}. Fix the data, or pass "
            "invalid_rows='skip' to leave such rows out (they are counted in the summary)"
        )
    bad = " OR ".join(conditions)
    kept = df.filter(~F.expr(bad))
    logger.warning("skipping %d invalid row(s): %s", sum(broken.values()), broken)
    return kept, broken


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_task(schema: Any, label_col: str) -> str:
    """``"classification"`` for integer labels (or arrays of them), else ``"regression"``."""
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, label_col, "label").dataType
    while isinstance(data_type, ArrayType):
        data_type = data_type.elementType
    return "classification" if _type_name(data_type) in _INTEGRAL else "regression"
