"""An executor killed with SIGKILL in the middle of a round changes nothing: Spark reruns the
lost task (and recomputes the lost cached partition) elsewhere, and since a round is a pure
function of (parameters, state, round, partition data, seed), the model is bit-identical to
a clean run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the executor via /proc")
def test_an_executor_killed_mid_round_gives_the_clean_run_bit_for_bit(tmp_path):
    script = Path(__file__).with_name("cluster_executor_loss_job.py")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    killed = report["killed"]
    assert killed is not None, "the hook never ran: no executor was killed"
    # The executor really died (its pid is gone), and training still used both partitions.
    assert not Path(f"/proc/{killed['executor']}").exists()
    assert report["workers_per_round"] == [2, 2, 2, 2]
    assert report["faulty"] == report["clean"]
