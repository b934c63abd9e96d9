"""The metric formulas (sparklstm.metrics), on values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparklstm.metrics import classification_report, regression_report, training_metrics


def test_classification_report_of_a_small_confusion_matrix():
    # labels 0: 3 right, 1 called 1; labels 1: 2 right; no label 2, one prediction 2 (of a 1).
    matrix = [[3, 1, 0], [0, 2, 1], [0, 0, 0]]
    report = classification_report(matrix)
    assert report["count"] == 7 and report["accuracy"] == pytest.approx(5 / 7)
    zero, one, two = report["per_class"]
    assert (zero["precision"], zero["recall"], zero["support"]) == (1.0, 0.75, 4)
    assert zero["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert (one["precision"], one["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert two == {"class": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # class 2 has no support: left out of the macro mean, weight 0 in the weighted one
    assert report["macro_f1"] == pytest.approx((zero["f1"] + one["f1"]) / 2)
    assert report["weighted_f1"] == pytest.approx((4 * zero["f1"] + 3 * one["f1"]) / 7)


def test_regression_report_from_sums():
    label = np.array([1.0, 2.0, 0.0, 4.0])
    prediction = np.array([1.5, 1.0, 0.5, 4.0])
    error = prediction - label
    nonzero = label != 0
    report = regression_report(
        4,
        float(error @ error),
        float(np.abs(error).sum()),
        float(label.sum()),
        float(label @ label),
        float((np.abs(error[nonzero]) / np.abs(label[nonzero])).sum()),
        int(nonzero.sum()),
    )
    assert report["rmse"] == pytest.approx(math.sqrt(1.5 / 4))
    assert report["mae"] == pytest.approx(2.0 / 4)
    assert report["mape"] == pytest.approx(100 * (0.5 + 0.5 + 0.0) / 3)
    assert report["r2"] == pytest.approx(1 - 1.5 / float(((label - label.mean()) ** 2).sum()))
    constant = regression_report(2, 1.0, 1.0, 2.0, 2.0, None, 0)
    assert constant["r2"] is None and constant["mape"] is None


def test_training_metrics_average_over_loss_terms():
    assert training_metrics("classification", 3, 6.0, 4, 3.0) == {"loss": 1.5, "accuracy": 0.75}
    regression = training_metrics("regression", 2, 8.0, 4, 32.0)
    assert regression == {"loss": 2.0, "rmse": 2.0}
    assert training_metrics("classification", 2, 0.0, 0, 0.0) == {"loss": 0.0, "accuracy": 0.0}


def test_mape_of_arrays_and_its_refusals():
    from sparklstm.metrics import mape

    assert mape([100.0, 200.0], [110.0, 150.0]) == pytest.approx(100 * (0.1 + 0.25) / 2)
    with pytest.raises(ValueError, match="actual holds zeros"):
        mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="they must match"):
        mape([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="predicted holds NaN"):
        mape([1.0], [float("nan")])
