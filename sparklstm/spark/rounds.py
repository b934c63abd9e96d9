"""What runs on the executors in one round, and how the workers' results add up.

A round is a pure function of (parameters and optimizer state broadcast by the driver, round
number, the partition's cached chunks): the batches come from
:func:`sparklstm.training.step.epoch_plan` and every random draw from generators derived
from (seed, round or epoch, partition). A task that Spark retries, or a job resumed from a
checkpoint, therefore computes exactly the same result.

Averaging weights each worker by the number of loss terms it trained on (examples for
head "last", valid steps for head "all"); a partition that trained nothing this round has
weight 0 and changes nothing.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparklstm.memory import keep_large_allocations_on_heap, peak_rss_bytes
from sparklstm.model.factory import model_from_config
from sparklstm.optim import OptimizerState, optimizer_from_config, schedule_from_config
from sparklstm.spark.blas import limit_blas_threads
from sparklstm.spark.partitions import chunk_data
from sparklstm.training.step import (
    batch_order_rng,
    epoch_plan,
    make_batches,
    run_steps,
    step_rng,
)

__all__ = [
    "RoundSpec",
    "WeightedMean",
    "WorkerResult",
    "train_partition",
    "evaluate_partition",
    "merge_results",
    "train_task",
    "evaluate_task",
    "collect_results",
    "RESULT_SCHEMA",
    "flatten",
    "unflatten",
]


# ------------------------------------------------------------------------------ flat vectors
def flatten(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The arrays ``names`` (in that order) raveled into one vector (dtype of the first)."""
    return np.concatenate([np.ravel(arrays[name]) for name in names])


