"""One-process training: the minibatch step (shared with the Spark trainer) and ``fit``.

The step is a function of (model parameters, optimizer state, batch, rng): the Spark trainer
builds a model from broadcast arrays on each executor and calls :func:`run_steps` for its
``local_steps`` minibatches, exactly as :func:`fit` does here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sparklstm.data.batching import bucketed_batches, minibatch_indices, train_validation_split
from sparklstm.dataset import SequenceData
from sparklstm.metrics import training_metrics
from sparklstm.model import SequenceModel, compute_loss
from sparklstm.optim import (
    ConstantLR,
    Optimizer,
    OptimizerState,
    Schedule,
    clip_grad_norm,
    clip_grad_value,
)
from sparklstm.progress import Progress, interactive_stderr
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import TrainOptions
from sparklstm.validation import check_no_unknown_keys

__all__ = [
    "StepResult",
    "History",
    "FitState",
    "train_step",
    "run_steps",
    "fit",
    "make_batches",
    "resolve_seed",
    "batch_order_rng",
    "step_rng",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    """What one minibatch step reports (sums, so workers' results add up)."""

    loss_sum: float  # mean loss x num_targets
    num_targets: int  # examples (head "last") or valid steps (head "all")
    metric_sum: float  # correct predictions (classification) or squared error (regression)
    grad_norm: float  # global gradient norm before clipping


def train_step(
    model: SequenceModel,
    optimizer: Optimizer,
    state: OptimizerState,
    batch: SequenceData,
    rng: np.random.Generator,
    lr: float,
    clip_norm: float | None = None,
    clip_value: float | None = None,
) -> StepResult:
    """Forward, BPTT, clipping and one optimizer update of ``model.params`` (in place)."""
    cfg = model.config
    layout = batch.layout()
    outputs, cache = model.network.forward(batch.inputs, layout, training=True, rng=rng)
    loss, d_outputs = compute_loss(cfg, outputs, batch, layout)
    grads = model.network.backward(d_outputs, cache)
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
    targets = batch.targets if cfg.head == "last" else layout.pack(batch.targets)
    if cfg.task == "classification":
        metric = float((outputs.argmax(axis=1) == targets).sum())
    else:
        metric = float(np.square(outputs.astype(np.float64) - targets).sum())
    n = outputs.shape[0]
    return StepResult(loss * n, n, metric, norm)


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
    model: SequenceModel,
    optimizer: Optimizer,
    state: OptimizerState,
    batches: Iterable[SequenceData],
    rng: np.random.Generator,
    schedule: Schedule,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    first_step: int | None = None,
) -> StepResult:
    """Run ``batches`` in order; returns the summed :class:`StepResult` of all steps.

    The learning rate of the i-th batch is ``schedule.lr_at(first_step + i)``; ``first_step``
    defaults to ``state.step``. The Spark trainer passes the global step count here, because a
    worker's optimizer state may be reset each round while the schedule must keep going.
    """
    loss_sum = metric_sum = 0.0
    targets = 0
    max_norm = 0.0
    global_step = state.step if first_step is None else first_step
    for batch in batches:
        lr = schedule.lr_at(global_step)
        global_step += 1
        result = train_step(model, optimizer, state, batch, rng, lr, clip_norm, clip_value)
        loss_sum += result.loss_sum
        metric_sum += result.metric_sum
        targets += result.num_targets
        max_norm = max(max_norm, result.grad_norm)
        if on_step is not None:
            on_step(result)
    return StepResult(loss_sum, targets, metric_sum, max_norm)


@dataclass(frozen=True)
class FitState:
    """Where the last :func:`fit` on a model stopped; the next ``fit`` call continues from it.

    :func:`fit` sets it as ``model.fit_state`` (before the first epoch, and again after each
    epoch); a model that was never fit has none. Models made by :meth:`SequenceModel.load` start
    without one (model files hold no optimizer state), and
    :meth:`~sparklstm.SequenceModel.load_state_dict` leaves it as it is: a later ``fit`` then
    continues with the kept optimizer state (its moments were gathered on the old parameters)
    unless it is given ``initial_epoch``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer of the last call (its kind decides whether the next call may keep
        ``optimizer_state``).
    optimizer_state : OptimizerState
        The state the steps updated in place; ``optimizer_state.step`` also drives the schedule.
    epochs_done : int
        Epochs completed so far in this run, counting earlier calls (and ``initial_epoch``).
    seed : int
        The resolved training seed, reused by a later call that gives none.
    """

    optimizer: Optimizer
    optimizer_state: OptimizerState
    epochs_done: int
    seed: int


