"""Data larger than memory (issue 13), at CI size: the mechanisms that let a 1 GB dataset train
in a 512 MiB driver, each checked on its own.

- The Parquet reader's batch follows the row width (``read_sequences`` sets
  ``spark.sql.parquet.columnarReaderBatchSize`` from the footers, or from the first rows).
- Chunks are bounded in bytes, the bound chosen from the executors' memory, and a partition's
  rows wait in the encoder only until they fill one chunk.
- The encoded chunks are persisted ``MEMORY_AND_DISK`` and, in a 512 MiB driver whose Spark
  memory is cut to 5%, spill to disk and read back intact; and a job that still runs out of
  memory there ends with one line naming the setting to raise, status 1, no Python traceback,
  its JVM alive (one fresh JVM in a subprocess, for both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm.spark.partitions import (
    ChunkEncoding,
    cache_chunks,
    chunk_byte_budget,
    encode_partition,
)
from sparklstm.spark.schema import Columns
from sparklstm.spark.sources import (
    READER_BATCH_SIZE,
    ParquetDatasetWriter,
    read_sequences,
    tune_parquet_reader,
)

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")
MiB = 2**20


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def write_sequences(path: Path, rows: int, steps: int, seed: int = 0) -> np.ndarray:
    """``rows`` float32 sequences of ``steps`` x 2 features and a float label, as Parquet."""
    x = np.random.default_rng(seed).standard_normal((rows, steps, 2)).astype(np.float32)
    with ParquetDatasetWriter(path) as writer:
        writer.write(x, x[:, -1, 0].copy(), np.full(rows, steps))
    return x


@pytest.fixture
def reader_setting(any_spark):
    """The session's reader batch setting, restored after the test (the sessions are shared)."""
    before = any_spark.conf.get(READER_BATCH_SIZE, None)
    any_spark.conf.unset(READER_BATCH_SIZE)
    yield any_spark
    if before is None:
        any_spark.conf.unset(READER_BATCH_SIZE)
    else:
        any_spark.conf.set(READER_BATCH_SIZE, before)


def test_reader_batch_follows_row_width(reader_setting, tmp_path):
    spark = reader_setting
    write_sequences(tmp_path / "narrow", rows=40, steps=20)
    write_sequences(tmp_path / "wide", rows=40, steps=1500)

    # 20 steps x 2 features: 40 x 16 + 5 = 645 bytes a row, 6,502 rows in 4 MiB of the
    # reader's vectors, more than the 4096 of a batch already.
    read_sequences(spark, tmp_path / "narrow")
    assert spark.conf.get(READER_BATCH_SIZE, None) is None  # left at Spark's 4096

    # 1500 steps x 2 float32 features, nested: 3000 values x (4 bytes + 12 of levels, offsets
    # and lengths) + the float label (4 + 1) = 48,005 bytes a row: 87 rows in 4 MiB.
    df = read_sequences(spark, tmp_path / "wide")
    assert spark.conf.get(READER_BATCH_SIZE) == "87"
    assert df.count() == 40

    # Narrow data read later in the same session does not raise it again (the wide rows may
    # still be read by a query of this session).
    assert tune_parquet_reader(spark, tmp_path / "narrow") == 87
    assert spark.conf.get(READER_BATCH_SIZE) == "87"


def test_reader_batch_from_the_first_rows_without_footers(reader_setting, tmp_path):
    """A path whose footers this process cannot read (here a glob: only Spark resolves it)
    is measured by reading its first rows: twice the widest, as later rows may be longer."""
    spark = reader_setting
    write_sequences(tmp_path / "wide", rows=40, steps=1500)
    rows = tune_parquet_reader(spark, str(tmp_path / "wide" / "part-*.parquet"))
    assert rows == 4 * MiB // (2 * 48_005) == 43
    assert spark.conf.get(READER_BATCH_SIZE) == "43"


class _Conf:
    def __init__(self, values):
        self.values = values

    def get(self, key, default=None):
        return self.values.get(key, default)


class _Session:
    """What chunk_byte_budget reads of a session: its conf."""

    def __init__(self, values):
        self.conf = _Conf(values)


MASTER, DRIVER, EXECUTOR = "spark.master", "spark.driver.memory", "spark.executor.memory"


