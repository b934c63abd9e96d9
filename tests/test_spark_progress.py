"""What a run says before its first round: how many workers it trains on (by default one per
task slot of the session), the preparation job's progress while it runs, and what it cached."""

from __future__ import annotations

import re
import time

import numpy as np

from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark.job_progress import JobProgress
from sparklstm.spark.preparation import worker_count
from sparklstm.spark.trainer import fit_distributed


def test_the_default_worker_count_is_the_task_slots_capped_by_the_rows(spark):
    slots = spark.sparkContext.defaultParallelism
    assert slots == 2  # the fixture's local[2,2]
    assert worker_count(None, spark, rows=10_000, batch_size=32) == slots
    # At most one worker per two minibatches of rows, and always one.
    assert worker_count(None, spark, rows=100, batch_size=32) == 1
    assert worker_count(None, spark, rows=5, batch_size=32) == 1
    assert worker_count(7, spark, rows=100, batch_size=32) == 7  # as given
    assert worker_count(0, spark, rows=100, batch_size=32) is None  # keep the DataFrame's own


def _sleepy(batches):
    for batch in batches:
        time.sleep(2.0)
        yield batch


def test_a_long_job_reports_its_tasks_while_it_runs(any_spark):
    lines: list[str] = []
    slow = any_spark.range(0, 4, 1, 4).mapInArrow(_sleepy, "id long")
    with JobProgress(any_spark, "sleeping", lines.append, every=0.5):
        assert sorted(row.id for row in slow.collect()) == [0, 1, 2, 3]
    counts = []
    for line in lines:
        found = re.fullmatch(r"sleeping: (\d+)/(\d+) tasks done, \d+ s", line)
        assert found, line
        counts.append(int(found[1]))
        assert int(found[2]) == 4
    assert counts, "no progress line during a 4 s job"
    assert counts == sorted(counts) and counts[-1] <= 4
    # A job that ends within the first interval prints nothing; the reporter is gone after.
    quiet: list[str] = []
    with JobProgress(any_spark, "quick", quiet.append, every=30.0):
        any_spark.range(10).count()
    slow.collect()
    assert quiet == []


def test_a_run_says_what_it_cached_and_how_many_workers_train(any_spark, capsys):
    x, y, lengths = noisy_sines(200, 12, 3, np.random.default_rng(0), min_len=6)
    df = any_spark.createDataFrame(numpy_to_arrow(x, y, lengths)).coalesce(1)
    model = {"hidden_sizes": [4], "seed": 0}
    _, history = fit_distributed(df, model, {"epochs": 1, "batch_size": 32, "local_steps": 2})
    err = capsys.readouterr().err.splitlines()
    cached = [line for line in err if line.startswith("training data: ")]
    assert len(cached) == 1
    found = re.fullmatch(
        r"training data: 200 rows checked and cached in 2 partitions of 100 rows "
        r"\((\d+\.\d) KiB, memory and disk\), \d+\.\d s",
        cached[0],
    )
    assert found, cached[0]
    # 200 rows of 12 float32 steps (9.4 KiB) and their lengths and labels, padded to buckets.
    assert 9.4 <= float(found[1]) < 40
    plan = [line for line in err if line.startswith("training 200 rows")]
    summary = history.summary
    assert plan == [
        "training 200 rows on 2 workers (2 partitions): 2 local steps per round, "
        f"{summary['rounds_per_epoch']} rounds per epoch, {summary['total_rounds']} rounds"
    ]
    assert summary["total_rounds"] == len(history) >= 1
    assert history.summary["training_partitions"] == 2
    # Explicitly keeping the one partition of the DataFrame: one worker.
    _, kept = fit_distributed(df, model, {"epochs": 1, "num_partitions": 0}, progress=False)
    assert kept.summary["training_partitions"] == 1


def test_small_data_gets_one_worker_rather_than_a_small_partition_error(spark):
    rows = 60  # fewer than two minibatches of 32: two workers would each get less than one
    x, y, lengths = noisy_sines(rows, 12, 3, np.random.default_rng(1), min_len=6)
    df = spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(2)
    _, history = fit_distributed(df, {"hidden_sizes": [4]}, {"epochs": 1}, progress=False)
    assert history.summary["training_partitions"] == 1
    assert history.rows[-1]["examples"] == rows
