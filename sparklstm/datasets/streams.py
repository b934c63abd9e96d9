"""Datasets of long streams, as tables of steps: one row per (stream, position).

A long stream (a book as characters, a sensor's readings) is stored as rows of steps, the
input of :func:`sparklstm.spark.streams.fit_streams_distributed`: ``stream: int64`` (the
stream's id), ``position: int64`` (0, 1, ... within the stream), ``features: int32`` (the
step's token id) and ``label: int32`` (its target class id). Rows are produced in blocks of
:data:`BLOCK_STEPS` steps, so memory stays bounded however long the streams are.

- ``delayed-copy`` (:func:`delayed_copy_blocks`): random symbols ``x_t`` uniform in
  ``0 .. symbols - 1``; the target is the input ``delay`` steps back, ``y_t = x_{t - delay}``
  (0 for ``t < delay``). Block ``b`` of stream ``s`` draws from ``numpy.random.default_rng(
  [seed, s, b])``, so a stream depends only on ``seed``, its id and its length. The training
  streams have ids ``0 .. streams - 1`` and the test streams the next ``test_streams`` ids:
  no test stream repeats a training one.
- ``kjv-stream`` (:func:`kjv_streams`): the King James Bible
  (:func:`sparklstm.datasets.kjv.load_kjv`) for next-character modelling with carried
  state: ``features`` the character id, ``label`` the next character's. The training text
  (the first 90%) is cut into ``streams`` contiguous streams of near-equal length
  (``numpy.array_split`` bounds); the test text (the last 10%) is one stream. With
  ``validation`` the training text alone is split again the same way (its first 90% train,
  its last 10% the "test" stream), to choose settings without the test text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = [
    "BLOCK_STEPS",
    "STEP_SCHEMA",
    "StreamSplits",
    "delayed_copy_blocks",
    "delayed_copy_stream",
    "kjv_streams",
    "next_id_blocks",
    "step_table",
]

#: Steps per generated block (and per Arrow table written).
BLOCK_STEPS = 1 << 16

STEP_SCHEMA = pa.schema(
    [
        ("stream", pa.int64()),
        ("position", pa.int64()),
        ("features", pa.int32()),
        ("label", pa.int32()),
    ]
)


def step_table(stream: int, first: int, features: np.ndarray, labels: np.ndarray) -> pa.Table:
    """Rows ``first, first + 1, ...`` of ``stream``: one per step of ``features``/``labels``."""
    n = len(features)
    return pa.table(
        [
            pa.array(np.full(n, stream, dtype=np.int64)),
            pa.array(np.arange(first, first + n, dtype=np.int64)),
            pa.array(np.asarray(features, dtype=np.int32)),
            pa.array(np.asarray(labels, dtype=np.int32)),
        ],
        schema=STEP_SCHEMA,
    )


# ------------------------------------------------------------------------------ delayed copy
def check_delayed_copy(stream_length: int, delay: int, symbols: int) -> None:
    """One line for options that make no task (named as make_data spells them)."""
    if delay >= stream_length:
        raise ValueError(
            f"--delay {delay}: must be below --stream-length {stream_length} (else every "
            "target is 0)"
        )
    if symbols < 2:
        raise ValueError(f"--symbols {symbols}: a copy needs at least 2 symbols")


def delayed_copy_blocks(
    seed: int, stream: int, stream_length: int, delay: int, symbols: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(first position, inputs, targets)`` of one delayed-copy stream, block by block: block
    ``b`` of the inputs draws from ``default_rng([seed, stream, b])``; ``targets[t] =
    inputs[t - delay]`` (0 before ``delay``), carried across block cuts."""
    behind = np.zeros(delay, dtype=np.int64)  # the inputs before the block (zeros at first)
    for block, first in enumerate(range(0, stream_length, BLOCK_STEPS)):
        n = min(BLOCK_STEPS, stream_length - first)
        inputs = np.random.default_rng([seed, stream, block]).integers(0, symbols, size=n)
        joined = np.concatenate([behind, inputs])
        yield first, inputs, joined[:n]
        behind = joined[-delay:]


def delayed_copy_stream(
    seed: int, stream: int, stream_length: int, delay: int, symbols: int
) -> tuple[np.ndarray, np.ndarray]:
    """A whole delayed-copy stream ``(inputs, targets)`` (the blocks joined; for tests)."""
    blocks = list(delayed_copy_blocks(seed, stream, stream_length, delay, symbols))
    return np.concatenate([b[1] for b in blocks]), np.concatenate([b[2] for b in blocks])


# ------------------------------------------------------------------------------ KJV
@dataclass(frozen=True)
class StreamSplits:
    """Token id streams of the splits: ``{split: [ids of stream 0, ...]}``; a stream of ids
    ``c_0 .. c_n`` has the steps ``c_t -> c_{t+1}``."""

    train: list[np.ndarray]
    test: list[np.ndarray]


def kjv_streams(
    ids_train: np.ndarray,
    ids_test: np.ndarray,
    streams: int,
    max_chars: int | None = None,
    validation: bool = False,
    train_fraction: float = 0.9,
) -> StreamSplits:
    """The ``kjv-stream`` splits from the corpus's id arrays (see the module docstring).
    ``max_chars`` keeps the first N characters of each split (quick runs)."""
    if validation:
        cut = int(np.floor(len(ids_train) * train_fraction))
        ids_train, ids_test = ids_train[:cut], ids_train[cut:]
    if max_chars is not None:
        ids_train, ids_test = ids_train[:max_chars], ids_test[:max_chars]
    steps = len(ids_train) - 1
    if steps < streams:
        raise ValueError(
            f"--streams {streams}: the training text has {steps} steps; give at most that many "
            "streams (or a larger --max-chars)"
        )
    if len(ids_test) < 2:
        raise ValueError(f"the test text has {len(ids_test)} characters; need at least 2")
    # Stream k covers steps [bounds[k], bounds[k + 1]): its ids are one longer (the last target).
    # numpy.array_split's bounds: the first ``steps % streams`` streams one step longer.
    q, r = divmod(steps, streams)
    bounds = [k * q + min(k, r) for k in range(streams + 1)]
    train = [ids_train[a : b + 1] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return StreamSplits(train, [ids_test])


def next_id_blocks(ids: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(first position, inputs, targets)`` of a next-id stream ``ids[t] -> ids[t + 1]``,
    in blocks of :data:`BLOCK_STEPS` steps."""
    steps = len(ids) - 1
    for first in range(0, steps, BLOCK_STEPS):
        stop = min(steps, first + BLOCK_STEPS)
        yield first, ids[first:stop], ids[first + 1 : stop + 1]
