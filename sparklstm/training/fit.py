"""One-process training: :func:`fit`, epoch after epoch of the shared minibatch step
(:mod:`sparklstm.training.step`), and :class:`FitState`, which lets a later call continue."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from sparklstm.data.batching import train_validation_split
from sparklstm.data.pair_data import PairData
from sparklstm.data.sequence_data import SequenceData
from sparklstm.memory import keep_large_allocations_on_heap
from sparklstm.metrics import training_metrics
from sparklstm.model import SequenceModel
from sparklstm.optim import ConstantLR, Optimizer, OptimizerState
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import TrainOptions
from sparklstm.training.progress import Progress, interactive_stderr
from sparklstm.training.step import (
    batch_order_rng,
    make_batches,
    resolve_seed,
    run_steps,
    split_rng,
    step_rng,
)
from sparklstm.validation import check_no_unknown_keys

__all__ = ["FitState", "fit", "History"]

logger = logging.getLogger(__name__)


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


def _as_data(model: SequenceModel, value: Any, name: str) -> SequenceData | PairData:
    if isinstance(value, (SequenceData, PairData)):
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

    keep_large_allocations_on_heap()  # each step reuses the last one's pages
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
                step_threads=opts.step_threads or 1,
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
