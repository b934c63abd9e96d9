"""Spark Connect: the test run's own Connect server, sessions (``get_session``, ``is_connect``),
the jobs' ``--remote``, and what the DataFrame-only engine relies on there (``mapInArrow`` of
sparklstm code in the server's Python workers, ``persist`` hit by every later action).

Functions given to ``mapInArrow`` are module-level (the workers import this module by name and,
through it, sparklstm); they copy what they need out of plain arguments.
"""

from __future__ import annotations

import functools
import importlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sparklstm.spark.session import get_session, is_connect


def _kind(request) -> str:
    return request.node.callspec.params["any_spark"]


# --- the server and the two kinds of session ---------------------------------------------------


def test_connect_server_starts_and_answers(connect_server, connect_spark):
    assert connect_server.url == f"sc://127.0.0.1:{connect_server.port}"
    assert connect_server.started_in < 120
    assert connect_spark.range(10).count() == 10
    assert connect_spark.version.startswith("4.")
    print(f"Spark Connect server listening after {connect_server.started_in:.1f} s")


def test_is_connect_tells_the_two_kinds_apart(any_spark, request):
    assert is_connect(any_spark) is (_kind(request) == "connect")
    assert is_connect(None) is False
    assert is_connect(object()) is False


def test_each_kind_builds_its_own_columns(any_spark):
    # pyspark.sql.functions follow SPARK_CONNECT_MODE_ENABLED, which conftest's
    # pytest_runtest_setup sets for [connect] only: in the same process, each kind gets
    # columns it accepts.
    from pyspark.sql import functions as F

    row = any_spark.range(5).agg(F.sum(F.col("id") + 1).alias("total")).first()
    assert row.total == 15


# --- get_session on Spark Connect --------------------------------------------------------------


def test_get_session_with_remote_returns_a_connect_session(connect_server, connect_spark, caplog):
    caplog.set_level(logging.WARNING, logger="sparklstm.spark.session")
    session = get_session(
        remote=connect_server.url,
        conf={"spark.sparklstm.test.setting": "on", "spark.executor.memory": "1g"},
    )
    try:
        assert is_connect(session)
        assert session is connect_spark  # getOrCreate: the client session already made
        assert session.range(3).count() == 3
        assert session.conf.get("spark.sparklstm.test.setting") == "on"
        assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
        # a static setting cannot change from a client: skipped with a warning naming it
        assert "spark.executor.memory cannot be set" in caplog.text
    finally:
        session.conf.unset("spark.sparklstm.test.setting")