@pytest.mark.parametrize(
    ("settings", "budget"),
    [
        # (512 - 300 MiB reserved) / 2 task slots / 16 copies = 6.6 MiB -> 4 MiB (power of two)
        ({MASTER: "local[2]", DRIVER: "512m"}, 4 * MiB),
        ({MASTER: "local[4]", DRIVER: "512m"}, 2 * MiB),
        ({MASTER: "local[16]", DRIVER: "512m"}, 1 * MiB),  # the floor
        ({MASTER: "local[4,2]", DRIVER: "512m", "spark.task.cpus": "2"}, 4 * MiB),
        ({MASTER: "local[2]", DRIVER: "1g"}, 8 * MiB),  # the ceiling
        ({MASTER: "local[2]"}, 8 * MiB),  # Spark's default driver memory, 1g
        ({MASTER: "local-cluster[2,4,1024]"}, 8 * MiB),  # 724 MiB / 4 / 16 = 11 MiB
        ({MASTER: "local-cluster[2,8,1024]"}, 4 * MiB),
        ({MASTER: "yarn", EXECUTOR: "2g", "spark.executor.cores": "16"}, 4 * MiB),
        ({MASTER: "spark://host:7077"}, 8 * MiB),  # executor memory not known
    ],
)
def test_chunk_budget_from_executor_memory(settings, budget):
    assert chunk_byte_budget(_Session(settings)) == budget


def test_chunk_budget_of_a_real_session(any_spark):
    """Both kinds of session tell the master and the driver memory (local[2,2], 2g): 8 MiB."""
    assert chunk_byte_budget(any_spark) == 8 * MiB


def _encoding(**changes) -> ChunkEncoding:
    options = dict(
        columns=Columns(),
        dtype="float32",
        tokens=False,
        per_step_labels=False,
        classification=False,
        num_features=2,
        chunk_rows=4096,
        batch_size=4,
    )
    return ChunkEncoding(**{**options, **changes})


def test_rows_wait_only_until_they_fill_a_chunk():
    """With 1500 x 2 float32 steps (12,000 bytes a row) and a 64 KiB budget a chunk holds 4
    rows (5 fit, cut to a multiple of the batch size): the first chunk comes out once 4 rows
    are in, not after chunk_rows (4096) of them."""
    x = np.zeros((20, 1500, 2), np.float32)
    table = pa.table(
        {
            "features": pa.array([row.tolist() for row in x], pa.list_(pa.list_(pa.float32()))),
            "label": pa.array(np.zeros(20, np.float32)),
        }
    )
    consumed = []

    def batches():
        for i, batch in enumerate(table.to_batches(max_chunksize=1)):
            consumed.append(i)
            yield batch

    chunks = encode_partition(batches(), _encoding(max_chunk_bytes=64 * 1024), partition=0)
    first = next(chunks)
    assert len(consumed) == 4
    assert first.column("rows").to_pylist() == [4]
    rest = list(chunks)
    sizes = [len(b.column("inputs")[0].as_py()) for b in [first, *rest]]
    assert sizes == [4 * 12_000] * 5


def test_cached_chunks_are_bounded_and_memory_and_disk(any_spark, tmp_path):
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    write_sequences(tmp_path / "data", rows=60, steps=1500)
    df = read_sequences(any_spark, tmp_path / "data").repartition(2)
    cached = cache_chunks(df, _encoding(max_chunk_bytes=64 * 1024))
    try:
        assert cached.df.storageLevel == StorageLevel.MEMORY_AND_DISK
        sizes = cached.df.select(F.length("inputs").alias("bytes"), "rows").collect()
        assert max(row.bytes for row in sizes) == 4 * 12_000 <= 64 * 1024
        assert cached.rows == 60 and sum(row.rows for row in sizes) == 60
    finally:
        cached.unpersist()
        any_spark.conf.unset(READER_BATCH_SIZE)


