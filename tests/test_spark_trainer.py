"""Distributed training: the equalities that theory promises, retries, resume, bad data."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from pyspark.sql import functions as F

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.io.checkpoint import checkpoint_rounds, latest_checkpoint
from sparklstm.optim import OptimizerState, make_optimizer
from sparklstm.spark.partitions import training_row_order
from sparklstm.spark.schema import Columns
from sparklstm.spark.trainer import evaluate_distributed, fit_distributed

MODEL = {
    "input_size": 1,
    "hidden_sizes": [8],
    "output_size": 3,
    "seed": 3,
}


def sines(n, seed, seq_len=12, classes=3, min_len=4, dtype=np.float32):
    return noisy_sines(
        n, seq_len, classes, np.random.default_rng(seed), min_len=min_len, dtype=dtype
    )


def frame(spark, x, y, lengths, partitions=1):
    df = spark.createDataFrame(numpy_to_arrow(x, y, lengths))
    return df.coalesce(1) if partitions == 1 else df.repartition(partitions)


def union_of(spark, parts):
    """One DataFrame in which each partition holds exactly the rows of one of ``parts``."""
    import pyarrow as pa

    # Keys that Spark's hash partitioner sends to partitions 0, 1, ...: one key per part.
    residues = spark.range(64).selectExpr("id", f"pmod(hash(id), {len(parts)}) AS p").collect()
    key_of = {}
    for row in residues:
        key_of.setdefault(row.p, row.id)
    tables = []
    for index, (x, y, lengths) in enumerate(parts):
        table = numpy_to_arrow(x, y, lengths)
        key = np.full(len(y), key_of[index], dtype=np.int64)
        tables.append(table.append_column("part", pa.array(key)))
    df = spark.createDataFrame(pa.concat_tables(tables)).repartition(len(parts), "part")
    seen = df.select(F.spark_partition_id().alias("p"), "part").distinct().collect()
    assert sorted((row.p, row.part) for row in seen) == [(i, key_of[i]) for i in range(len(parts))]
    return df


def partition_sizes(df):
    """Rows in each partition, empty ones included (no RDD API: also on Spark Connect)."""
    import pyarrow as pa

    def count(batches):
        from pyspark import TaskContext

        rows = sum(batch.num_rows for batch in batches)
        partition = pa.array([TaskContext.get().partitionId()], pa.int32())
        yield pa.RecordBatch.from_pydict({"p": partition, "rows": pa.array([rows], pa.int64())})

    return [row.rows for row in sorted(df.mapInArrow(count, "p int, rows long").collect())]


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ----------------------------------------------------------------------------- equalities
def training_order(spark, x, y, lengths):
    """A one-partition frame of the rows, and the order in which the trainer reads them (each
    partition's rows are sorted by a hash of their content: see ``training_row_order``)."""
    import pyarrow as pa

    table = numpy_to_arrow(x, y, lengths)
    table = table.append_column("row", pa.array(np.arange(len(y), dtype=np.int64)))
    df = spark.createDataFrame(table).coalesce(1)
    keys = training_row_order(df, Columns("features", "label"))
    order = [r.row for r in df.sortWithinPartitions(*keys).select("row").collect()]
    assert sorted(order) == list(range(len(y)))
    return df, np.asarray(order)


def test_one_partition_one_round_per_epoch_is_the_local_trainer_bit_for_bit(any_spark):
    x, y, lengths = sines(150, seed=0)
    config = {**MODEL, "hidden_sizes": [8, 6], "dropout": 0.25}
    options = {"epochs": 2, "batch_size": 16, "seed": 11, "lr": 0.01}
    df, order = training_order(any_spark, x, y, lengths)
    local = SequenceModel(**config)
    local.fit(x[order], y[order], lengths[order], progress=False, **options)

    # num_partitions 0: the frame's own (single) partition is the one worker.
    kept = {**options, "num_partitions": 0}
    distributed, history = fit_distributed(df, config, kept, progress=False)
    assert history.summary["rounds_per_epoch"] == 1 and len(history) == 2
    assert_params_equal(distributed.params, local.params)


def test_a_step_split_across_threads_in_a_task_is_the_local_split_bit_for_bit(any_spark):
    """step_threads=2 in the Spark task (threads in the Python worker) trains what the local
    trainer trains with step_threads=2: parts of 16 sequences x 128² reach MIN_PART_WORK."""
    from sparklstm.training.parallel import MIN_PART_WORK

    assert 16 * 128 * 128 >= MIN_PART_WORK
    x, y, lengths = sines(96, seed=2)
    config = {**MODEL, "hidden_sizes": [128], "dropout": 0.25}
    options = {"epochs": 1, "batch_size": 32, "seed": 5, "lr": 0.01, "step_threads": 2}
    df, order = training_order(any_spark, x, y, lengths)
    local = SequenceModel(**config)
    local.fit(x[order], y[order], lengths[order], progress=False, **options)
    distributed, _ = fit_distributed(df, config, {**options, "num_partitions": 0}, progress=False)
    assert_params_equal(distributed.params, local.params)


def test_sgd_with_one_local_step_is_synchronous_gradient_averaging(any_spark):
    # Uneven partitions (20 and 35 rows), each one batch: one round is one SGD step on the
    # union, because sum_p n_p (theta - lr g_p) / N = theta - lr * mean gradient.
    x, y, lengths = sines(55, seed=1, dtype=np.float64)
    config = {**MODEL, "dtype": "float64"}
    df = union_of(any_spark, [(x[:20], y[:20], lengths[:20]), (x[20:], y[20:], lengths[20:])])
    lr = 0.5
    trained, history = fit_distributed(
        df,
        config,
        {
            "rounds": 1,
            "local_steps": 1,
            "batch_size": 64,
            "optimizer": "sgd",
            "lr": lr,
            "small_partitions": "train",
            "num_partitions": 0,  # the two parts as they are
        },
        progress=False,
    )
    assert history.rows[0]["workers"] == 2 and history.rows[0]["examples"] == 55
    reference = SequenceModel(**config)
    _, grads = reference.loss_and_grads(x, y, lengths)
    for name, value in reference.params.items():
        np.testing.assert_allclose(
            trained.params[name], value - lr * grads[name], rtol=1e-9, atol=1e-12, err_msg=name
        )


def _adam_round(params, parts, config, lr, state=None):
    """One Adam step per partition from ``params`` (and ``state``), as a worker makes it."""
    results = []
    optimizer = make_optimizer("adam", lr=lr)
    for x, y, lengths in parts:
        model = SequenceModel(**config)
        model.load_state_dict(params)
        _, grads = model.loss_and_grads(x, y, lengths)
        worker_state = optimizer.init_state(model.params) if state is None else state.copy()
        optimizer.step(model.params, grads, worker_state)
        results.append((len(x), model.state_dict(), worker_state))
    return results


def _weighted(results, pick):
    total = sum(n for n, _, _ in results)
    return sum(n * pick(r) for n, *r in results) / total


@pytest.mark.parametrize("policy", ["average", "reset", "local"])
def test_adam_state_policies_behave_as_documented(any_spark, tmp_path, policy):
    x, y, lengths = sines(50, seed=2, dtype=np.float64)
    config = {**MODEL, "dtype": "float64"}
    parts = [(x[:18], y[:18], lengths[:18]), (x[18:], y[18:], lengths[18:])]
    lr = 0.05
    trained, _ = fit_distributed(
        union_of(any_spark, parts),
        config,
        {
            "rounds": 2,
            "local_steps": 1,
            "batch_size": 64,
            "lr": lr,
            "state_policy": policy,
            "small_partitions": "train",
            "num_partitions": 0,  # the two parts as they are
        },
        checkpoint_dir=tmp_path,
        progress=False,
    )
    theta0 = SequenceModel(**config).state_dict()
    first = _adam_round(theta0, parts, config, lr)
    theta1 = {n: _weighted(first, lambda r, n=n: r[0][n]) for n in theta0}
    if policy == "average":  # moments averaged like the parameters
        slots = {
            slot: {n: _weighted(first, lambda r, s=slot, n=n: r[1].slots[s][n]) for n in theta0}
            for slot in first[0][2].slots
        }
        shared = OptimizerState(step=1, slots=slots)
        second = [
            (n, *r[:1], None) for n, *r in _adam_round(theta1, parts, config, lr, state=shared)
        ]
    elif policy == "reset":  # every round starts from a fresh state
        second = _adam_round(theta1, parts, config, lr)
    else:  # each partition continues its own state
        second = []
        for part, (_, _, own_state) in zip(parts, first, strict=True):
            second += _adam_round(theta1, [part], config, lr, state=own_state)
    theta2 = {n: _weighted(second, lambda r, n=n: r[0][n]) for n in theta0}
    for name in theta0:
        np.testing.assert_allclose(trained.params[name], theta2[name], rtol=1e-9, atol=1e-12)
    saved = latest_checkpoint(tmp_path)
    assert saved.round == 2
    if policy == "average":
        assert saved.state is not None and int(saved.state["optim/step"]) == 2
        assert not saved.states
    elif policy == "reset":
        assert saved.state is None and not saved.states
    else:
        assert saved.state is None and sorted(saved.states) == [0, 1]
        assert int(saved.states[0]["optim/step"]) == 2
        assert not np.array_equal(
            saved.states[0]["optim/exp_avg/head.weight"],
            saved.states[1]["optim/exp_avg/head.weight"],
        )


# -------------------------------------------------------------------- convergence, metrics
def test_training_converges_with_validation_metrics_and_drift(any_spark, tmp_path):
    x, y, lengths = sines(1200, seed=4, seq_len=24, min_len=12)
    xv, yv, lv = sines(300, seed=5, seq_len=24, min_len=12)
    metrics_path = tmp_path / "metrics.jsonl"
    model, history = fit_distributed(
        frame(any_spark, x, y, lengths, partitions=2),
        {**MODEL, "hidden_sizes": [16]},
        {"epochs": 4, "local_steps": 10, "batch_size": 32, "lr": 0.03, "seed": 1},
        validation=frame(any_spark, xv, yv, lv),
        metrics_path=metrics_path,
        progress=False,
    )
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(history) == 4 * history.summary["rounds_per_epoch"]
    assert rows[-1]["val_accuracy"] > 0.9
    assert model.evaluate(xv, yv, lv)["accuracy"] == pytest.approx(rows[-1]["val_accuracy"])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] * 0.5
    for row in rows:
        assert row["workers"] == 2
        assert row["drift"] > 0 and row["drift_relative"] < 1
        assert row["sequences_per_second"] > 0
        assert row["broadcast_seconds"] >= 0 and row["compute_seconds"] > 0
    assert sum(row["examples"] for row in rows) == 4 * 1200
    distributed = evaluate_distributed(model, frame(any_spark, xv, yv, lv, partitions=2))
    assert distributed["accuracy"] == pytest.approx(model.evaluate(xv, yv, lv)["accuracy"])
    assert distributed["loss"] == pytest.approx(model.evaluate(xv, yv, lv)["loss"], rel=1e-5)