def unflatten(
    vector: np.ndarray, template: Mapping[str, np.ndarray], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Inverse of :func:`flatten`, with the shapes and dtypes of ``template``."""
    out, offset = {}, 0
    for name in names:
        like = template[name]
        out[name] = vector[offset : offset + like.size].reshape(like.shape).astype(like.dtype)
        offset += like.size
    if offset != vector.size:
        raise ValueError(f"vector has {vector.size} values; the template needs {offset}")
    return out


@dataclass
class WeightedMean:
    """A weighted mean built by merging. One contributor keeps its vector as it is (``raw``),
    so that averaging a single worker returns its values bit for bit; two or more keep a
    float64 weighted sum."""

    weight: float = 0.0
    raw: np.ndarray | None = None
    total: np.ndarray | None = None

    @classmethod
    def of(cls, vector: np.ndarray, weight: float) -> WeightedMean:
        return cls(float(weight), vector, None) if weight > 0 else cls()

    def _as_total(self) -> np.ndarray:
        if self.raw is not None:
            return self.raw.astype(np.float64) * self.weight
        assert self.total is not None
        return self.total

    def merge(self, other: WeightedMean) -> WeightedMean:
        if other.weight == 0:
            return self
        if self.weight == 0:
            return other
        return WeightedMean(self.weight + other.weight, None, self._as_total() + other._as_total())

    def mean(self) -> np.ndarray | None:
        if self.weight == 0:
            return None
        if self.raw is not None:
            return self.raw
        assert self.total is not None
        return self.total / self.weight


# ------------------------------------------------------------------------------- the results
@dataclass
class WorkerResult:
    """One worker's round, or the merge of several (every field adds up)."""

    contributors: int = 0
    examples: int = 0  # sequences trained on
    weight: float = 0.0  # loss terms (examples or valid steps)
    steps: int = 0
    loss_sum: float = 0.0
    metric_sum: float = 0.0
    max_grad_norm: float = 0.0
    params: WeightedMean = field(default_factory=WeightedMean)
    state: WeightedMean = field(default_factory=WeightedMean)
    state_step_sum: float = 0.0
    states: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # policy "local"
    # Streams: each worker's recurrent states at the end of its round (sparklstm.spark.streams).
    carried: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    sq_delta_sum: float = 0.0  # sum of weight * ||theta_p - theta_round||^2
    compute_max: float = 0.0
    compute_sum: float = 0.0
    chunks_read: int = 0  # cached chunks the tasks read
    peak_rss_bytes: int = 0  # the largest peak resident memory of a worker's Python process


def merge_results(a: WorkerResult, b: WorkerResult) -> WorkerResult:
    """Associative, commutative merge (``treeAggregate``'s seqOp and combOp)."""
    return WorkerResult(
        contributors=a.contributors + b.contributors,
        examples=a.examples + b.examples,
        weight=a.weight + b.weight,
        steps=a.steps + b.steps,
        loss_sum=a.loss_sum + b.loss_sum,
        metric_sum=a.metric_sum + b.metric_sum,
        max_grad_norm=max(a.max_grad_norm, b.max_grad_norm),
        params=a.params.merge(b.params),
        state=a.state.merge(b.state),
        state_step_sum=a.state_step_sum + b.state_step_sum,
        states={**a.states, **b.states},
        carried={**a.carried, **b.carried},
        sq_delta_sum=a.sq_delta_sum + b.sq_delta_sum,
        compute_max=max(a.compute_max, b.compute_max),
        compute_sum=a.compute_sum + b.compute_sum,
        peak_rss_bytes=max(a.peak_rss_bytes, b.peak_rss_bytes),
        chunks_read=a.chunks_read + b.chunks_read,
    )


# ------------------------------------------------------------------------------- the round
@dataclass(frozen=True)
class RoundSpec:
    """Everything static a training task needs (plain data, shipped with the task)."""

    model_config: dict[str, Any]
    optimizer_config: dict[str, Any]
    schedule_config: dict[str, Any]
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    chunk_rows: tuple[tuple[int, ...], ...]  # per partition, per chunk
    batch_size: int
    seed: int
    local_steps: int
    rounds_per_epoch: int
    shuffle: bool
    bucket: bool
    clip_norm: float | None
    clip_value: float | None
    state_policy: str
    task_hook: Callable[[int, int], None] | None = None
    step_threads: int | None = None  # None: the cores the task holds


def task_cpus() -> int:
    """Cores the running Spark task holds (``spark.task.cpus``); 1 outside a task."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return int(context.cpus()) if context is not None else 1
    except Exception:  # pragma: no cover - outside a Spark task
        return 1


def round_chunks(spec: RoundSpec, round_index: int, partition: int) -> list[int]:
    """The chunks of ``partition`` that hold this round's minibatches (sorted): the driver
    reads only these from the cache (see :func:`round_filter`)."""
    return sorted({chunk for chunk, _ in _round_plan(spec, round_index, partition)})


def _round_plan(spec: RoundSpec, round_index: int, partition: int) -> list[tuple[int, int]]:
    """``(chunk, j)`` of this round's minibatches, in the order they are trained on."""
    epoch, position = divmod(round_index, spec.rounds_per_epoch)
    rows = spec.chunk_rows[partition] if partition < len(spec.chunk_rows) else ()
    plan = epoch_plan(rows, spec.batch_size, spec.seed, epoch, partition, spec.shuffle)
    start = position * spec.local_steps
    return plan[start : start + spec.local_steps]


def round_filter(spec: RoundSpec, round_index: int) -> str:
    """A SQL condition on the cached chunks' ``partition`` and ``chunk`` columns that keeps
    only the chunks this round trains on. Spark prunes the cached column batches by their
    statistics, so a round reads (and sends to Python) what it needs, not the whole
    partition; the filter keeps the partitioning, so partition ``p`` still trains on its own
    chunks."""
    terms = []
    for partition in range(len(spec.chunk_rows)):
        chunks = round_chunks(spec, round_index, partition)
        if chunks:
            listed = ", ".join(str(c) for c in chunks)
            terms.append(f"(partition = {partition} AND chunk IN ({listed}))")
    return " OR ".join(terms) or "false"


def _round_batches(
    spec: RoundSpec, round_index: int, partition: int, chunks: Iterator[tuple[int, Any]]
) -> tuple[list[Any], int]:
    """This round's minibatches of ``partition`` and the number of chunks read, from the
    ``(index, chunk)`` pairs given (at least the round's chunks, in any order)."""
    epoch = round_index // spec.rounds_per_epoch
    wanted = _round_plan(spec, round_index, partition)
    by_chunk: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for order, (chunk, j) in enumerate(wanted):
        by_chunk[chunk].append((order, j))
    batches: dict[int, Any] = {}  # SequenceData or PairData
    read = 0
    # Every chunk given is read even when the batches are found early: a Python worker whose
    # input is left unread cannot be reused, and starting a new one costs far more.
    for chunk_index, chunk in chunks:
        read += 1
        if chunk_index not in by_chunk:
            continue
        data = chunk_data(chunk)
        rng = batch_order_rng(spec.seed, epoch, partition, chunk_index)
        cut = make_batches(data, spec.batch_size, rng, spec.shuffle, spec.bucket)
        for order, j in by_chunk.pop(chunk_index):
            batches[order] = data.take(cut[j])
    if by_chunk:
        raise RuntimeError(
            f"partition {partition} lacks chunks {sorted(by_chunk)} recorded when it was "
            "cached; the cached data changed between rounds (non-deterministic input?)"
        )
    return [batches[order] for order in range(len(wanted))], read


def train_partition(
    partition: int,
    chunks: Iterator[tuple[int, Any]],
    *,
    spec: RoundSpec,
    round_index: int,
    payload: Any,
) -> Iterator[WorkerResult]:
    """One partition's training round: ``local_steps`` minibatch updates from the round's
    parameters; yields one :class:`WorkerResult`. ``chunks`` are ``(index, chunk)`` pairs of
    the partition's cached chunks (at least those of :func:`round_chunks`); ``payload`` is
    :func:`sparklstm.spark.wire.decode_payload`'s dict."""
    if spec.task_hook is not None:
        spec.task_hook(round_index, partition)
    limit_blas_threads(task_cpus())
    keep_large_allocations_on_heap()
    started = time.perf_counter()
    batches, chunks_read = _round_batches(spec, round_index, partition, chunks)
    if not batches:
        yield WorkerResult(chunks_read=chunks_read)
        return
    model, optimizer, state, before = start_worker(spec, payload, partition)
    stepped = run_steps(
        model,
        optimizer,
        state,
        batches,
        step_rng(spec.seed, round_index, partition),
        schedule_from_config(spec.schedule_config),
        spec.clip_norm,
        spec.clip_value,
        first_step=round_index * spec.local_steps,
        step_threads=spec.step_threads or task_cpus(),
    )
    result = worker_result(spec, model, state, stepped, before, partition)
    result.examples = sum(len(batch) for batch in batches)
    result.steps = len(batches)
    result.chunks_read = chunks_read
    result.compute_max = result.compute_sum = time.perf_counter() - started
    result.peak_rss_bytes = peak_rss_bytes()
    yield result


def start_worker(spec: Any, values: Mapping[str, Any], partition: int) -> tuple[Any, Any, Any, Any]:
    """``(model, optimizer, optimizer state, parameters as one float64 vector)`` a worker
    starts its round from: the round's parameters and the optimizer state its policy says
    (averaged, the partition's own, or fresh)."""
    model = model_from_config(spec.model_config)
    model.load_state_dict(values["params"])
    before = flatten(model.params, spec.param_names).astype(np.float64)
    optimizer = optimizer_from_config(spec.optimizer_config)
    if spec.state_policy == "average" and values.get("state") is not None:
        state = OptimizerState.from_arrays(values["state"])
    elif spec.state_policy == "local" and partition in (values.get("states") or {}):
        state = OptimizerState.from_arrays(values["states"][partition])
    else:
        state = optimizer.init_state(model.params)
    return model, optimizer, state, before


def worker_result(
    spec: Any, model: Any, state: Any, stepped: Any, before: np.ndarray, partition: int
) -> WorkerResult:
    """A worker's :class:`WorkerResult` after its steps: its parameters and optimizer state
    weighted by its loss terms, its sums, and its drift from the round's parameters."""
    weight = float(stepped.num_targets)
    after = flatten(model.params, spec.param_names)
    delta = after.astype(np.float64) - before
    result = WorkerResult(
        contributors=1,
        weight=weight,
        loss_sum=stepped.loss_sum,
        metric_sum=stepped.metric_sum,
        max_grad_norm=stepped.grad_norm,
        params=WeightedMean.of(after, weight),
        sq_delta_sum=weight * float(delta @ delta),
    )
    arrays = state.to_arrays()
    if spec.state_policy == "average":
        result.state = WeightedMean.of(_state_vector(arrays, spec.state_names), weight)
        result.state_step_sum = weight * state.step
    elif spec.state_policy == "local":
        result.states = {partition: arrays}
    return result


def _state_vector(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    if not names:
        return np.zeros(0)
    return flatten(arrays, names)


def evaluate_partition(
    partition: int,
    chunks: Iterator[Any],
    *,
    model_config: dict[str, Any],
    payload: Any,
    batch_size: int,
) -> Iterator[dict[str, float]]:
    """Summed evaluation totals of one partition (see ``SequenceModel.evaluation_totals``);
    ``payload`` holds ``{"params": ...}``."""
    limit_blas_threads(task_cpus())
    keep_large_allocations_on_heap()
    model = model_from_config(model_config)
    model.load_state_dict(payload["params"])
    totals: dict[str, float] = defaultdict(float)
    for chunk in chunks:
        part = model.evaluation_totals(chunk_data(chunk), batch_size)
        for key, value in part.items():
            totals[key] += value
    yield dict(totals)


def add_totals(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    keys = set(a) | set(b)
    return {key: a.get(key, 0.0) + b.get(key, 0.0) for key in keys}


# --------------------------------------------------------------- the mapInArrow task functions
# A round is one ``mapInArrow`` over the cached chunks (sparklstm.spark.partitions): the
# parameters travel as bytes inside the task function, each partition answers with one Arrow
# row (its index and its result as bytes), and the driver merges the rows in partition order.
RESULT_SCHEMA = "partition int, result binary"


def _task_partition() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return int(context.partitionId()) if context is not None else 0


def _result_row(partition: int, data: bytes) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_pydict(
        {"partition": pa.array([partition], pa.int32()), "result": pa.array([data], pa.binary())}
    )


def train_task(
    batches: Iterator[Any],
    *,
    spec: RoundSpec,
    round_index: int,
    payload: Any,
    file_prefix: str = "",
) -> Iterator[Any]:
    """``mapInArrow`` function of a training round (see :func:`train_partition`).

    The chunks say which partition (worker) they belong to; a task trains each partition whose
    chunks it is given, which must arrive together and in chunk order (as they do from the
    persisted chunks, one partition per task). A task given no chunks answers nothing.

    ``payload`` is a :class:`~sparklstm.spark.transport.Parcel` of
    :func:`~sparklstm.spark.wire.encode_payload`'s bytes; when it is a session file, this
    executor's copies of the run's earlier rounds (named ``file_prefix<round>.npz``) are
    deleted."""
    from sparklstm.spark.partitions import read_indexed_chunks
    from sparklstm.spark.transport import forget_earlier_rounds, receive
    from sparklstm.spark.wire import decode_payload, encode_result

    values = decode_payload(receive(payload))
    forget_earlier_rounds(payload, file_prefix, round_index)
    by_partition = itertools.groupby(read_indexed_chunks(batches), key=lambda item: item[0])
    for partition, items in by_partition:
        chunks = ((index, chunk) for _, index, chunk in items)
        for result in train_partition(
            partition, chunks, spec=spec, round_index=round_index, payload=values
        ):
            yield _result_row(partition, encode_result(result))


def evaluate_task(
    batches: Iterator[Any], *, model_config: dict[str, Any], payload: Any, batch_size: int
) -> Iterator[Any]:
    """``mapInArrow`` function of an evaluation (see :func:`evaluate_partition`); the result
    is the totals as JSON bytes."""
    import json

    from sparklstm.spark.partitions import read_chunks
    from sparklstm.spark.transport import receive
    from sparklstm.spark.wire import decode_payload

    partition = _task_partition()
    values = decode_payload(receive(payload))
    for totals in evaluate_partition(
        partition,
        read_chunks(batches),
        model_config=model_config,
        payload=values,
        batch_size=batch_size,
    ):
        yield _result_row(partition, json.dumps(totals).encode("utf-8"))


def collect_results(rows: Sequence[Any]) -> list[tuple[int, bytes]]:
    """``(partition, result bytes)`` of collected result rows, in partition order."""
    return sorted((int(row.partition), bytes(row.result)) for row in rows)
