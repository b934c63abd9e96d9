"""Sequence-to-sequence models on Spark: (source, target) pairs trained by the same rounds of
parameter averaging, equal to the one-process trainer where theory says so, evaluated on the
executors, and bad pairs refused in one line before any round."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.partitions import training_row_order
from sparklstm.spark.schema import Columns
from sparklstm.spark.trainer import evaluate_distributed, fit_distributed

MODEL = {"head": "seq2seq", "hidden_sizes": [8], "embedding_dim": 6, "seed": 3}


def reversal_pairs(n, seed):
    """Token sources (ids 3..7) and their reversals."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, 8, size=k) for k in rng.integers(2, 7, size=n)]
    return sources, [s[::-1].copy() for s in sources]


def pair_table(sources, targets, dtype=None):
    dtype = dtype or pa.int64()
    return pa.table(
        {
            "row": pa.array(np.arange(len(sources)), pa.int64()),
            "source": pa.array([s.tolist() for s in sources], pa.list_(dtype)),
            "target": pa.array([t.tolist() for t in targets], pa.list_(dtype)),
        }
    )


def test_one_partition_one_round_per_epoch_is_the_one_process_trainer(any_spark):
    sources, targets = reversal_pairs(90, 0)
    df = any_spark.createDataFrame(pair_table(sources, targets)).coalesce(1)
    keys = training_row_order(df, Columns("source", "target"))
    order = [row.row for row in df.sortWithinPartitions(*keys).select("row").collect()]
    options = {"epochs": 2, "batch_size": 16, "seed": 11, "lr": 0.01, "clip_norm": 5.0}
    local = Seq2SeqModel(**MODEL, source_vocab_size=8, target_vocab_size=8)
    local.fit([sources[i] for i in order], [targets[i] for i in order], **options)

    distributed, history = fit_distributed(
        df,
        MODEL,
        {**options, "num_partitions": 0},
        features_col="source",
        label_col="target",
        progress=False,
    )
    assert isinstance(distributed, Seq2SeqModel)
    assert distributed.config == local.config  # sizes read off the data: ids 0..7
    assert history.summary["rounds_per_epoch"] == 1 and len(history) == 2
    for name, value in local.params.items():
        np.testing.assert_array_equal(distributed.params[name], value, err_msg=name)


def test_two_workers_train_and_the_executors_evaluate_as_the_model_does(any_spark):
    sources, targets = reversal_pairs(400, 1)
    val_sources, val_targets = reversal_pairs(80, 2)
    df = any_spark.createDataFrame(pair_table(sources, targets))
    validation = any_spark.createDataFrame(pair_table(val_sources, val_targets))
    model, history = fit_distributed(
        df,
        {**MODEL, "hidden_sizes": [24]},
        {
            "epochs": 6,
            "batch_size": 16,
            "lr": 0.02,
            "local_steps": 4,
            "num_partitions": 2,
            "validate_every": 8,  # and the last round, always
        },
        validation=validation,
        features_col="source",
        label_col="target",
        progress=False,
    )
    assert set(history["workers"]) == {2}
    # Validated rounds (every 8th, checked beside the next round's training, and the last, a
    # job of its own) report the seq2seq metrics, with a loss on the scale of the training's.
    validated = [row for row in history.rows if row.get("val_loss") is not None]
    assert len(validated) >= 2
    for row in validated:
        assert {"val_sequence_accuracy", "val_token_accuracy"} <= set(row)
        assert "val_accuracy" not in row
        assert 0 < row["val_loss"] < 10
    last = history.rows[-1]
    assert {"val_loss", "val_sequence_accuracy", "val_token_accuracy"} <= set(last)
    local = model.evaluate(val_sources, val_targets)
    assert last["val_sequence_accuracy"] == local["sequence_accuracy"]
    assert last["val_loss"] == pytest.approx(local["loss"], rel=1e-5)
    assert last["val_token_accuracy"] > 0.5  # it learned something of the reversal
    scores = evaluate_distributed(model, validation, features_col="source", label_col="target")
    assert scores["sequence_accuracy"] == local["sequence_accuracy"]
    assert scores["token_accuracy"] == local["token_accuracy"]


