"""Truncated backpropagation through time (TBPTT) on long streams, with the state carried from
chunk to chunk: :func:`fit_streams`.

A group of streams (:class:`~sparklstm.model.streams.StreamGroup`, one stream per batch row) is
read in chunks of ``forward_length`` = k1 steps, one optimizer update per chunk, the state at
a chunk's end being where the next chunk starts. The update at the end ``e`` of the chunk
``[s, e)`` is the gradient of

    F(θ) = Σ_{t ∈ [max(s, w), e)} ℓ_t(θ),          w = max(0, e - k2),

the summed loss of the chunk's steps from ``w`` on (divided by their number), where the states
are computed with θ from the *carried* state at step ``w``, which is held fixed: the gradient
flows back at most ``backward_length`` = k2 steps from the chunk's end (Williams & Peng's
TBPTT(k1, k2)). With k2 <= k1 the chunk's first k1 - k2 steps only advance the state (as in
Deeplearning4j's ``tBPTTBackwardLength``); with k2 > k1 the gradient reaches into earlier chunks,
which are recomputed from a state kept at a chunk boundary, so memory stays bounded by k2. With
k2 >= the stream's length, the chunks' gradients at fixed θ add up to the full BPTT gradient of
the whole stream (tested). Every stream starts from a zero state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparklstm.memory import keep_large_allocations_on_heap
from sparklstm.metrics import metrics_from_totals, training_metrics
from sparklstm.model.network import Network
from sparklstm.model.streams import (
    LayerStates,
    StreamGroup,
    advance,
    check_streams,
    copy_states,
    put_rows,
    stream_totals,
    take_rows,
    zero_states,
)
from sparklstm.nn.losses import mean_squared_error, softmax_cross_entropy
from sparklstm.nn.packing import PackedLayout
from sparklstm.optim import ConstantLR
from sparklstm.options import check_fields, integer
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import TrainOptions
from sparklstm.training.progress import Progress, interactive_stderr
from sparklstm.training.step import batch_order_rng, resolve_seed, run_steps, step_rng
from sparklstm.validation import check_no_unknown_keys

__all__ = [
    "Chunk",
    "StreamOptions",
    "StreamStepper",
    "chunk_plan",
    "evaluate_streams",
    "fit_streams",
    "stream_groups",
    "window_gradients",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamOptions:
    """How long streams are cut for truncated BPTT (one definition for every view)."""

    forward_length: int = integer(
        100,
        "truncated BPTT: steps per chunk; one update per chunk, the state carries into the next",
    )
    backward_length: int | None = integer(
        None,
        "truncated BPTT: steps the gradient flows back from a chunk's end (None: forward_length); "
        "above forward_length it reaches into earlier chunks, recomputed from a kept state",
        optional=True,
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def backward(self) -> int:
        return self.forward_length if self.backward_length is None else self.backward_length


@dataclass(frozen=True)
class Chunk:
    """One update: the chunk ``[start, end)``; its losses count from ``max(start,
    window_start)``, and the gradient reaches back to ``window_start``."""

    start: int
    end: int
    window_start: int

    @property
    def loss_start(self) -> int:
        return max(self.start, self.window_start)


def chunk_plan(longest: int, options: StreamOptions) -> list[Chunk]:
    """The chunks of a group whose longest stream has ``longest`` steps."""
    k1, k2 = options.forward_length, options.backward
    chunks = []
    for start in range(0, longest, k1):
        end = min(start + k1, longest)
        chunks.append(Chunk(start, end, max(0, end - k2)))
    return chunks


def window_gradients(
    network: Network,
    inputs: np.ndarray,
    targets: np.ndarray,
    lengths: np.ndarray,
    states: LayerStates,
    loss_from: int,
    training: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[float, dict[str, np.ndarray], int, float, LayerStates]:
    """The truncated gradient of one window: forward from ``states`` (held fixed) over the
    padded ``inputs``; the loss is the mean over the valid steps ``t >= loss_from`` (window
    steps); returns ``(mean loss, gradients, loss terms, metric sum, final states)``."""
    config = network.config
    layout = PackedLayout.from_lengths(lengths, inputs.shape[1])
    outputs, cache = network.forward(inputs, layout, training=training, rng=rng, states=states)
    packed = layout.pack(targets)
    counted = np.flatnonzero(layout.row_time >= loss_from)
    d_outputs = np.zeros_like(outputs)
    if config.task == "classification":
        weights = None
        if config.class_weights is not None:
            weights = np.asarray(config.class_weights, dtype=outputs.dtype)
        loss, d_counted = softmax_cross_entropy(outputs[counted], packed[counted], weights)
        metric = float((outputs[counted].argmax(axis=1) == packed[counted]).sum())
    else:
        loss, d_counted = mean_squared_error(outputs[counted], packed[counted])
        metric = float(np.square(outputs[counted].astype(np.float64) - packed[counted]).sum())
    d_outputs[counted] = d_counted
    grads = network.backward(d_outputs, cache)
    return loss, grads, int(len(counted)), metric, cache.final_states


class StreamStepper:
    """The training step of one stream group, for :func:`~sparklstm.training.step.run_steps`
    (it has the ``params`` and ``step_gradients`` a trainable model has): each batch is a
    :class:`Chunk`, and the stepper carries the states from chunk to chunk. It keeps the states
    at the chunk boundaries that a later window (k2 > k1) starts behind."""

    def __init__(
        self, network: Network, group: Any, options: StreamOptions, start: int = 0
    ) -> None:
        """``group`` reads like a :class:`StreamGroup` (``rows``, ``running``, ``window``);
        reading starts from zero states at step ``start`` (0: the streams' beginning; later:
        a state reset mid-stream, whose windows then start there at the earliest)."""
        self.network = network
        self.params = network.params
        self.group = group
        self.options = options
        self.states = zero_states(network, group.rows)
        # Chunk boundary -> the states of every row there.
        self._kept: dict[int, LayerStates] = {start: copy_states(self.states)}

    def export(self) -> dict[str, np.ndarray]:
        """The carried states (current and kept boundaries) as named arrays, for
        :meth:`restore` in another process."""
        arrays: dict[str, np.ndarray] = {}
        named = [("now", self.states)] + [(f"kept/{b}", s) for b, s in self._kept.items()]
        for name, states in named:
            for layer, (h, c) in enumerate(states):
                arrays[f"{name}/h/{layer}"] = h
                if c is not None:
                    arrays[f"{name}/c/{layer}"] = c
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Go on from what :meth:`export` saved."""

        def states_of(prefix: str) -> LayerStates:
            found = []
            for layer in range(len(self.network.layers)):
                c = arrays.get(f"{prefix}/c/{layer}")
                found.append(
                    (arrays[f"{prefix}/h/{layer}"].copy(), None if c is None else c.copy())
                )
            return found

        self.states = states_of("now")
        boundaries = {int(key.split("/")[1]) for key in arrays if key.startswith("kept/")}
        self._kept = {b: states_of(f"kept/{b}") for b in boundaries}

    def _states_at(self, step: int, rows: np.ndarray, rng: np.random.Generator | None):
        """``(states, step)``: the carried states of ``rows`` at ``step``, from the last kept
        boundary at or before it, advanced (no gradient) with the current parameters. With no
        boundary kept before ``step`` (a reset after it), the earliest kept boundary and its
        step instead."""
        before = [b for b in self._kept if b <= step]
        base = max(before) if before else min(self._kept)
        step = max(step, base)
        states = take_rows(self._kept[base], rows)
        if base < step:
            inputs, _, lengths = self.group.window(rows, base, step, self.network.config)
            training = rng is not None
            states = advance(self.network, inputs, lengths, states, training=training, rng=rng)[2]
        return states, step

    def step_gradients(
        self, chunk: Chunk, rng: np.random.Generator
    ) -> tuple[float, dict[str, np.ndarray], int, float]:
        config = self.network.config
        training = config.dropout > 0
        rows = self.group.running(chunk.loss_start)
        if rows.size == 0:  # every stream of the group ended before the counted steps
            zero = {name: np.zeros_like(value) for name, value in self.params.items()}
            return 0.0, zero, 0, 0.0
        start, window_start = self._states_at(chunk.window_start, rows, rng if training else None)
        inputs, targets, lengths = self.group.window(rows, window_start, chunk.end, config)
        loss, grads, count, metric, final = window_gradients(
            self.network,
            inputs,
            targets,
            lengths,
            start,
            max(chunk.loss_start, window_start) - window_start,
            training,
            rng,
        )
        put_rows(self.states, rows, final)
        self._kept[chunk.end] = copy_states(self.states)
        # A later window starts at or after (next end - k2): keep the boundary before it.
        next_window = max(0, chunk.end + self.options.forward_length - self.options.backward)
        behind = [b for b in self._kept if b <= next_window]
        keep_from = max(behind) if behind else min(self._kept)
        self._kept = {b: s for b, s in self._kept.items() if b >= keep_from}
        return loss, grads, count, metric


