"""Long streams on Spark (both kinds of session): a table of steps trained by truncated BPTT
with carried state in rounds of parameter averaging. One worker is the one-process
``fit_streams`` bit for bit, also when rounds cut a stream mid-way (the state travels with
the round); two workers learn what crosses chunk boundaries and validate with carried state
as the model scores locally; bad tables fail in one line before any round."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparklstm import SequenceModel
from sparklstm.spark.streams import StreamColumns, deal_streams, fit_streams_distributed


def token_streams(lengths, vocab=5, seed=0):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, vocab, size=n + 1) for n in lengths]
    return [s[:-1] for s in ids], [s[1:] for s in ids]


def delayed_copy(n_streams, length, delay, seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 4, size=length) for _ in range(n_streams)]
    targets = [np.concatenate([np.zeros(delay, np.int64), s[:-delay]]) for s in inputs]
    return inputs, targets


def step_table(inputs, targets, first_positions=None, shuffle_seed=None):
    """One row per (stream, position); rows in a random order when ``shuffle_seed``."""
    streams, positions, features, labels = [], [], [], []
    for k, (x, y) in enumerate(zip(inputs, targets, strict=True)):
        first = 0 if first_positions is None else first_positions[k]
        streams.append(np.full(len(x), k))
        positions.append(first + np.arange(len(x)))
        features.append(np.asarray(x))
        labels.append(np.asarray(y))
    columns = [np.concatenate(part) for part in (streams, positions, features, labels)]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(columns[0]))
        columns = [c[order] for c in columns]
    stream, position, feature, label = columns
    if feature.ndim == 2:
        feature_array = pa.array(list(feature), pa.list_(pa.float64()))
    else:
        feature_array = pa.array(feature)
    if label.ndim == 2:
        label_array = pa.array(list(label), pa.list_(pa.float64()))
    else:
        label_array = pa.array(label)
    return pa.table(
        {
            "stream": pa.array(stream, pa.int64()),
            "position": pa.array(position, pa.int64()),
            "features": feature_array,
            "label": label_array,
        }
    )


MODEL = dict(vocab_size=5, embedding_dim=3, hidden_sizes=[6], head="all", output_size=5, seed=2)


@pytest.mark.parametrize("local_steps", [None, 3])
def test_one_worker_is_the_one_process_trainer(any_spark, local_steps):
    """One round per epoch, or rounds of 3 chunk updates that stop mid-stream (the carried
    state and the kept boundary states travel with the round); backward 8 > forward 5."""
    lengths = [23, 17, 30, 9, 14]
    inputs, targets = token_streams(lengths, seed=1)
    df = any_spark.createDataFrame(step_table(inputs, targets, [5, 0, 100, 7, 3], shuffle_seed=4))
    options = dict(epochs=2, batch_size=2, lr=0.02, seed=3, clip_norm=2.0)
    local = SequenceModel(**MODEL)
    local.fit_streams(
        inputs, targets, forward_length=5, backward_length=8, progress=False, **options
    )
    distributed, history = fit_streams_distributed(
        df,
        MODEL,
        {**options, "num_partitions": 1, "local_steps": local_steps},
        forward_length=5,
        backward_length=8,
        progress=False,
    )
    assert distributed.config == local.config
    rounds_per_epoch = 1 if local_steps is None else -(-(5 + 3 + 2) // 3)  # 10 chunk updates
    assert len(history) == 2 * rounds_per_epoch
    for name, value in local.params.items():
        np.testing.assert_array_equal(distributed.params[name], value, err_msg=name)


def test_resetting_the_state_each_round_is_another_run(spark):
    lengths = [40, 33]
    inputs, targets = token_streams(lengths, seed=2)
    df = spark.createDataFrame(step_table(inputs, targets))
    options = {"epochs": 1, "batch_size": 2, "lr": 0.02, "seed": 3, "num_partitions": 1}
    carried, _ = fit_streams_distributed(
        df, MODEL, {**options, "local_steps": 2}, forward_length=5, progress=False
    )
    reset, _ = fit_streams_distributed(
        df,
        MODEL,
        {**options, "local_steps": 2},
        forward_length=5,
        state_at_round_start="reset",
        progress=False,
    )
    whole, _ = fit_streams_distributed(df, MODEL, options, forward_length=5, progress=False)
    for name in whole.params:
        np.testing.assert_array_equal(carried.params[name], whole.params[name], err_msg=name)
    assert any(not np.array_equal(reset.params[name], whole.params[name]) for name in whole.params)


def test_two_workers_learn_across_chunk_cuts_and_validate_with_carried_state(any_spark):
    inputs, targets = delayed_copy(8, 400, 3, seed=8)
    val_inputs, val_targets = delayed_copy(2, 400, 3, seed=9)
    df = any_spark.createDataFrame(step_table(inputs, targets, shuffle_seed=1))
    validation = any_spark.createDataFrame(step_table(val_inputs, val_targets))
    model, history = fit_streams_distributed(
        df,
        dict(vocab_size=4, embedding_dim=4, hidden_sizes=[24], head="all", output_size=4),
        {"epochs": 8, "batch_size": 4, "lr": 0.02, "seed": 0, "num_partitions": 2,
         "local_steps": 10, "validate_every": 5},
        forward_length=8,
        validation=validation,
        progress=False,
    )  # fmt: skip
    assert set(history["workers"]) == {2}
    last = history.rows[-1]
    local = model.evaluate_streams(val_inputs, val_targets, chunk_length=8)
    assert last["val_accuracy"] == pytest.approx(local["accuracy"], abs=1e-12)
    assert last["val_loss"] == pytest.approx(local["loss"], rel=1e-5)
    assert last["val_bits_per_step"] == pytest.approx(local["loss"] / np.log(2), rel=1e-5)
    assert last["val_accuracy"] > 0.95, last


def test_float_streams_with_several_targets(spark):
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(n, 2)) for n in (21, 12, 16)]
    targets = [np.stack([x[:, 0] * 0.5, x[:, 1] - x[:, 0]], axis=1) for x in inputs]
    df = spark.createDataFrame(step_table(inputs, targets, shuffle_seed=2))
    config = dict(input_size=2, hidden_sizes=[5], head="all", task="regression", output_size=2,
                  seed=1, dtype="float64")  # fmt: skip
    options = dict(epochs=2, batch_size=2, lr=0.01, seed=4)
    local = SequenceModel(**config)
    local.fit_streams(inputs, targets, forward_length=4, progress=False, **options)
    distributed, _ = fit_streams_distributed(
        df, config, {**options, "num_partitions": 1}, forward_length=4, progress=False
    )
    for name, value in local.params.items():
        np.testing.assert_array_equal(distributed.params[name], value, err_msg=name)


def test_streams_are_dealt_longest_first_to_the_least_loaded_worker():
    streams = [("a", 0, 10), ("b", 0, 40), ("c", 0, 25), ("d", 0, 20), ("e", 0, 5)]
    placed, plans = deal_streams(streams, workers=2, batch_size=2, forward_length=10)
    worker_of = {stream: worker for stream, _, worker, _, _ in placed}
    assert worker_of == {"b": 0, "c": 1, "d": 1, "a": 0, "e": 1}
    assert [g.lengths for g in plans[0]] == [(40, 10)]
    assert [g.lengths for g in plans[1]] == [(25, 20), (5,)]
    assert [g.first_block for g in plans[1]] == [0, 3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("gap", r"stream 1: positions 0\.\.17 for 17 rows; each stream needs consecutive"),
        ("bidirectional", "streams need a one-direction model with head='all'"),
        ("missing", "position column 'step' not found"),
    ],
)
def test_bad_tables_fail_in_one_line(spark, change, message):
    inputs, targets = token_streams([20, 17], seed=3)
    table = step_table(inputs, targets)
    model = dict(MODEL)
    columns = StreamColumns()
    if change == "gap":
        positions = table.column("position").to_numpy().copy()
        positions[(table.column("stream").to_numpy() == 1) & (positions >= 10)] += 1
        table = table.set_column(1, "position", pa.array(positions))
    elif change == "bidirectional":
        model["bidirectional"] = True
    else:
        columns = StreamColumns(position="step")
    with pytest.raises(ValueError, match=message):
        fit_streams_distributed(
            spark.createDataFrame(table), model, {"epochs": 1}, columns=columns, progress=False
        )


class _Crash(Exception):
    pass


def test_a_resumed_run_carries_the_states_of_its_checkpoint(spark, tmp_path):
    """Rounds of 2 chunk updates stop mid-stream; the run dies after round 3 (its checkpoint
    holds the carried states) and resumes to exactly the uninterrupted run's parameters."""
    inputs, targets = token_streams([26, 21, 18], seed=7)
    df = spark.createDataFrame(step_table(inputs, targets))
    options = {"epochs": 2, "batch_size": 2, "lr": 0.02, "seed": 5, "num_partitions": 1,
               "local_steps": 2}  # fmt: skip
    whole, whole_history = fit_streams_distributed(
        df, MODEL, options, forward_length=4, backward_length=6, progress=False
    )

    def crash_after_round_3(row):
        if row["round"] == 3:
            raise _Crash

    with pytest.raises(_Crash):
        fit_streams_distributed(
            df, MODEL, options, forward_length=4, backward_length=6, progress=False,
            checkpoint_dir=tmp_path / "ckpt", on_round=crash_after_round_3,
        )  # fmt: skip
    resumed, history = fit_streams_distributed(
        df, MODEL, options, forward_length=4, backward_length=6, progress=False,
        checkpoint_dir=tmp_path / "ckpt", resume=True,
    )  # fmt: skip
    assert len(history) == len(whole_history)
    assert history["train_loss"] == whole_history["train_loss"]
    for name, value in whole.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    with pytest.raises(ValueError, match="stream options"):
        fit_streams_distributed(
            df, MODEL, options, forward_length=5, progress=False,
            checkpoint_dir=tmp_path / "ckpt", resume=True,
        )  # fmt: skip