def test_each_rounds_validation_is_of_the_parameters_after_that_round(any_spark):
    """Validation rides on the next round's job; the metrics still belong to their round: run
    k rounds alone, and its model scores what round k of a longer run reported."""
    x, y, lengths = sines(160, seed=12)
    xv, yv, lv = sines(60, seed=13)
    df, validation = frame(any_spark, x, y, lengths, partitions=2), frame(any_spark, xv, yv, lv)
    options = {"local_steps": 2, "batch_size": 16, "seed": 5, "validate_every": 2}
    _, history = fit_distributed(
        df, MODEL, {**options, "rounds": 5}, validation=validation, progress=False
    )
    assert [row.get("val_loss") is not None for row in history.rows] == [
        False,
        True,
        False,
        True,
        True,
    ]
    for rounds in (2, 4, 5):
        model, _ = fit_distributed(df, MODEL, {**options, "rounds": rounds}, progress=False)
        reported = history.rows[rounds - 1]
        scored = evaluate_distributed(model, validation)
        assert reported["val_loss"] == pytest.approx(scored["loss"], rel=1e-6)
        assert reported["val_accuracy"] == scored["accuracy"]


def test_validating_every_round_costs_no_job_per_round(spark):
    """Per round, a run that validates every round runs as many Spark jobs as one that does
    not validate: the validation tasks run in the round's job."""
    x, y, lengths = sines(160, seed=12)
    xv, yv, lv = sines(60, seed=13)
    df, validation = frame(spark, x, y, lengths, partitions=2), frame(spark, xv, yv, lv)
    tracker = spark.sparkContext.statusTracker()

    def jobs(rounds, with_validation):
        group = f"count-{rounds}-{with_validation}"
        spark.sparkContext.setJobGroup(group, group)
        try:
            fit_distributed(
                df,
                MODEL,
                {"rounds": rounds, "local_steps": 1, "batch_size": 16, "seed": 5},
                validation=validation if with_validation else None,
                progress=False,
            )
        finally:
            spark.sparkContext.setJobGroup("", "")
        return len(tracker.getJobIdsForGroup(group))

    per_round = jobs(5, False) - jobs(2, False)
    assert per_round == 3
    assert jobs(5, True) - jobs(2, True) == per_round


