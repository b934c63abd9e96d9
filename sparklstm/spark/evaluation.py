"""Metrics of predictions against labels, computed by Spark SQL aggregations.

Each function runs one aggregation job over a DataFrame holding a label column and a prediction
column (as :func:`sparklstm.spark.inference.predict_dataframe` writes it) and returns plain
Python numbers; only the aggregates (a ``k x k`` confusion matrix, a handful of sums) reach the
driver. Per-step models are scored over every valid step: when both columns are arrays, their
elements are paired position by position, and positions without a prediction (padding past the
sequence's length) are left out.

The formulas (accuracy, per-class and macro/weighted F1, RMSE, MAE, MAPE, R²) are those of
:mod:`sparklstm.metrics`, applied to the aggregates.
"""

from __future__ import annotations

import math
from typing import Any

from sparklstm.metrics import classification_report, regression_report

__all__ = ["classification_metrics", "regression_metrics", "evaluate_predictions"]

_LABEL = "__label"
_PREDICTION = "__prediction"


def _require(df: Any, **columns: str) -> None:
    for role, name in columns.items():
        if name not in df.columns:
            raise ValueError(f"{role} column {name!r} not found; columns are {df.columns}")


def _pairs(df: Any, label_col: str, prediction_col: str) -> Any:
    """``(label, prediction)`` rows as doubles: one per row, or one per valid step."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    _require(df, label=label_col, prediction=prediction_col)
    label_array = isinstance(df.schema[label_col].dataType, ArrayType)
    prediction_array = isinstance(df.schema[prediction_col].dataType, ArrayType)
    if label_array != prediction_array:
        raise TypeError(
            f"label column {label_col!r} ({df.schema[label_col].dataType.simpleString()}) and "
            f"prediction column {prediction_col!r} "
            f"({df.schema[prediction_col].dataType.simpleString()}) must both be scalars or both "
            "be arrays"
        )
    label, prediction = F.col(label_col), F.col(prediction_col)
    if not label_array:
        return df.select(
            label.cast("double").alias(_LABEL), prediction.cast("double").alias(_PREDICTION)
        ).where(F.col(_PREDICTION).isNotNull())
    pairs = F.zip_with(
        label,
        prediction,
        lambda lab, pred: F.struct(
            lab.cast("double").alias(_LABEL), pred.cast("double").alias(_PREDICTION)
        ),
    )
    return (
        df.select(F.explode(pairs).alias("pair"))
        .select("pair.*")
        .where(F.col(_PREDICTION).isNotNull())
    )


def _check_labels(count_null: int, label_col: str) -> None:
    if count_null:
        raise ValueError(f"label column {label_col!r} has {count_null} null value(s)")


def classification_metrics(
    df: Any,
    label_col: str = "label",
    prediction_col: str = "prediction",
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted F1, and the
    confusion matrix (``matrix[true][predicted]``) of class predictions.

    Raises ``ValueError`` for a missing column, null or negative/non-integral labels, or no rows.
    """
    from pyspark.sql import functions as F

    pairs = _pairs(df, label_col, prediction_col)
    counts = (
        pairs.groupBy(_LABEL, _PREDICTION).agg(F.count(F.lit(1)).alias("n")).collect()
    )  # at most k*k (+ nulls) rows
    null_labels = sum(r["n"] for r in counts if r[_LABEL] is None)
    _check_labels(null_labels, label_col)
    if not counts:
        raise ValueError(f"no rows with a prediction in column {prediction_col!r} to evaluate")
    for role, column, key in (
        ("label", label_col, _LABEL),
        ("prediction", prediction_col, _PREDICTION),
    ):
        bad = [r[key] for r in counts if r[key] < 0 or r[key] != math.floor(r[key])]
        if bad:
            raise ValueError(f"{role} column {column!r} holds {bad[0]!r}, not a class index")
    k = int(max(max(r[_LABEL] for r in counts), max(r[_PREDICTION] for r in counts))) + 1
    if num_classes is not None:
        if k > num_classes:
            raise ValueError(f"class index {k - 1} is out of range for num_classes={num_classes}")
        k = num_classes
    matrix = [[0] * k for _ in range(k)]
    for r in counts:
        matrix[int(r[_LABEL])][int(r[_PREDICTION])] += int(r["n"])
    return classification_report(matrix)


def regression_metrics(
    df: Any, label_col: str = "label", prediction_col: str = "prediction"
) -> dict[str, Any]:
    """RMSE, MAE, MAPE (percent, over non-zero labels), R² and counts of real-valued
    predictions (vector and per-step outputs are scored element by element)."""
    from pyspark.sql import functions as F

    pairs = _pairs(df, label_col, prediction_col)
    label, error = F.col(_LABEL), F.col(_PREDICTION) - F.col(_LABEL)
    nonzero = label.isNotNull() & (label != 0)
    row = pairs.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(label).alias("n_label"),
        F.sum(error * error).alias("sse"),
        F.sum(F.abs(error)).alias("sae"),
        F.sum(label).alias("sum_label"),
        F.sum(label * label).alias("sum_label_sq"),
        F.sum(F.when(nonzero, F.abs(error) / F.abs(label))).alias("sape"),
        F.count(F.when(nonzero, F.lit(1))).alias("n_nonzero"),
    ).first()
    _check_labels(row["n"] - row["n_label"], label_col)
    n = row["n"]
    if not n:
        raise ValueError(f"no rows with a prediction in column {prediction_col!r} to evaluate")
    return regression_report(
        n,
        row["sse"],
        row["sae"],
        row["sum_label"],
        row["sum_label_sq"],
        row["sape"],
        row["n_nonzero"],
    )


def evaluate_predictions(
    df: Any,
    task: str,
    label_col: str = "label",
    prediction_col: str = "prediction",
    num_classes: int | None = None,
) -> dict[str, Any]:
    """:func:`classification_metrics` or :func:`regression_metrics` by ``task``."""
    if task == "classification":
        return classification_metrics(df, label_col, prediction_col, num_classes)
    if task == "regression":
        return regression_metrics(df, label_col, prediction_col)
    raise ValueError(f"task = {task!r}: must be 'classification' or 'regression'")
