"""The minibatch step, shared by both trainers, and the random generators of training.

The step is a function of (model parameters, optimizer state, batch, rng): the Spark trainer
builds a model from the shipped arrays on each executor and calls :func:`run_steps` for its
``local_steps`` minibatches, exactly as :func:`~sparklstm.training.fit.fit` does for an epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sparklstm.data.batching import bucketed_batches, minibatch_indices
from sparklstm.data.sequence_data import SequenceData
from sparklstm.optim import Optimizer, OptimizerState, Schedule, clip_grad_norm, clip_grad_value
from sparklstm.training.parallel import StepSplitter

__all__ = [
    "StepResult",
    "TrainableModel",
    "train_step",
    "run_steps",
    "make_batches",
    "batches_per_chunk",
    "epoch_plan",
    "resolve_seed",
    "batch_order_rng",
    "step_rng",
    "split_rng",
]


class TrainableModel(Protocol):
    """What the trainers need of a model (:class:`~sparklstm.model.SequenceModel`,
    :class:`~sparklstm.model.seq2seq.Seq2SeqModel`)."""

    params: dict[str, np.ndarray]

    def step_gradients(
        self, batch: Any, rng: np.random.Generator
    ) -> tuple[float, dict[str, np.ndarray], int, float]:
        """``(mean loss, gradients, loss terms, metric sum)`` of a training batch: the metric
        is correct predictions (classification) or summed squared error (regression)."""


@dataclass(frozen=True)
class StepResult:
    """What one minibatch step reports (sums, so workers' results add up)."""

    loss_sum: float  # mean loss x num_targets
    num_targets: int  # examples (head "last") or valid steps (head "all")
    metric_sum: float  # correct predictions (classification) or squared error (regression)
    grad_norm: float  # global gradient norm before clipping


def train_step(
    model: TrainableModel,
    optimizer: Optimizer,
    state: OptimizerState,
    batch: Any,
    rng: np.random.Generator,
    lr: float,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    splitter: StepSplitter | None = None,
) -> StepResult:
    """Loss and gradients (``model.step_gradients``, or split across threads by
    ``splitter``), clipping and one optimizer update of ``model.params`` (in place)."""
    if splitter is None:
        loss, grads, count, metric = model.step_gradients(batch, rng)
    else:
        loss, grads, count, metric = splitter(model, batch, rng)
    if clip_value is not None:
        clip_grad_value(grads, clip_value)
    if clip_norm is not None:
        norm = clip_grad_norm(grads, clip_norm)
    else:
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if not np.isfinite(loss) or not np.isfinite(norm):
        raise FloatingPointError(
            f"non-finite loss ({loss}) or gradient norm ({norm}) at step {state.step}: lower lr, "
            "set clip_norm, or check the data"
        )
    optimizer.step(model.params, grads, state, lr=lr)
    return StepResult(loss * count, count, metric, norm)


# Every random draw of training comes from a generator derived from (seed, purpose, counter,
# partition), never from a stream carried across epochs or rounds. A round (or an epoch) is then
# a pure function of its inputs: a Spark task that is retried, or a job resumed from a
# checkpoint, draws exactly the same numbers. The one-process trainer is the special case of one
# partition (index 0) and one round per epoch, which makes the two trainers bit-identical there.
_PURPOSE_BATCH_ORDER = 0
_PURPOSE_STEPS = 1
_PURPOSE_SPLIT = 2
_PURPOSE_CHUNK_ORDER = 3


def resolve_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one when ``None`` (recorded so that a run can be replayed)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
    return int(seed)


def batch_order_rng(
    seed: int, epoch: int, partition: int = 0, chunk: int = 0
) -> np.random.Generator:
    """Generator of the shuffle/bucketing of one chunk of ``partition``'s data in ``epoch``
    (0-based). The one-process trainer holds its data as one chunk of partition 0."""
    return np.random.default_rng([seed, _PURPOSE_BATCH_ORDER, epoch, partition, chunk])


def step_rng(seed: int, round_index: int, partition: int = 0) -> np.random.Generator:
    """Generator of the training steps (dropout masks) of ``partition`` in round ``round_index``
    (the one-process trainer runs one round per epoch)."""
    return np.random.default_rng([seed, _PURPOSE_STEPS, round_index, partition])


def split_rng(seed: int) -> np.random.Generator:
    """Generator of the train/validation split."""
    return np.random.default_rng([seed, _PURPOSE_SPLIT])


def make_batches(
    data: SequenceData,
    batch_size: int,
    rng: np.random.Generator,
    shuffle: bool = True,
    bucket: bool = True,
) -> list[np.ndarray]:
    """Index arrays of one epoch's minibatches (length-bucketed unless ``bucket=False``)."""
    if bucket:
        return bucketed_batches(data.lengths, batch_size, rng=rng, shuffle=shuffle)
    return minibatch_indices(len(data), batch_size, rng=rng, shuffle=shuffle)


def batches_per_chunk(num_rows: int, batch_size: int) -> int:
    """Minibatches that :func:`make_batches` cuts from ``num_rows`` rows (the last may be short)."""
    return -(-int(num_rows) // int(batch_size))


def epoch_plan(
    chunk_rows: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    partition: int = 0,
    shuffle: bool = True,
) -> list[tuple[int, int]]:
    """The order in which one partition visits its minibatches in ``epoch``: a list of
    ``(chunk, j)``, the j-th batch that :func:`make_batches` cuts from chunk ``chunk``.

    A partition's data is a sequence of chunks (bounded memory; the Spark trainer streams them);
    batches never span chunks. With one chunk the plan is simply ``[(0, 0), (0, 1), ...]``
    (``make_batches`` has already shuffled), so the one-process trainer, which holds its data as
    one chunk, follows exactly the same plan. With several chunks and ``shuffle`` the batches
    of all chunks are interleaved in a random order.
    """
    plan = [
        (chunk, j)
        for chunk, rows in enumerate(chunk_rows)
        for j in range(batches_per_chunk(rows, batch_size))
    ]
    if shuffle and len(chunk_rows) > 1:
        rng = np.random.default_rng([seed, _PURPOSE_CHUNK_ORDER, epoch, partition])
        plan = [plan[i] for i in rng.permutation(len(plan))]
    return plan


def run_steps(
    model: TrainableModel,
    optimizer: Optimizer,
    state: OptimizerState,
    batches: Iterable[Any],
    rng: np.random.Generator,
    schedule: Schedule,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    first_step: int | None = None,
    step_threads: int = 1,
) -> StepResult:
    """Run ``batches`` in order; returns the summed :class:`StepResult` of all steps.

    The learning rate of the i-th batch is ``schedule.lr_at(first_step + i)``; ``first_step``
    defaults to ``state.step``. The Spark trainer passes the global step count here, because a
    worker's optimizer state may be reset each round while the schedule must keep going.
    ``step_threads`` > 1 splits each minibatch across that many threads
    (:class:`~sparklstm.training.parallel.StepSplitter`).
    """
    loss_sum = metric_sum = 0.0
    targets = 0
    max_norm = 0.0
    global_step = state.step if first_step is None else first_step
    with StepSplitter(step_threads) as splitter:
        for batch in batches:
            lr = schedule.lr_at(global_step)
            global_step += 1
            result = train_step(
                model, optimizer, state, batch, rng, lr, clip_norm, clip_value, splitter
            )
            loss_sum += result.loss_sum
            metric_sum += result.metric_sum
            targets += result.num_targets
            max_norm = max(max_norm, result.grad_norm)
            if on_step is not None:
                on_step(result)
    return StepResult(loss_sum, targets, metric_sum, max_norm)
