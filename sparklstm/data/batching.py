"""Minibatch index plans: plain shuffling, length bucketing, and train/validation splits.

Every function returns ``int64`` index arrays into the dataset; the caller slices its arrays
with them. Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sparklstm.data.padding import _as_lengths, _check_int
from sparklstm.validation import Interval, Wording, check_generator, check_real

__all__ = [
    "minibatch_indices",
    "bucketed_batches",
    "padding_fraction",
    "train_validation_split",
]

logger = logging.getLogger(__name__)


def _check_rng(rng: object, needed: bool, why: str = "shuffle=True") -> np.random.Generator | None:
    if rng is None:
        if needed:
            raise ValueError(f"rng is required when {why}: pass numpy.random.default_rng(seed)")
        return None
    return check_generator("rng", rng)


def _cut(order: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    """Consecutive ``batch_size`` pieces of ``order``; the short tail dropped if ``drop_last``."""
    n = order.shape[0]
    if drop_last:
        n -= n % batch_size
        if n == 0:
            raise ValueError(
                f"drop_last=True with {order.shape[0]} examples < batch_size={batch_size} "
                "leaves no batch"
            )
    return np.split(order[:n], np.arange(batch_size, n, batch_size))


def minibatch_indices(
    n: int,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Split ``range(n)`` into minibatches.

    Parameters
    ----------
    n : int
        Number of examples, >= 1.
    batch_size : int
        Examples per batch, >= 1. The last batch is shorter when ``n % batch_size != 0``.
    rng : numpy.random.Generator, optional
        Source of the permutation; required when ``shuffle=True``.
    shuffle : bool, default True
        Random order (``rng.permutation(n)``); otherwise ``0, 1, ..., n - 1`` in order.
    drop_last : bool, default False
        Drop the final short batch.

    Returns
    -------
    list of np.ndarray
        ``int64`` index arrays, each of length ``batch_size`` (except possibly the last).
    """
    n = _check_int("n", n, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    rng = _check_rng(rng, shuffle)
    order = rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    return _cut(order.astype(np.int64, copy=False), batch_size, drop_last)


def bucketed_batches(
    lengths: ArrayLike,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    bucket_size_multiplier: int = 50,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Minibatches of similar-length sequences, so that little of each batch is padding.

    The indices are shuffled, split into chunks of ``batch_size * bucket_size_multiplier``,
    each chunk is sorted by length (stable), the sorted indices are cut into batches of
    ``batch_size`` and the batch order is shuffled. Each epoch therefore sees different
    batches, yet each batch spans a narrow range of lengths.

    With ``shuffle=False`` (``rng`` may then be ``None``) the order is fixed: chunks of
    consecutive indices ``[0, C), [C, 2C), ...`` (``C = batch_size * bucket_size_multiplier``),
    each sorted by ascending length with ties in index order, cut into batches, kept in order.

    Parameters
    ----------
    lengths : array_like of int, shape [n]
        Sequence lengths, each >= 1.
    batch_size : int
        Examples per batch, >= 1.
    rng : numpy.random.Generator, optional
        Required when ``shuffle=True``; the result is a function of its state.
    shuffle : bool, default True
        Shuffle before bucketing and shuffle the batch order.
    bucket_size_multiplier : int, default 50
        Chunk size in batches; 1 sorts nothing across batches, larger means less padding
        but less randomness.
    drop_last : bool, default False
        Drop the one batch shorter than ``batch_size`` (if any).

    Returns
    -------
    list of np.ndarray
        ``int64`` index arrays; together they hold every index in ``range(n)`` exactly once
        (less the dropped short batch when ``drop_last``).
    """
    lengths = _as_lengths(lengths)
    batch_size = _check_int("batch_size", batch_size, 1)
    multiplier = _check_int("bucket_size_multiplier", bucket_size_multiplier, 1)
    rng = _check_rng(rng, shuffle)
    n = lengths.shape[0]
    order = rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    chunk = np.arange(n) // (batch_size * multiplier)
    # lexsort is stable: sort by chunk, then by length within the chunk.
    order = order[np.lexsort((lengths[order], chunk))].astype(np.int64, copy=False)
    # Chunks are whole multiples of batch_size, so batches never straddle two chunks.
    batches = _cut(order, batch_size, drop_last)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def padding_fraction(lengths: ArrayLike, batches: Sequence[ArrayLike]) -> float:
    """Fraction of the time steps in the padded batches that are padding.

    Each batch is padded to its own longest sequence, so it has
    ``len(batch) * max(lengths[batch])`` cells of which ``sum(lengths[batch])`` are valid.

    Parameters
    ----------
    lengths : array_like of int, shape [n]
        Sequence lengths, each >= 1.
    batches : sequence of array_like of int
        Non-empty index arrays into ``lengths``.

    Returns
    -------
    float
        ``1 - valid / total`` over all batches, in ``[0, 1)``.
    """
    lengths = _as_lengths(lengths)
    if len(batches) == 0:
        raise ValueError("batches is empty: need at least one batch")
    arrays = [np.asarray(b).reshape(-1) for b in batches]
    sizes = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    if (sizes == 0).any():
        i = int(np.flatnonzero(sizes == 0)[0])
        raise ValueError(f"batches[{i}] is empty")
    index = np.concatenate(arrays)
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"batches must hold integer indices, got dtype {index.dtype}")
    if index.min() < 0 or index.max() >= lengths.shape[0]:
        bad = int(index.min() if index.min() < 0 else index.max())
        raise ValueError(f"batches hold index {bad}, outside [0, {lengths.shape[0]})")
    batch_lengths = lengths[index]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    longest = np.maximum.reduceat(batch_lengths, starts)
    total = int((longest * sizes).sum())
    return 1.0 - int(batch_lengths.sum()) / total


def _stratified_counts(counts: np.ndarray, n_val: int, fraction: float) -> np.ndarray:
    """Validation examples per class: proportional, summing to ``n_val``, each below its count.

    Needs ``sum(floor(counts * fraction)) <= n_val <= sum(counts - 1)``, which holds for the
    caller's ``n_val``. Rounding uses the largest remainders; ties go to the earlier class.
    """
    cap = counts - 1
    ideal = counts * fraction
    take = np.minimum(np.floor(ideal).astype(np.int64), cap)
    left = n_val - int(take.sum())
    if left > 0:
        # One extra each to the classes with the largest fractional parts and room left.
        remainder = np.where(take < cap, ideal - take, -np.inf)
        priority = np.argsort(-remainder, kind="stable")[:left]
        priority = priority[np.isfinite(remainder[priority])]
        take[priority] += 1
        left -= priority.shape[0]
    if left > 0:
        # Caps pushed the rounding short: fill the classes with the most room, in order.
        room = cap - take
        for c in np.argsort(-room, kind="stable"):
            extra = min(int(room[c]), left)
            take[c] += extra
            left -= extra
            if left == 0:
                break
    return take


def _partition(n: int, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def train_validation_split(
    n: int,
    validation_fraction: float,
    rng: np.random.Generator,
    stratify: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``range(n)`` into training and validation indices.

    Parameters
    ----------
    n : int
        Number of examples, >= 2.
    validation_fraction : float
        In ``(0, 1)``. The validation set has ``round(n * validation_fraction)`` examples,
        clipped to ``[1, n - 1]`` so that neither side is empty.
    rng : numpy.random.Generator
        Source of randomness.
    stratify : array_like, shape [n], optional
        Class labels. Each class is then split in proportion (largest-remainder rounding) and
        keeps at least one training example; if that leaves fewer validation slots than
        requested, the validation set shrinks (logged). When every class has one example, the
        split falls back to an unstratified one (logged).

    Returns
    -------
    train_idx, val_idx : np.ndarray
        Sorted ``int64`` arrays that partition ``range(n)``.
    """
    n = _check_int("n", n, 2)
    fraction = check_real(
        "validation_fraction",
        validation_fraction,
        Interval(0, 1, open_minimum=True, open_maximum=True),
        wording=Wording(out_of_range="{name} = {value}: must be {rule}"),
    )
    rng = _check_rng(rng, True, "splitting")
    n_val = min(max(round(n * fraction), 1), n - 1)
    perm = rng.permutation(n)
    if stratify is None:
        return _partition(n, perm[:n_val])

    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify must have shape ({n},), got {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    room = int((counts - 1).sum())
    if room == 0:
        logger.warning(
            "train_validation_split: every class has a single example; splitting without "
            "stratification"
        )
        return _partition(n, perm[:n_val])
    if n_val > room:
        logger.warning(
            "train_validation_split: only %d validation examples keep every class in the "
            "training set (asked for %d)",
            room,
            n_val,
        )
        n_val = room
    per_class = _stratified_counts(counts.astype(np.int64), n_val, fraction)
    # Group the random permutation by class (stable, so random within each class), then
    # mark the first per_class[c] positions of each class group as validation.
    grouped = perm[np.argsort(inverse[perm], kind="stable")]
    group_class = inverse[grouped]
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - starts[group_class]
    return _partition(n, grouped[rank < per_class[group_class]])
