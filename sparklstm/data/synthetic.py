"""Synthetic sequence tasks of any size, for tests, demos and benchmarks.

Every generator draws only from the ``numpy.random.Generator`` passed in, so a seed fixes the
data. Float outputs are ``float32`` unless ``dtype`` says otherwise; labels, token ids and
lengths are ``int64``. Generators with ``min_len`` draw each length uniformly from
``[min_len, seq_len]`` and set padded steps to zero; without it every length is ``seq_len``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from sparklstm.data.padding import _check_int, lengths_to_mask
from sparklstm.validation import Interval, Wording, check_generator, check_real

__all__ = ["adding_problem", "parity", "copy_task", "noisy_sines", "sine_forecasting"]


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    out = np.dtype(dtype)
    if not np.issubdtype(out, np.floating):
        raise TypeError(f"dtype must be a floating dtype, got {out}")
    return out


def _check_noise(noise: object) -> float:
    """``noise`` as a finite float >= 0 ("noise = -1.0: must be a finite number >= 0.0")."""
    wording = Wording(out_of_range="{name} = {number}: must be a finite number >= {minimum}")
    return check_real("noise", noise, Interval(0.0), wording=wording)


def _lengths(
    n: int, seq_len: int, min_len: int | None, rng: np.random.Generator, shortest: int
) -> np.ndarray:
    """``int64 [n]`` lengths: all ``seq_len``, or uniform in ``[min_len, seq_len]``."""
    if min_len is None:
        return np.full(n, seq_len, dtype=np.int64)
    min_len = _check_int("min_len", min_len, shortest)
    if min_len > seq_len:
        raise ValueError(f"min_len = {min_len} is greater than seq_len = {seq_len}")
    return rng.integers(min_len, seq_len, size=n, endpoint=True, dtype=np.int64)


def adding_problem(
    n: int,
    seq_len: int,
    rng: np.random.Generator,
    *,
    min_len: int | None = None,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber): sum the two marked values.

    Channel 0 holds values uniform in ``[0, 1)``; channel 1 is 1 at exactly two steps, one in
    the first half ``[0, L // 2)`` and one in the second half ``[L // 2, L)`` of the
    sequence's valid length ``L``, and 0 elsewhere. The target is the sum of the two marked
    channel-0 values (computed in ``dtype``).

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    seq_len : int
        Padded length ``T``, >= 2.
    rng : numpy.random.Generator
    min_len : int, optional
        Shortest length, in ``[2, seq_len]``; lengths are then uniform in
        ``[min_len, seq_len]``.
    dtype : floating dtype, default float32

    Returns
    -------
    x : np.ndarray
        ``[n, T, 2]``; zero at padded steps.
    y : np.ndarray
        ``[n]``, in ``[0, 2)``.
    lengths : np.ndarray
        ``int64 [n]``.
    """
    n = _check_int("n", n, 1)
    seq_len = _check_int("seq_len", seq_len, 2)
    rng = check_generator("rng", rng, hint=True)
    dtype = _float_dtype(dtype)
    lengths = _lengths(n, seq_len, min_len, rng, 2)
    x = np.zeros((n, seq_len, 2), dtype=dtype)
    x[..., 0] = rng.random((n, seq_len)) * lengths_to_mask(lengths, seq_len)
    half = lengths // 2
    first = rng.integers(0, half)
    second = half + rng.integers(0, lengths - half)
    rows = np.arange(n)
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    y = x[rows, first, 0] + x[rows, second, 0]
    return x, y, lengths


