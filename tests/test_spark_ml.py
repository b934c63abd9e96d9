"""Distributed inference and the pyspark.ml API: predictions equal the NumPy model's, rows pass
through unchanged, the Estimators learn, Params behave like Spark's, and models persist (also
inside a saved PipelineModel).

The tests that take ``any_spark`` (directly or through the ``sines`` fixture) run on a classic
session and on Spark Connect: the classifier's fit, transform and evaluation (the two kinds must
fit bit-identical models), and the model, Estimator and Pipeline round trips.
``tests/test_spark_ml_connect.py`` has what only Spark Connect does (a model saved by one kind
and loaded by the other, the paths Connect refuses).
"""

from __future__ import annotations

import inspect

import numpy as np
import pyarrow as pa
import pytest

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark.evaluation import evaluate_predictions
from sparklstm.spark.inference import predict_dataframe
from sparklstm.spark.ml import (
    LSTMClassificationModel,
    LSTMClassifier,
    LSTMRegressionModel,
    LSTMRegressor,
)


def frame(spark, x, y=None, lengths=None, partitions=2, **extra):
    """A DataFrame of ``x`` (and ``y``) with an ``id`` column and ``extra`` columns;
    ``partitions=None`` keeps the rows in order (row 0 first)."""
    table = numpy_to_arrow(x, y, lengths).append_column("id", pa.array(np.arange(len(x))))
    for name, values in extra.items():
        table = table.append_column(name, pa.array(values))
    df = spark.createDataFrame(table)
    return df if partitions is None else df.repartition(partitions)


def by_id(df, *columns):
    return {row["id"]: row for row in df.select("id", *columns).collect()}


def random_sequences(n, t_max, features, seed, min_len=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, t_max + 1, size=n)
    x = rng.normal(size=(n, t_max, features)).astype(np.float32)
    x[np.arange(t_max)[None, :] >= lengths[:, None]] = 0
    return x, lengths


# --------------------------------------------------------------------------- inference
def test_predictions_equal_the_numpy_model_and_rows_pass_through(spark):
    x, lengths = random_sequences(60, 9, 3, seed=0)
    model = SequenceModel(input_size=3, hidden_sizes=[8, 6], output_size=4, seed=1)
    tags = [f"row-{i}" for i in range(60)]
    df = frame(spark, x, lengths=lengths, partitions=3, tag=tags)
    # batch_size 7 < the Arrow batches: every batch is cut into several forward passes.
    out = predict_dataframe(model, df, raw_col="logits", batch_size=7)

    assert out.columns == ["features", "id", "tag", "prediction", "probability", "logits"]
    assert out.schema.simpleString().endswith(
        "prediction:double,probability:array<double>,logits:array<double>>"
    )
    assert out.count() == 60
    rows = by_id(out, "features", "tag", "prediction", "probability", "logits")
    assert sorted(rows) == list(range(60))
    order = np.arange(60)
    np.testing.assert_array_equal(
        [rows[i]["prediction"] for i in order], model.predict(x, lengths).astype(float)
    )
    np.testing.assert_allclose(
        [rows[i]["probability"] for i in order], model.predict_proba(x, lengths), atol=1e-6
    )
    np.testing.assert_allclose(
        [rows[i]["logits"] for i in order], model.forward(x, lengths), atol=1e-6
    )
    originals = by_id(df, "features", "tag")
    for i in order:
        assert rows[i]["tag"] == tags[i]
        assert rows[i]["features"] == originals[i]["features"]
        assert len(rows[i]["features"]) == lengths[i]


def test_a_length_column_shortens_sequences_and_without_it_the_arrays_count(spark):
    x, lengths = random_sequences(40, 8, 2, seed=2, min_len=2)
    full = np.full(40, 8)
    x_full = np.random.default_rng(3).normal(size=x.shape).astype(np.float32)
    model = SequenceModel(input_size=2, hidden_sizes=[8], output_size=3, cell="gru", seed=4)
    df = frame(spark, x_full, lengths=full, n=lengths.astype(np.int32))

    shortened = by_id(predict_dataframe(model, df, length_col="n"), "probability")
    whole = by_id(predict_dataframe(model, df), "probability")
    np.testing.assert_allclose(
        [shortened[i]["probability"] for i in range(40)],
        model.predict_proba(x_full, lengths),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        [whole[i]["probability"] for i in range(40)], model.predict_proba(x_full), atol=1e-6
    )
    assert not np.allclose(shortened[0]["probability"], whole[0]["probability"])


