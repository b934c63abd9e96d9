"""LSTMAnomalyDetector / LSTMAnomalyModel on both session kinds: the standardiser, the
training windows cut in Spark SQL and the calibrated threshold equal the one-process
definitions; transform keeps every row and adds the scores and flags of the core detector's
chunked scoring; save/load (and the core bundle without Spark); bad input in one line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparklstm.anomaly import AnomalyDetector, quantile_threshold
from sparklstm.anomaly.detector import Standardiser, training_windows
from sparklstm.spark.ml import LSTMAnomalyDetector, LSTMAnomalyModel

RNG = np.random.default_rng


def normal_series(seed: int, steps: int) -> np.ndarray:
    t = np.arange(steps)
    return np.sin(2 * np.pi * t / 20 + seed) + 0.05 * RNG(seed).normal(size=steps)


SERIES = [normal_series(0, 160), normal_series(1, 130), normal_series(2, 90)]


@pytest.fixture(scope="module")
def fitted(any_spark):
    rows = [(i, s.tolist(), False) for i, s in enumerate(SERIES)]
    rows.append((9, normal_series(9, 70).tolist(), True))
    df = any_spark.createDataFrame(rows, "id long, features array<double>, val boolean")
    estimator = LSTMAnomalyDetector(
        loss="gaussian_nll",
        hiddenSizes=[6],
        windowLength=24,
        windowStride=10,
        scoreWindow=3,
        falseAlarmRate=0.05,
        calibrationFraction=0.25,
        chunkLength=17,
        epochs=2,
        batchSize=8,
        localSteps=2,
        numPartitions=2,
        validationIndicatorCol="val",
        seed=4,
    )
    return estimator, estimator.fit(df), df


def test_fit_matches_the_one_process_definitions(fitted, any_spark):
    estimator, model, _ = fitted
    detector = model.anomalyDetector
    assert isinstance(detector, AnomalyDetector) and detector.config.regression_loss == (
        "gaussian_nll"
    )
    heads = [s[: len(s) - math.floor(0.25 * len(s))] for s in SERIES]
    expected = Standardiser.fit([h[:, None] for h in heads])
    np.testing.assert_allclose(detector.standardiser.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(detector.standardiser.scale, expected.scale, rtol=1e-12)
    # The windows cut in Spark SQL are training_windows of the standardised heads.
    frame = any_spark.createDataFrame([(s.tolist(),) for s in SERIES], "features array<double>")
    spark_windows = estimator._windows(frame, "features", detector.standardiser, head=True)
    got = sorted((tuple(r.window), tuple(r.target)) for r in spark_windows.collect())
    wanted = []
    for head in heads:
        x, y, n = training_windows([detector.standardiser(head[:, None])], 24, 10)
        wanted += [(tuple(x[k, : n[k], 0]), tuple(y[k, : n[k], 0])) for k in range(len(x))]
    assert len(got) == len(wanted)
    for (gx, gy), (wx, wy) in zip(got, sorted(wanted), strict=True):
        np.testing.assert_allclose(gx, wx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gy, wy, rtol=1e-12, atol=1e-12)
    # The threshold: the quantile of the held-out ends' window scores, scored in one process.
    pooled = []
    for s, head in zip(SERIES, heads, strict=True):
        pooled.append(detector.score(s).window[len(head) :])
    assert model.threshold == quantile_threshold(np.concatenate(pooled), 0.05)
    assert model.hasSummary and len(model.history) >= 2
    assert "val_loss" in model.history[-1]


def test_transform_keeps_rows_and_adds_the_core_scores(fitted, any_spark):
    _, model, _ = fitted
    detector = model.anomalyDetector
    stream = normal_series(5, 120)
    stream[60:66] += 2.0
    rows = [(1, stream.tolist()), (2, None), (3, [0.5])]
    df = any_spark.createDataFrame(rows, "id long, features array<double>")
    out = {r.id: r for r in model.transform(df).collect()}
    assert sorted(out) == [1, 2, 3]
    expected = detector.score(stream)
    np.testing.assert_array_equal(np.array(out[1].anomalyScore, dtype=float), expected.step)
    np.testing.assert_array_equal(np.array(out[1].windowScore, dtype=float), expected.window)
    assert list(out[1].anomalyFlag) == expected.flags.tolist()
    assert out[1].features == stream.tolist()
    assert out[2].anomalyScore is None and out[2].anomalyFlag is None
    assert math.isnan(out[3].anomalyScore[0]) and out[3].anomalyFlag == [False]
    only_flags = model.copy().setAnomalyScoreCol("").setWindowScoreCol("").transform(df)
    assert only_flags.columns == ["id", "features", "anomalyFlag"]


def test_save_and_load(fitted, any_spark, tmp_path):
    _, model, df = fitted
    path = str(tmp_path / "anomaly_model")
    model.write().overwrite().save(path)
    loaded = LSTMAnomalyModel.load(path)
    assert loaded.threshold == model.threshold
    assert loaded.getScoreWindow() == 3 and loaded.getHiddenSizes() == [6]
    core = AnomalyDetector.load(path + "/model")  # without Spark
    series = SERIES[0]
    np.testing.assert_array_equal(core.score(series).step, model.anomalyDetector.score(series).step)
    first = model.transform(df).orderBy("id").select("anomalyScore").collect()
    second = loaded.transform(df).orderBy("id").select("anomalyScore").collect()
    assert len(first) == len(second) == 4
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.array(a[0], float), np.array(b[0], float))


def test_bad_input_in_one_line(any_spark):
    estimator = LSTMAnomalyDetector(epochs=1)
    multi = any_spark.createDataFrame([([[1.0, 2.0]],)], "features array<array<double>>")
    with pytest.raises(TypeError, match="univariate series per row as array<double>"):
        estimator.fit(multi)
    holed = any_spark.createDataFrame([([1.0, float("nan"), 2.0] * 10,)], "features array<double>")
    with pytest.raises(ValueError, match="null, NaN or infinite"):
        estimator.fit(holed)
    with pytest.raises(ValueError, match="score='nll' needs"):
        LSTMAnomalyDetector(loss="mse", score="nll").fit(holed)
    with pytest.raises((TypeError, ValueError), match="falseAlarmRate"):
        LSTMAnomalyDetector(falseAlarmRate=2.0)


def test_reloads_inside_a_pipeline_model(fitted, any_spark, tmp_path):
    from pyspark.ml import PipelineModel

    _, model, df = fitted
    path = str(tmp_path / "pipeline")
    PipelineModel(stages=[model]).write().overwrite().save(path)
    stage = PipelineModel.load(path).stages[0]
    assert isinstance(stage, LSTMAnomalyModel) and stage.threshold == model.threshold
    row = stage.transform(df).where("id = 0").select("anomalyFlag").first()
    assert row.anomalyFlag == model.anomalyDetector.score(SERIES[0]).flags.tolist()
