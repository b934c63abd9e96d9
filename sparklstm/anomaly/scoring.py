"""Step and window scores of a next-step forecaster, and the calibrated threshold.

A series ``x_0 .. x_{L-1}`` (standardised features) is read with ``x_t`` as the input at step
``t`` and ``x_{t+1}`` as its target, so the forecaster's output at step ``t - 1`` predicts
``x_t`` from ``x_{<t}``. The score of step ``t >= 1``:

- ``nll``: ``-log N(x_t; μ_t, σ²_t) = Σ_j ½ (log 2π + s_tj + (x_tj - μ_tj)² e^{-s_tj})``,
  ``s = log σ²`` (the Gaussian head's negative log-likelihood, summed over features);
- ``squared_error``: ``Σ_j (x_tj - μ_tj)²``.

Step 0 has no forecast: its score is NaN (and it is never flagged). The window score is the
trailing mean ``w_t = mean(s_{t-k+1} .. s_t)`` over the ``k = score_window`` steps ending at
``t`` (over the scored steps only near the start), so it can be computed as the stream arrives.
The threshold is the ``(1 - rate)`` quantile of the window scores of normal steps (the
smallest observed score with at most that share of normal scores above it); a step is flagged
when its window score is above the threshold.
"""

from __future__ import annotations

import math

import numpy as np

from sparklstm.nn.losses import gaussian_nll_terms

__all__ = ["step_scores", "TrailingMean", "window_scores", "quantile_threshold"]


def step_scores(outputs: np.ndarray, targets: np.ndarray, score: str) -> np.ndarray:
    """``(n,)`` scores of ``targets`` ``(n, F)`` under the forecaster's ``outputs``
    (``(n, 2F)`` Gaussian mean and log-variance, or ``(n, F)`` means), in float64."""
    outputs = outputs.astype(np.float64)
    targets = targets.astype(np.float64)
    if score == "nll":
        return gaussian_nll_terms(outputs, targets).sum(axis=1)
    means = outputs[:, : targets.shape[1]]
    return np.square(targets - means).sum(axis=1)


class TrailingMean:
    """The trailing mean of a score stream fed in chunks (NaNs, the unscored steps, are left
    out of the mean; a step with nothing scored in its window gets NaN). Carries the last
    ``k - 1`` scores from chunk to chunk, so chunked results equal one pass."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.tail = np.empty(0)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        joined = np.concatenate([self.tail, scores])
        valid = np.isfinite(joined)
        sums = np.concatenate([[0.0], np.cumsum(np.where(valid, joined, 0.0))])
        counts = np.concatenate([[0], np.cumsum(valid)])
        end = np.arange(len(self.tail) + 1, len(joined) + 1)
        start = np.maximum(end - self.window, 0)
        total, count = sums[end] - sums[start], counts[end] - counts[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        self.tail = (
            joined[max(0, len(joined) - (self.window - 1)) :] if self.window > 1 else (np.empty(0))
        )
        return means


def window_scores(scores: np.ndarray, window: int) -> np.ndarray:
    """The trailing mean of ``scores`` over ``window`` steps, in one pass."""
    return TrailingMean(window)(np.asarray(scores, dtype=np.float64))


def quantile_threshold(normal_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The smallest observed normal score ``θ`` with at most ``rate`` of the normal scores
    above it: the ``⌈(1 - rate) n⌉``-th smallest of the ``n`` finite scores."""
    values = np.sort(np.asarray(normal_scores, dtype=np.float64))
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("calibration: no scored normal steps (give longer normal series)")
    rank = max(1, math.ceil((1.0 - false_alarm_rate) * values.size - 1e-9))
    return float(values[rank - 1])
