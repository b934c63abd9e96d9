"""Driver program of ``test_spark_cluster.py``: trains in ``local-cluster`` mode (separate
executor JVMs and Python workers) and prints one JSON line with what it observed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def executor_facts(_: object) -> list[dict]:
    from pyspark import SparkFiles

    import sparklstm

    root = SparkFiles.getRootDirectory()
    return [
        {
            "pid": os.getpid(),
            "zip_shipped": (Path(root) / "sparklstm.zip").exists(),
            "zip_on_path": any(p.endswith("sparklstm.zip") for p in sys.path),
            "version": sparklstm.__version__,
        }
    ]


def local_cluster_session(workdir: str, **conf: str):
    """A ``local-cluster[2,1,1024]`` session (two executor JVMs) that ships sparklstm to the
    executors as a ``--py-files`` zip, as a cluster without it installed needs."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from sparklstm.packaging import build_zip

    archive = build_zip(Path(workdir) / "sparklstm.zip")
    builder = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.submit.pyFiles", str(archive))
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.addPyFile(str(archive))
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(workdir: str) -> None:
    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.data.synthetic import noisy_sines
    from sparklstm.spark.trainer import fit_distributed

    spark = local_cluster_session(workdir)
    x, y, lengths = noisy_sines(1600, 24, 3, np.random.default_rng(0), min_len=12)
    xv, yv, lv = noisy_sines(400, 24, 3, np.random.default_rng(1), min_len=12)
    train = spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(2)
    validation = spark.createDataFrame(numpy_to_arrow(xv, yv, lv))
    model, history = fit_distributed(
        train,
        {"hidden_sizes": [16], "seed": 0},
        {"epochs": 3, "local_steps": 10, "batch_size": 32, "lr": 0.03, "seed": 0},
        validation=validation,
        progress=False,
    )
    facts = spark.sparkContext.parallelize(range(8), 8).flatMap(executor_facts).collect()
    print(
        json.dumps(
            {
                "driver_pid": os.getpid(),
                "executors": sorted({f["pid"] for f in facts}),
                "facts": facts,
                "workers_per_round": history["workers"],
                "val_accuracy": history.rows[-1]["val_accuracy"],
                "local_accuracy": model.evaluate(xv, yv, lv)["accuracy"],
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