def stream_groups(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Streams sorted by length (longest first, ties by index) and cut into groups of
    ``batch_size``: rows of a group end close together, so little is idle."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# The training options that apply to streams; the others (validation_split, bucket,
# initial_epoch) belong to independent sequences.
_STREAM_TRAIN_OPTIONS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "optimizer_options",
    "weight_decay",
    "schedule",
    "clip_norm",
    "clip_value",
    "shuffle",
    "seed",
    "early_stopping",
    "restore_best",
)


def fit_streams(
    model: Any,
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    validation: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    forward_length: int = 100,
    backward_length: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> History:
    """Train ``model`` (a :class:`~sparklstm.model.SequenceModel` with ``head="all"``, one
    direction) on long streams by truncated BPTT with carried state.

    ``inputs`` is a list of streams (each ``(steps,)`` token ids or ``(steps, F)`` floats; a
    ``numpy.memmap`` is read a chunk at a time), ``targets`` one target per step of each.
    ``batch_size`` streams are read side by side (longest together); each epoch visits the
    groups (in a seeded random order with ``shuffle``) and each group chunk by chunk from a
    zero state. Options: ``epochs``, ``batch_size``, the optimizer's (``optimizer``, ``lr``,
    ``optimizer_options``, ``weight_decay``, ``schedule``), ``clip_norm``/``clip_value``,
    ``shuffle``, ``seed``, ``early_stopping``/``restore_best`` (on the validation loss), and
    ``forward_length``/``backward_length`` (:class:`StreamOptions`). ``validation`` streams
    are scored with carried state after each epoch (``val_loss``: nats per step; for tokens
    also ``val_bits_per_step``).
    """
    stream_options = StreamOptions(forward_length, backward_length)
    check_no_unknown_keys("fit_streams", options, _STREAM_TRAIN_OPTIONS)
    opts = TrainOptions.for_scope("local", options)
    config = model.config
    check_streams(config, inputs, targets)
    if validation is not None:
        check_streams(config, validation[0], validation[1])
    seed = resolve_seed(config.seed if opts.seed is None else opts.seed)
    optimizer = opts.make_optimizer()
    schedule = opts.make_schedule() if opts.schedule is not None else ConstantLR(optimizer.lr)
    state = optimizer.init_state(model.params)
    lengths = np.array([len(stream) for stream in inputs], dtype=np.int64)
    groups = stream_groups(lengths, opts.batch_size)
    plans = [chunk_plan(int(lengths[g].max()), stream_options) for g in groups]
    keep_large_allocations_on_heap()  # each step reuses the last one's pages
    history = History(summary={"seed": seed, "streams": len(inputs), "steps": int(lengths.sum())})
    stopping = EarlyStopping(opts.early_stopping)
    show = interactive_stderr() if progress is None else bool(progress)
    for epoch in range(1, opts.epochs + 1):
        started = time.perf_counter()
        first_step = state.step
        order = np.arange(len(groups))
        if opts.shuffle:
            order = batch_order_rng(seed, epoch - 1).permutation(len(groups))
        loss_sum = metric_sum = 0.0
        count = 0
        total_chunks = sum(len(plans[g]) for g in order)
        rng = step_rng(seed, epoch - 1)
        with Progress(total=total_chunks, desc=f"epoch {epoch}/{opts.epochs}", enabled=show) as bar:
            for g in order:
                rows = groups[g]
                group = StreamGroup.of([inputs[r] for r in rows], [targets[r] for r in rows])
                stepper = StreamStepper(model.network, group, stream_options)
                total = run_steps(
                    stepper,
                    optimizer,
                    state,
                    iter(plans[g]),
                    rng,
                    schedule,
                    opts.clip_norm,
                    opts.clip_value,
                    on_step=lambda r: bar.update(1, loss=r.loss_sum / max(r.num_targets, 1)),
                )
                loss_sum += total.loss_sum
                metric_sum += total.metric_sum
                count += total.num_targets
        row: dict[str, float] = {"epoch": epoch}
        row.update(training_metrics(config.task, config.output_size, loss_sum, count, metric_sum))
        if validation is not None:
            scores = evaluate_streams(model, *validation, chunk_length=forward_length)
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["lr"] = schedule.lr_at(first_step)
        row["seconds"] = time.perf_counter() - started
        history.rows.append(row)
        logger.info("epoch %d/%d %s", epoch, opts.epochs, {k: round(v, 5) for k, v in row.items()})
        monitored = row["val_loss"] if validation is not None else row["loss"]
        stop = stopping.observe(monitored, epoch, lambda: model.params)
        history.best_round = stopping.best_round
        if stop:
            history.stopped_early = True
            break
    if opts.restore_best and stopping.best_params is not None:
        model.load_state_dict(stopping.best_params)
    return history


def evaluate_streams(
    model: Any,
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    chunk_length: int = 1000,
    batch_size: int = 32,
) -> dict[str, float]:
    """Metrics of ``model`` on whole streams read chunk by chunk with carried state (the same
    as one pass over each stream): ``loss`` (mean per step) and ``accuracy`` -- plus
    ``bits_per_step`` (the loss in bits) for token targets -- or ``loss``/``rmse``/``mae``."""
    config = model.config
    check_streams(config, inputs, targets)
    lengths = np.array([len(stream) for stream in inputs], dtype=np.int64)
    totals: dict[str, float] = {}
    for rows in stream_groups(lengths, batch_size):
        group = StreamGroup.of([inputs[r] for r in rows], [targets[r] for r in rows])
        for key, value in stream_totals(model.network, group, chunk_length).items():
            totals[key] = totals.get(key, 0.0) + value
    metrics = metrics_from_totals(config, totals)
    if config.task == "classification":
        metrics["bits_per_step"] = metrics["loss"] / np.log(2.0)
    return metrics
