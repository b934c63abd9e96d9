"""Synthetic tasks: shapes, dtypes, determinism, and labels recomputed from the inputs."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.data import adding_problem, copy_task, noisy_sines, parity, sine_forecasting


def _rng(seed=0):
    return np.random.default_rng(seed)


def _valid(lengths, seq_len):
    return np.arange(seq_len)[None, :] < lengths[:, None]


def test_adding_problem_full_length():
    x, y, lengths = adding_problem(500, 12, _rng())
    assert x.shape == (500, 12, 2)
    assert x.dtype == np.float32
    assert y.shape == (500,)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(lengths, np.full(500, 12))
    assert lengths.dtype == np.int64
    values, marks = x[..., 0], x[..., 1]
    assert values.min() >= 0.0
    assert values.max() < 1.0
    assert set(np.unique(marks).tolist()) == {0.0, 1.0}
    # Exactly one mark in each half.
    np.testing.assert_array_equal(marks[:, :6].sum(axis=1), np.ones(500))
    np.testing.assert_array_equal(marks[:, 6:].sum(axis=1), np.ones(500))
    np.testing.assert_allclose(y, (values * marks).sum(axis=1), rtol=1e-6)


def test_adding_problem_variable_lengths():
    seq_len = 20
    x, y, lengths = adding_problem(2000, seq_len, _rng(1), min_len=5, dtype=np.float64)
    assert x.dtype == np.float64
    assert y.dtype == np.float64
    assert lengths.min() == 5
    assert lengths.max() == seq_len
    valid = _valid(lengths, seq_len)
    assert not x[~valid].any()
    assert (x[..., 0][valid] > 0).mean() > 0.99
    marks = x[..., 1]
    t = np.arange(seq_len)[None, :]
    half = (lengths // 2)[:, None]
    np.testing.assert_array_equal((marks * (t < half)).sum(axis=1), np.ones(2000))
    np.testing.assert_array_equal((marks * ((t >= half) & valid)).sum(axis=1), np.ones(2000))
    np.testing.assert_allclose(y, (x[..., 0] * marks).sum(axis=1), rtol=1e-12)


def test_adding_problem_deterministic():
    a = adding_problem(10, 8, _rng(7), min_len=3)
    b = adding_problem(10, 8, _rng(7), min_len=3)
    c = adding_problem(10, 8, _rng(8), min_len=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_parity_labels_recomputed():
    x, y, lengths = parity(1000, 16, _rng(2), min_len=1)
    assert x.shape == (1000, 16, 1)
    assert x.dtype == np.float32
    assert y.dtype == np.int64
    assert lengths.min() >= 1
    assert lengths.max() <= 16
    bits = x[..., 0]
    assert set(np.unique(bits).tolist()) == {0.0, 1.0}
    assert not bits[~_valid(lengths, 16)].any()
    np.testing.assert_array_equal(y, bits.sum(axis=1).astype(np.int64) % 2)
    assert 0.4 < y.mean() < 0.6


def test_copy_task_layout():
    seq_len, n_symbols = 4, 3
    x, y, lengths = copy_task(200, seq_len, n_symbols, _rng(3))
    total = 2 * seq_len + 1
    assert x.shape == y.shape == (200, total)
    assert x.dtype == np.int64
    assert y.dtype == np.int64
    np.testing.assert_array_equal(lengths, np.full(200, total))
    string = x[:, :seq_len]
    assert string.min() == 1
    assert string.max() == n_symbols
    np.testing.assert_array_equal(x[:, seq_len], np.full(200, n_symbols + 1))
    np.testing.assert_array_equal(x[:, seq_len + 1 :], 0)
    np.testing.assert_array_equal(y[:, : seq_len + 1], 0)
    np.testing.assert_array_equal(y[:, seq_len + 1 :], string)


def _recurrence_residual(x, omega):
    # A pure sinusoid satisfies s[t+1] + s[t-1] = 2 cos(omega) s[t].
    return np.abs(x[:, 2:] + x[:, :-2] - 2 * np.cos(omega)[:, None] * x[:, 1:-1]).max(axis=1)


def test_noisy_sines_noiseless_labels_recomputed():
    n_classes, seq_len = 5, 30
    x, y, lengths = noisy_sines(300, seq_len, n_classes, _rng(4), noise=0.0, dtype=np.float64)
    assert x.shape == (300, seq_len, 1)
    assert y.dtype == np.int64
    assert set(np.unique(y).tolist()) == set(range(n_classes))
    np.testing.assert_array_equal(lengths, np.full(300, seq_len))
    signal = x[..., 0]
    omegas = np.pi * (np.arange(n_classes) + 1) / (2 * (n_classes + 1))
    assert _recurrence_residual(signal, omegas[y]).max() < 1e-10
    assert np.abs(signal).max() <= 1.0 + 1e-12
    # Every wrong frequency leaves a clear residual: the label is identifiable from x.
    residuals = np.stack([_recurrence_residual(signal, np.full(300, w)) for w in omegas], axis=1)
    np.testing.assert_array_equal(residuals.argmin(axis=1), y)


def test_noisy_sines_noise_and_padding():
    x, y, lengths = noisy_sines(400, 50, 3, _rng(5), noise=0.5, min_len=10)
    assert x.dtype == np.float32
    assert lengths.min() >= 10
    assert lengths.max() <= 50
    valid = _valid(lengths, 50)
    assert not x[..., 0][~valid].any()
    # Variance of a unit sine with random phase is 1/2; the noise adds 0.5 ** 2.
    assert x[..., 0][valid].var() == pytest.approx(0.5 + 0.25, rel=0.05)
    a = noisy_sines(20, 10, 3, _rng(6), min_len=2)
    b = noisy_sines(20, 10, 3, _rng(6), min_len=2)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_sine_forecasting_targets_are_future_inputs():
    x, y = sine_forecasting(50, 40, _rng(7), horizon=3, dtype=np.float64)
    assert x.shape == y.shape == (50, 40, 1)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(y[:, :-3], x[:, 3:])
    series = np.concatenate([x[:, :, 0], y[:, -3:, 0]], axis=1)
    # Recover each series' frequency from the recurrence and check it is a pure sinusoid
    # with the documented frequency range.
    cos_w = (series[:, 2] + series[:, 0]) / (2 * series[:, 1])
    omega = np.arccos(np.clip(cos_w, -1, 1))
    assert _recurrence_residual(series, omega).max() < 1e-8
    assert omega.min() >= np.pi / 16 - 1e-9
    assert omega.max() < np.pi / 4 + 1e-9
    assert np.abs(series).max() < 1.5


def test_sine_forecasting_default_and_noise():
    x, y = sine_forecasting(10, 5, _rng(8))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    xn, yn = sine_forecasting(10, 5, _rng(8), noise=0.1)
    np.testing.assert_array_equal(yn[:, :-1], xn[:, 1:])
    assert not np.array_equal(x, xn)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: adding_problem(0, 5, r), "n = 0: must be >= 1"),
        (lambda r: adding_problem(3, 1, r), "seq_len = 1: must be >= 2"),
        (lambda r: adding_problem(3, 5, r, min_len=1), "min_len = 1: must be >= 2"),
        (lambda r: adding_problem(3, 5, r, min_len=6), "min_len = 6 is greater than seq_len = 5"),
        (lambda r: parity(3, 0, r), "seq_len = 0: must be >= 1"),
        (lambda r: parity(3, 4, r, min_len=0), "min_len = 0: must be >= 1"),
        (lambda r: copy_task(3, 4, 0, r), "n_symbols = 0: must be >= 1"),
        (lambda r: copy_task(3, 0, 2, r), "seq_len = 0: must be >= 1"),
        (lambda r: noisy_sines(3, 4, 1, r), "n_classes = 1: must be >= 2"),
        (lambda r: noisy_sines(3, 4, 2, r, noise=-0.1), "noise = -0.1: must be a finite number"),
        (lambda r: noisy_sines(3, 4, 2, r, min_len=5), "min_len = 5 is greater than seq_len"),
        (lambda r: sine_forecasting(3, 4, r, horizon=0), "horizon = 0: must be >= 1"),
        (lambda r: sine_forecasting(3, 4, r, noise=np.inf), "noise = inf: must be a finite"),
    ],
)
def test_generator_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(_rng())


def test_generator_type_errors():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        adding_problem(3, 5, 0)
    with pytest.raises(TypeError, match="n must be an integer"):
        parity(3.0, 5, _rng())
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        noisy_sines(3, 5, 2, _rng(), dtype=np.int32)
