"""Training in ``local-cluster`` mode: executors are separate JVMs with their own Python
workers, started from the pip-installed pyspark, as on a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_driver(script: str, workdir: Path) -> dict:
    """Run ``tests/SCRIPT`` (a local-cluster driver program) and return its JSON report."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_converges_on_separate_executor_processes(tmp_path):
    report = run_driver("cluster_training_job.py", tmp_path)
    assert len(report["executors"]) >= 2
    assert report["driver_pid"] not in report["executors"]
    assert all(fact["zip_shipped"] and fact["zip_on_path"] for fact in report["facts"])
    assert set(report["workers_per_round"]) == {2}
    assert report["val_accuracy"] > 0.9
    assert report["local_accuracy"] == pytest.approx(report["val_accuracy"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the executor via /proc")
def test_an_executor_killed_mid_round_gives_the_clean_run_bit_for_bit(tmp_path):
    # Spark reruns the lost task (and recomputes the lost cached partition) elsewhere; a round is
    # a pure function of (parameters, state, round, partition rows, seed), so nothing changes.
    report = run_driver("cluster_executor_loss_job.py", tmp_path)
    killed = report["killed"]
    assert killed is not None, "the hook never ran: no executor was killed"
    # The executor really died (its pid is gone), and training still used both partitions.
    assert not Path(f"/proc/{killed['executor']}").exists()
    assert report["workers_per_round"] == [2, 2, 2, 2]
    assert report["faulty"] == report["clean"]
