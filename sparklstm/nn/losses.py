"""Losses on packed rows: softmax cross-entropy, mean squared error and the Gaussian negative
log-likelihood of a head that predicts a mean and a log-variance per target.

Each returns ``(loss, d_outputs)``; padded steps never reach them (the packed
layout drops them), so masking is exact by construction.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LOG_VAR_MAX",
    "LOG_VAR_MIN",
    "gaussian_nll",
    "gaussian_nll_terms",
    "log_softmax",
    "mean_squared_error",
    "softmax",
    "softmax_cross_entropy",
    "split_gaussian",
]


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


# The log-variance a Gaussian head may predict is clipped to this range inside the loss (a
# variance between e^-10 ≈ 4.5e-5 and e^10 ≈ 2.2e4 of the targets' units squared), so one bad
# step cannot overflow exp(-s); beyond it the loss is flat in s and so is its gradient.
LOG_VAR_MIN = -10.0
LOG_VAR_MAX = 10.0
_LOG_2PI = float(np.log(2.0 * np.pi))


def split_gaussian(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, clipped log-variance)`` of a Gaussian head's ``(..., 2O)`` outputs, laid out as
    ``[μ_1 .. μ_O, s_1 .. s_O]``."""
    half = outputs.shape[-1] // 2
    return outputs[..., :half], np.clip(outputs[..., half:], LOG_VAR_MIN, LOG_VAR_MAX)


def gaussian_nll_terms(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-value negative log-likelihood (nats) of ``targets`` ``(..., O)`` under the Gaussian
    head's ``outputs`` ``(..., 2O)``: ``½ (log 2π + s + (y - μ)² e^{-s})``."""
    mean, log_var = split_gaussian(outputs)
    diff = targets - mean
    return 0.5 * (_LOG_2PI + log_var + diff * diff * np.exp(-log_var))


def gaussian_nll(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean Gaussian negative log-likelihood of ``targets`` ``(N, O)`` under ``outputs``
    ``(N, 2O)`` = ``[μ, s]``, ``s = log σ²`` (clipped to ``[LOG_VAR_MIN, LOG_VAR_MAX]``), the
    mean taken over rows and outputs as :func:`mean_squared_error`'s, with the constant
    (``torch.nn.GaussianNLLLoss(full=True)`` with ``var = e^s``)::

        L = (1 / NO) Σ_{n,j} ½ (log 2π + s_nj + (y_nj - μ_nj)² e^{-s_nj})

    Gradient: ``dL/dμ = -(y - μ) e^{-s} / NO``; ``dL/ds = ½ (1 - (y - μ)² e^{-s}) / NO``
    inside the clip range, 0 outside it.
    """
    half = outputs.shape[1] // 2
    if outputs.shape[1] != 2 * targets.shape[1]:
        raise ValueError(
            f"gaussian_nll: outputs have {outputs.shape[1]} columns; targets "
            f"{targets.shape[1]}: a Gaussian head has two per target (mean, log-variance)"
        )
    raw_log_var = outputs[:, half:]
    mean, log_var = split_gaussian(outputs)
    diff = targets - mean
    precision = np.exp(-log_var)
    scaled = diff * diff * precision
    size = diff.size
    loss = float((0.5 * (_LOG_2PI + log_var + scaled)).sum() / size)
    grad = np.empty_like(outputs)
    grad[:, :half] = -diff * precision / size
    inside = (raw_log_var >= LOG_VAR_MIN) & (raw_log_var <= LOG_VAR_MAX)
    grad[:, half:] = np.where(inside, 0.5 * (1.0 - scaled) / size, 0.0)
    return loss, grad
