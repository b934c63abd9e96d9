"""Parquet reading that fits a small heap: the reader's batch follows the rows' width.

:func:`tune_parquet_reader` sets ``spark.sql.parquet.columnarReaderBatchSize`` from the row
width read off the Parquet footers of a local path (or measured on the first rows), and
``_PARQUET_OPTIONS`` make the reader fetch column chunks in small pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from sparklstm.io.parquet import PathLike, check_path
from sparklstm.spark.sources.files import _data_files, _local_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

# Spark's vectorized Parquet reader decodes this many rows at a time (4096 by default) into
# column vectors on the executor's heap, outside Spark's memory accounting: per value its 4 or
# 8 bytes, and in a nested column (a sequence) also its repetition and definition levels, null
# flag, offsets and lengths, each vector reserving twice what it holds when it grows. 4096 rows
# of 1000 steps x 2 features are ~130 MiB per task, and a 512 MiB driver runs out of heap.
READER_BATCH_SIZE = "spark.sql.parquet.columnarReaderBatchSize"
_READER_BATCH_BYTES = 4 * 2**20  # estimated vector bytes per reader batch
_NESTED_VALUE_BYTES = 12  # levels, null flag, offsets and lengths per value of a nested column
_PHYSICAL_BYTES = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
_SPARK_BYTES = {"boolean": 1, "byte": 1, "short": 2, "integer": 4, "float": 4, "date": 4}
_FOOTERS = 8  # data files whose footers are read (spread over the file list)
# Before decoding, the reader holds a row group's column chunks (compressed) on the heap. With
# Hadoop's vectored reads, parquet-mr's default, each chunk is one buffer: 37 MB for a row group
# of the Parquet writer's 64 MiB of 1000-step sequences, a large contiguous block to find in a
# small heap (two tasks reading failed so in a 512 MiB driver). Read plainly, the chunks come in
# pieces of 256 KiB, below G1's humongous-object size for any heap from 512 MiB.
_PARQUET_OPTIONS = {
    "parquet.hadoop.vectored.io.enabled": "false",
    "parquet.read.allocation.size": str(256 * 2**10),
}
_SAMPLED_ROWS = 64  # rows read to measure the width when no footer can be read


def _footer_row_bytes(root: Path, columns: set[str]) -> int | None:
    """The reader's estimated vector bytes for the widest row group's average row, from the
    Parquet footers (values per column chunk and their physical types; the encoding and the
    compression do not matter) of up to ``_FOOTERS`` data files under ``root``."""
    files = list(_data_files(root))
    if len(files) > _FOOTERS:
        files = [files[round(i * (len(files) - 1) / (_FOOTERS - 1))] for i in range(_FOOTERS)]
    widest = 0
    for file in files:
        try:
            metadata = pq.read_metadata(file)
        except (OSError, ValueError, pa.ArrowException):
            continue
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            if row_group.num_rows <= 0:
                continue
            total = 0
            for j in range(row_group.num_columns):
                chunk = row_group.column(j)
                if chunk.path_in_schema.split(".")[0] not in columns:
                    continue
                values = max(chunk.num_values, 0)
                width = _PHYSICAL_BYTES.get(chunk.physical_type)
                if width is None:  # byte arrays: their decoded size
                    width = -(-chunk.total_uncompressed_size // max(values, 1))
                nested = metadata.schema.column(j).max_repetition_level > 0
                total += values * (width + (_NESTED_VALUE_BYTES if nested else 1))
            widest = max(widest, -(-total // row_group.num_rows))
    return widest or None


def _sampled_row_bytes(spark: SparkSession, df: DataFrame, columns: list[str]) -> int | None:
    """The estimated vector bytes of the widest of the first ``_SAMPLED_ROWS`` rows, read with
    a batch of that many rows (a path whose footers this process cannot read: remote storage,
    or a Spark Connect server's own files), doubled since later rows may be longer."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    def value_count(column: Any, data_type: Any) -> tuple[Any, Any]:
        depth = 0
        while isinstance(data_type, ArrayType):
            data_type, depth = data_type.elementType, depth + 1
            if depth > 1:
                column = F.flatten(column)
        return (F.size(column) if depth else F.lit(1)), (data_type, depth)

    sizes, kinds = [], []
    for name in columns:
        count, kind = value_count(F.col(name), df.schema[name].dataType)
        sizes.append(F.greatest(count, F.lit(0)).alias(f"n{len(sizes)}"))
        kinds.append(kind)
    previous = spark.conf.get(READER_BATCH_SIZE, None)
    spark.conf.set(READER_BATCH_SIZE, str(_SAMPLED_ROWS))
    try:
        rows = df.select(*sizes).limit(_SAMPLED_ROWS).collect()
    finally:
        if previous is None:
            spark.conf.unset(READER_BATCH_SIZE)
        else:
            spark.conf.set(READER_BATCH_SIZE, previous)
    widest = 0
    for row in rows:
        total = 0
        for i, (data_type, depth) in enumerate(kinds):
            width = _SPARK_BYTES.get(data_type.typeName(), 8)
            total += int(row[i] or 0) * (width + (_NESTED_VALUE_BYTES if depth else 1))
        widest = max(widest, total)
    return 2 * widest or None


def tune_parquet_reader(
    spark: SparkSession, path: PathLike, columns: Sequence[str] | None = None
) -> int | None:
    """Make the session's Parquet reader batch (``spark.sql.parquet.columnarReaderBatchSize``)
    follow the row width of the Parquet data at ``path``: as many rows as fit in about 4 MiB of
    the reader's column vectors, never more than the session's current value (4096 unless set;
    so a user's smaller setting, or a narrower one made for other data read in the same
    session, stays). :func:`read_sequences` calls it for Parquet data; call it before
    training on a DataFrame read otherwise.

    The width comes from the Parquet footers of a local path (the number of values each row
    group holds per column, and their types, for ``columns``: by default all), or else from
    the widest of the first rows (one small Spark job). A runtime SQL setting, set on the
    session: it applies to classic sessions and Spark Connect alike, from the next query on.
    Returns the batch size in effect, or None when the width could not be measured (the
    setting is then left alone).
    """
    text = check_path("path", path)
    wanted = set(columns) if columns is not None else None
    row_bytes = None
    local = _local_path(text)
    if local is not None and local.exists():
        if wanted is None:
            wanted = set(_schema_names(local))
        row_bytes = _footer_row_bytes(local, wanted)
    if row_bytes is None:
        df = spark.read.options(**_PARQUET_OPTIONS).parquet(text)
        names = [c for c in df.columns if wanted is None or c in wanted]
        row_bytes = _sampled_row_bytes(spark, df, names) if names else None
    if row_bytes is None:
        return None
    current = int(spark.conf.get(READER_BATCH_SIZE, None) or 4096)
    rows = max(1, min(current, _READER_BATCH_BYTES // row_bytes))
    if rows != current:
        spark.conf.set(READER_BATCH_SIZE, str(rows))
        logger.info(
            "%s: rows of ~%d KiB in the Parquet reader's vectors; %s %d -> %d",
            text,
            row_bytes // 1024,
            READER_BATCH_SIZE,
            current,
            rows,
        )
    return rows


def _schema_names(root: Path) -> list[str]:
    for file in _data_files(root):
        try:
            return list(pq.read_schema(file).names)
        except (OSError, ValueError, pa.ArrowException):
            continue
    return []