def _keeps_state(previous: Optimizer, optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` can go on with the state ``previous`` left: same kind (class) and
    the same state slots (e.g. SGD with and without momentum differ). Other hyper-parameters
    (``lr``, betas, weight decay) may change between calls."""
    return type(previous) is type(optimizer) and previous.slot_names() == optimizer.slot_names()


def _as_data(model: SequenceModel, value: Any, name: str) -> SequenceData:
    if isinstance(value, SequenceData):
        return value
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise TypeError(f"{name} must be a tuple (X, y) or (X, y, lengths)")
    x, y, *rest = value
    return prepare_data_named(model, x, y, rest[0] if rest else None, name)


def prepare_data_named(model, x, y, lengths, name: str) -> SequenceData:
    try:
        return model.prepare(x, y, lengths)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def _starting_point(
    model: SequenceModel,
    previous: FitState | None,
    optimizer: Optimizer,
    initial_epoch: int | None,
) -> tuple[int, OptimizerState]:
    """The epochs already done and the optimizer state that this ``fit`` call starts from."""
    if initial_epoch is not None:
        if previous is not None:
            logger.info(
                "fit: new run from epoch %d with a fresh %s state (initial_epoch=%d given)",
                initial_epoch + 1,
                optimizer.name,
                initial_epoch,
            )
        return initial_epoch, optimizer.init_state(model.params)
    if previous is None:
        return 0, optimizer.init_state(model.params)
    start = previous.epochs_done
    if _keeps_state(previous.optimizer, optimizer):
        logger.info(
            "fit: continuing from epoch %d with the %s state of the last fit (%d updates)",
            start + 1,
            optimizer.name,
            previous.optimizer_state.step,
        )
        return start, previous.optimizer_state
    logger.info(
        "fit: a fresh optimizer state (the schedule starts again): %s cannot go on with the "
        "state of the last fit's %s; epochs continue from %d",
        optimizer.to_config(),
        previous.optimizer.to_config(),
        start + 1,
    )
    return start, optimizer.init_state(model.params)


def fit(
    model: SequenceModel,
    x: Any,
    y: Any,
    lengths: Any = None,
    *,
    validation: Any = None,
    progress: bool | None = None,
    **options: Any,
) -> History:
    """Train ``model`` on one machine.

    Calling ``fit`` again on the same model continues training, as in Keras: two calls with
    ``epochs=1`` give exactly (bit for bit) what one call with ``epochs=2`` gives, with the same
    other options. The later call keeps the optimizer state (Adam's moments, momentum buffers,
    the step count that drives ``schedule``), numbers its epochs on from the earlier ones, draws
    the data order and dropout masks of those later epochs, and reuses the earlier seed when it
    is given none. What carries over is held in ``model.fit_state`` (a :class:`FitState`).
    Each call still builds its optimizer from its own options (default Adam): the state is kept
    when the optimizer is of the same kind with the same state slots, so a changed ``lr`` simply
    applies; another kind (or SGD gaining momentum, ...) starts from a fresh state, logged at
    INFO, while the epochs keep counting. ``initial_epoch`` starts a new run instead.

    Parameters
    ----------
    x, y, lengths : training data (see :meth:`SequenceModel.prepare`).
    validation : ``(X, y)`` or ``(X, y, lengths)`` held-out data, optional.
    validation_split : fraction of the training data held out instead (stratified for
        classification with head "last"); ignored when ``validation`` is given. The split is
        drawn from the seed, so later calls (which reuse the seed) hold out the same rows
        (a later call given another seed holds out others).
    epochs : int, default 10. The number of epochs this call runs.
    initial_epoch : int >= 0 or None (default). None continues where the last ``fit`` on this
        model stopped (0 for a model never fit). An int starts a new run after that many
        epochs: a fresh optimizer state (so the schedule starts again), epochs numbered from
        ``initial_epoch + 1`` and the data order and dropout masks of those epochs;
        ``initial_epoch=0`` trains the current parameters as a model never fit would.
    batch_size : int, default 32.
    optimizer : ``"sgd" | "rmsprop" | "adadelta" | "adam"`` or an
        :class:`~sparklstm.optim.Optimizer` (then ``lr``, ``optimizer_options`` and
        ``weight_decay`` must not be given: set them on the instance).
    lr : learning rate (default: the optimizer's own).
    optimizer_options : dict of extra optimizer arguments (``momentum``, ``nesterov``, ...).
    schedule : a schedule from :mod:`sparklstm.optim` or its config dict (default constant).
        Its step is the optimizer state's update count, which continues across calls: give
        the schedule of the whole run (e.g. ``total_steps`` of all calls) on every call.
    clip_norm, clip_value : gradient clipping by global norm / by value.
    weight_decay : L2 penalty added to the gradients.
    shuffle, bucket : shuffle each epoch; group similar lengths into batches (less padding).
    seed : seed of all training randomness. Default (or None) on a later call: the seed of
        the last call (also when that one was drawn at random); on a model never fit: the
        model's seed, or a random one when that is None.
    early_stopping : patience in epochs on the validation loss (training loss without
        validation data), or None. Counted within this call: a later call starts with no
        best loss and a patience of its own.
    restore_best : with early stopping, end with the parameters of the best epoch. Only the
        parameters go back: the optimizer state and the epoch count stay where training
        stopped, so a later call continues from there with the best parameters.
    progress : show a progress bar (stderr). Default: only when stderr is a terminal or the
        code runs in a Jupyter kernel, so logs redirected to a file get no bar lines.

    Returns
    -------
    History
        One row per epoch of this call; ``epoch`` (and ``best_epoch``) count the run's epochs,
        so a later call's rows go on from the earlier call's.
    """
    given_optimizer = options.get("optimizer")
    instance = given_optimizer if isinstance(given_optimizer, Optimizer) else None
    if instance is not None:
        ignored = [
            name for name in ("lr", "optimizer_options", "weight_decay") if options.get(name)
        ]
        if ignored:
            raise ValueError(
                f"{', '.join(ignored)}: set these on the Optimizer instance itself; they apply "
                "only to an optimizer given by name"
            )
        options = {k: v for k, v in options.items() if k != "optimizer"}
    check_no_unknown_keys("fit", options, TrainOptions.names("local"))
    # Every option is checked by its one definition (sparklstm.training.options).
    opts = TrainOptions.for_scope("local", options)
    previous = getattr(model, "fit_state", None)
    if previous is not None and opts.seed is None:
        seed = previous.seed
    else:
        seed = resolve_seed(model.config.seed if opts.seed is None else opts.seed)
    data = prepare_data_named(model, x, y, lengths, "training data")
    if validation is not None:
        validation = _as_data(model, validation, "validation")
    elif opts.validation_split > 0:
        stratify = (
            data.targets
            if model.config.task == "classification" and model.config.head == "last"
            else None
        )
        train_idx, val_idx = train_validation_split(
            len(data), opts.validation_split, split_rng(seed), stratify=stratify
        )
        data, validation = data.take(train_idx), data.take(val_idx)

    optimizer = instance if instance is not None else opts.make_optimizer()
    schedule = opts.make_schedule() if opts.schedule is not None else ConstantLR(optimizer.lr)
    start, state = _starting_point(model, previous, optimizer, opts.initial_epoch)
    model.fit_state = FitState(optimizer, state, start, seed)

    history = History(summary={"seed": seed})
    stopping = EarlyStopping(opts.early_stopping)
    show = interactive_stderr() if progress is None else bool(progress)
    last = start + opts.epochs
    for epoch in range(start + 1, last + 1):
        started = time.perf_counter()
        first_step = state.step
        batches = make_batches(
            data,
            opts.batch_size,
            batch_order_rng(seed, epoch - 1, partition=0, chunk=0),
            shuffle=opts.shuffle,
            bucket=opts.bucket,
        )
        with Progress(total=len(batches), desc=f"epoch {epoch}/{last}", enabled=show) as bar:
            total = run_steps(
                model,
                optimizer,
                state,
                (data.take(index) for index in batches),
                step_rng(seed, epoch - 1),
                schedule,
                opts.clip_norm,
                opts.clip_value,
                on_step=lambda r: bar.update(1, loss=r.loss_sum / max(r.num_targets, 1)),
            )
        row: dict[str, float] = {"epoch": epoch}
        row.update(
            training_metrics(
                model.config.task,
                model.config.output_size,
                total.loss_sum,
                total.num_targets,
                total.metric_sum,
            )
        )
        if validation is not None:
            row.update({f"val_{k}": v for k, v in model.evaluate_data(validation).items()})
        # The rate of the epoch's first update (the Spark trainer records a round the same way).
        row["lr"] = schedule.lr_at(first_step)
        row["seconds"] = time.perf_counter() - started
        history.rows.append(row)
        model.fit_state = replace(model.fit_state, epochs_done=epoch)
        logger.info(
            "epoch %d/%d %s",
            epoch,
            last,
            {k: round(v, 5) for k, v in row.items() if k != "epoch"},
        )
        monitored = row["val_loss"] if validation is not None else row["loss"]
        stop = stopping.observe(monitored, epoch, lambda: model.params)
        history.best_round = stopping.best_round
        if stop:
            history.stopped_early = True
            logger.info("early stopping after epoch %d (best %d)", epoch, history.best_round)
            break
    if opts.restore_best and stopping.best_params is not None:
        model.load_state_dict(stopping.best_params)
    return history