# One fresh JVM of 512 MiB (the least Spark accepts) whose unified memory is cut to 5%, ~10 MiB,
# started by this script as a job is (run_job). It caches 16 MB of encoded chunks, which cannot
# stay in memory, and prints what the block store holds and what a mapInArrow over the cached
# chunks reads back; then it profiles one sequence of 16M steps x 2 features, which needs over
# 1 GiB of the Parquet reader's vectors however small the batch: the job must end with one line
# (and the JVM must still answer a query after the task's OutOfMemoryError).
MEMORY_JOB = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from pyspark.sql import functions as F
    from sparklstm.cli import run_job
    from sparklstm.spark.partitions import (
        ChunkEncoding, cache_chunks, chunk_byte_budget, read_chunks,
    )
    from sparklstm.spark.schema import Columns, profile_data
    from sparklstm.spark.session import get_session
    from sparklstm.spark.sources import read_sequences

    data, huge, scratch = sys.argv[1:4]
    spark = get_session("memory-test", master="local[2]", log_level="ERROR", conf={
        "spark.driver.memory": "512m", "spark.memory.fraction": "0.05",
        "spark.ui.enabled": "false", "spark.local.dir": scratch,
    })
    encoding = ChunkEncoding(
        columns=Columns(), dtype="float32", tokens=False, per_step_labels=False,
        classification=False, num_features=2, chunk_rows=4096, batch_size=32,
    )
    cached = cache_chunks(read_sequences(spark, data).repartition(2), encoding)

    def totals(batches):
        import pyarrow as pa
        rows, total = 0, 0.0
        for inputs, lengths, _, _ in read_chunks(batches):
            rows += len(lengths)
            total += float(inputs.astype(np.float64).sum())
        yield pa.RecordBatch.from_pydict({"rows": [rows], "total": [total]})

    back = cached.df.mapInArrow(totals, "rows long, total double").collect()
    infos = [i for i in spark.sparkContext._jsc.sc().getRDDStorageInfo() if i.numCachedPartitions()]
    level = infos[0].storageLevel()
    conf = spark.sparkContext.getConf()
    print("RESULT " + json.dumps({
        "budget": chunk_byte_budget(spark),
        "largest_chunk": cached.df.agg(F.max(F.length("inputs"))).first()[0],
        "cached_rdds": len(infos),
        "memory_bytes": sum(i.memSize() for i in infos),
        "disk_bytes": sum(i.diskSize() for i in infos),
        "partitions": sum(i.numCachedPartitions() for i in infos),
        "use_disk": level.useDisk(), "use_memory": level.useMemory(),
        "deserialized": level.deserialized(),
        "rows": sum(r.rows for r in back), "total": sum(r.total for r in back),
        "settings": {k: conf.get(k, None) for k in (
            "spark.storage.unrollMemoryCheckPeriod", "spark.storage.unrollMemoryThreshold",
            "spark.serializer.objectStreamReset",
            "spark.unsafe.sorter.spill.read.ahead.enabled",
            "spark.executor.killOnFatalError.depth",
        )},
    }), flush=True)
    cached.unpersist()

    def main(argv):
        try:
            profile_data(read_sequences(spark, huge), Columns())
        finally:
            print("ALIVE", spark.range(5).count(), flush=True)
        return 0

    run_job(main, "memory_job.py")
    """
)


def _huge_sequence(path: Path, steps: int = 16 * 2**20) -> None:
    """One sequence of ``steps`` x 2 zeros (a file of a few KiB: dictionary and run lengths)."""
    values = pa.array(np.zeros(2 * steps, np.float32))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * steps + 1, 2, np.int32)), values)
    outer = pa.ListArray.from_arrays(pa.array([0, steps], pa.int32()), inner)
    path.mkdir()
    table = pa.table({"features": outer, "label": pa.array([0.5], pa.float32())})
    pq.write_table(table, path / "part-00000.parquet")


@pytest.fixture(scope="module")
def memory_job(tmp_path_factory):
    """The output of MEMORY_JOB's run, and the data it cached."""
    root = tmp_path_factory.mktemp("memory")
    x = write_sequences(root / "data", rows=2000, steps=1000)  # 16 MB padded
    _huge_sequence(root / "huge")
    script = root / "memory_job.py"
    script.write_text(MEMORY_JOB, encoding="utf-8")
    command = [sys.executable, str(script), str(root / "data"), str(root / "huge")]
    done = subprocess.run(
        [*command, str(root / "local")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        cwd=root,
    )
    return done, x


def test_cached_chunks_spill_to_disk_and_read_back(memory_job):
    done, x = memory_job
    lines = [t for t in done.stdout.splitlines() if t.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    # 512 MiB local[2]: 4 MiB chunks (1000 x 2 float32 = 8,000 bytes a row: 512 rows).
    assert result["budget"] == 4 * MiB
    assert result["largest_chunk"] == 512 * 8_000 <= 4 * MiB
    # Persisted MEMORY_AND_DISK (serialized), and most of it on disk: memory held ~10 MiB.
    assert result["cached_rdds"] == 1 and result["partitions"] == 2
    assert result["use_disk"] and result["use_memory"] and not result["deserialized"]
    assert result["disk_bytes"] > 8 * MiB > result["memory_bytes"]
    # Every row, every value, read back through a round's path (mapInArrow over the cache).
    assert result["rows"] == 2000
    assert result["total"] == pytest.approx(float(x.astype(np.float64).sum()), abs=1e-3)
    # The session's memory defaults were in effect (local mode: the JVM outlives a task's OOM).
    assert result["settings"] == {
        "spark.storage.unrollMemoryCheckPeriod": "1",
        "spark.storage.unrollMemoryThreshold": "262144",
        "spark.serializer.objectStreamReset": "1",
        "spark.unsafe.sorter.spill.read.ahead.enabled": "false",
        "spark.executor.killOnFatalError.depth": "0",
    }


def test_out_of_memory_is_one_line_naming_the_setting(memory_job):
    done, _ = memory_job
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "ALIVE 5" in done.stdout  # the JVM answered after the task ran out of heap
    assert "Traceback" not in output
    last = [t for t in done.stderr.splitlines() if t.strip()][-1]
    assert last.startswith(
        "memory_job.py: error: Spark ran out of memory (Cannot reserve additional contiguous "
        "bytes in the vectorized reader (requested "
    ), last
    assert last.endswith(
        "; lower spark.sql.parquet.columnarReaderBatchSize, or raise --driver-memory (now 512m; "
        "local mode: the tasks run in the driver)"
    ), last


SPILL_OOM = (
    "Job aborted due to stage failure: Task 0 in stage 9.0 failed 1 times, most recent failure: "
    "Lost task 0.0 in stage 9.0 (TID 156) (192.0.2.2 executor driver): java.lang.OutOfMemoryError"
    ": Java heap space\n\tat org.apache.spark.util.collection.unsafe.sort.UnsafeSorterSpillReader"
    ".<init>(UnsafeSorterSpillReader.java:54)"
)


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (
            SPILL_OOM,  # the 10 GB run of bench/memory.md: two partitions of ~5 GB each
            "Spark ran out of memory in stage 9.0 (java.lang.OutOfMemoryError: Java heap space); "
            "spread the rows over more partitions (--partitions; a sort that spilled holds 1 MiB "
            "per spill file), or raise --driver-memory (local mode: the tasks run in the driver) "
            "or spark.executor.memory",
        ),
        (
            "Lost task 1.0 in stage 3.0: java.lang.OutOfMemoryError: Java heap space\n\tat x.y(z)",
            "Spark ran out of memory in stage 3.0 (java.lang.OutOfMemoryError: Java heap space); "
            "raise --driver-memory (local mode: the tasks run in the driver) or "
            "spark.executor.memory",
        ),
        (
            "ExecutorLostFailure (executor 3 exited caused by one of the running tasks) Reason: "
            "Container killed by YARN for exceeding memory limits. 5.5 GB of 5.5 GB used",
            "Spark ran out of memory (exceeding memory limits); raise "
            "spark.executor.memoryOverhead",
        ),
        (
            "An exception was thrown from the Python worker: MemoryError: Unable to allocate",
            "Spark ran out of memory (MemoryError: Unable to allocate); give the Python workers "
            "more memory (spark.executor.pyspark.memory)",
        ),
        ("[PATH_NOT_FOUND] Path does not exist: /nowhere", None),
    ],
)
def test_out_of_memory_lines(monkeypatch, message, line):
    from pyspark import SparkContext
    from pyspark.errors import PySparkRuntimeError

    from sparklstm.cli import out_of_memory

    monkeypatch.setattr(SparkContext, "_active_spark_context", None)  # no JVM to ask
    assert out_of_memory(PySparkRuntimeError(message=message)) == line
    assert out_of_memory(RuntimeError(message)) is None  # not from Spark
