"""Spark ML's own tools drive the LSTM estimators: its evaluators read the probability and
raw prediction vectors, and CrossValidator tunes a Pipeline over a param grid, whose fitted
model saves, reloads and predicts the same."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark.ml import LSTMClassificationModel, LSTMClassifier
from tests.test_spark_ml import by_id, frame


@pytest.fixture(scope="module")
def two_class_model(spark):
    """A two-class problem, a classifier trained on it, and its scored rows."""
    x, y, lengths = noisy_sines(160, 12, 2, np.random.default_rng(3), min_len=6)
    df = frame(spark, x, y, lengths)
    model = LSTMClassifier(hiddenSizes=[8], epochs=10, batchSize=16, learningRate=0.02, seed=5).fit(
        df
    )
    # Materialised once, so that every evaluation below reads the same scores.
    return df, model, model.transform(df).localCheckpoint()


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative (ties count 1/2)."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positive) * len(negative)))


def test_binary_evaluator_reads_the_probability_and_raw_prediction_vectors(two_class_model):
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    _, _, scored = two_class_model
    rows = scored.select("label", "probability", "rawPrediction").collect()
    labels = np.array([row["label"] for row in rows])
    positive = np.array([row["probability"][1] for row in rows])
    expected = _auc(labels, positive)
    # The evaluator scores by element 1: the raw predictions (centred logits) order the rows
    # exactly as the probabilities do, so the default column gives the same area.
    raw = np.array([row["rawPrediction"].toArray() for row in rows])
    np.testing.assert_allclose(raw.sum(axis=1), 0.0, atol=1e-9)
    assert _auc(labels, raw[:, 1]) == pytest.approx(expected, abs=1e-9)
    for column in ("probability", "rawPrediction"):
        evaluator = BinaryClassificationEvaluator(rawPredictionCol=column)
        assert evaluator.evaluate(scored) == pytest.approx(expected, abs=1e-9)
    pr = BinaryClassificationEvaluator(rawPredictionCol="probability", metricName="areaUnderPR")
    area = pr.evaluate(scored)
    assert (
        labels.mean() < area <= 1.0
    )  # better than a constant score, whose PR area is the base rate
    assert expected > 0.8  # and the model did learn


def test_multiclass_log_loss_reads_the_probabilities(two_class_model):
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    _, _, scored = two_class_model
    rows = scored.select("label", "probability").collect()
    chosen = np.array([row["probability"][int(row["label"])] for row in rows])
    expected = float(-np.mean(np.log(np.clip(chosen, 1e-15, 1.0))))
    evaluator = MulticlassClassificationEvaluator(metricName="logLoss")
    assert evaluator.evaluate(scored) == pytest.approx(expected, rel=1e-9)


def test_cross_validator_tunes_a_pipeline_and_its_model_reloads(any_spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder

    x, y, lengths = noisy_sines(160, 12, 2, np.random.default_rng(3), min_len=6)
    df = frame(any_spark, x, y, lengths)
    classifier = LSTMClassifier(epochs=2, batchSize=16, seed=1)
    grid = ParamGridBuilder().addGrid(classifier.hiddenSizes, [[3], [6]]).build()
    validator = CrossValidator(
        estimator=Pipeline(stages=[classifier]),
        estimatorParamMaps=grid,
        evaluator=MulticlassClassificationEvaluator(metricName="accuracy"),
        numFolds=2,
        seed=7,
    )
    fitted = validator.fit(df)
    assert len(fitted.avgMetrics) == 2 and all(0.0 <= m <= 1.0 for m in fitted.avgMetrics)
    best = fitted.bestModel.stages[0]
    assert isinstance(best, LSTMClassificationModel)
    best_grid = grid[int(np.argmax(fitted.avgMetrics))]
    assert best.getHiddenSizes() == best_grid[classifier.hiddenSizes]
    fitted.write().save(str(tmp_path / "cv"))
    loaded = CrossValidatorModel.load(str(tmp_path / "cv"))
    assert loaded.avgMetrics == fitted.avgMetrics
    before = by_id(fitted.transform(df), "prediction", "probability")
    after = by_id(loaded.transform(df), "prediction", "probability")
    assert before == after


def test_the_evaluators_read_the_vectors_on_spark_connect(connect_spark):
    from pyspark.ml.evaluation import (
        BinaryClassificationEvaluator,
        MulticlassClassificationEvaluator,
    )

    x, y, lengths = noisy_sines(160, 12, 2, np.random.default_rng(3), min_len=6)
    df = frame(connect_spark, x, y, lengths)
    model = LSTMClassifier(hiddenSizes=[8], epochs=10, batchSize=16, learningRate=0.02, seed=5).fit(
        df
    )
    scored = model.transform(df)
    rows = scored.select("label", "probability").collect()
    labels = np.array([row["label"] for row in rows])
    probabilities = np.array([row["probability"].toArray() for row in rows])
    area = BinaryClassificationEvaluator(rawPredictionCol="probability").evaluate(scored)
    assert area == pytest.approx(_auc(labels, probabilities[:, 1]), abs=1e-9)
    chosen = probabilities[np.arange(len(labels)), labels.astype(int)]
    log_loss = MulticlassClassificationEvaluator(metricName="logLoss").evaluate(scored)
    assert log_loss == pytest.approx(float(-np.mean(np.log(chosen))), rel=1e-9)
