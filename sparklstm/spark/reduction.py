"""Bringing a round's per-partition results to the driver: directly, or through a tree step.

Every partition of a round answers with one row ``(partition, result bytes)`` (see
:mod:`sparklstm.spark.rounds`), each about the size of the model (and its optimizer state).
Collecting them all makes the driver hold ``partitions x model size`` bytes at once, which
grows past a driver's memory at a few hundred partitions of a large model. When
``partitions x result size`` passes :data:`TREE_MERGE_BYTES`, the rows are first merged on the
executors, in groups of ``g = ceil(sqrt(P))`` consecutive partitions::

    train tasks ──(partition, result)──▶ shuffle by group = partition // g, sorted by partition
        ──▶ merge task: one running WorkerResult per group, rows added in partition order
        ──▶ driver: ceil(P / g) rows, merged in group order

A merge task streams its rows (one decoded result and the running sum in memory), and the
driver holds about ``sqrt(P)`` results instead of ``P``. Every sum is taken in a fixed order
(partition order inside a group, group order on the driver), so the result does not depend on
which task finishes first and a retried task changes nothing. It is not bit-identical to the
direct merge of the same results (the float sums associate differently); both are the same
weighted mean to rounding. Only DataFrame operations: the same on classic and Spark Connect.

The step costs a shuffle of every result, so it is taken only for the driver's memory's sake:
measured with a 1M-parameter model (Adam state averaged, 12 MB per result) on local[2], 64
partitions took 18.2 s a round direct and 25.1 s through the tree, while the Python driver's
peak memory fell from 2,490 MiB to 876 MiB (``python -m bench.reduction``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["TREE_MERGE_BYTES", "group_size", "merge_task", "collect_round_results"]

# Up to this many bytes of results per round (partitions x result size) the driver merges the
# rows itself; above it the executors merge groups first.
TREE_MERGE_BYTES = 512 * 2**20


def group_size(partitions: int) -> int:
    """Partitions per group of the tree step: ``ceil(sqrt(partitions))``, so that the groups
    and the rows per group are both about ``sqrt(partitions)``."""
    return max(1, math.isqrt(max(partitions - 1, 0)) + 1)


def merge_task(batches: Iterator[Any], *, group: int) -> Iterator[Any]:
    """``mapInArrow`` function of the tree step: rows sorted by partition in, one row per group
    of ``group`` consecutive partitions out (its first partition and the merged result)."""
    from sparklstm.spark.rounds import _result_row, merge_results
    from sparklstm.spark.wire import decode_result, encode_result

    current_group, first, merged = None, 0, None
    for batch in batches:
        partitions = batch.column("partition").to_pylist()
        results = batch.column("result")
        for index, partition in enumerate(partitions):
            result = decode_result(results[index].as_py())
            if partition // group != current_group:
                if merged is not None:
                    yield _result_row(first, encode_result(merged))
                current_group, first, merged = partition // group, partition, result
            else:
                merged = merge_results(merged, result)
    if merged is not None:
        yield _result_row(first, encode_result(merged))


def collect_round_results(
    results: Any,
    partitions: int,
    result_bytes: int,
    tree: bool | None = None,
    alongside: Any = None,
) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """The rows of a round's results DataFrame (``RESULT_SCHEMA``) on the driver, sorted by
    partition: all of them, or one per group after the executors' tree step. ``tree=None``
    takes the step when ``partitions * result_bytes`` (about the size of one result) passes
    :data:`TREE_MERGE_BYTES`; ``True``/``False`` force it.

    ``alongside``: another DataFrame of ``RESULT_SCHEMA`` rows (e.g. a validation) computed in
    the same Spark job, its tasks beside the round's; its rows (sorted by partition) are the
    second list returned, empty without it."""
    from pyspark.sql import functions as F

    from sparklstm.spark.rounds import RESULT_SCHEMA

    if tree is None:
        tree = partitions > 2 and partitions * result_bytes > TREE_MERGE_BYTES
    if tree:
        group = group_size(partitions)
        groups = math.ceil(partitions / group)
        keyed = results.withColumn("group", F.floor(F.col("partition") / group))
        ordered = keyed.repartition(groups, "group").sortWithinPartitions("partition")
        results = ordered.select("partition", "result").mapInArrow(
            functools.partial(merge_task, group=group), RESULT_SCHEMA
        )
    results = results.withColumn("alongside", F.lit(False))
    if alongside is not None:
        results = results.unionByName(alongside.withColumn("alongside", F.lit(True)))
    # As Arrow (toArrow): the JVM streams each partition's rows to this process as they come,
    # rather than holding every row and then a pickled copy of them (collect); a round's rows
    # are about the model's size each.
    table = results.toArrow()
    partitions_ = table.column("partition").to_pylist()
    sides = table.column("alongside").to_pylist()
    blobs = table.column("result")
    rows: tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]] = ([], [])
    for index, partition in enumerate(partitions_):
        rows[int(sides[index])].append((int(partition), blobs[index].as_py()))
    return sorted(rows[0]), sorted(rows[1])
