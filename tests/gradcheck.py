"""Central finite differences in float64, compared with analytic gradients by norm."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    loss: Callable[[], float],
    array: np.ndarray,
    eps: float = 1e-6,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of ``loss()`` w.r.t. ``array`` (perturbed in place and restored).

    Returns ``(indices, values)``: all entries, or ``max_entries`` random ones.
    """
    flat = array.reshape(-1)
    if max_entries is None or max_entries >= flat.size:
        indices = np.arange(flat.size)
    else:
        indices = (rng or np.random.default_rng(0)).choice(flat.size, max_entries, replace=False)
    values = np.empty(indices.size)
    for j, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + eps
        plus = loss()
        flat[i] = old - eps
        minus = loss()
        flat[i] = old
        values[j] = (plus - minus) / (2 * eps)
    return indices, values


def relative_error(numeric: np.ndarray, analytic: np.ndarray) -> float:
    """``‖num - ana‖ / (‖num‖ + ‖ana‖)`` (0 when both vanish)."""
    denominator = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    if denominator == 0:
        return 0.0
    return float(np.linalg.norm(numeric - analytic) / denominator)


def check_gradients(
    loss: Callable[[], float],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    max_entries: int | None = 40,
    tolerance: float = 1e-6,
) -> dict[str, float]:
    """Assert every parameter's analytic gradient matches finite differences; return errors."""
    errors = {}
    rng = np.random.default_rng(123)
    for name, array in params.items():
        assert array.dtype == np.float64, f"{name} must be float64 for a gradient check"
        indices, numeric = numerical_gradient(loss, array, max_entries=max_entries, rng=rng)
        analytic = grads[name].reshape(-1)[indices]
        errors[name] = relative_error(numeric, analytic)
        # A gradient check must check something: the gradient must not be identically zero.
        assert np.linalg.norm(numeric) > 0, f"{name}: loss does not depend on it (test is vacuous)"
    bad = {k: v for k, v in errors.items() if not v < tolerance}
    assert not bad, f"gradient mismatch (relative error >= {tolerance}): {bad}"
    return errors
