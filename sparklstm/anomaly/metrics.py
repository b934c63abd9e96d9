"""Anomaly detection metrics, from per-step labels (1: anomalous) and scores or flags.

- At the threshold (point-wise): ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
  ``F1 = 2 P R / (P + R)`` (0 where a denominator is 0), and the false-alarm rate
  ``FP / (FP + TN)``.
- Area under the precision-recall curve, as average precision (scikit-learn's
  ``average_precision_score``): with the distinct scores as thresholds from the highest down,
  ``AP = Σ_k (R_k - R_{k-1}) P_k`` (a step function, no interpolation). NaN scores (unscored
  steps) rank below every score.
- One anomaly per series (the UCR anomaly archive / KDD Cup 2021 protocol, Wu & Keogh 2021):
  the top-scored step ``t*`` is a hit when ``b - max(w, tol) <= t* <= e + max(w, tol)`` for
  the labelled range ``[b, e]`` of ``w = e - b + 1`` steps; the archive's convention is a
  tolerance of 100 steps (``tol=0`` is the strict reading: ``t*`` inside the range).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "average_precision",
    "flag_metrics",
    "labelled_ranges",
    "top_score_hit",
    "UCR_TOLERANCE",
]

UCR_TOLERANCE = 100


def _labels(labels: ArrayLike) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D (one per step), got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return array.astype(bool)


def _same_length(name: str, values: ArrayLike, labels: np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != labels.shape:
        raise ValueError(f"{name} has shape {array.shape}, labels {labels.shape}: one per step")
    return array


def flag_metrics(labels: ArrayLike, flags: ArrayLike) -> dict[str, Any]:
    """Point-wise confusion counts, precision, recall, F1 and false-alarm rate of ``flags``."""
    truth = _labels(labels)
    flagged = _same_length("flags", flags, truth).astype(bool)
    tp = int((flagged & truth).sum())
    fp = int((flagged & ~truth).sum())
    fn = int((~flagged & truth).sum())
    tn = int((~flagged & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarm_rate": fp / (fp + tn) if fp + tn else 0.0,
    }


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (NaN without positives)."""
    truth = _labels(labels)
    values = _same_length("scores", scores, truth).astype(np.float64)
    positives = int(truth.sum())
    if positives == 0:
        return math.nan
    values = np.where(np.isfinite(values), values, -np.inf)
    order = np.argsort(-values, kind="stable")
    ranked, hits = values[order], truth[order]
    true_positives = np.cumsum(hits)
    # One point per distinct score: the last index of each run of equal scores.
    last = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    tp = true_positives[last]
    precision = tp / (last + 1)
    recall = tp / positives
    previous = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous) * precision))


def labelled_ranges(labels: ArrayLike) -> list[tuple[int, int]]:
    """The runs of anomalous steps as ``(first, last)`` index pairs (inclusive)."""
    truth = _labels(labels).astype(np.int8)
    edges = np.diff(np.r_[0, truth, 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(b), int(e)) for b, e in zip(starts, ends, strict=True)]


def top_score_hit(
    labels: ArrayLike, scores: ArrayLike, tolerance: int = UCR_TOLERANCE
) -> dict[str, Any]:
    """Whether the top-scored step falls in the one labelled range widened by
    ``max(range length, tolerance)`` on each side; also the distance from the range (0
    inside). The first of equal top scores counts; NaN scores never do."""
    truth = _labels(labels)
    values = _same_length("scores", scores, truth).astype(np.float64)
    ranges = labelled_ranges(truth)
    if len(ranges) != 1:
        raise ValueError(
            f"top_score_hit needs exactly one labelled range (the UCR archive's format), found "
            f"{len(ranges)}"
        )
    if not np.isfinite(values).any():
        raise ValueError("scores: no finite score")
    first, last = ranges[0]
    slack = max(last - first + 1, int(tolerance))
    top = int(np.nanargmax(np.where(np.isfinite(values), values, np.nan)))
    distance = max(first - top, top - last, 0)
    return {
        "top_index": top,
        "range": [first, last],
        "tolerance": slack,
        "hit": bool(first - slack <= top <= last + slack),
        "hit_strict": bool(first <= top <= last),
        "distance": distance,
    }
