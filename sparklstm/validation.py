"""Input checks shared by the layers, the model and the trainers.

Every check raises ``ValueError`` or ``TypeError`` naming the argument and the problem, before
any work is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "as_float_sequences",
    "as_token_sequences",
    "check_lengths",
    "check_finite",
    "check_choice",
    "check_positive_int",
    "check_probability",
    "check_no_unknown_keys",
    "resolve_dtype",
]

_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype: Any) -> np.dtype:
    """``"float32"``/``"float64"``/NumPy dtype -> ``np.dtype``; anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if resolved.name not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {resolved.name}")
    return resolved


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_probability(name: str, value: Any, allow_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 <= value and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value}")
    return float(value)


def check_no_unknown_keys(name: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    known = set(known)
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"valid options are {', '.join(sorted(known))}"
        )


def check_finite(name: str, array: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})"
        )


def _ragged_error(name: str) -> ValueError:
    return ValueError(
        f"{name} is ragged (sequences of different lengths): pad it to [batch, time, ...] and "
        "pass lengths=, or use sparklstm.data.pad_sequences"
    )


def check_lengths(lengths: Any, batch_size: int, max_len: int, name: str = "lengths") -> np.ndarray:
    """Validate ``lengths`` against a padded batch; ``None`` means every sequence is full."""
    if lengths is None:
        return np.full(batch_size, max_len, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be an array of integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape ({batch_size},), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must hold whole numbers")
    arr = arr.astype(np.int64)
    if arr.min() < 1:
        i = int(np.argmin(arr))
        raise ValueError(f"{name}[{i}] = {arr[i]}: every length must be >= 1")
    if arr.max() > max_len:
        i = int(np.argmax(arr))
        raise ValueError(f"{name}[{i}] = {arr[i]} exceeds the padded time axis ({max_len} steps)")
    return arr


def as_float_sequences(x: Any, name: str, input_size: int | None, dtype: np.dtype) -> np.ndarray:
    """``x`` as a float ``[batch, time, features]`` array of ``dtype``, checked."""
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype=dtype)
        except ValueError as exc:
            raise _ragged_error(name) from exc
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype == object:
        raise _ragged_error(name)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(
            f"{name} must have shape [batch, time, features], got {x.ndim}-D {x.shape}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if input_size is not None and x.shape[2] != input_size:
        raise ValueError(
            f"{name} has {x.shape[2]} features per step; the model expects {input_size}"
        )
    x = x.astype(dtype, copy=False)
    check_finite(name, x)
    return x


def as_token_sequences(x: Any, name: str, vocab_size: int) -> np.ndarray:
    """``x`` as an int64 ``[batch, time]`` array of token ids in ``[0, vocab_size)``."""
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x)
        except ValueError as exc:
            raise _ragged_error(name) from exc
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype == object:
        raise _ragged_error(name)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have shape [batch, time] of token ids, got {x.ndim}-D {x.shape}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"{name} holds token id {bad}, outside [0, {vocab_size}) (vocab_size)")
    return x.astype(np.int64, copy=False)
