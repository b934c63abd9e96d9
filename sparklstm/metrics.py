"""Metric formulas, written once: from sums that workers add up, so that one process, Spark
tasks and Spark aggregations all finish the same way.

Classification: ``accuracy = correct / count``; per class ``c``, from the confusion matrix
``M[label][prediction]``::

    precision_c = M[c][c] / sum_t M[t][c]    recall_c = M[c][c] / sum_p M[c][p]
    f1_c        = 2 precision_c recall_c / (precision_c + recall_c)   (0 where undefined)

macro F1 averages over the classes present in the labels, weighted F1 weights by support.
Regression, with ``e = prediction - label`` over ``n`` values::

    rmse = sqrt(sum e^2 / n)    mae = sum |e| / n    r2 = 1 - sum e^2 / sum (label - mean)^2
    mape = 100 * sum(|e| / |label|) / (number of non-zero labels)   (a percentage)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "training_metrics",
    "metrics_from_totals",
    "classification_report",
    "regression_report",
    "mape",
]


def training_metrics(
    task: str, output_size: int, loss_sum: float, count: float, metric_sum: float
) -> dict[str, float]:
    """The mean loss and ``accuracy`` (``metric_sum`` = correct predictions) or ``rmse``
    (``metric_sum`` = summed squared error over ``output_size`` targets) of training steps
    whose results were summed over ``count`` loss terms."""
    n = max(count, 1)
    if task == "classification":
        return {"loss": loss_sum / n, "accuracy": metric_sum / n}
    return {"loss": loss_sum / n, "rmse": math.sqrt(metric_sum / (n * output_size))}


def metrics_from_totals(config: Any, totals: Mapping[str, float]) -> dict[str, float]:
    """``loss`` and ``accuracy`` (classification) or ``loss`` (MSE), ``rmse``, ``mae``
    (regression) from summed :meth:`SequenceModel.evaluation_totals`."""
    count = max(totals.get("count", 0.0), 1.0)
    if config.task == "classification":
        return {
            "loss": totals.get("loss", 0.0) / max(totals.get("weight", 0.0), 1e-300),
            "accuracy": totals.get("correct", 0.0) / count,
        }
    values = count * config.output_size
    metrics = {
        "loss": totals.get("sq", 0.0) / values,
        "rmse": math.sqrt(totals.get("sq", 0.0) / values),
        "mae": totals.get("abs", 0.0) / values,
    }
    if "nll" in totals:
        # A Gaussian head: its loss is the mean NLL per target value (what it is trained on),
        # ``mse`` the point predictions' mean squared error; both trainers report it so.
        metrics["mse"] = metrics["loss"]
        metrics["loss"] = totals["nll"] / values
    return metrics


def classification_report(matrix: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and macro/weighted F1 of a confusion
    matrix ``matrix[label][prediction]`` (counts)."""
    k = len(matrix)
    total = sum(map(sum, matrix))
    per_class = []
    for c in range(k):
        true_positive = matrix[c][c]
        predicted = sum(matrix[t][c] for t in range(k))
        support = sum(matrix[c])
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"class": c, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    present = [m for m in per_class if m["support"]]
    return {
        "count": total,
        "accuracy": sum(matrix[c][c] for c in range(k)) / total,
        "macro_f1": sum(m["f1"] for m in present) / len(present),
        "weighted_f1": sum(m["f1"] * m["support"] for m in present) / total,
        "per_class": per_class,
        "confusion_matrix": [list(row) for row in matrix],
    }


def regression_report(
    n: int,
    sse: float,
    sae: float,
    sum_label: float,
    sum_label_sq: float,
    sape: float | None,
    n_nonzero: int,
) -> dict[str, Any]:
    """RMSE, MAE, MAPE (over non-zero labels; None without any) and R² (None for constant
    labels) from sums over ``n`` values: squared and absolute errors, labels, squared labels
    and absolute percentage errors."""
    mean_label = sum_label / n
    total_ss = sum_label_sq - n * mean_label * mean_label
    return {
        "count": n,
        "rmse": math.sqrt(sse / n),
        "mae": sae / n,
        "mape": 100.0 * sape / n_nonzero if n_nonzero else None,
        "mape_count": n_nonzero,
        "r2": 1.0 - sse / total_ss if total_ss > 0 else None,
    }


def mape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute percentage error of two arrays, in percent: ``100 * mean(|a - p| / |a|)``
    (every actual value must be non-zero; :func:`regression_report` skips zero labels)."""
    a = _finite("actual", actual)
    p = _finite("predicted", predicted)
    if a.shape != p.shape:
        raise ValueError(f"actual has shape {a.shape}, predicted {p.shape}: they must match")
    if a.size == 0:
        raise ValueError("actual is empty")
    if (a == 0).any():
        raise ValueError("actual holds zeros: MAPE is undefined")
    return float(100.0 * np.mean(np.abs(a - p) / np.abs(a)))


def _finite(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf")
    return arr
