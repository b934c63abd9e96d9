"""Anomaly detection in one process (issue 17, part 2): the metrics against hand-computed
values, the scores' and threshold's formulas, the training windows, scoring a stream chunk by
chunk with carried state equal to one pass, calibration, the model file, bad input in one
line, and a detector that finds an injected anomaly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparklstm.anomaly import (
    AnomalyDetector,
    AnomalyOptions,
    average_precision,
    flag_metrics,
    labelled_ranges,
    quantile_threshold,
    step_scores,
    top_score_hit,
    window_scores,
)
from sparklstm.anomaly.baselines import discord_distances, moving_average_residual
from sparklstm.anomaly.detector import training_windows
from sparklstm.anomaly.scoring import TrailingMean
from sparklstm.io.model_files import ModelFileError

RNG = np.random.default_rng


# ------------------------------------------------------------------------------ metrics
def test_flag_metrics_by_hand():
    labels = [0, 0, 1, 1, 1, 0, 0, 0]
    flags = [0, 1, 1, 1, 0, 0, 0, 1]
    # TP = 2 (steps 2, 3), FP = 2 (1, 7), FN = 1 (4), TN = 3.
    result = flag_metrics(labels, flags)
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (2, 2, 1, 3)
    assert result["precision"] == 0.5
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["false_alarm_rate"] == pytest.approx(2 / 5)
    none = flag_metrics(labels, [0] * 8)
    assert none["precision"] == 0.0 and none["recall"] == 0.0 and none["f1"] == 0.0


def test_average_precision_by_hand_and_against_scikit_learn():
    labels = np.array([0, 1, 0, 1, 0, 0])
    scores = np.array([0.1, 0.9, 0.8, 0.3, 0.2, np.nan])
    # Ranked: 0.9 (hit) P=1 R=1/2; 0.8 (miss); 0.3 (hit) P=2/3 R=1. AP = 1/2 + 1/2 * 2/3.
    assert average_precision(labels, scores) == pytest.approx(0.5 + (2 / 3) / 2, rel=1e-15)
    # Ties form one threshold: scores (0.5, 0.5) for a hit and a miss: P = 1/2 at R = 1.
    assert average_precision([1, 0], [0.5, 0.5]) == 0.5
    assert math.isnan(average_precision([0, 0], [1.0, 2.0]))
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = RNG(0)
    many_labels = (rng.random(300) < 0.1).astype(int)
    many_scores = np.round(rng.normal(size=300) + many_labels, 1)  # with ties
    assert average_precision(many_labels, many_scores) == pytest.approx(
        sklearn_metrics.average_precision_score(many_labels, many_scores), rel=1e-12
    )


def test_top_score_hit_uses_the_larger_of_the_range_and_the_tolerance():
    labels = np.zeros(1000, dtype=int)
    labels[500:512] = 1  # 12 steps: the tolerance of 100 is the larger
    assert labelled_ranges(labels) == [(500, 511)]
    for top, hit, strict, distance in [
        (505, True, True, 0),
        (400, True, False, 100),
        (399, False, False, 101),
        (611, True, False, 100),
        (612, False, False, 101),
    ]:
        scores = np.zeros(1000)
        scores[top] = 1.0
        result = top_score_hit(labels, scores)
        assert (result["hit"], result["hit_strict"], result["distance"]) == (
            hit,
            strict,
            distance,
        ), top
    long = np.zeros(1000, dtype=int)
    long[300:450] = 1  # 150 steps: the range's length is the larger
    scores = np.zeros(1000)
    scores[149] = 1.0  # 151 before the range's first step
    assert top_score_hit(long, scores)["hit"] is False
    scores[150] = 2.0
    assert top_score_hit(long, scores)["hit"] is True
    scores = np.zeros(1000)
    scores[400] = 1.0
    assert top_score_hit(labels, scores, tolerance=0)["hit"] is False
    with pytest.raises(ValueError, match="exactly one labelled range"):
        top_score_hit(np.r_[labels[:900], np.ones(100, dtype=int)], scores)


def test_metrics_refuse_bad_labels_in_one_line():
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        flag_metrics([0, 2], [0, 1])
    with pytest.raises(ValueError, match="flags has shape"):
        flag_metrics([0, 1], [0, 1, 1])


# ------------------------------------------------------------------------------ scores
def test_step_scores_window_scores_and_threshold_by_hand():
    targets = np.array([[1.0], [3.0]])
    outputs = np.array([[0.0, 0.0], [1.0, math.log(4.0)]])
    nll = step_scores(outputs, targets, "nll")
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(nll, [half_log_2pi + 0.5, half_log_2pi + 0.5 * math.log(4) + 0.5])
    np.testing.assert_allclose(step_scores(outputs, targets, "squared_error"), [1.0, 4.0])
    scores = np.array([np.nan, 1.0, 2.0, 6.0, 3.0])
    np.testing.assert_allclose(window_scores(scores, 2), [np.nan, 1.0, 1.5, 4.0, 4.5])
    np.testing.assert_allclose(window_scores(scores, 3), [np.nan, 1.0, 1.5, 3.0, 11 / 3])
    # Chunked (carrying the last k - 1 scores) equals one pass.
    trailing = TrailingMean(3)
    chunked = np.concatenate([trailing(scores[:2]), trailing(scores[2:3]), trailing(scores[3:])])
    np.testing.assert_array_equal(chunked, window_scores(scores, 3))
    # 10 scores, rate 0.2: the 8th smallest; 2 scores (20%) lie above it.
    values = np.array([5.0, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    assert quantile_threshold(values, 0.2) == 8.0
    assert quantile_threshold(values, 0.25) == 8.0  # ceil(7.5) = 8th: 2 above, <= 25%
    assert quantile_threshold(values, 0.05) == 10.0
    assert quantile_threshold(np.r_[values, np.nan], 0.2) == 8.0


def test_training_windows_by_hand():
    x = np.arange(12.0)[:, None]  # 11 (input, next) pairs
    inputs, targets, lengths = training_windows([x], length=4, stride=3)
    # Starts 0, 3, 6, and the tail window at 11 - 4 = 7.
    np.testing.assert_array_equal(
        inputs[:, :, 0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [7, 8, 9, 10]]
    )
    np.testing.assert_array_equal(targets, inputs + 1)
    np.testing.assert_array_equal(lengths, [4, 4, 4, 4])
    short_in, short_out, short_len = training_windows([x[:3]], length=4, stride=3)
    np.testing.assert_array_equal(short_in[0, :, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(short_out[0, :, 0], [1, 2, 0, 0])
    assert short_len.tolist() == [2]


def test_baselines_by_hand():
    x = np.array([0.0, 2.0, 4.0, 1.0])
    # Means of the previous k = 2 steps: 0, 1, 3 -> residuals 2, 3, -2.
    np.testing.assert_allclose(moving_average_residual(x, 2), [np.nan, 4.0, 9.0, 4.0])
    reference = np.sin(np.arange(40) / 3.0)
    series = np.r_[reference[:20], -reference[20:30]]
    distances = discord_distances(series, reference, 5)
    assert np.isnan(distances[:4]).all()
    np.testing.assert_allclose(distances[4:20], 0.0, atol=1e-6)  # copies of the reference

    # The distance of one window, by its definition: the z-normalised Euclidean minimum.
    def z(v):
        return (v - v.mean()) / v.std()

    window = series[25:30]
    expected = min(np.linalg.norm(z(window) - z(reference[s : s + 5])) for s in range(36))
    assert distances[29] == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------- detector
def sine(n, seed=0, period=25):
    rng = RNG(seed)
    t = np.arange(n)
    return np.c_[np.sin(2 * np.pi * t / period), np.cos(2 * np.pi * t / period)] + 0.05 * (
        rng.normal(size=(n, 2))
    )


def small_detector(**options):
    defaults = dict(input_size=2, hidden_sizes=[6], window_length=30, seed=0)
    return AnomalyDetector(**{**defaults, **options})


@pytest.mark.parametrize("loss", ["gaussian_nll", "mse"])
def test_chunked_stream_scores_equal_one_pass(loss):
    detector = small_detector(regression_loss=loss, dtype="float64", score_window=4)
    series = sine(300)
    detector.fit([series], epochs=1, batch_size=8)
    one_pass = detector.model.forward(detector.standardiser(series)[None, :-1])[0]
    scaled = detector.standardiser(series)
    expected = np.r_[np.nan, step_scores(one_pass, scaled[1:], detector.score_name)]
    for chunk in (1, 7, 299, 1000):
        steps = detector.step_scores(series, chunk_length=chunk)
        np.testing.assert_allclose(steps, expected, rtol=1e-12, atol=1e-12, err_msg=str(chunk))
    detector.calibrate([series])
    scores = detector.score(series, chunk_length=13)
    np.testing.assert_allclose(scores.window, window_scores(expected, 4), rtol=1e-12)
    np.testing.assert_array_equal(scores.flags, scores.window > detector.threshold)
    assert not scores.flags[0]
    assert detector.score_name == ("nll" if loss == "gaussian_nll" else "squared_error")


def test_calibration_holds_the_false_alarm_rate_on_the_calibration_steps():
    detector = small_detector(false_alarm_rate=0.05, score_window=3)
    series = sine(400)
    detector.fit([series[:300]], epochs=2, batch_size=8)
    threshold = detector.calibrate([series], start=300)
    windows = detector.score(series).window[300:]
    assert threshold in windows  # an observed score
    above = float((windows > threshold).mean())
    assert above <= 0.05 and (windows >= threshold).mean() > 0.05 - 1e-12


def test_save_and_load_keep_scores_and_threshold(tmp_path):
    detector = small_detector(score_window=5, false_alarm_rate=0.02)
    series = sine(200)
    detector.fit([series], epochs=1, batch_size=8)
    detector.calibrate([series])
    detector.save(tmp_path / "detector")
    loaded = AnomalyDetector.load(tmp_path / "detector")
    assert loaded.threshold == detector.threshold
    assert loaded.options == detector.options
    assert loaded.model.config == detector.model.config
    before, after = detector.score(series), loaded.score(series)
    np.testing.assert_array_equal(after.step, before.step)
    np.testing.assert_array_equal(after.flags, before.flags)
    with pytest.raises(ModelFileError):
        type(detector.model).load(tmp_path / "detector")  # another kind of file


def test_bad_input_is_refused_in_one_line_before_work():
    with pytest.raises(ValueError, match="head: the detector sets it"):
        AnomalyDetector(input_size=1, head="last")
    with pytest.raises(ValueError, match="score='nll' needs"):
        AnomalyDetector(input_size=1, regression_loss="mse", score="nll")
    with pytest.raises(ValueError, match="false_alarm_rate"):
        AnomalyOptions(false_alarm_rate=1.5)
    with pytest.raises(ValueError, match="window_length = 1"):
        AnomalyOptions(window_length=1)
    detector = small_detector()
    with pytest.raises(ValueError, match="call fit first"):
        detector.step_scores(sine(10))
    with pytest.raises(TypeError, match="list of series"):
        detector.fit(sine(50))
    bad = sine(50)
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"series\[0\]: contains NaN"):
        detector.fit([bad])
    with pytest.raises(ValueError, match="3 features, the detector takes 2"):
        detector.fit([np.zeros((50, 3))])


def test_finds_an_injected_anomaly():
    normal = sine(1200, seed=1)
    test = sine(1500, seed=2)
    test[1000:1015] = test[1000:1015] * -1.0  # a phase flip for 15 steps
    labels = np.zeros(1500, dtype=int)
    labels[1000:1015] = 1
    detector = small_detector(hidden_sizes=[16], window_length=50, score_window=5)
    detector.fit([normal[:1000]], validation=[normal[1000:]], epochs=20, batch_size=16, lr=1e-2)
    detector.calibrate([normal], start=1000)
    scores = detector.score(test)
    hit = top_score_hit(labels, scores.window)
    # The window score trails by up to score_window steps; the jump back at the end of the
    # flipped stretch is as surprising as the one into it.
    assert hit["hit"] and hit["distance"] <= 5, hit
    assert average_precision(labels, scores.window) > 0.5
    assert flag_metrics(labels, scores.flags)["recall"] > 0.5
    assert flag_metrics(labels[:1000], scores.flags[:1000])["false_alarm_rate"] < 0.03


def test_a_memory_mapped_stream_scores_as_the_array(tmp_path):
    detector = small_detector(score_window=4)
    series = sine(500)
    detector.fit([series[:300]], epochs=1, batch_size=8)
    detector.calibrate([series[:300]], start=200)
    np.save(tmp_path / "stream.npy", series.astype(np.float32))
    mapped = np.load(tmp_path / "stream.npy", mmap_mode="r")
    in_memory = detector.score(series.astype(np.float32), chunk_length=64)
    from_disk = detector.score(mapped, chunk_length=64)
    np.testing.assert_array_equal(from_disk.step, in_memory.step)
    np.testing.assert_array_equal(from_disk.flags, in_memory.flags)
    broken = series.copy()
    broken[321, 0] = np.inf
    with pytest.raises(ValueError, match="stream: contains NaN or Inf"):
        detector.score(broken)
    with pytest.raises(ValueError, match="chunk_length must be an int >= 1"):
        detector.score(series, chunk_length=0)
