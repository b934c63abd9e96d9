"""The Spark ML layer's persistence on Spark Connect, beyond the round trips that
``tests/test_spark_ml.py`` runs on both kinds of session: a model saved by one kind loads on the
other (both directions), and the paths a Connect client cannot write are refused in one line.

On Spark Connect the server writes and reads ``<path>/metadata`` and reads ``<path>/model``; the
client writes ``<path>/model`` itself. So a fitted model saves to a directory that the client
and the server see at the same path (here: one machine), and loads from any path the server
reads.

The Connect client of the round-trip test runs in a subprocess (:func:`connect_client`): a test
uses one kind of session only in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.io.model_files import ModelFileError
from sparklstm.spark.metrics import RoundHistory
from sparklstm.spark.ml import (
    LSTMClassificationModel,
    LSTMClassifier,
    LSTMRegressionModel,
    save_sequence_model,
)

ROWS = 40


def write_sequences(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 float sequences of 2 features (lengths 2..6), labels 0..2 and an ``id``, as Parquet."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 7, size=ROWS)
    x = rng.normal(size=(ROWS, 6, 2)).astype(np.float32)
    y = np.arange(ROWS) % 3
    table = numpy_to_arrow(x, y, lengths).append_column("id", pa.array(np.arange(ROWS)))
    pq.write_table(table, path)
    return x, y, lengths


def scored(model, df) -> dict[int, list[float]]:
    """``id -> probability`` of ``model.transform(df)`` (a Spark ML vector, as a list)."""
    rows = model.transform(df).select("id", "probability").collect()
    return {row.id: row.probability.toArray().tolist() for row in rows}


def fingerprint(model: LSTMClassificationModel) -> dict[str, object]:
    """What must survive a save and a load, as JSON: the uid, Params, history and weights."""
    return {
        "uid": model.uid,
        "hiddenSizes": model.getHiddenSizes(),
        "cellType": model.getCellType(),
        "predictionCol": model.getPredictionCol(),
        "history": model.history,
        "params": {name: value.tolist() for name, value in model.sequenceModel.params.items()},
    }


def connect_client(argv: list[str]) -> None:
    """The subprocess: a Spark Connect client of the server at ``url`` loads the model and the
    PipelineModel saved under ``loaded``, scores the rows, saves both again under ``saved``
    (with another predictionCol) and prints what it saw as one JSON line."""
    from pyspark.ml import PipelineModel

    from sparklstm.spark.session import get_session, is_connect

    url, data, loaded, saved = argv
    spark = get_session(remote=url)
    assert is_connect(spark)
    df = spark.read.parquet(data)
    model = LSTMClassificationModel.load(os.path.join(loaded, "clf"))
    pipeline = PipelineModel.load(os.path.join(loaded, "pipeline"))
    seen = {
        "model": fingerprint(model),
        "scored": scored(model, df),
        "pipeline": scored(pipeline, df),
    }
    model.setPredictionCol("guess").write().save(os.path.join(saved, "clf"))
    PipelineModel(stages=[model]).write().save(os.path.join(saved, "pipeline"))
    print(json.dumps(seen))


def run_connect_client(repository: Path, *args: str) -> dict[str, object]:
    """Run :func:`connect_client` in a fresh Python process (this interpreter, the repository
    as its working directory, no Spark Connect mode inherited); its JSON line."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")
    }
    code = (
        "import sys; from tests.test_spark_ml_connect import connect_client as c; c(sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=repository,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def keyed(scores: dict) -> dict[int, list[float]]:
    return {int(key): value for key, value in scores.items()}


def test_a_model_saved_on_classic_loads_on_connect_and_back(
    spark, connect_server, tmp_path, request
):
    """Classic (this process) saves; a Connect client (a subprocess) loads, scores and saves
    again; classic loads that. Every step keeps the weights, Params and history, and the
    scores are bit-identical. (The model need not be trained: a model fitted on Connect saves
    and loads in tests/test_spark_ml.py.)"""
    from pyspark.ml import PipelineModel

    x, _, lengths = write_sequences(tmp_path / "data.parquet")
    df = spark.read.parquet(str(tmp_path / "data.parquet"))
    history = RoundHistory(
        rows=[{"round": 1, "train_loss": 1.0986, "val_accuracy": 0.375, "seconds": 0.25}],
        best_round=1,
        stopped_early=False,
        summary={"rows": ROWS, "total_rounds": 1},
    )
    core = SequenceModel(input_size=2, hidden_sizes=[4], output_size=3, cell="gru", seed=2)
    model = LSTMClassificationModel(core, history)
    model.set(model.hiddenSizes, [4])
    model.set(model.cellType, "gru")
    model.write().save(str(tmp_path / "classic" / "clf"))
    PipelineModel(stages=[model]).write().save(str(tmp_path / "classic" / "pipeline"))
    expected = scored(model, df)
    np.testing.assert_allclose(
        [expected[i] for i in range(ROWS)], model.sequenceModel.predict_proba(x, lengths), atol=1e-6
    )

    seen = run_connect_client(
        request.config.rootpath,
        connect_server.url,
        str(tmp_path / "data.parquet"),
        str(tmp_path / "classic"),
        str(tmp_path / "connect"),
    )
    assert seen["model"] == json.loads(json.dumps(fingerprint(model)))
    assert keyed(seen["scored"]) == expected
    assert keyed(seen["pipeline"]) == expected

    back = LSTMClassificationModel.load(str(tmp_path / "connect" / "clf"))
    assert back.getPredictionCol() == "guess"
    assert fingerprint(back.setPredictionCol("prediction")) == fingerprint(model)
    assert scored(back, df) == expected
    stage = PipelineModel.load(str(tmp_path / "connect" / "pipeline")).stages[0]
    assert isinstance(stage, LSTMClassificationModel) and stage.uid == model.uid
    # The Connect client wrote the weights in the core format, readable without Spark.
    core = SequenceModel.load(tmp_path / "connect" / "clf" / "model")
    for name, value in model.sequenceModel.params.items():
        np.testing.assert_array_equal(core.params[name], value)


def one_line(error: BaseException, *fragments: str) -> str:
    message = str(error)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def wrapped_model() -> LSTMRegressionModel:
    core = SequenceModel(input_size=2, hidden_sizes=[3], task="regression", output_size=1, seed=0)
    return LSTMRegressionModel(core)


def test_connect_refuses_a_uri_only_the_server_could_write(connect_spark, tmp_path):
    model = wrapped_model()
    with pytest.raises(ValueError) as caught:
        model.write().save("hdfs://namenode:8020/models/reg")
    one_line(caught.value, "'hdfs://namenode:8020/models/reg'", "hdfs://", "same path")
    with pytest.raises(ValueError, match="s3a://"):
        save_sequence_model(connect_spark, model.sequenceModel, "s3a://bucket/reg/model")
    assert list(tmp_path.iterdir()) == []
    # An Estimator has no weights: the server alone writes it, and refuses a path it finds.
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError) as caught:
        LSTMClassifier().save(str(tmp_path / "taken"))
    one_line(caught.value, repr(str(tmp_path / "taken")), "overwrite()")
    LSTMClassifier(hiddenSizes=[5]).write().overwrite().save(str(tmp_path / "taken"))
    assert LSTMClassifier.load(str(tmp_path / "taken")).getHiddenSizes() == [5]


