"""Long streams with carried state: the pieces shared by stateful inference and truncated-BPTT
training (:mod:`sparklstm.training.streams`).

A *stream group* is up to ``B`` streams read side by side, one per batch row, each of its own
length ``L_r`` (a stream is one very long sequence: a book as characters, a sensor's readings).
They are read in windows ``[a, b)`` of steps: row ``r`` takes part in a window when its stream
is still running (``L_r > a``), with ``min(b, L_r) - a`` valid steps, and the state it ends the
window with is where its next window starts. A row whose stream has ended keeps its last state
and takes part in nothing more; a new group starts from zero states (the state is reset at
stream boundaries).

Only the window in hand is ever in memory as a batch (``B x (b - a)`` steps), so memory is
bounded by the window length, not the stream length; the streams themselves may be any arrays
that slice, such as ``numpy.memmap`` files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sparklstm.model.config import ModelConfig
from sparklstm.model.network import Network
from sparklstm.nn.losses import log_softmax
from sparklstm.nn.packing import PackedLayout

__all__ = [
    "LayerStates",
    "StreamGroup",
    "StreamLengths",
    "add_chunk_totals",
    "advance",
    "check_streams",
    "iter_stream_outputs",
    "stream_totals",
    "zero_states",
]

# Per layer (h, c): each (directions, rows, hidden) in row order; c is None for GRU.
LayerStates = list[tuple[np.ndarray, np.ndarray | None]]

# Streams are checked in blocks of this many steps (bounded memory on long streams).
_CHECK_BLOCK = 1 << 16


def zero_states(network: Network, rows: int) -> LayerStates:
    """The zero state of every layer for ``rows`` rows (where every stream starts)."""
    states: LayerStates = []
    for layer in network.layers:
        shape = (layer.num_directions, rows, layer.hidden_size)
        h = np.zeros(shape, dtype=network.dtype)
        states.append((h, np.zeros_like(h) if layer.has_cell_state else None))
    return states


def take_rows(states: LayerStates, rows: np.ndarray) -> LayerStates:
    """The states of ``rows`` (a copy)."""
    return [(h[:, rows], None if c is None else c[:, rows]) for h, c in states]


def put_rows(states: LayerStates, rows: np.ndarray, values: LayerStates) -> None:
    """``states[rows] = values``, in place."""
    for (h, c), (new_h, new_c) in zip(states, values, strict=True):
        h[:, rows] = new_h
        if c is not None:
            c[:, rows] = new_c


def copy_states(states: LayerStates) -> LayerStates:
    return [(h.copy(), None if c is None else c.copy()) for h, c in states]


def check_streams(
    config: ModelConfig, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None
) -> None:
    """Every stream (and its targets) fits ``config``, checked before any work; one line per
    problem, naming the stream. Values are read in blocks, so a memory-mapped stream is not
    loaded whole."""
    if config.head != "all":
        raise ValueError(
            f"head={config.head!r}: streams need per-step outputs; use head='all' (one target "
            "per step)"
        )
    if config.bidirectional:
        raise ValueError(
            "bidirectional=True: a stream read chunk by chunk cannot see its future; use a "
            "one-direction model for streams"
        )
    if isinstance(inputs, np.ndarray) and inputs.dtype != object:
        raise TypeError(
            "inputs must be a sequence of streams (a list of arrays, one per stream), got one "
            f"array of shape {inputs.shape}; wrap a single stream as [stream]"
        )
    if len(inputs) == 0:
        raise ValueError("inputs: no streams given")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"targets has {len(targets)} streams, inputs {len(inputs)}")
    for index, stream in enumerate(inputs):
        where = f"stream {index}"
        shape = np.shape(stream)
        if config.uses_tokens:
            if len(shape) != 1:
                raise ValueError(f"{where}: token ids must be 1-D (steps,), got shape {shape}")
        elif len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != config.input_size):
            raise ValueError(
                f"{where}: shape {shape}; a float stream is (steps,) or "
                f"(steps, {config.input_size})"
            )
        if len(shape) == 1 and not config.uses_tokens and config.input_size != 1:
            raise ValueError(f"{where}: 1-D, but the model takes {config.input_size} features")
        if shape[0] < 1:
            raise ValueError(f"{where}: empty; every stream needs at least one step")
        _check_values(where, stream, config.vocab_size if config.uses_tokens else None)
        if targets is None:
            continue
        target = targets[index]
        tshape = np.shape(target)
        if tshape[:1] != shape[:1]:
            raise ValueError(
                f"{where}: {shape[0]} steps but {tshape[0] if tshape else 0} targets; give one "
                "target per step"
            )
        if config.task == "classification":
            if len(tshape) != 1:
                raise ValueError(f"{where} targets: class ids must be 1-D, got shape {tshape}")
            _check_values(f"{where} targets", target, config.output_size)
        else:
            wanted = (1, 2) if config.output_size == 1 else (2,)
            if len(tshape) not in wanted or (len(tshape) == 2 and tshape[1] != config.output_size):
                raise ValueError(
                    f"{where} targets: shape {tshape}; regression targets are (steps, "
                    f"{config.output_size})"
                )
            _check_values(f"{where} targets", target, None)


def _check_values(where: str, values: np.ndarray, classes: int | None) -> None:
    array = np.asarray(values[:0])
    if classes is not None and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{where}: ids must be integers, got {array.dtype}")
    for start in range(0, len(values), _CHECK_BLOCK):
        block = np.asarray(values[start : start + _CHECK_BLOCK])
        if classes is not None:
            low, high = int(block.min()), int(block.max())
            if low < 0 or high >= classes:
                raise ValueError(
                    f"{where}: ids must be in [0, {classes}), found {low if low < 0 else high}"
                )
        elif not np.isfinite(block).all():
            raise ValueError(f"{where}: contains NaN or Inf (from step {start})")


class StreamLengths:
    """The length bookkeeping of streams read side by side (``lengths``: one per row), shared
    by every reader of a group of streams."""

    lengths: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def longest(self) -> int:
        return int(self.lengths.max())

    def running(self, step: int) -> np.ndarray:
        """The rows whose stream has a step ``step`` (``L_r > step``)."""
        return np.flatnonzero(self.lengths > step)


@dataclass(frozen=True)
class StreamGroup(StreamLengths):
    """Streams read side by side (row ``r`` follows ``inputs[r]``), with optional per-step
    ``targets``."""

    inputs: Sequence[np.ndarray]
    targets: Sequence[np.ndarray] | None
    lengths: np.ndarray

    @classmethod
    def of(cls, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None):
        lengths = np.array([len(stream) for stream in inputs], dtype=np.int64)
        return cls(list(inputs), None if targets is None else list(targets), lengths)

    def window(
        self, rows: np.ndarray, start: int, end: int, config: ModelConfig
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(inputs, targets, lengths)`` of ``rows`` over steps ``[start, end)``: padded
        ``(rows, end - start[, F])`` inputs, padded targets (None without targets) and each
        row's valid steps (>= 1: only running rows are asked for)."""
        lengths = np.minimum(self.lengths[rows], end) - start
        width = int(lengths.max())
        dtype = np.int64 if config.uses_tokens else np.dtype(config.dtype)
        feature_shape = () if config.uses_tokens else (config.input_size,)
        inputs = np.zeros((len(rows), width, *feature_shape), dtype=dtype)
        targets = None
        if self.targets is not None:
            classify = config.task == "classification"
            target_shape = () if classify else (config.output_size,)
            targets = np.zeros(
                (len(rows), width, *target_shape),
                dtype=np.int64 if classify else np.dtype(config.dtype),
            )
        for k, row in enumerate(rows):
            steps = int(lengths[k])
            piece = np.asarray(self.inputs[row][start : start + steps])
            inputs[k, :steps] = piece.reshape(steps, *feature_shape)
            if targets is not None:
                labels = np.asarray(self.targets[row][start : start + steps])
                targets[k, :steps] = labels.reshape(steps, *targets.shape[2:])
        return inputs, targets, lengths