def test_early_stopping_restores_the_best_validated_parameters(any_spark):
    x, y, lengths = sines(200, seed=6)
    # Validation labels that disagree with the training task: the validation loss rises as
    # the model learns, so training stops early and ends with the best validated round.
    xv, yv, lv = sines(100, seed=7)
    yv = (yv + 1) % 3
    model, history = fit_distributed(
        frame(any_spark, x, y, lengths),
        MODEL,
        {"epochs": 30, "local_steps": 3, "batch_size": 16, "lr": 0.03, "early_stopping": 2},
        validation=frame(any_spark, xv, yv, lv),
        progress=False,
    )
    assert history.stopped_early and len(history) < 30 * history.summary["rounds_per_epoch"]
    best = min(v for v in history["val_loss"] if v is not None)
    assert model.evaluate(xv, yv, lv)["loss"] == pytest.approx(best, rel=1e-5)


# ------------------------------------------------------- chunks kept as files (no persist)
def test_chunks_kept_as_files_train_the_same_bits_as_persisted_chunks(any_spark, tmp_path):
    """Where a session cannot persist, cache_dir keeps the encoded chunks as Parquet files:
    the rounds read them back, spread one partition per task, and give the same bits; the
    files are removed at the end."""
    x, y, lengths = sines(200, seed=14)
    xv, yv, lv = sines(50, seed=15)
    df, validation = frame(any_spark, x, y, lengths, partitions=3), frame(any_spark, xv, yv, lv)
    options = {"epochs": 2, "local_steps": 3, "batch_size": 8, "seed": 2, "num_partitions": 0}
    persisted, kept = fit_distributed(df, MODEL, options, validation=validation, progress=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    files, read = fit_distributed(
        df,
        MODEL,
        {**options, "cache_dir": str(cache)},
        validation=validation,
        progress=False,
    )
    assert_params_equal(files.params, persisted.params)
    assert read["val_loss"] == kept["val_loss"] and read["workers"] == kept["workers"] == [3] * 6
    assert read["chunks_read"] == kept["chunks_read"]
    assert list(cache.iterdir()) == []
    scored = evaluate_distributed(files, validation, cache_dir=str(cache))
    assert scored == evaluate_distributed(files, validation)
    assert list(cache.iterdir()) == []


def test_a_session_that_cannot_persist_is_told_about_cache_dir(any_spark, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported")

    x, y, lengths = sines(40, seed=1)
    monkeypatch.setattr(type(frame(any_spark, x, y, lengths)), "persist", refuse)
    with pytest.raises(ValueError, match=r"cannot cache DataFrames \(\[NOT_SUPPORTED.*cache_dir"):
        fit_distributed(frame(any_spark, x, y, lengths), MODEL, {"epochs": 1}, progress=False)


# ------------------------------------------------------------------------ faults, resume
def test_a_task_that_fails_on_its_first_attempt_gives_the_same_result(any_spark):
    x, y, lengths = sines(160, seed=8)
    df = frame(any_spark, x, y, lengths, partitions=2)
    options = {"epochs": 1, "local_steps": 2, "batch_size": 16, "seed": 2}
    clean, _ = fit_distributed(df, MODEL, options, progress=False)

    def fail_first_attempt(round_index, partition):
        from pyspark import TaskContext

        if round_index == 1 and partition == 1 and TaskContext.get().attemptNumber() == 0:
            raise RuntimeError("injected failure of the first attempt")

    retried, history = fit_distributed(
        df, MODEL, options, progress=False, task_hook=fail_first_attempt
    )
    assert len(history) == history.summary["total_rounds"] >= 2
    assert_params_equal(retried.params, clean.params)


def test_a_resumed_run_cuts_its_chunks_as_the_checkpointed_run_did(spark, tmp_path, monkeypatch):
    """Chunk sizes follow the executors' memory, and the chunks decide the minibatches: a run
    resumed on executors of another size still uses the checkpointed run's chunk budget."""
    import sparklstm.spark.partitions as partitions

    x, y, lengths = sines(120, seed=3)
    df = frame(spark, x, y, lengths, partitions=2)
    options = {"rounds": 4, "local_steps": 2, "batch_size": 8, "seed": 1}
    monkeypatch.setattr(partitions, "chunk_byte_budget", lambda session: 512)
    small, _ = fit_distributed(df, MODEL, options, progress=False)
    directory = tmp_path / "ckpt"
    fit_distributed(df, MODEL, {**options, "rounds": 2}, checkpoint_dir=directory, progress=False)
    monkeypatch.undo()
    large, _ = fit_distributed(df, MODEL, options, progress=False)
    assert not all(np.array_equal(small.params[n], large.params[n]) for n in small.params)
    resumed, _ = fit_distributed(
        df, MODEL, options, checkpoint_dir=directory, resume=True, progress=False
    )
    assert_params_equal(resumed.params, small.params)


def test_resume_after_a_stop_gives_the_uninterrupted_result(any_spark, tmp_path):
    x, y, lengths = sines(120, seed=9)
    df = frame(any_spark, x, y, lengths, partitions=2)
    options = {
        "rounds": 5,
        "local_steps": 2,
        "batch_size": 16,
        "seed": 4,
        "outer_momentum": 0.5,
        "optimizer": "sgd",
        "optimizer_options": {"momentum": 0.9},
        "lr": 0.05,
    }
    full, _ = fit_distributed(df, MODEL, options, progress=False)

    directory, metrics = tmp_path / "ckpt", tmp_path / "metrics.jsonl"
    fit_distributed(
        df,
        MODEL,
        {**options, "rounds": 3},
        checkpoint_dir=directory,
        metrics_path=metrics,
        progress=False,
    )
    assert checkpoint_rounds(directory) == [2, 3]  # keep_checkpoints=2
    # A crash while writing round 4 must not matter: a half-written directory is skipped.
    broken = directory / "round-000004"
    broken.mkdir()
    (broken / "arrays.npz").write_bytes(b"PK\x03\x04 truncated")
    resumed, history = fit_distributed(
        df,
        MODEL,
        options,
        checkpoint_dir=directory,
        resume=True,
        metrics_path=metrics,
        progress=False,
    )
    assert_params_equal(resumed.params, full.params)
    lines = metrics.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2, 3, 4, 5]
    assert len(history) == 5
    with pytest.raises(ValueError, match="differ from the checkpoint"):
        fit_distributed(
            df, MODEL, {**options, "lr": 0.1}, checkpoint_dir=directory, resume=True, progress=False
        )
    # A fresh run into a directory of an earlier run's checkpoints is refused before it starts,
    # and leaves them intact.
    kept = checkpoint_rounds(directory)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        fit_distributed(df, MODEL, options, checkpoint_dir=directory, progress=False)
    assert checkpoint_rounds(directory) == kept


# ------------------------------------------------------------------------------- the cache
def _counted(counter: str, batches):
    """Pass the rows through, appending a line to ``counter`` each time a partition is read."""
    with open(counter, "a", encoding="utf-8") as out:
        out.write("read\n")
    yield from batches


def test_rounds_read_the_cache_and_only_the_chunks_they_train_on(any_spark, tmp_path):
    x, y, lengths = sines(192, seed=13)
    base = frame(any_spark, x, y, lengths, partitions=2)
    # 192 rows in two partitions, chunks of 16 rows (two batches of 8): six chunks each.
    options = {"batch_size": 8, "chunk_rows": 16, "local_steps": 1, "seed": 3}
    reads = {}
    for rounds in (2, 6):
        counter = tmp_path / f"reads-{rounds}.txt"
        counter.touch()
        source = base.mapInArrow(functools.partial(_counted, str(counter)), base.schema)
        _, history = fit_distributed(source, MODEL, {**options, "rounds": rounds}, progress=False)
        reads[rounds] = len(counter.read_text(encoding="utf-8").split())
        # One step per round: each partition reads the one chunk that holds its batch.
        assert [row["chunks_read"] for row in history.rows] == [2] * rounds
    # Preparation reads the source a fixed number of times; the rounds read only the cache.
    assert reads[2] == reads[6] > 0


# ------------------------------------------------------------------------------ bad data
def test_bad_data_is_reported_before_training_with_the_column_named(any_spark):
    x, y, lengths = sines(40, seed=10)
    x_nan = x.copy()
    x_nan[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"features.*NaN or Inf.*1 row"):
        fit_distributed(
            frame(any_spark, x_nan, y, lengths), MODEL, {"batch_size": 8}, progress=False
        )
    y_bad = y.copy()
    y_bad[5] = 7
    with pytest.raises(ValueError, match=r"label.*class ids in \[0, output_size=3\)"):
        fit_distributed(
            frame(any_spark, x, y_bad, lengths), MODEL, {"batch_size": 8}, progress=False
        )
    df = frame(any_spark, x, y, lengths)
    with pytest.raises(ValueError, match="label column 'target' not found"):
        fit_distributed(df, MODEL, label_col="target", progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit_distributed(df.limit(0), MODEL, progress=False)
    with pytest.raises(ValueError, match="fewer rows than batch_size=64"):
        fit_distributed(
            frame(any_spark, x, y, lengths, partitions=2), MODEL, {"batch_size": 64}, progress=False
        )
    with pytest.raises(ValueError, match="state_policy"):
        fit_distributed(df, MODEL, {"state_policy": "sometimes"}, progress=False)
    with pytest.raises(ValueError, match="cache_dir must be a non-empty path or URI"):
        fit_distributed(df, MODEL, {"cache_dir": " "}, progress=False)
    with pytest.raises(TypeError, match="unknown"):
        fit_distributed(df, MODEL, {"epoch": 3}, progress=False)


def test_invalid_rows_can_be_skipped_and_are_counted(any_spark):
    """The rows are checked by the encoding job: those breaking a rule are left out and
    counted per problem, and the model is the one trained on the good rows alone."""
    x, y, lengths = sines(60, seed=11)
    x[[2, 9], 0, 0] = np.inf
    y[4] = 5
    # The frame's one partition kept: the rows a worker gets do not depend on the bad ones.
    options = {"epochs": 1, "batch_size": 8, "seed": 0, "num_partitions": 0}
    model, history = fit_distributed(
        frame(any_spark, x, y, lengths),
        MODEL,
        {**options, "invalid_rows": "skip"},
        progress=False,
    )
    skipped = history.summary["skipped_rows"]
    assert len(skipped) == 2 and sorted(skipped.values()) == [1, 2]
    assert history.summary["rows"] == 57 and history.rows[0]["examples"] == 57
    good = np.setdiff1d(np.arange(60), [2, 4, 9])
    clean, _ = fit_distributed(
        frame(any_spark, x[good], y[good], lengths[good]), MODEL, options, progress=False
    )
    for name, value in clean.params.items():
        np.testing.assert_array_equal(model.params[name], value)


# ------------------------------------------------------------------ tokens, per-step labels
def test_token_inputs_with_per_step_labels_train_through_the_same_path(any_spark):
    # Many-to-many: label at each step = (running count of token 1 so far) mod 2, over tokens
    # 0..3; variable lengths; the vocabulary and class count come from the data.
    rng = np.random.default_rng(12)
    n, t_max = 600, 14
    tokens = rng.integers(0, 4, size=(n, t_max))
    lengths = rng.integers(5, t_max + 1, size=n)
    labels = np.cumsum(tokens == 1, axis=1) % 2
    df = any_spark.createDataFrame(numpy_to_arrow(tokens, labels, lengths)).repartition(2)
    assert df.schema["features"].dataType.simpleString() == "array<bigint>"
    model, history = fit_distributed(
        df,
        {"hidden_sizes": [24], "head": "all", "embedding_dim": 8, "seed": 0},
        {"epochs": 12, "local_steps": 5, "batch_size": 32, "lr": 0.02, "seed": 0},
        progress=False,
    )
    assert model.config.vocab_size == 4 and model.config.output_size == 2
    # Weighted by valid steps, not by sequences.
    assert history.rows[0]["examples"] <= n
    predicted = model.predict(tokens, lengths)
    valid = np.arange(t_max)[None, :] < lengths[:, None]
    assert (predicted[valid] == labels[valid]).mean() > 0.95
    assert np.all(predicted[~valid] == -1)


def test_each_task_limits_blas_to_its_cores(spark):
    from sparklstm.spark.blas import blas_threads, limit_blas_threads

    def observe(_):
        import numpy  # noqa: F401  (as in a real task; a fresh worker has not loaded BLAS yet)
        from pyspark import TaskContext

        limit_blas_threads(TaskContext.get().cpus())
        return TaskContext.get().cpus(), blas_threads()

    seen = spark.sparkContext.parallelize(range(2), 2).map(observe).collect()
    assert seen == [(1, 1), (1, 1)]
    assert limit_blas_threads(2) and blas_threads() == 2
    assert limit_blas_threads(1) and blas_threads() == 1


def test_partitions_without_rows_are_rebalanced_when_num_partitions_is_given(any_spark, tmp_path):
    """A Parquet file with one row group, split by byte range into several partitions, puts
    every row in one of them; with num_partitions set to that count, every worker trains."""
    import pyarrow.parquet as pq

    x, y, lengths = sines(400, seed=5)
    pq.write_table(numpy_to_arrow(x, y, lengths), tmp_path / "one.parquet", row_group_size=400)
    size = (tmp_path / "one.parquet").stat().st_size
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    saved = {key: any_spark.conf.get(key) for key in keys}
    any_spark.conf.set(keys[0], str(int(size * 0.6)))
    any_spark.conf.set(keys[1], "0")
    try:
        df = any_spark.read.parquet(str(tmp_path / "one.parquet"))
        counts = partition_sizes(df)
        # The layout this test is about: several partitions, all rows in one.
        assert len(counts) >= 2 and max(counts) == 400
        _, history = fit_distributed(
            df,
            MODEL,
            {"epochs": 1, "batch_size": 32, "num_partitions": len(counts)},
            progress=False,
        )
    finally:
        for key, value in saved.items():
            any_spark.conf.set(key, value)
    assert history.summary["training_partitions"] == len(counts)
    assert history.summary["rows"] == 400 and history.rows[0]["workers"] == len(counts)