def test_real_valued_pairs_train_a_forecaster(any_spark):
    rng = np.random.default_rng(3)
    t = np.arange(16)
    phases = rng.uniform(0, 2 * np.pi, size=120)
    series = np.sin(t[None, :] / 2.0 + phases[:, None])
    sources, targets = list(series[:, :12]), list(series[:, 12:])
    df = any_spark.createDataFrame(pair_table(sources, targets, pa.float64()))
    model, history = fit_distributed(
        df,
        {"head": "seq2seq", "hidden_sizes": [12], "seed": 0},
        {"epochs": 8, "batch_size": 16, "lr": 0.02, "num_partitions": 2},
        features_col="source",
        label_col="target",
        progress=False,
    )
    assert model.config.input_size == 1 and model.config.output_size == 1
    local = model.evaluate(sources, targets)
    scores = evaluate_distributed(model, df, features_col="source", label_col="target")
    assert scores["rmse"] == pytest.approx(local["rmse"], rel=1e-5)
    assert scores["rmse"] < 0.5  # well below the series' spread (0.71)
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]


def test_bad_pairs_are_refused_in_one_line_before_training(spark):
    sources, targets = reversal_pairs(40, 4)
    targets[5] = np.array([], dtype=np.int64)
    df = spark.createDataFrame(pair_table(sources, targets))
    with pytest.raises(ValueError) as info:
        fit_distributed(df, MODEL, {"epochs": 1}, features_col="source", label_col="target")
    message = str(info.value)
    assert message.startswith("target column 'target' holds an empty sequence: 1 row(s)")
    assert "\n" not in message


# ------------------------------------------------------------------------------- decoding
def test_decoding_on_the_executors_keeps_every_row_and_equals_local_decoding(any_spark):
    from sparklstm.spark.decoding import decode_dataframe

    sources, targets = reversal_pairs(60, 5)
    model = Seq2SeqModel(**MODEL, source_vocab_size=8, target_vocab_size=8)
    model.fit(sources, targets, epochs=3, batch_size=16, lr=0.02)
    df = any_spark.createDataFrame(pair_table(sources, targets)).repartition(3)
    for width in (1, 3):
        scored = decode_dataframe(model, df, beam_width=width, max_len=8, batch_size=7)
        assert scored.columns == ["row", "source", "target", "prediction", "logProbability"]
        rows = {row.row: row for row in scored.collect()}
        assert sorted(rows) == list(range(60))  # every row exactly once
        found = model.beam_search(sources, beam_width=width, max_len=8)
        for i in range(60):
            assert rows[i].prediction == found.sequences[i].tolist()
            assert rows[i].logProbability == pytest.approx(found.log_probs[i], rel=1e-6)
            assert rows[i].target == targets[i].tolist()  # input columns pass through
    with pytest.raises(ValueError, match="output column 'target' already exists"):
        decode_dataframe(model, df, prediction_col="target")


def test_forecasts_on_the_executors_equal_local_forecasts(any_spark):
    from sparklstm.spark.decoding import decode_dataframe

    rng = np.random.default_rng(6)
    windows = [rng.normal(size=k) for k in rng.integers(4, 9, size=25)]
    df = any_spark.createDataFrame(pair_table(windows, windows, pa.float64()))
    model = Seq2SeqModel(head="seq2seq", input_size=1, output_size=1, hidden_sizes=[6], seed=2)
    with pytest.raises(ValueError, match="horizon"):
        decode_dataframe(model, df)
    rows = {r.row: r.prediction for r in decode_dataframe(model, df, horizon=5).collect()}
    expected = model.forecast(windows, 5)
    for i in range(25):
        np.testing.assert_allclose(rows[i], expected[i, :, 0], rtol=1e-6)