def advance(
    network: Network,
    inputs: np.ndarray,
    lengths: np.ndarray,
    states: LayerStates,
    training: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, PackedLayout, LayerStates]:
    """Run ``network`` over one window from ``states``: ``(packed outputs, layout, final
    states)``; no gradient."""
    layout = PackedLayout.from_lengths(lengths, inputs.shape[1])
    outputs, cache = network.forward(inputs, layout, training=training, rng=rng, states=states)
    return outputs, layout, cache.final_states


def iter_stream_outputs(
    network: Network, group: StreamGroup, chunk_length: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, PackedLayout]]:
    """Read ``group`` chunk by chunk with carried state (inference): for each chunk, ``(start,
    rows, packed outputs, layout)``, where ``layout`` maps the packed outputs to ``rows`` and
    steps ``start + t``. Exactly one pass over the whole streams, up to float rounding."""
    states = zero_states(network, group.rows)
    for start in range(0, group.longest, chunk_length):
        rows = group.running(start)
        inputs, _, lengths = group.window(rows, start, start + chunk_length, network.config)
        outputs, layout, final = advance(network, inputs, lengths, take_rows(states, rows))
        put_rows(states, rows, final)
        yield start, rows, outputs, layout


def stream_totals(network: Network, group: StreamGroup, chunk_length: int) -> dict[str, float]:
    """Summed evaluation totals of ``group`` read with carried state, as
    :func:`sparklstm.metrics.metrics_from_totals` takes them: ``count`` (steps), and ``loss``
    (summed cross-entropy, nats), ``weight`` and ``correct``, or ``sq`` and ``abs``."""
    config = network.config
    totals: dict[str, float] = {}
    for start, rows, outputs, layout in iter_stream_outputs(network, group, chunk_length):
        _, targets, _ = group.window(rows, start, start + chunk_length, config)
        add_chunk_totals(totals, config, outputs, layout.pack(targets))
    return totals


def add_chunk_totals(
    totals: dict[str, float], config: ModelConfig, outputs: np.ndarray, targets: np.ndarray
) -> None:
    """Add one chunk's packed ``outputs`` against its packed ``targets`` to ``totals`` (the
    keys of :func:`stream_totals`), in place."""
    keys = ("loss", "weight", "correct") if config.task == "classification" else ("sq", "abs")
    for key in ("count", *keys):
        totals.setdefault(key, 0.0)
    totals["count"] += len(targets)
    if config.task == "classification":
        log_p = log_softmax(outputs.astype(np.float64))
        totals["loss"] -= float(log_p[np.arange(len(targets)), targets].sum())
        totals["weight"] += len(targets)
        totals["correct"] += float((outputs.argmax(axis=1) == targets).sum())
    else:
        diff = outputs.astype(np.float64) - targets
        totals["sq"] += float(np.square(diff).sum())
        totals["abs"] += float(np.abs(diff).sum())
