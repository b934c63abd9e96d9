"""Weight initialisers. Randomness always comes in as a ``numpy.random.Generator``."""

from __future__ import annotations

import numpy as np

__all__ = ["xavier_uniform", "orthogonal", "gate_blocks"]


def xavier_uniform(
    rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype, gain: float = 1.0
) -> np.ndarray:
    """Glorot/Xavier uniform ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    ``shape`` is ``(fan_out, fan_in)`` as for a weight applied as ``W @ x``.
    """
    fan_out, fan_in = shape
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def orthogonal(rng: np.random.Generator, size: int, dtype: np.dtype) -> np.ndarray:
    """A random ``(size, size)`` orthogonal matrix (QR of a Gaussian, sign-corrected)."""
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    q *= np.sign(np.diag(r))
    return q.astype(dtype)


def gate_blocks(
    rng: np.random.Generator,
    num_gates: int,
    hidden_size: int,
    input_size: int,
    dtype: np.dtype,
    recurrent: bool,
) -> np.ndarray:
    """A ``(num_gates * H, K)`` gate-stacked weight: each gate's block initialised alone.

    Input weights use Xavier uniform per gate (fan-out ``H``, not ``num_gates * H``); recurrent
    weights an orthogonal matrix per gate, which keeps the early gradient norms through time
    close to 1.
    """
    blocks = []
    for _ in range(num_gates):
        if recurrent:
            blocks.append(orthogonal(rng, hidden_size, dtype))
        else:
            blocks.append(xavier_uniform(rng, (hidden_size, input_size), dtype))
    return np.concatenate(blocks, axis=0)