def test_empty_partitions_give_nothing_and_every_row_comes_out_once(spark):
    x, lengths = random_sequences(5, 6, 2, seed=5)
    model = SequenceModel(input_size=2, hidden_sizes=[4], output_size=2, seed=0)
    df = frame(spark, x, lengths=lengths).repartition(8)
    assert df.rdd.getNumPartitions() == 8  # 5 rows: at least 3 partitions are empty
    out = predict_dataframe(model, df, probability_col=None)
    assert out.columns == ["features", "id", "prediction"]
    rows = by_id(out, "prediction")
    assert sorted(rows) == list(range(5))
    np.testing.assert_array_equal(
        [rows[i]["prediction"] for i in range(5)], model.predict(x, lengths)
    )


def test_per_step_models_give_one_output_per_valid_step(spark):
    rng = np.random.default_rng(6)
    tokens = rng.integers(0, 5, size=(30, 10))
    lengths = rng.integers(1, 11, size=30)
    model = SequenceModel(vocab_size=5, embedding_dim=4, hidden_sizes=[6], head="all", seed=2)
    out = predict_dataframe(model, frame(spark, tokens, lengths=lengths), raw_col="raw")
    assert out.schema.simpleString().endswith(
        "prediction:array<double>,probability:array<array<double>>,raw:array<array<double>>>"
    )
    rows = by_id(out, "prediction", "probability", "raw")
    expected = model.predict(tokens, lengths)
    probabilities = model.predict_proba(tokens, lengths)
    for i in range(30):
        steps = lengths[i]
        assert len(rows[i]["prediction"]) == len(rows[i]["probability"]) == steps
        np.testing.assert_array_equal(rows[i]["prediction"], expected[i, :steps])
        np.testing.assert_allclose(rows[i]["probability"], probabilities[i, :steps], atol=1e-6)
        assert all(len(step) == 2 for step in rows[i]["raw"])


def test_regression_outputs_one_value_or_a_vector(spark):
    x, lengths = random_sequences(25, 7, 1, seed=7)
    df = frame(spark, x[..., 0], lengths=lengths)  # univariate: array<float>
    assert df.schema["features"].dataType.simpleString() == "array<float>"
    single = SequenceModel(input_size=1, hidden_sizes=[5], task="regression", output_size=1)
    out = predict_dataframe(single, df)  # probability_col is ignored for regression
    assert out.columns == ["features", "id", "prediction"]
    assert out.schema["prediction"].dataType.simpleString() == "double"
    rows = by_id(out, "prediction")
    np.testing.assert_allclose(
        [rows[i]["prediction"] for i in range(25)], single.predict(x, lengths), atol=1e-6
    )

    per_step = SequenceModel(
        input_size=1, hidden_sizes=[5], task="regression", output_size=2, head="all", seed=3
    )
    out = predict_dataframe(per_step, df)
    assert out.schema["prediction"].dataType.simpleString() == "array<array<double>>"
    rows = by_id(out, "prediction")
    expected = per_step.predict(x, lengths)
    for i in range(25):
        np.testing.assert_allclose(rows[i]["prediction"], expected[i, : lengths[i]], atol=1e-6)


