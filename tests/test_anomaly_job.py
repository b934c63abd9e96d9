"""jobs/anomaly.py: the Spark SQL metrics equal sparklstm.anomaly.metrics on the same arrays
(both session kinds); the job end to end under spark-submit's python; bad input in one line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm.anomaly import AnomalyDetector, average_precision, flag_metrics, top_score_hit
from sparklstm.jobs.anomaly import anomaly_metrics

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng


def scored_rows(seed: int = 0):
    rng = RNG(seed)
    rows = []
    for index, steps in enumerate((40, 25, 60, 30)):
        labels = np.zeros(steps, dtype=int)
        if index != 1:  # row 1 has no anomaly; row 3 has two ranges
            labels[steps // 2 : steps // 2 + 4] = 1
        if index == 3:
            labels[2:4] = 1
        step = np.round(rng.normal(size=steps) + 2.0 * labels, 1)  # ties included
        step[0] = np.nan
        window = np.round(rng.normal(size=steps) + labels, 1)
        window[0] = np.nan
        flags = window > 0.8
        rows.append((index, labels, step, window, flags))
    return rows


def test_spark_metrics_equal_the_library(any_spark):
    rows = scored_rows()
    df = any_spark.createDataFrame(
        [
            (i, y.tolist(), [float(v) for v in s], [float(v) for v in w], f.tolist())
            for i, y, s, w, f in rows
        ],
        "id long, y array<int>, s array<double>, w array<double>, f array<boolean>",
    )
    got = anomaly_metrics(df, "y", "s", "w", "f", tolerance=3)
    labels = np.concatenate([r[1] for r in rows])
    expected = flag_metrics(labels, np.concatenate([r[4] for r in rows]))
    for key, value in expected.items():
        assert got["at_threshold"][key] == pytest.approx(value, rel=1e-12), key
    assert got["steps"] == len(labels) and got["labelled_steps"] == int(labels.sum())
    for kind, index in (("step", 2), ("window", 3)):
        wanted = average_precision(labels, np.concatenate([r[index] for r in rows]))
        assert got[f"{kind}_average_precision"] == pytest.approx(wanted, rel=1e-12)
    hits = [top_score_hit(r[1], r[2], tolerance=3) for r in rows if r[0] in (0, 2)]
    assert got["top_score"] == {
        "series": 2,
        "hits": sum(h["hit"] for h in hits),
        "hits_strict": sum(h["hit_strict"] for h in hits),
        "tolerance": 3,
    }


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "OMP_NUM_THREADS": "1",
    }


def _series_table(path: Path, series: list[np.ndarray], labels: list[np.ndarray] | None) -> None:
    columns = {"features": pa.array([s.tolist() for s in series], pa.list_(pa.float64()))}
    if labels is not None:
        columns["is_anomaly"] = pa.array([y.tolist() for y in labels], pa.list_(pa.int32()))
    path.mkdir(parents=True)
    pq.write_table(pa.table(columns), path / "part-0.parquet")


def test_the_job_end_to_end(tmp_path):
    t = np.arange(400)
    normal = [np.sin(2 * np.pi * t / 20 + k) + 0.05 * RNG(k).normal(size=400) for k in range(3)]
    test = np.sin(2 * np.pi * t / 20) + 0.05 * RNG(7).normal(size=400)
    test[250:260] += 1.5
    labels = np.zeros(400, dtype=int)
    labels[250:260] = 1
    _series_table(tmp_path / "normal", normal, None)
    _series_table(tmp_path / "data", [test], [labels])
    command = [
        sys.executable,
        str(ROOT / "jobs" / "anomaly.py"),
        "--master",
        "local[2]",
        "--normal",
        str(tmp_path / "normal"),
        "--data",
        str(tmp_path / "data"),
        "--label-col",
        "is_anomaly",
        "--model-out",
        str(tmp_path / "model"),
        "--scores-out",
        str(tmp_path / "scores"),
        "--output",
        str(tmp_path / "metrics.json"),
        "--hidden-sizes",
        "8",
        "--window-length",
        "40",
        "--window-stride",
        "20",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--partitions",
        "2",
        "--score-window",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "metrics.json").read_text())
    detector = AnomalyDetector.load(tmp_path / "model" / "model")
    assert report["threshold"] == detector.threshold
    assert report["score"] == "squared_error"  # the default mse forecaster's
    scores = detector.score(test)
    metrics = report["metrics"]
    assert metrics["steps"] == 400 and metrics["labelled_steps"] == 10
    expected = flag_metrics(labels, scores.flags)
    assert metrics["at_threshold"]["tp"] == expected["tp"]
    assert metrics["at_threshold"]["fp"] == expected["fp"]
    ap = average_precision(labels, scores.step)
    assert metrics["step_average_precision"] == pytest.approx(ap, rel=1e-9)
    assert metrics["top_score"]["series"] == 1
    stored = pq.read_table(tmp_path / "scores").to_pylist()
    assert len(stored) == 1 and len(stored[0]["anomalyScore"]) == 400
    assert math.isnan(stored[0]["anomalyScore"][0])


def test_bad_input_is_one_line_before_spark(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "jobs" / "anomaly.py"),
        "--normal",
        str(tmp_path / "missing"),
        "--data",
        str(tmp_path / "missing"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("anomaly.py: error: --normal: no such")
    done = subprocess.run(
        [*command[:2], "--normal", "x", "--data", "y", "--false-alarm-rate", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert done.returncode != 0 and "false" in done.stderr.lower()
