"""The spark-submit jobs end to end: make_data -> spark-submit train.py -> predict.py ->
evaluate.py on a generated dataset, and the jobs' one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.data.arrow import batch_to_numpy
from sparklstm.jobs import make_data

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def submit(job: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``spark-submit --master local[2] jobs/JOB.py ARGS`` with this interpreter's Python."""
    command = [str(SPARK_SUBMIT), "--master", "local[2]", str(ROOT / "jobs" / job), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=_env(), cwd=cwd)


def run_python(job: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python jobs/JOB.py --master local[2] ARGS``: two partitions on any host (the jobs'
    default, local[*], splits the 1,200 rows into one partition per core, and on a host of 38
    cores or more every partition holds fewer rows than a batch)."""
    command = [sys.executable, str(ROOT / "jobs" / job), "--master", "local[2]", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=_env(), cwd=cwd)


def last_json(stdout: str, prefix: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    assert lines, stdout
    return json.loads(lines[-1][len(prefix) :])


@pytest.fixture(scope="module")
def sines_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jobs") / "data"
    status = make_data.main(
        ["sines", "--rows", "1500", "--seq-len", "30", "--min-len", "12", "--seed", "3"]
        + ["--test-fraction", "0.2", "--out", str(out)]
    )
    assert status == 0
    return out


@pytest.mark.slow
def test_train_predict_evaluate_with_spark_submit(sines_data, tmp_path):
    model_dir, metrics_file = tmp_path / "model", tmp_path / "rounds.jsonl"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "model": {"hidden_sizes": [24], "seed": 1},
                "training": {"epochs": 4, "local_steps": 5, "batch_size": 32, "lr": 0.02},
            }
        ),
        encoding="utf-8",
    )
    trained = submit(
        "train.py",
        "--config", str(config),
        "--data", str(sines_data / "train"),
        "--validation", str(sines_data / "test"),
        "--clip-norm", "5",
        "--output", str(model_dir),
        "--metrics", str(metrics_file),
        "--summary", str(tmp_path / "summary.json"),
        "--cache-dir", str(tmp_path / "cache"),  # chunks as files, as where persist fails
        cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert list((tmp_path / "cache").iterdir()) == []  # the run's files are gone
    summary = last_json(trained.stdout, "summary: ")
    assert summary == json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["partitions"] == 2  # defaults to Spark's parallelism, not the file count
    assert summary["rows"] == 1200
    assert summary["validation"]["accuracy"] > 0.85
    rounds = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines()]
    assert len(rounds) == summary["rounds"] and rounds[-1]["epoch"] == 4
    assert rounds[-1]["train_loss"] < rounds[0]["train_loss"]
    # spark-submit sends the Python driver's stderr to its stdout
    assert "round 1/" in trained.stdout + trained.stderr  # one progress line per round
    # The jobs start Spark at WARN (spark.log.level): only the 3 INFO lines that Spark logs
    # before it reads its settings remain, not the ~45 of its default profile.
    assert (trained.stdout + trained.stderr).count(" INFO ") <= 3

    # The model file is the core's: it loads without Spark and knows its training columns.
    model = SequenceModel.load(model_dir)
    assert model.config.hidden_sizes == (24,) and model.config.output_size == 4
    assert model.metadata["columns"]["features_col"] == "features"

    predictions_dir = tmp_path / "predictions"
    predicted = submit(
        "predict.py",
        "--model", str(model_dir),
        "--data", str(sines_data / "test"),
        "--output", str(predictions_dir),
        cwd=tmp_path,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert last_json(predicted.stdout, "summary: ")["rows"] == 300
    table = pq.read_table(predictions_dir)
    assert {"features", "label", "prediction", "probability"} <= set(table.column_names)
    inputs, lengths, labels = batch_to_numpy(table, "features", "label")
    expected = model.predict_proba(inputs, lengths)
    probability = np.array(table.column("probability").to_pylist())
    np.testing.assert_allclose(probability, expected, atol=1e-6)
    prediction = table.column("prediction").to_numpy()
    np.testing.assert_array_equal(prediction, expected.argmax(axis=1))

    metrics_path = tmp_path / "metrics.json"
    evaluated = submit(
        "evaluate.py",
        "--model", str(model_dir),
        "--data", str(sines_data / "test"),
        "--output", str(metrics_path),
        "--cache-dir", str(tmp_path / "cache"),
        cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert list((tmp_path / "cache").iterdir()) == []
    report = json.loads(metrics_path.read_text(encoding="utf-8"))
    assert report == last_json(evaluated.stdout, "metrics: ")
    accuracy = float(np.mean(prediction == labels))
    assert report["accuracy"] == pytest.approx(accuracy)
    assert report["accuracy"] == pytest.approx(summary["validation"]["accuracy"])
    assert report["loss"] == pytest.approx(summary["validation"]["loss"], rel=1e-5)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == 300
    for c in range(4):
        assert matrix[c].sum() == np.sum(labels == c)
        assert report["per_class"][c]["recall"] == pytest.approx(matrix[c, c] / matrix[c].sum())


@pytest.mark.slow
def test_job_errors_are_one_line_and_keep_earlier_work(sines_data, tmp_path):
    # Usage errors: argparse, exit status 2, before any Spark.
    bad = run_python("train.py", "--epochs", "x", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "train.py: error: argument --epochs: invalid int value: 'x' (see --help)"
    ]
    missing = run_python(
        "train.py", "--data", str(tmp_path / "nope"), "--output", "m", cwd=tmp_path
    )
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("train.py: error: --data: no such file or directory")
    )
    option = run_python(
        "train.py", "--data", str(sines_data / "train"), "--output", "m", "--batch-size", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert option.returncode == 1
    assert "batch_size" in option.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "m").exists()

    # A data mistake found by Spark (a column that is not there) is one line too.
    column = run_python(
        "train.py", "--data", str(sines_data / "train"), "--output", "m",
        "--label-col", "target", "--rounds", "1", cwd=tmp_path,
    )  # fmt: skip
    assert column.returncode == 1, column.stderr[-2000:]
    last = column.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error:") and "'target'" in last
    assert "Traceback" not in column.stderr

    # Checkpoints of an earlier run are neither mixed with a new run's nor deleted.
    checkpoints = tmp_path / "ckpt"
    first = run_python(
        "train.py", "--data", str(sines_data / "train"), "--output", str(tmp_path / "m1"),
        "--hidden-sizes", "8", "--rounds", "2", "--local-steps", "2", "--quiet",
        "--checkpoint-dir", str(checkpoints), cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    saved = sorted(p.name for p in checkpoints.iterdir())
    again = run_python(
        "train.py", "--data", str(sines_data / "train"), "--output", str(tmp_path / "m2"),
        "--hidden-sizes", "8", "--rounds", "2", "--local-steps", "2", "--quiet",
        "--checkpoint-dir", str(checkpoints), cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 1
    assert "already holds checkpoints" in again.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in checkpoints.iterdir()) == saved
    assert not (tmp_path / "m2").exists()


def test_help_of_every_job():
    for job in ("train.py", "predict.py", "evaluate.py"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "jobs" / job), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: {job}")
        assert "--data" in done.stdout
        if job != "train.py":
            assert "--model" in done.stdout