def test_bad_inputs_are_refused_with_the_column_named(spark):
    x, lengths = random_sequences(6, 4, 3, seed=8)
    model = SequenceModel(input_size=2, hidden_sizes=[4], output_size=2)
    df = frame(spark, x, lengths=lengths)
    with pytest.raises(ValueError, match=r"features column 'seq' not found; columns are \["):
        predict_dataframe(model, df, features_col="seq")
    with pytest.raises(ValueError, match="length column 'n' not found"):
        predict_dataframe(model, df, length_col="n")
    with pytest.raises(ValueError, match="prediction_col 'id' already exists"):
        predict_dataframe(model, df, prediction_col="id")
    with pytest.raises(ValueError, match="features column 'features' has 3 features per step"):
        predict_dataframe(model, df)
    empty_first = lengths.copy()
    empty_first[0] = 0  # the width check reads past an empty sequence (ANSI-safe)
    with pytest.raises(ValueError, match="has 3 features per step; the model expects"):
        predict_dataframe(model, frame(spark, x, lengths=empty_first, partitions=None))
    with pytest.raises(TypeError, match="features column 'id' has type bigint"):
        predict_dataframe(model, df, features_col="id")
    with pytest.raises(ValueError, match="univariate .* input_size=2"):
        predict_dataframe(model, frame(spark, x[..., 0], lengths=lengths))
    tokens = SequenceModel(vocab_size=4, hidden_sizes=[4])
    with pytest.raises(TypeError, match="the model takes token ids"):
        predict_dataframe(tokens, df)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predict_dataframe(model, df, batch_size=0)
    # Without the driver's check, the executors name the column.
    lazy = predict_dataframe(model, df, validate=False)
    with pytest.raises(Exception, match="column 'features' has 3 features per step"):
        lazy.collect()


# --------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def sines(any_spark):
    x, y, lengths = noisy_sines(480, 16, 2, np.random.default_rng(0), min_len=8)
    held_out = np.arange(480) % 4 == 0
    return x, y, lengths, frame(any_spark, x, y, lengths, held_out=held_out)


@pytest.fixture(scope="module")
def classifier_model(any_spark, sines):
    clf = LSTMClassifier(
        cellType="peephole",
        hiddenSizes=[8],
        epochs=3,
        batchSize=16,
        localSteps=5,
        learningRate=0.03,
        validationIndicatorCol="held_out",
        seed=1,
    )
    return clf.fit(sines[3])


# What test_the_classifier_learns_and_validates_on_the_indicated_rows saw on each kind of session
# ("classic", "connect"): the run of the second kind (pytest runs every [classic] test first)
# checks that its model and predictions are bit-identical to the first kind's.
FITTED: dict[str, dict[str, object]] = {}


def _kind(request) -> str:
    return request.node.callspec.params["any_spark"]


