"""Two simple detectors to compare with: a moving-average residual and a matrix-profile
discord (AB-join against normal data), in NumPy. Both take ``(steps, F)`` standardised series
and give one score per step, NaN where there is none yet, aligned as the forecaster's are
(a step's score uses that step and earlier ones only)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["moving_average_residual", "discord_distances"]


def _as_2d(name: str, series: np.ndarray) -> np.ndarray:
    array = np.asarray(series, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a finite (steps,) or (steps, features) array")
    return array


def moving_average_residual(series: np.ndarray, window: int) -> np.ndarray:
    """``r_t = Σ_j (x_tj - mean(x_{t-k..t-1, j}))²`` with ``k = window`` (fewer steps near the
    start; ``r_0`` is NaN)."""
    x = _as_2d("series", series)
    sums = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    t = np.arange(1, len(x))
    start = np.maximum(t - window, 0)
    means = (sums[t] - sums[start]) / (t - start)[:, None]
    scores = np.full(len(x), np.nan)
    scores[1:] = np.square(x[1:] - means).sum(axis=1)
    return scores


def _normalised_windows(x: np.ndarray, m: int) -> np.ndarray:
    """``(n, m)`` z-normalised subsequences of one channel (a flat one stays all zeros)."""
    windows = sliding_window_view(x, m)
    mean = windows.mean(axis=1, keepdims=True)
    std = windows.std(axis=1, keepdims=True)
    floor = 1e-8 * max(float(np.std(x)), 1e-300)
    return np.where(std > floor, (windows - mean) / np.maximum(std, floor), 0.0)


def discord_distances(
    series: np.ndarray, reference: np.ndarray, length: int, block: int = 2048
) -> np.ndarray:
    """The distance of each length-``m`` subsequence of ``series`` to its nearest neighbour
    among those of the normal ``reference`` (an AB-join matrix profile): per channel the
    z-normalised Euclidean distance ``d² = 2m (1 - ρ)`` (ρ the Pearson correlation), summed
    over channels as squared distances, square-rooted. The subsequence ending at step ``t``
    gives step ``t``'s score; the first ``m - 1`` steps are NaN. Memory: ``block`` rows of
    the distance matrix at a time."""
    x, ref = _as_2d("series", series), _as_2d("reference", reference)
    m = int(length)
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"series has {x.shape[1]} features, reference {ref.shape[1]}")
    if m < 2 or m > min(len(x), len(ref)):
        raise ValueError(f"length = {m}: must be in [2, {min(len(x), len(ref))}]")
    queries = [_normalised_windows(x[:, j], m) for j in range(x.shape[1])]
    targets = [_normalised_windows(ref[:, j], m) for j in range(ref.shape[1])]
    count = queries[0].shape[0]
    best = np.empty(count)
    for start in range(0, count, block):
        stop = min(count, start + block)
        squared = np.zeros((stop - start, targets[0].shape[0]))
        for q, r in zip(queries, targets, strict=True):
            correlation = q[start:stop] @ r.T / m
            squared += 2.0 * m * (1.0 - correlation)
        best[start:stop] = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
    scores = np.full(len(x), np.nan)
    scores[m - 1 :] = best
    return scores
