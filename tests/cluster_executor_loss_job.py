"""Driver program of ``test_spark_cluster.py``: in ``local-cluster`` mode (separate
executor JVMs), trains once cleanly and once with an executor killed by SIGKILL while one of
its training tasks runs, and prints one JSON line with both results' digests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

KILL_ROUND, KILL_PARTITION = 2, 1


def _parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _executor_jvm() -> int:
    """The executor JVM above this Python worker (worker -> pyspark daemon -> JVM)."""
    pid = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"CoarseGrainedExecutorBackend" in command:
            return pid
    raise RuntimeError("no executor JVM above this worker")


def kill_executor_once(marker: str):
    """A task hook that, the first time round KILL_ROUND runs on partition KILL_PARTITION,
    kills the executor JVM running it with SIGKILL (from inside the running task)."""

    def hook(round_index: int, partition: int) -> None:
        if (round_index, partition) != (KILL_ROUND, KILL_PARTITION):
            return
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # the retry after the kill: train normally
        jvm = _executor_jvm()
        os.write(fd, json.dumps({"worker": os.getpid(), "executor": jvm}).encode())
        os.close(fd)
        os.kill(jvm, signal.SIGKILL)
        time.sleep(120)  # this task never finishes: its executor is gone

    return hook


def digest(params: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(np.ascontiguousarray(params[name]).tobytes())
    return h.hexdigest()


def main(workdir: str) -> None:
    from cluster_training_job import local_cluster_session

    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.data.synthetic import noisy_sines
    from sparklstm.spark.trainer import fit_distributed

    spark = local_cluster_session(workdir, **{"spark.task.maxFailures": "4"})
    spark.sparkContext.setLogLevel("OFF")
    x, y, lengths = noisy_sines(400, 16, 3, np.random.default_rng(0), min_len=8)
    train = spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(2)
    model = {"hidden_sizes": [12]}  # no seed of its own: the run's seed fixes the weights
    options = {"rounds": 4, "local_steps": 3, "batch_size": 16, "lr": 0.02, "seed": 21}
    clean, _ = fit_distributed(train, model, options, progress=False)
    marker = Path(workdir) / "killed.json"
    faulty, history = fit_distributed(
        train, model, options, progress=False, task_hook=kill_executor_once(str(marker))
    )
    print(
        json.dumps(
            {
                "clean": digest(clean.params),
                "faulty": digest(faulty.params),
                "killed": json.loads(marker.read_text()) if marker.exists() else None,
                "workers_per_round": history["workers"],
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
