"""Long streams on Spark: truncated BPTT with carried state, by rounds of parameter averaging.

The input is a table of steps, one row per (stream, position): a stream id column, an integer
position column (each stream's positions consecutive, starting anywhere), the step's features
(a number, an array of numbers, or an integer token id) and its target (a class id, or one or
more numbers). A stream may be far longer than any row could be (a book as characters, years of
a sensor's readings), and rows of steps are what such data are stored as; Spark sorts them and
spills as it needs, so no stream, and no partition's share, has to fit in memory.

How the work is cut (all decided on the driver from one aggregation: each stream's length):

- **Workers.** Streams are dealt to the workers longest first, each to the worker with the
  fewest steps so far (ties: the lower index), so a stream stays on one worker, in order.
- **Groups.** A worker reads ``batch_size`` streams side by side (its longest together), one
  per batch row, each group chunk by chunk of ``forward_length`` steps from a zero state, as
  :func:`sparklstm.training.streams.fit_streams` does in one process. An epoch visits a
  worker's groups in a seeded random order (``shuffle``), each from its start.
- **Blocks.** The steps of one group's chunk (``batch_size`` rows x ``forward_length`` steps)
  are encoded on the executors into one cached block (``MEMORY_AND_DISK``, spilled as needed):
  the rows are sorted by (worker, block, row, position) and each block is cut while they stream
  past, so an executor holds one block at a time.
- **Rounds.** A round is ``local_steps`` chunk updates of every worker from the averaged
  parameters; its blocks (and, with ``backward_length`` above ``forward_length``, the earlier
  blocks the gradient reaches back into) are read from the cache.

The recurrent state at the start of a round is an option (``state_at_round_start``):
``"carry"`` (the default) keeps each worker's state where its last round left it -- the state
it computed with its own parameters before the average -- shipped back and forth with the
round like the parameters; ``"reset"`` starts every round from zero states, like a stream
boundary (windows then never reach behind the round's first chunk). With one worker and one
round per epoch, ``"carry"`` is :func:`fit_streams` bit for bit (tested).

Validation streams are scored after a round (``validate_every``) with carried state, block by
block on the executors: the loss per step, accuracy and bits per step for tokens, or RMSE/MAE.
Checkpoints hold the workers' carried states with the parameters and optimizer state, so a
resumed run gives the bits of an uninterrupted one; a failed task is retried and computes the
same bits.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sparklstm.memory import peak_rss_bytes
from sparklstm.metrics import metrics_from_totals
from sparklstm.model.config import ModelConfig
from sparklstm.model.factory import model_from_config
from sparklstm.model.streams import (
    StreamLengths,
    add_chunk_totals,
    advance,
    put_rows,
    take_rows,
    zero_states,
)
from sparklstm.optim import schedule_from_config
from sparklstm.spark.averaging import apply_round, round_row, starting_driver_state
from sparklstm.spark.metrics import ProgressLines
from sparklstm.spark.partitions import CHUNK_SCHEMA, CachedChunks, bucket_keys, keep_encoded
from sparklstm.spark.rounds import (
    RESULT_SCHEMA,
    WorkerResult,
    _result_row,
    collect_results,
    merge_results,
    start_worker,
    task_cpus,
    worker_result,
)
from sparklstm.spark.run_record import RunIdentity
from sparklstm.training.history import History
from sparklstm.training.options import TrainOptions
from sparklstm.training.step import batch_order_rng, resolve_seed, run_steps, step_rng
from sparklstm.training.streams import Chunk, StreamOptions, StreamStepper, chunk_plan
from sparklstm.validation import check_no_unknown_keys

__all__ = [
    "STATES_AT_ROUND_START",
    "BlockGroup",
    "StreamColumns",
    "deal_streams",
    "STREAM_TRAIN_OPTIONS",
    "evaluate_blocks",
    "evaluate_stream_table",
    "fit_streams_distributed",
    "round_updates",
]

logger = logging.getLogger(__name__)

STATES_AT_ROUND_START = ("carry", "reset")


@dataclass(frozen=True)
class StreamColumns:
    """The columns of a table of steps."""

    stream: str = "stream"
    position: str = "position"
    features: str = "features"
    label: str = "label"


@dataclass(frozen=True)
class GroupPlan:
    """One group of a worker: the id of its first block, and its streams' lengths (rows)."""

    first_block: int
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class StreamRoundSpec:
    """Everything static a stream round's task needs (plain data, shipped with the task)."""

    model_config: dict[str, Any]
    optimizer_config: dict[str, Any]
    schedule_config: dict[str, Any]
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    groups: tuple[tuple[GroupPlan, ...], ...]  # per worker
    forward_length: int
    backward_length: int
    seed: int
    local_steps: int
    rounds_per_epoch: int
    shuffle: bool
    clip_norm: float | None
    clip_value: float | None
    state_policy: str
    state_at_round_start: str


# ------------------------------------------------------------------------------ the plan
def _epoch_updates(spec: StreamRoundSpec, worker: int, epoch: int) -> list[tuple[int, Chunk]]:
    """``(group, chunk)`` of every update of ``worker`` in ``epoch``, in order."""
    groups = spec.groups[worker] if worker < len(spec.groups) else ()
    order = np.arange(len(groups))
    if spec.shuffle:
        order = batch_order_rng(spec.seed, epoch, worker).permutation(len(groups))
    options = StreamOptions(spec.forward_length, spec.backward_length)
    return [(int(g), chunk) for g in order for chunk in chunk_plan(max(groups[g].lengths), options)]


