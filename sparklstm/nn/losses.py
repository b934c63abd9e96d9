"""Losses on packed rows: softmax cross-entropy and mean squared error.

Both return ``(loss, d_logits_or_predictions)``; padded steps never reach them (the packed
layout drops them), so masking is exact by construction.
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy", "mean_squared_error"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax``, stable for any logits (the row max is subtracted first)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, class_weights: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``.

    With ``class_weights`` ``w``, the mean is weighted as in ``torch.nn.CrossEntropyLoss``:
    ``L = Σ_n w[y_n] (-log p_n[y_n]) / Σ_n w[y_n]``.

    Gradient: ``dL/dz_n = (w[y_n] / Σ w[y]) (p_n - onehot(y_n))``.
    """
    n = logits.shape[0]
    log_p = log_softmax(logits)
    picked = log_p[np.arange(n), labels]
    if class_weights is None:
        weights = np.ones(n, dtype=logits.dtype)
    else:
        weights = class_weights[labels].astype(logits.dtype)
    total_weight = weights.sum()
    loss = float(-(weights * picked).sum() / total_weight)
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1
    grad *= (weights / total_weight)[:, None]
    return loss, grad


def mean_squared_error(predictions: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """``L = mean over rows and outputs of (pred - target)²`` (torch.nn.MSELoss's mean)."""
    diff = predictions - targets
    loss = float((diff * diff).mean())
    return loss, diff * (2.0 / diff.size)