def test_the_classifier_learns_and_validates_on_the_indicated_rows(
    classifier_model, sines, request
):
    x, y, lengths, df = sines
    model = classifier_model
    assert isinstance(model, LSTMClassificationModel)
    assert model.sequenceModel.config.cell == "peephole" and model.numClasses == 2
    assert model.getHiddenSizes() == [8] and model.getValidationIndicatorCol() == "held_out"
    history = model.history
    assert len(history) == model.summary.summary["total_rounds"] >= 3
    assert all("val_loss" in row and "val_accuracy" in row for row in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # Only the training rows (3 in 4) were trained on.
    assert model.summary.summary["rows"] == 360
    scored = model.transform(df.where("held_out"))
    assert {"prediction", "probability", "rawPrediction"} <= set(scored.columns)
    accuracy = scored.selectExpr("avg(cast(prediction = label AS double))").first()[0]
    assert accuracy > 0.85
    assert accuracy == pytest.approx(history[-1]["val_accuracy"])
    # The evaluation helper scores the transformed rows as the trainer's validation did.
    metrics = evaluate_predictions(scored, "classification", num_classes=2)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert np.sum(metrics["confusion_matrix"]) == 120

    # Every row comes out once, unchanged, with the NumPy model's predictions.
    out = model.transform(df)
    assert out.columns == [*df.columns, "prediction", "probability", "rawPrediction"]
    # Per-sequence probabilities and logits are Spark ML vectors, as Spark's classifiers write.
    assert out.schema.simpleString().endswith(
        "prediction:double,probability:vector,rawPrediction:vector>"
    )
    rows = by_id(out, "features", "label", "held_out", "prediction", "probability")
    assert sorted(rows) == list(range(480))
    assert [rows[i]["label"] for i in range(480)] == y.tolist()
    assert [rows[i]["held_out"] for i in range(480)] == (np.arange(480) % 4 == 0).tolist()
    originals = by_id(df, "features")
    assert all(rows[i]["features"] == originals[i]["features"] for i in range(480))
    assert [len(rows[i]["features"]) for i in range(480)] == lengths.tolist()
    probability = np.array([rows[i]["probability"].toArray() for i in range(480)])
    np.testing.assert_array_equal(
        [rows[i]["prediction"] for i in range(480)], model.sequenceModel.predict(x, lengths)
    )
    np.testing.assert_allclose(
        probability, model.sequenceModel.predict_proba(x, lengths), atol=1e-6
    )

    # Training is deterministic: both kinds of session fit the same bits.
    seen = {
        "params": {name: value.tobytes() for name, value in model.sequenceModel.params.items()},
        "losses": [
            {key: value for key, value in row.items() if "loss" in key or "accuracy" in key}
            for row in history
        ],
        "probability": probability.tobytes(),
    }
    kind = _kind(request)
    FITTED[kind] = seen
    other = FITTED.get("connect" if kind == "classic" else "classic")
    if other is not None:
        assert seen["params"] == other["params"]
        assert seen["losses"] == other["losses"]
        assert seen["probability"] == other["probability"]


def test_the_regressor_beats_predicting_the_mean(spark, tmp_path):
    rng = np.random.default_rng(0)
    x, lengths = random_sequences(400, 10, 2, seed=9, min_len=4)
    y = x[..., 0].sum(axis=1) / lengths + 0.5 * x[np.arange(400), lengths - 1, 1]
    df = frame(spark, x, y.astype(np.float64), lengths)
    test = rng.permutation(400)[:80]
    train_df, test_df = df.where(~df.id.isin(test.tolist())), df.where(df.id.isin(test.tolist()))
    reg = LSTMRegressor(
        cellType="gru", hiddenSizes=[12], epochs=3, batchSize=16, localSteps=6, learningRate=0.03
    )
    model = reg.fit(train_df)
    assert isinstance(model, LSTMRegressionModel)
    assert model.sequenceModel.config.cell == "gru"
    assert model.sequenceModel.config.task == "regression"
    rows = model.transform(test_df).select("label", "prediction").collect()
    labels = np.array([r.label for r in rows])
    predictions = np.array([r.prediction for r in rows])
    rmse = np.sqrt(np.mean((predictions - labels) ** 2))
    baseline = np.sqrt(np.mean((labels - y[np.setdiff1d(np.arange(400), test)].mean()) ** 2))
    assert rmse < 0.5 * baseline
    # cacheDir (sessions that cannot persist) trains the same bits through Parquet files.
    files = reg.copy({reg.cacheDir: str(tmp_path / "cache")}).fit(train_df)
    for name, value in model.sequenceModel.params.items():
        np.testing.assert_array_equal(files.sequenceModel.params[name], value)


# --------------------------------------------------------------------------- Params
def test_params_defaults_setters_getters_and_docs():
    clf = LSTMClassifier()
    assert clf.getCellType() == "lstm" and clf.getHiddenSizes() == [64]
    assert clf.getBatchSize() == 32 and clf.getEpochs() == 10 and clf.getOptimizer() == "adam"
    assert clf.getLengthCol() is None and clf.getLearningRate() is None
    assert clf.getProbabilityCol() == "probability" and clf.getFeaturesCol() == "features"
    assert clf.getSeed() == LSTMClassifier().getSeed() >= 0  # the same in every process
    assert not clf.isDefined(clf.validationIndicatorCol)

    returned = clf.setHiddenSizes([16, 8]).setCellType("gru").setLearningRate(0.01)
    assert returned is clf
    clf.setLengthCol("n").setBidirectional(True).setDropout(0.2).setLocalSteps(4)
    assert clf.getHiddenSizes() == [16, 8] and clf.getCellType() == "gru"
    assert clf.getLearningRate() == 0.01 and clf.getLengthCol() == "n"
    assert clf.getBidirectional() and clf.getDropout() == 0.2 and clf.getLocalSteps() == 4
    clf.setParams(epochs=2, head="all", lengthCol=None)
    assert clf.getEpochs() == 2 and clf.getHead() == "all" and clf.getLengthCol() is None
    assert clf.getHiddenSizes() == [16, 8]  # untouched by setParams

    explained = clf.explainParams()
    for name in ("cellType", "hiddenSizes", "localSteps", "statePolicy", "lengthCol", "head"):
        assert f"{name}: " in explained
    assert "lstm, peephole (LSTM with peephole connections) or gru" in explained

    reg = LSTMRegressor(hiddenSizes=[4])
    assert not reg.hasParam("probabilityCol") and reg.getHiddenSizes() == [4]


@pytest.mark.parametrize("estimator", [LSTMClassifier, LSTMRegressor])
def test_constructor_defaults_are_the_param_defaults(estimator):
    instance = estimator()
    for name, parameter in inspect.signature(estimator.__init__).parameters.items():
        if name == "self" or parameter.default is None:
            continue
        assert instance.getOrDefault(name) == parameter.default, name


def test_invalid_params_fail_when_set_naming_the_param():
    with pytest.raises(ValueError, match="cellType must be one of 'lstm', 'peephole', 'gru'"):
        LSTMClassifier(cellType="foo")
    with pytest.raises(ValueError, match="batchSize must be >= 1, got -1"):
        LSTMClassifier(batchSize=-1)
    with pytest.raises(ValueError, match=r"hiddenSizes\[1\] must be >= 1"):
        LSTMRegressor().setHiddenSizes([8, 0])
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        LSTMClassifier(dropout=1.0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        LSTMRegressor(optimizer="lbfgs")
    with pytest.raises(TypeError, match='param "epochs"'):
        LSTMClassifier(epochs="many")


def test_bad_columns_fail_before_any_training(spark):
    x, lengths = random_sequences(20, 4, 2, seed=10)
    df = frame(spark, x, np.arange(20) % 2, lengths, flag=np.arange(20).astype(str))
    with pytest.raises(TypeError, match="validationIndicatorCol 'flag' must be boolean"):
        LSTMClassifier(validationIndicatorCol="flag").fit(df)
    with pytest.raises(ValueError, match="label column 'y' not found"):
        LSTMClassifier(labelCol="y").fit(df)


# --------------------------------------------------------------------------- persistence
def test_a_saved_model_reloads_and_predicts_identically(classifier_model, sines, tmp_path):
    df = sines[3]
    path = str(tmp_path / "clf")
    classifier_model.write().save(path)
    loaded = LSTMClassificationModel.load(path)
    assert loaded.uid == classifier_model.uid
    assert loaded.getHiddenSizes() == [8] and loaded.getCellType() == "peephole"
    assert loaded.history == classifier_model.history
    for name, value in classifier_model.sequenceModel.params.items():
        np.testing.assert_array_equal(loaded.sequenceModel.params[name], value)
    before = by_id(classifier_model.transform(df), "probability", "prediction")
    after = by_id(loaded.transform(df), "probability", "prediction")
    assert before == after

    # The core model is the library's own format: no Spark needed to read it.
    core = SequenceModel.load(tmp_path / "clf" / "model")
    np.testing.assert_array_equal(
        core.predict_proba(sines[0], sines[2]),
        classifier_model.sequenceModel.predict_proba(sines[0], sines[2]),
    )

    with pytest.raises(FileExistsError, match="overwrite"):
        classifier_model.save(path)
    copy = classifier_model.copy({classifier_model.predictionCol: "label_guess"})
    assert copy.sequenceModel is classifier_model.sequenceModel
    copy.write().overwrite().save("file://" + path)  # a file:// URI works the same
    reloaded = LSTMClassificationModel.load("file://" + path)
    assert reloaded.getPredictionCol() == "label_guess"
    assert "label_guess" in reloaded.transform(df).columns


def test_a_pipeline_with_an_lstm_stage_round_trips(any_spark, sines, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import SQLTransformer

    df = sines[3].where("NOT held_out")
    doubled = SQLTransformer(statement="SELECT *, id * 2 AS id2 FROM __THIS__")
    clf = LSTMClassifier(hiddenSizes=[4], rounds=2, batchSize=32, rawPredictionCol="")
    pipeline = Pipeline(stages=[doubled, clf])
    pipeline.write().save(str(tmp_path / "pipeline"))
    unfitted = Pipeline.load(str(tmp_path / "pipeline"))
    estimator = unfitted.getStages()[1]
    assert isinstance(estimator, LSTMClassifier)
    assert estimator.getHiddenSizes() == [4] and estimator.getRounds() == 2
    assert estimator.getRawPredictionCol() == "" and estimator.uid == clf.uid

    fitted = pipeline.fit(df)
    fitted.save(str(tmp_path / "fitted"))
    with pytest.raises(Exception, match="already exists"):
        fitted.save(str(tmp_path / "fitted"))
    fitted.write().overwrite().save(str(tmp_path / "fitted"))  # pyspark's overwrite, our stage
    loaded = PipelineModel.load(str(tmp_path / "fitted"))
    assert isinstance(loaded.stages[1], LSTMClassificationModel)
    assert loaded.stages[1].uid == fitted.stages[1].uid
    before = fitted.transform(df)
    assert "id2" in before.columns and "rawPrediction" not in before.columns
    after = by_id(loaded.transform(df), "id2", "prediction", "probability")
    assert sorted(after) == sorted(by_id(df))
    assert all(row["id2"] == 2 * i for i, row in after.items())
    assert by_id(before, "id2", "prediction", "probability") == after
    x, _, lengths, _ = sines
    ids = sorted(after)
    np.testing.assert_allclose(
        [after[i]["probability"] for i in ids],
        fitted.stages[1].sequenceModel.predict_proba(x[ids], lengths[ids]),
        atol=1e-6,
    )


def test_an_estimator_saves_and_loads_its_params(any_spark, tmp_path):
    reg = LSTMRegressor(cellType="gru", hiddenSizes=[7, 3], lengthCol="n", learningRate=0.02)
    reg.save(str(tmp_path / "reg"))
    loaded = LSTMRegressor.load(str(tmp_path / "reg"))
    assert loaded.uid == reg.uid
    assert loaded.getCellType() == "gru" and loaded.getHiddenSizes() == [7, 3]
    assert loaded.getLengthCol() == "n" and loaded.getLearningRate() == 0.02
    assert loaded.getSeed() == reg.getSeed() and loaded.getEpochs() == 10
    with pytest.raises(FileExistsError, match=r"already exists; use \.write\(\)\.overwrite\(\)"):
        reg.save(str(tmp_path / "reg"))
    reg.setEpochs(3).write().overwrite().save(str(tmp_path / "reg"))
    assert LSTMRegressor.load(str(tmp_path / "reg")).getEpochs() == 3
    copied = reg.copy({reg.batchSize: 8})
    assert copied.getBatchSize() == 8 and reg.getBatchSize() == 32


def test_num_classes_sets_the_output_layer_and_bounds_the_labels(spark, tmp_path):
    """numClasses widens the output beyond the classes the training rows show (a text slice
    that lacks the rarest characters), survives save/load, and refuses larger labels."""
    x, lengths = random_sequences(40, 6, 2, seed=4)
    y = np.arange(40) % 3  # classes 0..2 only
    df = frame(spark, x, y, lengths)
    clf = LSTMClassifier(hiddenSizes=[4], epochs=1, batchSize=8, numClasses=5, seed=0)
    assert clf.getNumClasses() == 5
    clf.save(str(tmp_path / "clf"))
    assert LSTMClassifier.load(str(tmp_path / "clf")).getNumClasses() == 5
    model = clf.fit(df)
    assert model.numClasses == 5 and model.sequenceModel.config.output_size == 5
    probabilities = np.array([row.probability for row in model.transform(df).collect()])
    assert probabilities.shape == (40, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # Without it, the data decides: max label + 1.
    assert LSTMClassifier(hiddenSizes=[4], epochs=1, batchSize=8).fit(df).numClasses == 3
    with pytest.raises(ValueError, match="label"):
        clf.copy({clf.numClasses: 2}).fit(df)
    with pytest.raises(ValueError, match="numClasses"):
        LSTMClassifier(numClasses=1)