def test_connect_names_a_directory_the_server_sees_elsewhere(connect_spark, tmp_path, monkeypatch):
    """A relative path: the server resolves it against its own working directory, this client
    against its own. The writer notices before it writes any weights."""
    monkeypatch.chdir(tmp_path)
    relative = f"relative-{tmp_path.name}"
    with pytest.raises(ValueError) as caught:
        wrapped_model().write().save(relative)
    one_line(caught.value, repr(relative), "does not see it", str(tmp_path / relative), "same path")
    assert not (tmp_path / relative).exists()
    # An absolute path names the same directory for both (one machine): it works.
    model = wrapped_model()
    model.write().save(str(tmp_path / relative))
    loaded = LSTMRegressionModel.load(str(tmp_path / relative))
    x = np.random.default_rng(1).normal(size=(8, 5, 2)).astype(np.float32)
    df = connect_spark.createDataFrame(
        numpy_to_arrow(x).append_column("id", pa.array(np.arange(8)))
    )
    rows = {row.id: row.prediction for row in loaded.transform(df).collect()}
    np.testing.assert_allclose(
        [rows[i] for i in range(8)], model.sequenceModel.predict(x), rtol=1e-6, atol=1e-6
    )


def test_damaged_weights_are_named_by_their_path_on_connect(connect_spark, tmp_path):
    """On Connect the server reads the weights for the client, which loads a local copy: a
    failure names the saved path, never the copy."""
    path = tmp_path / "reg"
    wrapped_model().write().save(str(path))
    arrays = path / "model" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.raises(ModelFileError) as caught:
        LSTMRegressionModel.load(str(path))
    message = one_line(caught.value, str(path / "model"), "arrays.npz")
    assert "sparklstm-load" not in message

    (path / "model" / "arrays.npz").unlink()
    (path / "model" / "manifest.json").unlink()
    (path / "model").rmdir()
    with pytest.raises(ModelFileError) as caught:
        LSTMRegressionModel.load(str(path))
    one_line(caught.value, f"{path / 'model'}: no such file or directory")
    with pytest.raises(ModelFileError) as caught:
        LSTMRegressionModel.load(str(tmp_path / "missing"))
    one_line(caught.value, str(tmp_path / "missing" / "metadata"), "cannot read the metadata")
