"""A Spark ML ``Vector`` features column (a fixed-length window after ``VectorAssembler``) is
a univariate sequence of the vector's size: training, evaluation and ``transform`` on it give
exactly what the same values as ``array<double>`` give, and the Vector column passes through."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark.ml import LSTMClassifier
from sparklstm.spark.trainer import evaluate_distributed

WINDOW = 10


@pytest.fixture(scope="module")
def windows():
    """Fixed-length windows as WINDOW double columns; row 0 is mostly zeros, which
    VectorAssembler stores as a sparse vector."""
    x, y, _ = noisy_sines(96, WINDOW, 2, np.random.default_rng(7), min_len=WINDOW)
    values = x[:, :, 0].astype(np.float64)
    values[0, 1:] = 0.0
    columns = {f"w{i}": pa.array(values[:, i]) for i in range(WINDOW)}
    columns["label"] = pa.array(y.astype(np.int64))
    columns["id"] = pa.array(np.arange(len(y)))
    return pa.table(columns)


def _frames(spark, table):
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    names = [f"w{i}" for i in range(WINDOW)]
    df = spark.createDataFrame(table).repartition(2)
    arrays = df.select("id", "label", F.array(*names).alias("features"))
    assembled = VectorAssembler(inputCols=names, outputCol="features").transform(df)
    vectors = assembled.select("id", "label", "features")
    return arrays, vectors


def test_a_vector_features_column_trains_and_predicts_as_the_same_array(any_spark, windows):
    from pyspark.ml.linalg import SparseVector, VectorUDT

    arrays, vectors = _frames(any_spark, windows)
    assert isinstance(vectors.schema["features"].dataType, VectorUDT)
    stored = {row.id: row.features for row in vectors.collect()}
    assert isinstance(stored[0], SparseVector)  # the sparse kind is covered too

    estimator = LSTMClassifier(hiddenSizes=[6], epochs=2, batchSize=16, seed=3, numPartitions=2)
    from_arrays, from_vectors = estimator.fit(arrays), estimator.fit(vectors)
    assert from_vectors.sequenceModel.config.input_size == 1
    for name, value in from_arrays.sequenceModel.params.items():
        np.testing.assert_array_equal(from_vectors.sequenceModel.params[name], value)

    scored = {row.id: row for row in from_vectors.transform(vectors).collect()}
    expected = {row.id: row for row in from_arrays.transform(arrays).collect()}
    assert scored.keys() == expected.keys() and len(scored) == windows.num_rows
    for key, row in scored.items():
        assert row.features == stored[key]  # the Vector column passes through unchanged
        assert row.prediction == expected[key].prediction
        np.testing.assert_array_equal(row.probability.toArray(), expected[key].probability)
    assert from_vectors.transform(vectors).columns == [
        "id",
        "label",
        "features",
        "prediction",
        "probability",
        "rawPrediction",
    ]

    model = from_vectors.sequenceModel
    assert evaluate_distributed(model, vectors) == evaluate_distributed(model, arrays)