def parity(
    n: int,
    seq_len: int,
    rng: np.random.Generator,
    *,
    min_len: int | None = None,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parity of a bit string: is the number of ones in the valid steps odd?

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    seq_len : int
        Padded length ``T``, >= 1.
    rng : numpy.random.Generator
    min_len : int, optional
        Shortest length, in ``[1, seq_len]``.
    dtype : floating dtype, default float32

    Returns
    -------
    x : np.ndarray
        ``[n, T, 1]`` of 0/1 (fair coin flips); zero at padded steps.
    y : np.ndarray
        ``int64 [n]``: 1 if the valid steps hold an odd number of ones, else 0.
    lengths : np.ndarray
        ``int64 [n]``.
    """
    n = _check_int("n", n, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    rng = check_generator("rng", rng, hint=True)
    dtype = _float_dtype(dtype)
    lengths = _lengths(n, seq_len, min_len, rng, 1)
    bits = rng.integers(0, 2, size=(n, seq_len), dtype=np.int64)
    bits *= lengths_to_mask(lengths, seq_len)
    y = bits.sum(axis=1) % 2
    return bits[..., None].astype(dtype), y, lengths


def copy_task(
    n: int, seq_len: int, n_symbols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy/recall task for many-to-many models: repeat a random string after a delimiter.

    Token ids: ``0`` is the blank symbol, ``1..n_symbols`` are the data symbols and
    ``n_symbols + 1`` is the delimiter, so the input vocabulary has ``n_symbols + 2`` ids and
    the targets ``n_symbols + 1`` classes (the delimiter is never a target). With ``T =
    seq_len`` and a random string ``s`` of ``T`` data symbols (uniform, independent)::

        step     0 .. T-1     T            T+1 .. 2T
        x        s[0..T-1]    delimiter    blank ...
        y        blank ...    blank        s[0..T-1]

    i.e. ``x[:, :T] = s``, ``x[:, T] = n_symbols + 1``, ``x[:, T+1:] = 0``,
    ``y[:, :T+1] = 0`` and ``y[:, T+1:] = s``.

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    seq_len : int
        Length ``T`` of the string to copy, >= 1.
    n_symbols : int
        Number of data symbols, >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    x : np.ndarray
        ``int64 [n, 2T + 1]`` input tokens.
    y : np.ndarray
        ``int64 [n, 2T + 1]`` per-step target classes.
    lengths : np.ndarray
        ``int64 [n]``, all ``2T + 1``.
    """
    n = _check_int("n", n, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    n_symbols = _check_int("n_symbols", n_symbols, 1)
    rng = check_generator("rng", rng, hint=True)
    total = 2 * seq_len + 1
    string = rng.integers(1, n_symbols, size=(n, seq_len), endpoint=True, dtype=np.int64)
    x = np.zeros((n, total), dtype=np.int64)
    y = np.zeros((n, total), dtype=np.int64)
    x[:, :seq_len] = string
    x[:, seq_len] = n_symbols + 1
    y[:, seq_len + 1 :] = string
    return x, y, np.full(n, total, dtype=np.int64)


def noisy_sines(
    n: int,
    seq_len: int,
    n_classes: int,
    rng: np.random.Generator,
    *,
    noise: float = 0.3,
    min_len: int | None = None,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify noisy sine waves by frequency.

    Class ``k`` (uniform over ``0..n_classes-1``) is ``sin(w_k * t + phase) + noise * e_t``
    at steps ``t = 0, 1, ...`` with angular frequency ``w_k = pi * (k + 1) / (2 * (n_classes
    + 1))`` radians per step (evenly spaced in ``(0, pi/2)``), phase uniform in
    ``[0, 2 pi)`` and ``e_t`` standard normal.

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    seq_len : int
        Padded length ``T``, >= 1.
    n_classes : int
        Number of classes, >= 2.
    rng : numpy.random.Generator
    noise : float, default 0.3
        Standard deviation of the Gaussian noise, >= 0.
    min_len : int, optional
        Shortest length, in ``[1, seq_len]``.
    dtype : floating dtype, default float32

    Returns
    -------
    x : np.ndarray
        ``[n, T, 1]``; zero at padded steps.
    y : np.ndarray
        ``int64 [n]`` class indices.
    lengths : np.ndarray
        ``int64 [n]``.
    """
    n = _check_int("n", n, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    n_classes = _check_int("n_classes", n_classes, 2)
    rng = check_generator("rng", rng, hint=True)
    noise = _check_noise(noise)
    dtype = _float_dtype(dtype)
    lengths = _lengths(n, seq_len, min_len, rng, 1)
    y = rng.integers(0, n_classes, size=n, dtype=np.int64)
    omega = np.pi * (y + 1) / (2 * (n_classes + 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    signal = np.sin(omega[:, None] * np.arange(seq_len) + phase[:, None])
    if noise > 0:
        signal += noise * rng.standard_normal((n, seq_len))
    signal *= lengths_to_mask(lengths, seq_len)
    return signal[..., None].astype(dtype), y, lengths


def sine_forecasting(
    n: int,
    seq_len: int,
    rng: np.random.Generator,
    horizon: int = 1,
    *,
    noise: float = 0.0,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step forecasting of a sine wave ``horizon`` steps ahead (many-to-many regression).

    Each series is ``s_t = a * sin(w * t + phase) + noise * e_t`` for ``t = 0 .. T +
    horizon - 1`` with amplitude ``a`` uniform in ``[0.5, 1.5)``, angular frequency ``w``
    uniform in ``[pi/16, pi/4)`` radians per step, phase uniform in ``[0, 2 pi)`` and
    ``e_t`` standard normal. Inputs are ``x[:, t] = s_t`` and targets ``y[:, t] =
    s_{t + horizon}``, so ``y[:, :-horizon] == x[:, horizon:]``. All sequences have length
    ``T``.

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    seq_len : int
        Length ``T``, >= 1.
    rng : numpy.random.Generator
    horizon : int, default 1
        How many steps ahead the target is, >= 1.
    noise : float, default 0.0
        Standard deviation of the noise added to the series, >= 0.
    dtype : floating dtype, default float32

    Returns
    -------
    x, y : np.ndarray
        ``[n, T, 1]`` each.
    """
    n = _check_int("n", n, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    horizon = _check_int("horizon", horizon, 1)
    rng = check_generator("rng", rng, hint=True)
    noise = _check_noise(noise)
    dtype = _float_dtype(dtype)
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    omega = rng.uniform(np.pi / 16, np.pi / 4, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    series = amplitude * np.sin(omega * np.arange(seq_len + horizon) + phase)
    if noise > 0:
        series += noise * rng.standard_normal(series.shape)
    series = series.astype(dtype)[..., None]
    return series[:, :seq_len].copy(), series[:, horizon:].copy()
