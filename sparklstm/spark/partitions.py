"""DataFrame -> cached NumPy chunks on the executors, built once and reused every round.

Each executor turns its Arrow record batches into padded NumPy arrays (``mapInArrow``; no
per-row Python), in chunks of at most ``chunk_rows`` rows and a bounded number of bytes of
padded inputs (:func:`chunk_byte_budget`: 1 to 8 MiB, from the executors' memory). A chunk is
one row of raw buffers (with its partition and index), so the encoded DataFrame has one row
per chunk, not per sequence; its rows never pass through a row pickler. It is persisted
``MEMORY_AND_DISK`` in Spark's block store, where its column batches (one chunk, or a few
small ones, each) spill to disk when memory runs short; every round reads it back through
another ``mapInArrow``, whose Arrow input batches are bounded by
``spark.sql.execution.arrow.maxBytesPerBatch``. Only DataFrame operations are used, so the
same code runs on a classic session and on Spark Connect.

Before encoding, each partition's rows are put in a canonical order: sorted by two hashes of
their content (:func:`training_row_order`). Spark fixes which rows a partition holds (a file
split, a hash or round-robin repartition), but not their order after a shuffle: the reduce side
reads map outputs in the order the fetches complete. A partition recomputed after an executor
is lost would then be cut into other minibatches, and a retried round would not give the same
bits. Sorted by content, a partition's chunks are a function of its rows alone.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparklstm.data.arrow import batch_to_numpy
from sparklstm.data.pair_data import PairData
from sparklstm.data.sequence_data import SequenceData
from sparklstm.spark.schema import Columns

__all__ = [
    "CHUNK_SCHEMA",
    "Chunk",
    "CachedChunks",
    "bucket_keys",
    "cache_chunks",
    "chunk_byte_budget",
    "encode_partition",
    "keep_encoded",
    "chunk_data",
    "decode_chunk",
    "read_chunks",
    "read_indexed_chunks",
    "training_row_order",
]

# One chunk: where it belongs (partition, index; index -1 and 0 rows mark a partition that
# has no rows, so that every partition shows up) and its arrays as raw buffers.
CHUNK_SCHEMA = (
    "partition int, chunk int, rows int, inputs binary, inputs_dtype string, "
    "inputs_shape array<bigint>, lengths binary, targets binary, targets_dtype string, "
    "targets_shape array<bigint>, target_lengths binary, rejected array<bigint>"
)
# A chunk's padded inputs stay below this size unless one minibatch alone is larger (chunks
# shrink to stay under it): a few MiB keeps every cached block and Arrow batch small.
MAX_CHUNK_BYTES = 8 * 2**20
MIN_CHUNK_BYTES = 2**20
# Spark keeps this much of an executor's heap out of its memory accounting.
_RESERVED_HEAP = 300 * 2**20
# Heap per task slot, over the chunk size: caching one chunk holds a few copies of it at once
# (the Arrow row, its UnsafeRow, the column builder growing by doubling, the built and the
# serialized batch), none of them counted by Spark's memory manager.
_HEAP_PER_CHUNK = 16

# inputs, lengths, targets, and the targets' lengths when they are sequences of their own
# (sequence-to-sequence pairs; None otherwise).
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


@dataclass(frozen=True)
class ChunkEncoding:
    """What an executor needs to convert Arrow batches (plain data: pickled into the task)."""

    columns: Columns
    dtype: str
    tokens: bool
    per_step_labels: bool
    classification: bool
    num_features: int | None
    chunk_rows: int
    batch_size: int
    # Bytes of padded inputs per chunk; None: MAX_CHUNK_BYTES (cache_chunks sets it from the
    # executors' memory, see chunk_byte_budget).
    max_chunk_bytes: int | None = None
    # An int column numbering the first rule a row breaks (0: none; see
    # sparklstm.spark.schema.RowRules): such rows are left out and counted per rule.
    rule_column: str | None = None
    num_rules: int = 0
    # Sequence-to-sequence pairs: the label column is a target sequence (token ids when
    # target_tokens), padded with its own lengths.
    pairs: bool = False
    target_tokens: bool = False


def _chunk_row(
    table: pa.Table, encoding: ChunkEncoding, partition: int, chunk: int
) -> pa.RecordBatch:
    columns = encoding.columns
    target_lengths = None
    inputs, lengths, targets = batch_to_numpy(
        table,
        columns.features,
        None if encoding.pairs else columns.label,
        columns.length,
        dtype=np.dtype(encoding.dtype),
        per_step_labels=encoding.per_step_labels,
        num_features=None if encoding.tokens else encoding.num_features,
    )
    if encoding.pairs and columns.label is not None:
        targets, target_lengths, _ = batch_to_numpy(
            table,
            columns.label,
            None,
            columns.target_length,
            dtype=np.dtype(encoding.dtype),
            num_features=None if encoding.target_tokens else 1,
        )
        target_lengths = target_lengths.astype(np.int64)
    if encoding.tokens:
        inputs = inputs.astype(np.int32 if inputs.max(initial=0) < 2**31 else np.int64)
    elif inputs.ndim == 2:  # univariate: one feature per step
        inputs = inputs[..., None]
    lengths = lengths.astype(np.int64)
    if encoding.pairs:
        if targets is not None and encoding.target_tokens:
            targets = targets.astype(np.int64)
    elif targets is not None:
        if encoding.classification:
            targets = targets.astype(np.int64)
        else:
            targets = targets.astype(encoding.dtype)
            if targets.ndim == 1 and not encoding.per_step_labels:
                targets = targets[:, None]
            if encoding.per_step_labels and targets.ndim == 2:
                targets = targets[..., None]
        if encoding.per_step_labels:  # labels past a sequence's end never reach the loss
            steps = np.arange(targets.shape[1])[None, :]
            targets[steps >= lengths[:, None]] = 0
    empty = np.zeros(0, dtype=np.uint8)
    return pa.RecordBatch.from_pydict(
        {
            "partition": pa.array([partition], pa.int32()),
            "chunk": pa.array([chunk], pa.int32()),
            "rows": pa.array([len(lengths)], pa.int32()),
            "inputs": pa.array([np.ascontiguousarray(inputs).tobytes()], pa.binary()),
            "inputs_dtype": [inputs.dtype.str],
            "inputs_shape": pa.array([list(inputs.shape)], pa.list_(pa.int64())),
            "lengths": pa.array([lengths.tobytes()], pa.binary()),
            "targets": pa.array(
                [np.ascontiguousarray(targets if targets is not None else empty).tobytes()],
                pa.binary(),
            ),
            "targets_dtype": ["" if targets is None else targets.dtype.str],
            "targets_shape": pa.array(
                [[] if targets is None else list(targets.shape)], pa.list_(pa.int64())
            ),
            "target_lengths": pa.array(
                [None if target_lengths is None else target_lengths.tobytes()], pa.binary()
            ),
            "rejected": pa.array([[]], pa.list_(pa.int64())),
        }
    )


def _longest(table: pa.Table | pa.RecordBatch, encoding: ChunkEncoding) -> int:
    column = table.column(encoding.columns.features)
    return int(pc.max(pc.list_value_length(column)).as_py() or 1)


def _step(longest: int, encoding: ChunkEncoding) -> int:
    """``chunk_rows``, lowered (to a multiple of ``batch_size``) if a padded chunk of sequences
    up to ``longest`` steps would exceed the byte budget: long sequences make fewer rows per
    chunk."""
    width = 1 if encoding.tokens else (encoding.num_features or 1)
    row_bytes = max(1, longest * width * np.dtype(encoding.dtype).itemsize)
    budget = encoding.max_chunk_bytes or MAX_CHUNK_BYTES
    budget_rows = max(encoding.batch_size, budget // row_bytes)
    rows = min(encoding.chunk_rows, budget_rows)
    return max(encoding.batch_size, rows - rows % encoding.batch_size)


def _rows_per_chunk(table: pa.Table, encoding: ChunkEncoding) -> int:
    """The chunk size (rows) for ``table``'s longest sequence (see :func:`_step`)."""
    return _step(_longest(table, encoding), encoding)


