"""SQL metrics against the same metrics computed in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.spark.evaluation import (
    classification_metrics,
    evaluate_predictions,
    regression_metrics,
)


def test_classification_metrics_match_numpy(any_spark):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 4, size=500))
    df = any_spark.createDataFrame(
        [(int(a), float(b)) for a, b in zip(labels, predictions, strict=True)],
        "label int, prediction double",
    )
    report = classification_metrics(df, num_classes=5)  # class 4 never occurs
    matrix = np.zeros((5, 5), dtype=int)
    np.add.at(matrix, (labels, predictions.astype(int)), 1)
    assert report["confusion_matrix"] == matrix.tolist()
    assert report["count"] == 500
    assert report["accuracy"] == pytest.approx(np.mean(labels == predictions))
    f1 = []
    for c in range(4):
        precision = matrix[c, c] / matrix[:, c].sum()
        recall = matrix[c, c] / matrix[c].sum()
        row = report["per_class"][c]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert row["support"] == np.sum(labels == c)
        f1.append(row["f1"])
    assert report["per_class"][4] == {
        "class": 4, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0
    }  # fmt: skip
    assert report["macro_f1"] == pytest.approx(np.mean(f1))  # over the classes present
    support = np.bincount(labels, minlength=4)
    assert report["weighted_f1"] == pytest.approx(np.dot(f1, support) / 500)


def test_per_step_classification_pairs_valid_steps_only(any_spark):
    # Labels padded past each sequence's length; predictions only for the valid steps.
    df = any_spark.createDataFrame(
        [([1, 0, 2, 0], [1.0, 0.0]), ([2, 2, 0, 0], [2.0, 1.0, 0.0])],
        "label array<int>, prediction array<double>",
    )
    report = classification_metrics(df)
    assert report["count"] == 5
    assert report["accuracy"] == pytest.approx(4 / 5)
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_regression_metrics_match_numpy(any_spark):
    rng = np.random.default_rng(1)
    labels = rng.normal(3.0, 2.0, size=300)
    labels[:5] = 0.0  # left out of MAPE only
    predictions = labels + rng.normal(0.0, 0.5, size=300)
    df = any_spark.createDataFrame(
        [(float(a), float(b)) for a, b in zip(labels, predictions, strict=True)],
        "label double, prediction double",
    )
    report = regression_metrics(df)
    error = predictions - labels
    assert report["count"] == 300
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)))
    assert report["mae"] == pytest.approx(np.mean(np.abs(error)))
    nonzero = labels != 0
    assert report["mape_count"] == 295
    assert report["mape"] == pytest.approx(100 * np.mean(np.abs(error[nonzero] / labels[nonzero])))
    r2 = 1 - np.sum(error**2) / np.sum((labels - labels.mean()) ** 2)
    assert report["r2"] == pytest.approx(r2)
    assert evaluate_predictions(df, "regression") == report


def test_vector_targets_are_scored_element_by_element(any_spark):
    df = any_spark.createDataFrame(
        [([1.0, 2.0], [1.5, 2.0]), ([4.0, -2.0], [4.0, -1.0])],
        "label array<float>, prediction array<double>",
    )
    report = regression_metrics(df)
    error = np.array([0.5, 0.0, 0.0, 1.0])
    assert report["count"] == 4
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)))
    assert report["mape"] == pytest.approx(100 * np.mean(error / np.array([1, 2, 4, 2])))


def test_bad_inputs_are_named(any_spark):
    df = any_spark.createDataFrame([(1, 1.0), (None, 0.0)], "label int, prediction double")
    with pytest.raises(ValueError, match="label column 'label' has 1 null"):
        classification_metrics(df)
    with pytest.raises(ValueError, match="prediction column 'pred' not found"):
        classification_metrics(df, prediction_col="pred")
    mixed = any_spark.createDataFrame([([1], 1.0)], "label array<int>, prediction double")
    with pytest.raises(TypeError, match="both be scalars or both be arrays"):
        regression_metrics(mixed)
    fractional = any_spark.createDataFrame([(1.5, 1.0)], "label double, prediction double")
    with pytest.raises(ValueError, match="not a class index"):
        classification_metrics(fractional)
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        classification_metrics(
            any_spark.createDataFrame([(3, 1.0)], "label int, prediction double"), num_classes=2
        )
    with pytest.raises(ValueError, match="task"):
        evaluate_predictions(df, "ranking")
