"""Gradient clipping by global norm and by value."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sparklstm.optim.checks import check_positive

# --------------------------------------------------------------------------------------------
# gradient clipping


def _global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """L2 norm of all arrays together, accumulated in float64 (rescaled if squares overflow)."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for g in grads.values():
            flat = np.asarray(g, dtype=np.float64).ravel()
            total += float(np.dot(flat, flat))
    if math.isfinite(total) or any(not np.isfinite(g).all() for g in grads.values()):
        return math.sqrt(total)
    # all entries finite but the sum of squares overflowed: rescale by the largest magnitude
    scale = max(float(np.max(np.abs(g))) for g in grads.values() if g.size)
    total = 0.0
    for g in grads.values():
        flat = np.asarray(g, dtype=np.float64).ravel() / scale
        total += float(np.dot(flat, flat))
    return scale * math.sqrt(total)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    If the norm exceeds ``max_norm`` every array is multiplied by
    ``max_norm / (norm + 1e-6)``. A non-finite norm leaves the gradients untouched (the caller
    decides what to do).

    Parameters
    ----------
    grads : dict[str, np.ndarray]
        Gradient arrays, modified in place.
    max_norm : float
        Largest allowed global norm (> 0).

    Returns
    -------
    float
        The global norm before clipping (computed in float64).
    """
    max_norm = check_positive("max_norm", max_norm)
    norm = _global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        coef = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= coef
    return norm


def clip_grad_value(grads: dict[str, np.ndarray], clip_value: float) -> None:
    """Clip every gradient entry to ``[-clip_value, clip_value]``, in place.

    Parameters
    ----------
    grads : dict[str, np.ndarray]
        Gradient arrays, modified in place.
    clip_value : float
        Largest allowed magnitude (> 0).
    """
    clip_value = check_positive("clip_value", clip_value)
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