def test_get_session_follows_spark_remote(connect_server, connect_spark, monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", connect_server.url)
    session = get_session()
    assert is_connect(session)
    assert session.range(4).count() == 4
    with pytest.raises(ValueError, match="SPARK_REMOTE"):
        get_session(master="local[1]")


def test_get_session_rejects_master_with_remote():
    with pytest.raises(ValueError, match="give one"):
        get_session(master="local[1]", remote="sc://localhost:15002")
    with pytest.raises(TypeError, match="remote"):
        get_session(remote=15002)


def test_get_session_names_a_bad_runtime_setting(connect_server, connect_spark):
    with pytest.raises(ValueError, match="spark.sql.shuffle.partitions='many'"):
        get_session(remote=connect_server.url, conf={"spark.sql.shuffle.partitions": "many"})
    assert connect_spark.conf.get("spark.sql.shuffle.partitions") == "4"


@pytest.mark.parametrize("job", ["train", "predict", "evaluate"])
def test_jobs_reject_remote_with_master_in_one_line(job, capsys):
    main = importlib.import_module(f"sparklstm.jobs.{job}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--master", "local[1]", "--remote", "sc://localhost:15002"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{job}.py: error: argument --remote: not allowed with argument --master (see --help)"
    ]


# --- what the engine relies on -----------------------------------------------------------------


def _lengths_in_worker(batches):
    """Decode each batch with sparklstm (imported in the Python worker) and report its rows,
    valid steps and where sparklstm was imported from."""
    import sparklstm
    from sparklstm.data.arrow import batch_to_numpy

    for batch in batches:
        inputs, lengths, labels = batch_to_numpy(batch, "features", "label")
        yield pa.RecordBatch.from_pydict(
            {
                "rows": [int(inputs.shape[0])],
                "steps": [int(lengths.sum())],
                "label_sum": [float(labels.sum())],
                "module": [sparklstm.__file__],
            }
        )


def _small_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from sparklstm.data.arrow import numpy_to_arrow

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=40)
    inputs = rng.normal(size=(40, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 2, size=40)
    pq.write_table(numpy_to_arrow(inputs, labels, lengths), path)
    return lengths, labels


def test_read_sequences_and_map_in_arrow_of_sparklstm_code(any_spark, tmp_path):
    from sparklstm.spark.sources import read_sequences

    lengths, labels = _small_parquet(tmp_path / "data.parquet")
    frame = read_sequences(any_spark, tmp_path / "data.parquet")
    assert frame.count() == 40
    assert {"features", "label"} <= set(frame.columns)
    out = frame.repartition(2).mapInArrow(
        _lengths_in_worker, "rows long, steps long, label_sum double, module string"
    )
    rows = out.collect()
    assert sum(r.rows for r in rows) == 40
    assert sum(r.steps for r in rows) == int(lengths.sum())
    assert sum(r.label_sum for r in rows) == float(labels.sum())
    # the server's workers import the repository's sparklstm (the venv's editable install)
    expected = str(Path(importlib.import_module("sparklstm").__file__).resolve())
    assert {str(Path(r.module).resolve()) for r in rows} == {expected}


def _encode_counting(counter, batches):
    """Stands for the engine's encode step: one line appended to ``counter`` per run (per
    partition), so the test sees every time Spark computes it instead of reading the cache."""
    with open(counter, "a", encoding="utf-8") as log:
        log.write("encoded\n")
    for batch in batches:
        ids = batch.column("id")
        yield pa.RecordBatch.from_arrays([ids, pc.multiply(ids, 2)], ["id", "twice"])


def _round(batches):
    """Stands for a training round: one row per partition."""
    from pyspark import TaskContext

    rows = total = 0
    for batch in batches:
        rows += batch.num_rows
        total += pc.sum(batch.column("twice")).as_py() or 0
    yield pa.RecordBatch.from_pydict(
        {"part": [TaskContext.get().partitionId()], "rows": [rows], "total": [total]}
    )


def test_persisted_map_in_arrow_is_computed_once(any_spark, tmp_path, capsys):
    from pyspark import StorageLevel

    counter = tmp_path / "encodes.txt"
    counter.touch()

    def encodes() -> int:
        return len(counter.read_text(encoding="utf-8").split())

    encoded = any_spark.range(0, 1000, 1, 2).mapInArrow(
        functools.partial(_encode_counting, str(counter)), "id long, twice long"
    )
    encoded.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        assert encodes() == 0  # persist is lazy
        assert encoded.count() == 1000
        assert encodes() == 2  # materialised: one encode per partition
        expected = [(0, 500, 2 * sum(range(500))), (1, 500, 2 * sum(range(500, 1000)))]
        for _ in range(3):  # rounds over the cached data: no encode again
            rows = encoded.mapInArrow(_round, "part long, rows long, total long").collect()
            assert sorted((r.part, r.rows, r.total) for r in rows) == expected
            assert encodes() == 2
        capsys.readouterr()
        encoded.mapInArrow(_round, "part long, rows long, total long").explain()
        assert "InMemoryTableScan" in capsys.readouterr().out
    finally:
        encoded.unpersist()
    # the control: without the cache, the next action encodes again
    encoded.mapInArrow(_round, "part long, rows long, total long").collect()
    assert encodes() == 4


# --- the jobs on Spark Connect -----------------------------------------------------------------


def test_default_parallelism_on_both_kinds(any_spark):
    from sparklstm.spark.session import default_parallelism

    # Both test sessions run local[2, 2]: two task slots, whatever the host's cores.
    assert default_parallelism(any_spark) == 2


def test_train_predict_evaluate_jobs_with_remote_match_a_classic_run(
    connect_server, connect_spark, tmp_path
):
    """The three jobs with ``--remote`` train, predict and evaluate on the Connect server; the
    model is byte for byte the one the same command trains on a classic local[2] session."""
    import json
    import subprocess
    import sys

    from sparklstm import SequenceModel
    from sparklstm.data.arrow import batch_to_numpy
    from sparklstm.jobs import evaluate as evaluate_job
    from sparklstm.jobs import make_data
    from sparklstm.jobs import predict as predict_job
    from sparklstm.jobs import train as train_job

    data = tmp_path / "data"
    argv = ["sines", "--rows", "400", "--seq-len", "16", "--min-len", "6", "--seed", "2"]
    assert make_data.main(argv + ["--test-fraction", "0.25", "--out", str(data)]) == 0
    training = ["--data", str(data / "train"), "--hidden-sizes", "12", "--epochs", "3"]
    training += ["--local-steps", "4", "--batch-size", "16", "--lr", "0.02", "--seed", "5"]
    remote = ["--remote", connect_server.url]

    assert train_job.main([*training, *remote, "--output", str(tmp_path / "m"), "--quiet"]) == 0
    classic = subprocess.run(
        [sys.executable, "-m", "jobs.train", *training, "--master", "local[2]", "--quiet"]
        + ["--output", str(tmp_path / "classic")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        env={
            k: v for k, v in __import__("os").environ.items() if k != "SPARK_CONNECT_MODE_ENABLED"
        },
    )
    assert classic.returncode == 0, classic.stderr[-3000:]
    assert (tmp_path / "m/arrays.npz").read_bytes() == (
        tmp_path / "classic/arrays.npz"
    ).read_bytes()

    predictions = tmp_path / "predictions"
    argv = ["--model", str(tmp_path / "m"), "--data", str(data / "test"), *remote]
    assert predict_job.main([*argv, "--output", str(predictions)]) == 0
    table = pq.read_table(predictions)
    model = SequenceModel.load(tmp_path / "m")
    inputs, lengths, labels = batch_to_numpy(table, "features", "label")
    expected = model.predict_proba(inputs, lengths)
    assert table.num_rows == 100
    np.testing.assert_allclose(
        np.array(table.column("probability").to_pylist()), expected, atol=1e-6
    )

    report_path = tmp_path / "metrics.json"
    assert evaluate_job.main([*argv, "--output", str(report_path)]) == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["accuracy"] == pytest.approx(float(np.mean(expected.argmax(1) == labels)))
    assert report["accuracy"] > 0.5