def round_updates(spec: StreamRoundSpec, round_index: int, worker: int) -> list[tuple[int, Chunk]]:
    """The updates ``worker`` makes in round ``round_index``."""
    epoch, position = divmod(round_index, spec.rounds_per_epoch)
    start = position * spec.local_steps
    return _epoch_updates(spec, worker, epoch)[start : start + spec.local_steps]


def _blocks_of(spec: StreamRoundSpec, worker: int, group: int, first_step: int, end: int) -> range:
    """The block ids of ``group`` that hold steps ``[first_step, end)``."""
    base = spec.groups[worker][group].first_block
    k = spec.forward_length
    return range(base + first_step // k, base + (end - 1) // k + 1)


def round_blocks(spec: StreamRoundSpec, round_index: int, worker: int) -> list[int]:
    """Every block ``worker`` reads in the round: its updates' and those their windows (and
    the states they start from) reach back into."""
    needed: set[int] = set()
    k = spec.forward_length
    for group, chunk in round_updates(spec, round_index, worker):
        back = chunk.window_start - chunk.window_start % k  # the kept boundary a window starts at
        needed.update(_blocks_of(spec, worker, group, back, chunk.end))
    return sorted(needed)


def _round_filter(spec: StreamRoundSpec, round_index: int) -> str:
    terms = []
    for worker in range(len(spec.groups)):
        blocks = round_blocks(spec, round_index, worker)
        if blocks:
            terms.append(f"(partition = {worker} AND chunk IN ({', '.join(map(str, blocks))}))")
    return " OR ".join(terms) or "false"


# ------------------------------------------------------------------------ reading blocks
class BlockGroup(StreamLengths):
    """A group of streams read from its cached blocks (those at hand), with the interface of
    :class:`~sparklstm.model.streams.StreamGroup` that the stepper uses."""

    def __init__(self, plan: GroupPlan, blocks: Mapping[int, Any], forward_length: int) -> None:
        self.plan = plan
        self.lengths = np.asarray(plan.lengths, dtype=np.int64)
        self.blocks = blocks
        self.k = forward_length

    def window(
        self, rows: np.ndarray, start: int, end: int, config: ModelConfig
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        lengths = np.minimum(self.lengths[rows], end) - start
        width = int(lengths.max())
        pieces_in, pieces_out = [], []
        for block in range(start // self.k, (start + width - 1) // self.k + 1):
            inputs, _, targets, _ = self.blocks[self.plan.first_block + block]
            first = block * self.k
            lo, hi = max(start, first) - first, min(start + width, first + self.k) - first
            pieces_in.append(_steps(inputs[rows], lo, hi, self.k))
            pieces_out.append(_steps(targets[rows], lo, hi, self.k))
        inputs = np.concatenate(pieces_in, axis=1)
        targets = np.concatenate(pieces_out, axis=1)
        # Steps past a row's end are padding (zeros in the blocks, masked by the lengths).
        return inputs, targets, lengths


def _steps(array: np.ndarray, lo: int, hi: int, k: int) -> np.ndarray:
    """Steps ``[lo, hi)`` of a block's ``(rows, steps, ...)`` array, zero-padded past its last
    stored step (the group's last block may be shorter than ``k``)."""
    have = array[:, lo : min(hi, array.shape[1])]
    if have.shape[1] == hi - lo:
        return have
    padded = np.zeros((array.shape[0], hi - lo, *array.shape[2:]), dtype=array.dtype)
    padded[:, : have.shape[1]] = have
    return padded


# --------------------------------------------------------------------- the round's task
def train_worker(
    worker: int,
    blocks: Mapping[int, Any],
    spec: StreamRoundSpec,
    round_index: int,
    values: Mapping[str, Any],
) -> WorkerResult:
    """One worker's round: its ``local_steps`` chunk updates with carried state."""
    started = time.perf_counter()
    updates = round_updates(spec, round_index, worker)
    if not updates:
        return WorkerResult()
    model, optimizer, state, before = start_worker(spec, values, worker)
    options = StreamOptions(spec.forward_length, spec.backward_length)
    schedule = schedule_from_config(spec.schedule_config)
    rng = step_rng(spec.seed, round_index, worker)
    carried = values.get("carried", {}).get(worker)
    totals = None
    done = 0
    stepper = None
    for group, chunks in itertools.groupby(updates, key=lambda update: update[0]):
        plan_chunks = [chunk for _, chunk in chunks]
        first = plan_chunks[0].start
        source = BlockGroup(spec.groups[worker][group], blocks, spec.forward_length)
        stepper = StreamStepper(model.network, source, options, start=first)
        if first > 0 and spec.state_at_round_start == "carry":
            if carried is None or int(carried["group"]) != group or int(carried["next"]) != first:
                raise RuntimeError(
                    f"worker {worker}, round {round_index + 1}: the carried state is not the "
                    f"one of group {group} at step {first}"
                )
            stepper.restore({k: v for k, v in carried.items() if k not in ("group", "next")})
        stepped = run_steps(
            stepper,
            optimizer,
            state,
            plan_chunks,
            rng,
            schedule,
            spec.clip_norm,
            spec.clip_value,
            first_step=round_index * spec.local_steps + done,
        )
        done += len(plan_chunks)
        totals = stepped if totals is None else _add_steps(totals, stepped)
        last_group, last_end = group, plan_chunks[-1].end
    result = worker_result(spec, model, state, totals, before, worker)
    result.examples = result.steps = done
    result.chunks_read = len(blocks)
    if stepper is not None and last_end < stepper.group.longest:
        result.carried = {
            worker: {
                **stepper.export(),
                "group": np.array(last_group),
                "next": np.array(last_end),
            }
        }
    result.compute_max = result.compute_sum = time.perf_counter() - started
    result.peak_rss_bytes = peak_rss_bytes()
    return result


def _add_steps(a: Any, b: Any) -> Any:
    return dataclasses.replace(
        a,
        loss_sum=a.loss_sum + b.loss_sum,
        num_targets=a.num_targets + b.num_targets,
        metric_sum=a.metric_sum + b.metric_sum,
        grad_norm=max(a.grad_norm, b.grad_norm),
    )


def _worker_blocks(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, dict[int, Any]]]:
    """``(worker, {block id: block})`` of the blocks a task is given (a worker's together)."""
    from sparklstm.spark.partitions import read_indexed_chunks

    for worker, items in itertools.groupby(read_indexed_chunks(batches), key=lambda i: i[0]):
        yield worker, {index: block for _, index, block in items}


def train_task(
    batches: Iterator[pa.RecordBatch], *, spec: StreamRoundSpec, round_index: int, payload: Any
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function of a stream round: one result row per worker."""
    from sparklstm.memory import keep_large_allocations_on_heap
    from sparklstm.spark.blas import limit_blas_threads
    from sparklstm.spark.transport import receive
    from sparklstm.spark.wire import decode_payload, encode_result

    limit_blas_threads(task_cpus())
    keep_large_allocations_on_heap()
    values = decode_payload(receive(payload))
    for worker, blocks in _worker_blocks(batches):
        result = train_worker(worker, blocks, spec, round_index, values)
        yield _result_row(worker, encode_result(result))


def evaluate_task(
    batches: Iterator[pa.RecordBatch],
    *,
    model_config: dict[str, Any],
    groups: tuple[tuple[GroupPlan, ...], ...],
    forward_length: int,
    payload: Any,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function scoring streams with carried state: each worker's blocks in
    order (a group's first block starts its streams from zero states), one block held at a
    time; one row of summed totals (JSON) per worker."""
    import json

    from sparklstm.spark.partitions import read_indexed_chunks
    from sparklstm.spark.transport import receive
    from sparklstm.spark.wire import decode_payload

    values = decode_payload(receive(payload))
    model = model_from_config(model_config)
    model.load_state_dict(values["params"])
    network, config = model.network, model.config
    for worker, items in itertools.groupby(read_indexed_chunks(batches), key=lambda i: i[0]):
        firsts = {plan.first_block: plan for plan in groups[worker]}
        totals: dict[str, float] = {}
        source = states = None
        for _, index, block in items:
            if index in firsts:
                source = BlockGroup(firsts[index], {}, forward_length)
                states = zero_states(network, source.rows)
            source.blocks = {index: block}
            start = (index - source.plan.first_block) * forward_length
            rows = source.running(start)
            inputs, targets, lengths = source.window(rows, start, start + forward_length, config)
            outputs, layout, final = advance(network, inputs, lengths, take_rows(states, rows))
            put_rows(states, rows, final)
            add_chunk_totals(totals, config, outputs, layout.pack(targets))
        yield _result_row(worker, json.dumps(totals).encode("utf-8"))


# ------------------------------------------------------------------------ the driver side
def _step_kind(data_type: Any) -> str | None:
    """``"integer"``, ``"number"`` (floating point), ``"numbers"`` (an array of them) or None."""
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, IntegerType, LongType, ShortType

    if isinstance(data_type, (IntegerType, LongType, ShortType)):
        return "integer"
    if isinstance(data_type, (FloatType, DoubleType)):
        return "number"
    if isinstance(data_type, ArrayType) and _step_kind(data_type.elementType) == "number":
        return "numbers"
    return None


def _profile(df: Any, columns: StreamColumns) -> dict[str, Any]:
    """Each stream's first position and length (checked: consecutive positions), and the
    kinds and sizes of the features and targets; one line per problem."""
    from pyspark.sql import functions as F

    schema = df.schema
    for role, name in dataclasses.asdict(columns).items():
        if name not in schema.fieldNames():
            raise ValueError(f"{role} column {name!r} not found; columns are {schema.fieldNames()}")
    if _step_kind(schema[columns.position].dataType) != "integer":
        raise TypeError(
            f"position column {columns.position!r} must be integer, got "
            f"{schema[columns.position].dataType.simpleString()}"
        )
    kinds = {"integer": "tokens", "number": "univariate", "numbers": "multivariate"}
    feature_kind = kinds.get(_step_kind(schema[columns.features].dataType))
    if feature_kind is None:
        raise TypeError(
            f"features column {columns.features!r} holds "
            f"{schema[columns.features].dataType.simpleString()}; a step's features are a "
            "number, an array of numbers, or an integer token id"
        )
    kinds = {"integer": "class", "number": "value", "numbers": "values"}
    label_kind = kinds.get(_step_kind(schema[columns.label].dataType))
    if label_kind is None:
        raise TypeError(
            f"label column {columns.label!r} holds "
            f"{schema[columns.label].dataType.simpleString()}; a step's target is a class id, "
            "a number or an array of numbers"
        )
    nulls = F.sum(
        F.when(
            F.col(columns.stream).isNull()
            | F.col(columns.position).isNull()
            | F.col(columns.features).isNull()
            | F.col(columns.label).isNull(),
            1,
        ).otherwise(0)
    )
    per_stream = df.groupBy(columns.stream).agg(
        F.count(F.lit(1)).alias("steps"),
        F.min(columns.position).alias("first"),
        F.max(columns.position).alias("last"),
        F.count_distinct(columns.position).alias("distinct"),
    )
    overall = [nulls.alias("nulls")]
    if feature_kind == "tokens":
        overall += [F.min(columns.features).alias("low"), F.max(columns.features).alias("high")]
    if feature_kind == "multivariate":
        size = F.size(columns.features)
        overall += [F.min(size).alias("width_low"), F.max(size).alias("width")]
    if label_kind == "class":
        overall += [
            F.min(columns.label).alias("label_low"),
            F.max(columns.label).alias("label_high"),
        ]
    if label_kind == "values":
        size = F.size(columns.label)
        overall += [F.min(size).alias("label_width_low"), F.max(size).alias("label_width")]
    found = df.agg(*overall).first().asDict()
    if found["nulls"]:
        raise ValueError(
            f"{found['nulls']} rows have a null stream, position, feature or label; drop them"
        )
    streams = sorted(
        ((row[columns.stream], int(row.first), int(row.steps), int(row.last), int(row.distinct))
         for row in per_stream.collect()),
        key=lambda item: item[0],
    )  # fmt: skip
    if not streams:
        raise ValueError("no rows: the table of steps is empty")
    for stream, first, steps, last, distinct in streams:
        if distinct != steps or last - first + 1 != steps:
            raise ValueError(
                f"stream {stream!r}: positions {first}..{last} for {steps} rows; each stream "
                "needs consecutive positions, each once"
            )
    if feature_kind == "tokens" and found["low"] < 0:
        raise ValueError(f"features column {columns.features!r}: token ids must be >= 0")
    if feature_kind == "multivariate" and found["width_low"] != found["width"]:
        raise ValueError(
            f"features column {columns.features!r}: arrays of {found['width_low']} to "
            f"{found['width']} numbers; every step needs the same number"
        )
    if label_kind == "class" and found["label_low"] < 0:
        raise ValueError(f"label column {columns.label!r}: class ids must be >= 0")
    return {
        "streams": [(stream, first, steps) for stream, first, steps, _, _ in streams],
        "feature_kind": feature_kind,
        "label_kind": label_kind,
        **found,
    }


def _model_config(model: Any, profile: Mapping[str, Any]) -> ModelConfig:
    """The model's configuration with the sizes the data decide filled in."""
    if isinstance(model, ModelConfig):
        return model
    if hasattr(model, "config") and isinstance(model.config, ModelConfig):
        return model.config
    options = dict(model or {})
    options.setdefault("head", "all")
    kind, label = profile["feature_kind"], profile["label_kind"]
    if kind == "tokens":
        options.setdefault("vocab_size", int(profile["high"]) + 1)
    else:
        options.setdefault("input_size", 1 if kind == "univariate" else int(profile["width"]))
    if label == "class":
        options.setdefault("task", "classification")
        options.setdefault("output_size", int(profile["label_high"]) + 1)
    else:
        options.setdefault("task", "regression")
        options.setdefault("output_size", 1 if label == "value" else int(profile["label_width"]))
    return ModelConfig.from_dict(options)


def deal_streams(
    streams: Sequence[tuple[Any, int, int]], workers: int, batch_size: int, forward_length: int
) -> tuple[list[tuple[Any, int, int, int, int]], tuple[tuple[GroupPlan, ...], ...]]:
    """Streams to workers and groups: ``(stream, first position, worker, first block of its
    group, row)`` per stream, and each worker's groups. Longest first, each to the worker with
    the fewest steps so far; a worker's streams, longest first, cut into groups of
    ``batch_size`` rows."""
    ranked = sorted(streams, key=lambda item: (-item[2], item[0]))
    loads = [0] * workers
    mine: list[list[tuple[Any, int, int]]] = [[] for _ in range(workers)]
    for stream in ranked:
        worker = min(range(workers), key=lambda w: (loads[w], w))
        loads[worker] += stream[2]
        mine[worker].append(stream)
    placed, plans = [], []
    for worker, owned in enumerate(mine):
        groups, next_block = [], 0
        for start in range(0, len(owned), batch_size):
            members = owned[start : start + batch_size]
            lengths = tuple(steps for _, _, steps in members)
            groups.append(GroupPlan(next_block, lengths))
            for row, (stream, first, _) in enumerate(members):
                placed.append((stream, first, worker, next_block, row))
            next_block += math.ceil(max(lengths) / forward_length)
        plans.append(tuple(groups))
    return placed, tuple(plans)


def encode_blocks(
    df: Any,
    columns: StreamColumns,
    placed: Sequence[tuple[Any, int, int, int, int]],
    plans: tuple[tuple[GroupPlan, ...], ...],
    config: ModelConfig,
    forward_length: int,
) -> CachedChunks:
    """Cut the table of steps into cached blocks (one per group and chunk), on the executors."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    workers = len(plans)
    widths = {(w, g.first_block): len(g.lengths) for w, groups in enumerate(plans) for g in groups}
    stream_type = df.schema[columns.stream].dataType
    mapping = spark.createDataFrame(
        [(s, first, w, block, row, widths[(w, block)]) for s, first, w, block, row in placed],
        schema=f"_s {stream_type.simpleString()}, _first bigint, _worker int, _base int, _row int, "
        "_width int",
    )
    keys = bucket_keys(spark, workers)
    bucket = F.element_at(F.array(*[F.lit(k).cast("bigint") for k in keys]), F.col("_worker") + 1)
    step = F.col(columns.position).cast("bigint") - F.col("_first")
    joined = (
        df.join(F.broadcast(mapping), df[columns.stream] == mapping["_s"])
        .select(
            "_worker",
            (F.col("_base") + F.floor(step / forward_length)).cast("int").alias("_block"),
            "_row",
            "_width",
            (step % forward_length).cast("int").alias("_offset"),
            F.col(columns.features).alias("_x"),
            F.col(columns.label).alias("_y"),
            bucket.alias("_bucket"),
        )
        .repartition(workers, "_bucket")
        .sortWithinPartitions("_worker", "_block", "_row", "_offset")
        .drop("_bucket")
    )
    encoding = _BlockEncoding(
        tokens=config.uses_tokens,
        num_features=None if config.uses_tokens else config.input_size,
        classification=config.task == "classification",
        output_size=config.output_size,
        dtype=config.dtype,
    )
    encoded = joined.mapInArrow(
        functools.partial(encode_block_rows, encoding=encoding), CHUNK_SCHEMA
    )
    return keep_encoded(encoded)


@dataclass(frozen=True)
class _BlockEncoding:
    tokens: bool
    num_features: int | None
    classification: bool
    output_size: int
    dtype: str


def encode_block_rows(
    batches: Iterator[pa.RecordBatch], encoding: _BlockEncoding
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: rows of steps sorted by (worker, block, row, offset) -> one
    encoded block per (worker, block), one block held at a time."""
    pending: list[pa.RecordBatch] = []
    key: tuple[int, int] | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        workers = batch.column("_worker").to_numpy()
        blocks = batch.column("_block").to_numpy()
        cuts = np.flatnonzero((workers[1:] != workers[:-1]) | (blocks[1:] != blocks[:-1])) + 1
        for lo, hi in zip([0, *cuts], [*cuts, batch.num_rows], strict=True):
            here = (int(workers[lo]), int(blocks[lo]))
            if key is not None and here != key:
                yield _block_row(pending, key, encoding)
                pending = []
            key = here
            pending.append(batch.slice(lo, hi - lo))
    if key is not None:
        yield _block_row(pending, key, encoding)


def _block_row(pieces: list[pa.RecordBatch], key: tuple[int, int], encoding: _BlockEncoding):
    table = pa.Table.from_batches(pieces).combine_chunks()
    rows = table.column("_row").to_numpy()
    offsets = table.column("_offset").to_numpy()
    width = int(table.column("_width")[0].as_py())
    steps = int(offsets.max()) + 1
    dtype = np.dtype(encoding.dtype)
    x = table.column("_x").combine_chunks()
    if encoding.tokens:
        inputs = np.zeros((width, steps), dtype=np.int64)
        inputs[rows, offsets] = x.to_numpy()
    else:
        features = encoding.num_features or 1
        inputs = np.zeros((width, steps, features), dtype=dtype)
        values = (
            x.to_numpy().reshape(-1, 1)
            if not pa.types.is_list(x.type)
            else x.flatten().to_numpy().reshape(-1, features)
        )
        inputs[rows, offsets] = values
    y = table.column("_y").combine_chunks()
    if encoding.classification:
        targets = np.zeros((width, steps), dtype=np.int64)
        targets[rows, offsets] = y.to_numpy()
    else:
        targets = np.zeros((width, steps, encoding.output_size), dtype=dtype)
        values = (
            y.to_numpy().reshape(-1, 1)
            if not pa.types.is_list(y.type)
            else y.flatten().to_numpy().reshape(-1, encoding.output_size)
        )
        targets[rows, offsets] = values
    lengths = np.bincount(rows, minlength=width).astype(np.int64)
    return pa.RecordBatch.from_pydict(
        {
            "partition": pa.array([key[0]], pa.int32()),
            "chunk": pa.array([key[1]], pa.int32()),
            "rows": pa.array([width], pa.int32()),
            "inputs": pa.array([np.ascontiguousarray(inputs).tobytes()], pa.binary()),
            "inputs_dtype": [inputs.dtype.str],
            "inputs_shape": pa.array([list(inputs.shape)], pa.list_(pa.int64())),
            "lengths": pa.array([lengths.tobytes()], pa.binary()),
            "targets": pa.array([np.ascontiguousarray(targets).tobytes()], pa.binary()),
            "targets_dtype": [targets.dtype.str],
            "targets_shape": pa.array([list(targets.shape)], pa.list_(pa.int64())),
            "target_lengths": pa.array([None], pa.binary()),
            "rejected": pa.array([[]], pa.list_(pa.int64())),
        }
    )


# Training options that apply to streams (the rest belong to independent sequences).
_STREAM_OPTIONS = (
    "epochs",
    "rounds",
    "local_steps",
    "batch_size",
    "num_partitions",
    "optimizer",
    "lr",
    "optimizer_options",
    "weight_decay",
    "schedule",
    "lr_scaling",
    "warmup_rounds",
    "state_policy",
    "outer_momentum",
    "outer_lr",
    "clip_norm",
    "clip_value",
    "shuffle",
    "seed",
    "validate_every",
    "early_stopping",
    "restore_best",
)


def fit_streams_distributed(
    data: Any,
    model: Any = None,
    config: TrainOptions | Mapping[str, Any] | None = None,
    *,
    columns: StreamColumns = StreamColumns(),
    forward_length: int = 100,
    backward_length: int | None = None,
    state_at_round_start: str = "carry",
    validation: Any = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    metrics_path: str | Path | None = None,
    progress: bool = True,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Any, History]:
    """Train a one-direction, per-step (``head="all"``) model on a table of steps by truncated
    BPTT with carried state, in rounds of parameter averaging (see the module docstring).

    ``model``: a :class:`~sparklstm.model.SequenceModel`, a :class:`ModelConfig` or a dict of
    its options (sizes left out are read from the data). ``config``: the training options of
    :class:`TrainOptions` that apply to streams (``batch_size`` is the streams read side by
    side per worker, ``num_partitions`` the workers, ``local_steps`` the chunk updates per
    round; default: one round per epoch). ``checkpoint_dir``/``resume``, ``metrics_path``,
    ``progress`` and ``on_round`` are as for :func:`~sparklstm.spark.trainer.fit_distributed`;
    a checkpoint also holds the workers' carried states, so a resumed run gives the bits of an
    uninterrupted one. Returns ``(model, History)``."""
    from sparklstm.spark.run_record import check_resumable, starting_checkpoint

    given = dict(config.__dict__ if isinstance(config, TrainOptions) else (config or {}))
    if isinstance(config, TrainOptions):
        given = {k: v for k, v in given.items() if k in _STREAM_OPTIONS}
    check_no_unknown_keys("fit_streams_distributed", given, _STREAM_OPTIONS)
    cfg = TrainOptions.for_scope("spark", given)
    stream_options = StreamOptions(forward_length, backward_length)
    if state_at_round_start not in STATES_AT_ROUND_START:
        raise ValueError(
            f"state_at_round_start must be one of {', '.join(STATES_AT_ROUND_START)}, got "
            f"{state_at_round_start!r}"
        )
    lines = ProgressLines(progress)
    started_run = time.perf_counter()
    checkpoint = starting_checkpoint(
        None if checkpoint_dir is None else Path(checkpoint_dir), resume
    )
    profile = _profile(data, columns)
    model_config = _model_config(model, profile)
    if model_config.head != "all" or model_config.bidirectional:
        raise ValueError(
            "streams need a one-direction model with head='all' (one output per step): a "
            "stream read chunk by chunk cannot see its future"
        )
    seed = resolve_seed(cfg.seed if cfg.seed is not None else model_config.seed)
    start_model = model if hasattr(model, "params") else None
    if start_model is None:
        if model_config.seed is None:
            model_config = dataclasses.replace(model_config, seed=seed)
        start_model = model_from_config(model_config)
    run_id = secrets.token_hex(8)
    layout = {
        "forward_length": stream_options.forward_length,
        "backward_length": stream_options.backward,
        "state_at_round_start": state_at_round_start,
    }
    if checkpoint is not None:
        check_resumable(checkpoint, model_config, cfg)
        saved = {key: checkpoint.progress.get(key) for key in layout}
        if saved != layout:
            raise ValueError(
                f"resume: the stream options {layout} differ from the checkpoint's {saved}"
            )
        seed, run_id = checkpoint.seed, checkpoint.run_id
    spark = data.sparkSession
    streams = profile["streams"]
    if checkpoint is not None:
        workers = int(checkpoint.progress["num_partitions"])
    else:
        workers = max(1, min(cfg.num_partitions or _parallelism(spark), len(streams)))
    placed, plans = deal_streams(streams, workers, cfg.batch_size, forward_length)
    cached = encode_blocks(data, columns, placed, plans, model_config, forward_length)
    val_cached = val_plans = None
    try:
        blocks = sum(len(rows) for rows in cached.chunk_rows)
        lines.write(
            f"streams: {len(streams):,} ({sum(s[2] for s in streams):,} steps) on {workers} "
            f"worker{'s' if workers != 1 else ''}, {sum(len(g) for g in plans)} groups of up to "
            f"{cfg.batch_size}, {blocks:,} blocks of {forward_length} steps cached "
            f"({cached.encoded_bytes / 2**20:.1f} MiB)"
        )
        if validation is not None:
            val_profile = _profile(validation, columns)
            val_placed, val_plans = deal_streams(
                val_profile["streams"], workers, cfg.batch_size, forward_length
            )
            val_cached = encode_blocks(
                validation, columns, val_placed, val_plans, model_config, forward_length
            )
        run = _StreamRun(
            start_model,
            model_config,
            cfg,
            RunIdentity(seed, run_id),
            stream_options,
            state_at_round_start,
            cached,
            plans,
            val_cached,
            val_plans,
            lines,
            started_run,
            checkpoint,
            None if checkpoint_dir is None else Path(checkpoint_dir),
            metrics_path,
            on_round,
            {**layout, "num_partitions": workers},
        )
        return _train(run)
    finally:
        cached.unpersist()
        if val_cached is not None:
            val_cached.unpersist()


def _parallelism(spark: Any) -> int:
    from sparklstm.spark.preparation import worker_count

    found = worker_count(None, spark, 2**62, 1)
    return found or 1


@dataclass(frozen=True)
class _StreamRun:
    """Everything a stream run's round loop works with, decided before the first round."""

    model: Any
    model_config: ModelConfig
    cfg: TrainOptions
    identity: RunIdentity
    stream_options: StreamOptions
    state_at_round_start: str
    cached: CachedChunks
    plans: tuple[tuple[GroupPlan, ...], ...]
    val_cached: CachedChunks | None
    val_plans: tuple[tuple[GroupPlan, ...], ...] | None
    lines: ProgressLines
    started: float
    checkpoint: Any
    checkpoint_dir: Path | None
    metrics_path: str | Path | None
    on_round: Callable[[dict[str, Any]], None] | None
    layout: dict[str, Any]


def _train(run: _StreamRun) -> tuple[Any, History]:
    from sparklstm.spark.metrics import MetricsFile
    from sparklstm.spark.run_record import RoundBook
    from sparklstm.spark.transport import ship
    from sparklstm.spark.wire import decode_result, encode_payload

    cfg, model_config, plans = run.cfg, run.model_config, run.plans
    params = {name: value.copy() for name, value in run.model.params.items()}
    names = tuple(sorted(params))
    updates_per_epoch = max(
        sum(math.ceil(max(g.lengths) / run.stream_options.forward_length) for g in groups)
        for groups in plans
    )
    local_steps = cfg.local_steps or updates_per_epoch
    rounds_per_epoch = math.ceil(updates_per_epoch / local_steps)
    total_rounds = cfg.rounds or cfg.epochs * rounds_per_epoch
    active = sum(1 for groups in plans if groups)
    optimizer = cfg.make_optimizer()
    schedule = cfg.make_schedule(active, local_steps)
    template = optimizer.init_state(params).to_arrays()
    state_names = tuple(sorted(k for k in template if k != "optim/step"))
    spec = StreamRoundSpec(
        model_config=model_config.to_dict(),
        optimizer_config=optimizer.to_config(),
        schedule_config=schedule.to_config(),
        param_names=names,
        state_names=state_names,
        groups=plans,
        forward_length=run.stream_options.forward_length,
        backward_length=run.stream_options.backward,
        seed=run.identity.seed,
        local_steps=local_steps,
        rounds_per_epoch=rounds_per_epoch,
        shuffle=cfg.shuffle,
        clip_norm=cfg.clip_norm,
        clip_value=cfg.clip_value,
        state_policy=cfg.state_policy,
        state_at_round_start=run.state_at_round_start,
    )
    checkpoint = run.checkpoint
    history = History()
    first_round = 0
    driver = starting_driver_state(params, names, template, cfg, checkpoint)
    if checkpoint is not None:
        history.rows = list(checkpoint.progress.get("rows", []))
        first_round = checkpoint.round
        logger.info("resuming the stream run after round %d of %d", first_round, total_rounds)
    book = RoundBook(
        history,
        cfg,
        run.identity,
        model_config,
        checkpoint,
        run.checkpoint_dir,
        MetricsFile(run.metrics_path, history.rows) if run.metrics_path else None,
        run.lines,
        total_rounds,
        run.on_round,
        run.layout,
    )
    history.summary = {
        "workers": len(plans),
        "local_steps": local_steps,
        "rounds_per_epoch": rounds_per_epoch,
        "total_rounds": total_rounds,
        "seed": run.identity.seed,
        **run.layout,
    }
    spark = run.cached.df.sparkSession
    prefix = f"sparklstm-streams-{secrets.token_hex(6)}-round-"
    for round_index in range(first_round, total_rounds):
        started = time.perf_counter()
        carried = driver.carried if run.state_at_round_start == "carry" else {}
        payload = encode_payload(driver.params, driver.state, driver.states, carried)
        shipment = ship(spark, payload, f"{prefix}{round_index}.npz")
        broadcast = time.perf_counter() - started
        with shipment:
            task = functools.partial(
                train_task, spec=spec, round_index=round_index, payload=shipment.parcel
            )
            chunks = run.cached.chunks(_round_filter(spec, round_index))
            results = collect_results(chunks.mapInArrow(task, RESULT_SCHEMA).collect())
        result = functools.reduce(
            merge_results, (decode_result(data) for _, data in results), WorkerResult()
        )
        previous = driver
        driver = dataclasses.replace(
            apply_round(driver, result, names, template, state_names, cfg),
            carried=dict(result.carried),
        )
        row = round_row(
            round_index,
            rounds_per_epoch,
            result,
            previous.params,
            driver.params,
            names,
            model_config,
        )
        wall = time.perf_counter() - started
        row.update(
            lr=schedule.lr_at(round_index * local_steps),
            seconds=wall,
            broadcast_seconds=broadcast,
            compute_seconds=result.compute_max,
            aggregate_seconds=max(0.0, wall - broadcast - result.compute_max),
            # Loss terms are steps here: the line's "seq/s" counts steps.
            sequences_per_second=result.weight / wall if wall > 0 else 0.0,
            chunks_read=result.chunks_read,
        )
        done = round_index + 1
        validated = None
        if run.val_cached is not None and (done % cfg.validate_every == 0 or done == total_rounds):
            validated = evaluate_blocks(
                run.val_cached, run.val_plans, model_config, driver.params, spec
            )
        if book.close(row, validated, driver):
            break
    final_params = driver.params
    if cfg.restore_best and book.stopping.best_params is not None:
        final_params = book.stopping.best_params
    final = model_from_config(model_config)
    final.load_state_dict(final_params)
    history.summary["seconds"] = time.perf_counter() - run.started
    history.summary["rounds_done"] = len(history.rows)
    return final, history


def evaluate_blocks(
    cached: CachedChunks,
    plans: tuple[tuple[GroupPlan, ...], ...],
    model_config: ModelConfig,
    params: Mapping[str, np.ndarray],
    spec: StreamRoundSpec | None = None,
    *,
    block_length: int | None = None,
) -> dict[str, float]:
    """Metrics of ``params`` on cached stream blocks, read with carried state on the
    executors (for tokens also ``bits_per_step``). The blocks' length is ``spec``'s
    ``forward_length``, or ``block_length`` without a ``spec``."""
    import json

    from sparklstm.spark.transport import ship
    from sparklstm.spark.wire import encode_payload

    forward_length = spec.forward_length if spec is not None else block_length
    if forward_length is None:
        raise ValueError("evaluate_blocks needs the blocks' length: give spec or block_length")
    payload = encode_payload(params)
    with ship(cached.df.sparkSession, payload, "sparklstm-streams-evaluate.npz") as shipment:
        task = functools.partial(
            evaluate_task,
            model_config=model_config.to_dict(),
            groups=plans,
            forward_length=forward_length,
            payload=shipment.parcel,
        )
        rows = collect_results(cached.chunks().mapInArrow(task, RESULT_SCHEMA).collect())
    totals: dict[str, float] = {}
    for _, data in rows:
        for key, value in json.loads(data.decode("utf-8")).items():
            totals[key] = totals.get(key, 0.0) + value
    metrics = metrics_from_totals(model_config, totals)
    if model_config.task == "classification":
        metrics["bits_per_step"] = metrics["loss"] / math.log(2.0)
    return metrics


#: The training options :func:`fit_streams_distributed` takes (the others, such as ``bucket``
#: or ``chunk_rows``, belong to independent sequences).
STREAM_TRAIN_OPTIONS = _STREAM_OPTIONS


def evaluate_stream_table(
    data: Any,
    model: Any,
    *,
    columns: StreamColumns = StreamColumns(),
    chunk_length: int = 1000,
    batch_size: int = 32,
    num_partitions: int | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` (a :class:`~sparklstm.model.SequenceModel` with ``head="all"``)
    on a table of steps (the columns of :func:`fit_streams_distributed`), every stream read
    chunk by chunk with carried state on the executors: what
    :meth:`~sparklstm.model.SequenceModel.evaluate_streams` gives on the same streams (up to
    float rounding): ``loss`` (mean per step) and ``accuracy`` -- plus ``bits_per_step`` for
    class targets -- or ``loss``/``rmse``/``mae``; and ``steps``, ``streams``.

    The streams are dealt to ``num_partitions`` workers (default: the session's parallelism)
    as for training, read ``batch_size`` side by side in chunks of ``chunk_length`` steps
    (which bound the memory, not the result). The table is checked against the model first
    (feature kind and size, token ids in its vocabulary, class ids among its outputs), one
    line per problem."""
    from sparklstm.validation import check_int

    check_int("chunk_length", chunk_length, 1)
    check_int("batch_size", batch_size, 1)
    if num_partitions is not None:
        check_int("num_partitions", num_partitions, 1)
    config = model.config
    if not isinstance(config, ModelConfig) or config.head != "all" or config.bidirectional:
        raise ValueError(
            "streams are scored by a one-direction model with head='all' (one output per "
            "step); this model is not one"
        )
    profile = _profile(data, columns)
    _check_table_fits(config, profile, columns)
    streams = profile["streams"]
    workers = max(1, min(num_partitions or _parallelism(data.sparkSession), len(streams)))
    placed, plans = deal_streams(streams, workers, batch_size, chunk_length)
    cached = encode_blocks(data, columns, placed, plans, config, chunk_length)
    try:
        metrics = evaluate_blocks(cached, plans, config, model.params, block_length=chunk_length)
    finally:
        cached.unpersist()
    metrics["steps"] = sum(steps for _, _, steps in streams)
    metrics["streams"] = len(streams)
    return metrics


def _check_table_fits(config: ModelConfig, profile: Mapping[str, Any], columns: StreamColumns):
    """The table of steps holds what the model reads and writes; one line naming the
    column otherwise."""
    kind, label = profile["feature_kind"], profile["label_kind"]
    features = f"features column {columns.features!r}"
    if config.uses_tokens != (kind == "tokens"):
        holds = "token ids" if kind == "tokens" else "numbers"
        takes = "token ids" if config.uses_tokens else f"{config.input_size} number(s) a step"
        raise ValueError(f"{features} holds {holds}; the model takes {takes}")
    if kind == "tokens" and profile["high"] >= config.vocab_size:
        raise ValueError(
            f"{features}: token id {profile['high']} is outside the model's vocabulary of "
            f"{config.vocab_size}"
        )
    if kind != "tokens":
        width = 1 if kind == "univariate" else int(profile["width"])
        if width != config.input_size:
            raise ValueError(
                f"{features}: {width} number(s) a step; the model takes {config.input_size}"
            )
    target = f"label column {columns.label!r}"
    if (label == "class") != (config.task == "classification"):
        holds = "class ids" if label == "class" else "numbers"
        raise ValueError(f"{target} holds {holds}; the model is a {config.task} model")
    if label == "class" and profile["label_high"] >= config.output_size:
        raise ValueError(
            f"{target}: class id {profile['label_high']} is outside the model's "
            f"{config.output_size} classes"
        )
    if label != "class":
        width = 1 if label == "value" else int(profile["label_width"])
        if width != config.output_size:
            raise ValueError(
                f"{target}: {width} number(s) a step; the model writes {config.output_size}"
            )
