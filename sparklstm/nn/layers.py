"""Embedding and dense layers, as pure forward/backward function pairs on packed rows."""

from __future__ import annotations

import numpy as np

__all__ = [
    "embedding_forward",
    "embedding_backward",
    "dense_forward",
    "dense_backward",
    "dropout_mask",
]


def embedding_forward(weight: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``weight (V, E)``, ``ids (N,)`` -> ``(N, E)`` rows ``weight[ids]``."""
    return weight[ids]


def embedding_backward(d_out: np.ndarray, ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Gradient w.r.t. the embedding table: ``dW[v] = Σ_{n: ids[n]=v} d_out[n]``.

    Sorting the ids once and summing contiguous runs with ``np.add.reduceat`` avoids the slow
    unbuffered scatter of ``np.add.at``.
    """
    d_weight = np.zeros((vocab_size, d_out.shape[1]), dtype=d_out.dtype)
    if ids.size == 0:
        return d_weight
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    d_weight[sorted_ids[starts]] = np.add.reduceat(d_out[order], starts, axis=0)
    return d_weight


def dense_forward(weight: np.ndarray, bias: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """``y = x Wᵀ + b`` with ``weight (O, F)`` (torch.nn.Linear's layout), ``x (N, F)``."""
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


def dense_backward(
    d_y: np.ndarray, weight: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns ``(dx, dW, db)`` for :func:`dense_forward`."""
    return d_y @ weight, d_y.T @ x, d_y.sum(axis=0)


def dropout_mask(
    rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype: np.dtype
) -> np.ndarray:
    """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    keep = 1.0 - rate
    return (rng.random(shape) < keep).astype(dtype) / np.asarray(keep, dtype=dtype)