def encode_partition(
    batches: Iterator[pa.RecordBatch], encoding: ChunkEncoding, partition: int | None = None
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: regroup a partition's record batches into chunks of
    ``chunk_rows`` rows (in order) and emit each as one row of NumPy buffers. A partition
    without rows emits one row of 0 rows (chunk -1), so the driver sees every partition.
    With ``encoding.rule_column``, rows that break a rule are left out, and one more row of 0
    rows (chunk -2) carries how many broke each rule. ``partition`` defaults to the running
    Spark task's partition."""
    if partition is None:
        from sparklstm.spark.rounds import _task_partition

        partition = _task_partition()
    rejected = np.zeros(encoding.num_rules + 1, dtype=np.int64)
    if encoding.rule_column is not None:
        batches = _valid_rows(batches, encoding.rule_column, rejected)
    chunk = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    longest = 1  # of the pending rows
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        longest = max(longest, _longest(batch, encoding))
        # Rows wait only until they fill a chunk: as few as the byte budget allows when the
        # sequences are long, never chunk_rows of them regardless of their size.
        step = _step(longest, encoding)
        if pending_rows < step:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while table.num_rows - start >= step:
            yield _chunk_row(table.slice(start, step), encoding, partition, chunk)
            chunk += 1
            start += step
        rest = table.slice(start)
        pending = rest.to_batches() if rest.num_rows else []
        pending_rows = rest.num_rows
        longest = _longest(rest, encoding) if rest.num_rows else 1
    if pending_rows:
        table = pa.Table.from_batches(pending)
        step = _rows_per_chunk(table, encoding)
        for start in range(0, table.num_rows, step):
            yield _chunk_row(table.slice(start, step), encoding, partition, chunk)
            chunk += 1
    if chunk == 0:
        yield _empty_marker(partition)
    if rejected[1:].any():
        yield _empty_marker(partition, chunk=-2, rejected=rejected[1:].tolist())


def _valid_rows(
    batches: Iterator[pa.RecordBatch], rule_column: str, rejected: np.ndarray
) -> Iterator[pa.RecordBatch]:
    """The batches without ``rule_column`` and without the rows it flags, adding the flagged
    rows to ``rejected[rule]``."""
    for batch in batches:
        index = batch.schema.get_field_index(rule_column)
        rules = batch.column(index).to_numpy(zero_copy_only=False)
        rejected += np.bincount(rules, minlength=len(rejected))[: len(rejected)]
        batch = batch.remove_column(index)
        if rules.any():
            batch = batch.filter(pa.array(rules == 0))
        yield batch


def _empty_marker(partition: int, chunk: int = -1, rejected: list[int] | None = None):
    binary, shape = pa.array([b""], pa.binary()), pa.array([[]], pa.list_(pa.int64()))
    return pa.RecordBatch.from_pydict(
        {
            "partition": pa.array([partition], pa.int32()),
            "chunk": pa.array([chunk], pa.int32()),
            "rows": pa.array([0], pa.int32()),
            "inputs": binary,
            "inputs_dtype": [""],
            "inputs_shape": shape,
            "lengths": binary,
            "targets": binary,
            "targets_dtype": [""],
            "targets_shape": shape,
            "target_lengths": pa.array([None], pa.binary()),
            "rejected": pa.array([rejected or []], pa.list_(pa.int64())),
        }
    )


def decode_chunk(row: Any) -> Chunk:
    """One encoded row (a mapping of the chunk columns) -> ``(inputs, lengths, targets,
    target_lengths)`` NumPy arrays (no copies beyond the one out of the row)."""
    inputs = np.frombuffer(row["inputs"], dtype=np.dtype(row["inputs_dtype"]))
    inputs = inputs.reshape(tuple(row["inputs_shape"]))
    lengths = np.frombuffer(row["lengths"], dtype=np.int64)
    targets = target_lengths = None
    if row["targets_dtype"]:
        targets = np.frombuffer(row["targets"], dtype=np.dtype(row["targets_dtype"]))
        targets = targets.reshape(tuple(row["targets_shape"]))
    if row.get("target_lengths") is not None:
        target_lengths = np.frombuffer(row["target_lengths"], dtype=np.int64)
    return inputs, lengths, targets, target_lengths


def chunk_data(chunk: Chunk) -> Any:
    """A decoded chunk as the trainers' data: :class:`SequenceData`, or :class:`PairData`
    for sequence-to-sequence pairs."""
    inputs, lengths, targets, target_lengths = chunk
    if target_lengths is not None:
        return PairData(inputs, lengths, targets, target_lengths)
    return SequenceData(inputs, lengths, targets)


def read_indexed_chunks(
    batches: Iterator[pa.RecordBatch],
) -> Iterator[tuple[int, int, Chunk]]:
    """``(partition, chunk index, chunk)`` of each chunk in the Arrow batches of encoded rows
    (the input of a ``mapInArrow`` over :attr:`CachedChunks.df`, or over a filter of it that
    keeps some chunks), in the order given; the empty-partition marker is skipped. One Arrow
    batch at a time is held."""
    for batch in batches:
        for row in batch.to_pylist():
            if row["rows"]:
                yield int(row["partition"]), int(row["chunk"]), decode_chunk(row)


def read_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[Chunk]:
    """The chunks of :func:`read_indexed_chunks`, without their indices."""
    for _, _, chunk in read_indexed_chunks(batches):
        yield chunk


@dataclass
class CachedChunks:
    """The encoded chunks, kept for the run: persisted in Spark's block store, or written as
    Parquet files under ``directory`` where a session cannot persist (see
    :func:`cache_chunks`). ``chunk_rows[partition][chunk]``: the rows of each chunk;
    ``rejected[i]``: rows left out for breaking rule ``i`` first (see
    ``ChunkEncoding.rule_column``); ``max_chunk_bytes``: the byte budget the chunks were cut
    with; ``bucket_keys``: with files, a key per partition that Spark's hash partitioner sends
    to that partition."""

    df: Any
    chunk_rows: list[list[int]]
    rejected: list[int] = dataclasses.field(default_factory=list)
    max_chunk_bytes: int | None = None
    directory: str | None = None
    bucket_keys: tuple[int, ...] = ()
    encoded_bytes: int = 0  # the chunks' arrays (inputs, lengths, targets), before compression

    @property
    def num_partitions(self) -> int:
        return len(self.chunk_rows)

    @property
    def partition_rows(self) -> list[int]:
        return [sum(rows) for rows in self.chunk_rows]

    @property
    def rows(self) -> int:
        return sum(self.partition_rows)

    def chunks(self, condition: str | None = None) -> Any:
        """The chunks (those meeting the SQL ``condition``) as a task must receive them: each
        partition's chunks together, in chunk order, one partition per task. Persisted chunks
        keep their partitioning; chunks read back from files are spread by a shuffle of the
        chunks asked for (the files' splits do not follow the partitions)."""
        from pyspark.sql import functions as F

        df = self.df if condition is None else self.df.where(condition)
        if self.directory is None:
            return df
        keys = F.array(*[F.lit(key).cast("bigint") for key in self.bucket_keys])
        bucketed = df.withColumn("_bucket", F.element_at(keys, F.col("partition") + 1))
        spread = bucketed.repartition(self.num_partitions, "_bucket")
        return spread.sortWithinPartitions("partition", "chunk").drop("_bucket")

    def unpersist(self) -> None:
        """Free the cache: unpersist, or delete the files (a local directory is removed; on
        other file systems, which a Connect client cannot reach, Spark overwrites it with an
        empty table)."""
        if self.directory is None:
            self.df.unpersist()
            return
        local = _local_path(self.directory)
        if local is not None:
            shutil.rmtree(local, ignore_errors=True)
            return
        session = self.df.sparkSession
        empty = session.createDataFrame([], self.df.schema)
        empty.write.mode("overwrite").parquet(self.directory)


def _local_path(directory: str) -> str | None:
    """The local path of ``directory`` (a plain path or a ``file:`` URI), else None."""
    if directory.startswith("file:"):
        return directory[len("file:") :].removeprefix("//")
    return None if "://" in directory or ":/" in directory.split("/")[0] else directory


def bucket_keys(spark: Any, partitions: int) -> tuple[int, ...]:
    """For each ``p < partitions``, a bigint key that Spark's hash partitioning
    (``repartition(partitions, key)``: ``pmod(hash(key), partitions)``) sends to partition
    ``p``, found by Spark itself (one small job)."""
    from pyspark.sql import functions as F

    span = 16 * partitions
    while True:
        found = (
            spark.range(span)
            .select("id", F.expr(f"pmod(hash(id), {partitions})").alias("p"))
            .groupBy("p")
            .agg(F.min("id").alias("id"))
            .collect()
        )
        keys = {int(row.p): int(row.id) for row in found}
        if len(keys) == partitions:
            return tuple(keys[p] for p in range(partitions))
        span *= 4


def training_row_order(df: Any, columns: Columns) -> list[Any]:
    """Sort keys that put a partition's rows in the order the trainer uses: 64-bit xxHash and
    32-bit Murmur3 of the row's training columns (identical rows may tie: they encode alike)."""
    from pyspark.sql import functions as F

    selected = [df[name] for name in columns.selected()]
    return [F.xxhash64(*selected), F.hash(*selected)]


def _conf(spark: Any, key: str) -> str | None:
    try:
        value = spark.conf.get(key, None)
    except Exception:  # a session that cannot answer (stopped, or a refusing Connect server)
        return None
    return None if value in (None, "") else str(value)


def _memory_bytes(text: str | None) -> int | None:
    """A Spark memory setting (``512m``, ``4g``, ``2048``: MiB without a unit) in bytes."""
    if not text:
        return None
    text = text.strip().lower().removesuffix("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        return int(float(number) * (scale or 2**20))
    except ValueError:
        return None


def _executor_memory(spark: Any) -> tuple[int | None, int]:
    """``(heap bytes, task slots)`` of one executor as the session's settings tell them: in
    local mode the driver's heap (``spark.driver.memory``; tasks run in the driver) and the
    master's thread count, on a cluster ``spark.executor.memory`` and ``spark.executor.cores``
    (each divided by ``spark.task.cpus``). The heap is None when no setting says it (Spark's
    default is 1g); slots default to 1."""
    master = _conf(spark, "spark.master") or ""
    task_cpus = max(1, int(_conf(spark, "spark.task.cpus") or 1))
    cores: int | None = None
    if master == "local" or master.startswith("local["):
        heap = _memory_bytes(_conf(spark, "spark.driver.memory")) or 2**30
        threads = master[len("local[") :].split(",")[0].rstrip("]") if "[" in master else "1"
        cores = (os.cpu_count() or 1) if threads == "*" else int(threads or 1)
    elif master.startswith("local-cluster["):  # local-cluster[executors, cores, MiB]
        fields = master[len("local-cluster[") :].rstrip("]").split(",")
        cores, heap = int(fields[1]), int(fields[2]) * 2**20
    else:
        heap = _memory_bytes(_conf(spark, "spark.executor.memory"))
        given = _conf(spark, "spark.executor.cores")
        cores = int(given) if given else None
    return heap, max(1, (cores or 1) // task_cpus)


def chunk_byte_budget(spark: Any) -> int:
    """Bytes of padded inputs per cached chunk for this session's executors: a power of two
    between :data:`MIN_CHUNK_BYTES` and :data:`MAX_CHUNK_BYTES`, at most 1/16 of the heap each
    task slot has beyond Spark's reserved 300 MiB (caching a chunk holds a few uncounted copies
    of it). A 512 MiB local[2] driver gets 4 MiB; an executor whose memory is not known, 8 MiB."""
    heap, slots = _executor_memory(spark)
    if heap is None:
        return MAX_CHUNK_BYTES
    share = max(0, heap - _RESERVED_HEAP) // (slots * _HEAP_PER_CHUNK)
    budget = MIN_CHUNK_BYTES
    while budget * 2 <= min(share, MAX_CHUNK_BYTES):
        budget *= 2
    return budget


def cache_chunks(
    df: Any, encoding: ChunkEncoding, storage_level: Any = None, directory: str | None = None
) -> CachedChunks:
    """Encode ``df`` on the executors and keep the chunks: persisted ``MEMORY_AND_DISK`` (in
    Spark's block store, spilled to disk when memory runs short), or, with ``directory`` (a
    new path on storage every executor reaches), written there as Parquet and read back each
    round, for sessions that cannot persist (some managed, serverless platforms). Returns the
    chunks' sizes (only those come back to the driver). Unless ``encoding.max_chunk_bytes``
    says otherwise, chunks are sized by :func:`chunk_byte_budget`."""
    if encoding.max_chunk_bytes is None:
        encoding = dataclasses.replace(encoding, max_chunk_bytes=chunk_byte_budget(df.sparkSession))

    kept = encoding.columns.selected() + ([encoding.rule_column] if encoding.rule_column else [])
    selected = df.select(*kept)
    ordered = selected.sortWithinPartitions(*training_row_order(selected, encoding.columns))
    encoded = ordered.mapInArrow(
        functools.partial(encode_partition, encoding=encoding), CHUNK_SCHEMA
    )
    return keep_encoded(
        encoded, storage_level, directory, encoding.num_rules, encoding.max_chunk_bytes
    )


def keep_encoded(
    encoded: Any,
    storage_level: Any = None,
    directory: str | None = None,
    num_rules: int = 0,
    max_chunk_bytes: int | None = None,
) -> CachedChunks:
    """Keep a DataFrame of encoded chunks (rows of ``CHUNK_SCHEMA``) for the run, as
    :func:`cache_chunks` describes, and read their sizes back to the driver."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = encoded.sparkSession
    if directory is None:
        try:
            encoded = encoded.persist(storage_level or StorageLevel.MEMORY_AND_DISK)
        except Exception as exc:  # e.g. a serverless Connect session: NOT_SUPPORTED_WITH_...
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(
                f"this Spark session cannot cache DataFrames ({first_line[:200]}); give "
                "cache_dir (--cache-dir in the jobs), a directory every executor can reach, "
                "to keep the encoded data there as Parquet instead"
            ) from exc
    else:
        encoded.write.mode("error").parquet(directory)
        encoded = spark.read.parquet(directory)
    try:
        payload_bytes = sum(
            (
                F.coalesce(F.length(name), F.lit(0))
                for name in ("inputs", "lengths", "targets", "target_lengths")
            ),
            F.lit(0),
        )
        sizes = encoded.select(
            "partition", "chunk", "rows", "rejected", payload_bytes.alias("bytes")
        ).collect()
        partitions = 1 + max((row.partition for row in sizes), default=-1)
        chunk_rows: list[list[int]] = [[] for _ in range(partitions)]
        rejected = np.zeros(num_rules, dtype=np.int64)
        for row in sorted(sizes, key=lambda r: (r.partition, r.chunk)):
            if row.rejected:
                rejected += np.asarray(row.rejected, dtype=np.int64)
            if row.rows:
                if row.chunk != len(chunk_rows[row.partition]):
                    raise RuntimeError(f"partition {row.partition}: chunk {row.chunk} out of order")
                chunk_rows[row.partition].append(row.rows)
        keys = bucket_keys(spark, partitions) if directory is not None else ()
    except BaseException:
        CachedChunks(encoded, [], directory=directory).unpersist()
        raise
    return CachedChunks(
        encoded,
        chunk_rows,
        rejected.tolist(),
        max_chunk_bytes,
        directory,
        keys,
        sum(row.bytes for row in sizes),
    )
