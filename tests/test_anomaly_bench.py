"""bench/anomaly.py's label-free pieces: the period estimate, the splits of the two shipped
series, and the evaluation of the test part (metrics named by the labels there)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.anomaly import estimate_period, evaluate, split


def test_estimate_period_finds_the_period_of_a_noisy_cycle():
    t = np.arange(2000)
    rng = np.random.default_rng(0)
    x = np.c_[np.sin(2 * np.pi * t / 37), np.cos(2 * np.pi * t / 37)] + 0.1 * rng.normal(
        size=(2000, 2)
    )
    assert estimate_period(x) == 37


def test_splits_of_the_shipped_series():
    pytest.importorskip("aeon")
    kdd = split("KDD-TSAD_135")
    assert (kdd["fit_end"], kdd["normal_end"], len(kdd["values"])) == (960, 1200, 7501)
    assert np.flatnonzero(kdd["labels"]).tolist() == list(range(4187, 4199))
    daphnet = split("Daphnet_S06R02E0")
    assert (daphnet["fit_end"], daphnet["normal_end"]) == (3942, 4928)
    assert daphnet["values"].shape == (7040, 9) and not daphnet["labels"].any()


def test_evaluate_reports_only_false_alarms_without_labelled_anomalies():
    labels = np.zeros(10, dtype=int)
    window = np.array([0, 0, 0, 0, 5, 1, 1, 3, 0, 0], dtype=float)
    result = evaluate(window, window, 2.0, labels, 2)
    assert result["at_threshold"] == {"flagged": 2, "steps": 8, "false_alarm_rate": 0.25}
    assert "step_average_precision" not in result
    labels[7] = 1
    result = evaluate(window, window, 2.0, labels, 2)
    assert result["at_threshold"]["precision"] == 0.5 and result["at_threshold"]["recall"] == 1.0
    assert result["step_top_hit"]["top_index"] == 4 and result["step_top_hit"]["hit"] is True
    assert result["step_average_precision"] == pytest.approx(0.5)
