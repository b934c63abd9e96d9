"""Training in ``local-cluster`` mode: executors are separate JVMs with their own Python
workers, started from the pip-installed pyspark, as on a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_training_converges_on_separate_executor_processes(tmp_path):
    script = Path(__file__).with_name("cluster_training_job.py")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["executors"]) >= 2
    assert report["driver_pid"] not in report["executors"]
    assert all(fact["zip_shipped"] and fact["zip_on_path"] for fact in report["facts"])
    assert set(report["workers_per_round"]) == {2}
    assert report["val_accuracy"] > 0.9
    assert report["local_accuracy"] == pytest.approx(report["val_accuracy"])
