"""The shared input checks (sparklstm.validation) and the wordings the layers call them in: each
check is written once, and each caller keeps its exception types and messages."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from sparklstm import validation as v
from sparklstm.data.padding import _check_int
from sparklstm.io import parquet
from sparklstm.optim import checks as optim_checks
from sparklstm.validation import Interval, Wording


@pytest.mark.parametrize(
    ("interval", "text", "inside", "outside"),
    [
        (Interval(), "finite", [-1e300, 0, 1e300], []),
        (Interval(1), ">= 1", [1, 2], [0, 0.999]),
        (Interval(0.0, open_minimum=True), "> 0", [1e-300, 1], [0, -1]),
        (Interval(maximum=5), "<= 5", [5, -3], [5.5]),
        (Interval(maximum=5, open_maximum=True), "< 5", [4.9], [5]),
        (Interval(0.0, 1.0, open_maximum=True), "in [0, 1)", [0, 0.5], [1, -0.1]),
        (Interval(0, 1, open_minimum=True, open_maximum=True), "in (0, 1)", [0.5], [0, 1]),
        (Interval(0.5, 2.5), "in [0.5, 2.5]", [0.5, 2.5], [0.4, 2.6]),
    ],
)
def test_interval_holds_its_values_and_says_its_rule(interval, text, inside, outside):
    assert str(interval) == text
    assert all(x in interval for x in inside)
    assert not any(x in interval for x in outside)


def test_check_real_takes_finite_numbers_in_the_interval():
    assert v.check_real("x", np.float32(0.5), Interval(0, 1)) == 0.5
    assert type(v.check_real("x", np.int64(3))) is float
    with pytest.raises(TypeError, match="^x must be a number, got str$"):
        v.check_real("x", "1")
    for bad in (True, np.bool_(False), 1 + 0j, np.complex128(1), None, [1]):
        with pytest.raises(TypeError):
            v.check_real("x", bad)
    with pytest.raises(ValueError, match=r"^x must be in \[0, 1\), got 1\.0$"):
        v.check_real("x", 1.0, Interval(0, 1, open_maximum=True))
    with pytest.raises(ValueError, match="^x must be > 0, got nan$"):
        v.check_real("x", math.nan, Interval(0, open_minimum=True))
    with pytest.raises(ValueError, match="^x must be finite, got inf$"):
        v.check_real("x", math.inf)
    with pytest.raises(ValueError, match="^x must be finite, got 1000"):  # too large for a float
        v.check_real("x", 10**400)


def test_check_number_takes_nan_and_returns_the_value_unchanged():
    assert v.check_number("x", np.int64(2)) == 2 and type(v.check_number("x", 2)) is int
    assert math.isnan(v.check_number("x", math.nan))
    with pytest.raises(TypeError, match="^pad_value must be a number, got bool$"):
        v.check_number("pad_value", True)


def test_check_int_and_check_positive_int():
    assert v.check_int("n", np.int32(4), 1) == 4 and type(v.check_int("n", np.int32(4))) is int
    assert v.check_int("n", -(10**30)) == -(10**30)  # no bound unless given
    with pytest.raises(TypeError, match="^n must be an int, got float$"):
        v.check_int("n", 2.0)
    with pytest.raises(TypeError, match="^n must be an int, got bool$"):
        v.check_int("n", True)
    with pytest.raises(ValueError, match="^seed must be >= 0, got -1$"):
        v.check_positive_int("seed", -1, minimum=0)
    with pytest.raises(ValueError, match="^hidden_size must be >= 1, got 0$"):
        v.check_positive_int("hidden_size", 0)


def test_check_probability_keeps_its_words_and_refuses_numpy_integers():
    assert v.check_probability("dropout", 0) == 0.0
    assert v.check_probability("dropout", 1, allow_one=True) == 1.0
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\), got 1$"):
        v.check_probability("dropout", 1)
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\], got nan$"):
        v.check_probability("dropout", math.nan, allow_one=True)
    with pytest.raises(TypeError, match="^dropout must be a float, got int64$"):
        v.check_probability("dropout", np.int64(0))


def test_a_wording_changes_the_words_and_the_type_error_only():
    words = Wording(
        wrong_type="{name}: {noun} wanted, not {type} {value!r} ({rule})",
        out_of_range="{name} = {value} (as {number}): must be {rule}; bound {minimum}",
        not_finite="{name} is not finite",
        int_noun="a whole number",
        type_error=LookupError,
    )
    with pytest.raises(LookupError, match=r"^n: a whole number wanted, not str '1' \(>= 1\)$"):
        v.check_int("n", "1", 1, wording=words)
    with pytest.raises(ValueError, match=r"^n = 0 \(as 0\): must be >= 1; bound 1$"):
        v.check_int("n", np.int64(0), 1, wording=words)
    with pytest.raises(ValueError, match=r"^x = -1 \(as -1\.0\): must be >= 0; bound 0\.0$"):
        v.check_real("x", -1, Interval(0.0), wording=words)
    with pytest.raises(ValueError, match="^x is not finite$"):
        v.check_real("x", math.nan, Interval(0.0), wording=words)


def test_check_in_interval_alone():
    v.check_in_interval("k", 3, Interval(1, 3))
    with pytest.raises(ValueError, match=r"^k must be in \[1, 3\], got 4$"):
        v.check_in_interval("k", 4, Interval(1, 3))


def test_check_bool_generator_and_strings():
    assert v.check_bool("flag", np.True_) is True
    with pytest.raises(TypeError, match="^restore_best must be True or False, got None$"):
        v.check_bool("restore_best", None)
    with pytest.raises(ValueError, match="^nesterov must be True or False, got 1$"):
        v.check_bool("nesterov", 1, error=ValueError)

    rng = np.random.default_rng(0)
    assert v.check_generator("rng", rng) is rng
    with pytest.raises(TypeError, match=r"^rng must be a numpy.random.Generator, got int$"):
        v.check_generator("rng", 0)
    with pytest.raises(
        TypeError,
        match=r"^rng must be a numpy.random.Generator \(numpy.random.default_rng\(seed\)\), "
        "got RandomState$",
    ):
        v.check_generator("rng", np.random.RandomState(0), hint=True)

    assert v.check_str("text", "") == ""
    with pytest.raises(TypeError, match="^text must be a str, got bytes$"):
        v.check_str("text", b"x")

    assert v.check_non_empty_str("col", " ") == " "
    assert v.check_non_empty_str("col", None, optional=True) is None
    with pytest.raises(TypeError, match="^col must be a non-empty str, got ''$"):
        v.check_non_empty_str("col", "")
    with pytest.raises(ValueError, match="^out must be a non-empty path or URI, got '  '$"):
        v.check_non_empty_str("out", "  ", noun="path or URI", blank=False, error=ValueError)


def test_column_names_and_paths_are_checked_here_and_importable_from_io_parquet():
    assert parquet.check_column_name is v.check_column_name
    assert parquet.check_path is v.check_path
    assert v.check_column_name("label_col", None, optional=True) is None
    with pytest.raises(TypeError, match="^label_col must be a non-empty str, got None$"):
        v.check_column_name("label_col", None)
    assert v.check_path("path", pathlib.Path("a/b")) == "a/b"
    with pytest.raises(TypeError, match="^path must be a str or os.PathLike, got int$"):
        v.check_path("path", 3)
    with pytest.raises(ValueError, match="^path must be a non-empty path, got ''$"):
        v.check_path("path", "")


def test_resolve_dtype_names_the_argument():
    assert v.resolve_dtype("float32") == np.float32
    with pytest.raises(TypeError, match="^dtype must be float32 or float64, got float16$"):
        v.resolve_dtype(np.float16)
    with pytest.raises(TypeError, match="^float_dtype must be float32 or float64, got 'x'$"):
        v.resolve_dtype("x", "float_dtype")


def test_the_optimizers_wording_raises_value_errors_showing_the_repr():
    assert optim_checks.check_positive("lr", np.float32(0.5)) == 0.5
    cases = [
        (optim_checks.check_positive, ("lr", -1), "lr must be > 0, got -1"),
        (optim_checks.check_positive, ("lr", np.float64(0)), "lr must be > 0, got np.float64(0.0)"),
        (optim_checks.check_non_negative, ("lr", -0.5), "lr must be >= 0, got -0.5"),
        (optim_checks.check_real, ("lr", "0.1"), "lr must be a real number, got '0.1'"),
        (optim_checks.check_real, ("lr", True), "lr must be a real number, got True"),
        (optim_checks.check_positive, ("lr", math.nan), "lr must be finite, got nan"),
        (optim_checks.check_in_unit, ("beta1", 1.0), "beta1 must be in [0, 1), got 1.0"),
        (optim_checks.check_in_unit, ("d", 1.5, True), "d must be in [0, 1], got 1.5"),
        (optim_checks.check_flag, ("amsgrad", 1), "amsgrad must be True or False, got 1"),
        (optim_checks.check_int_at_least, ("step", 2.5, 0), "step must be an int, got 2.5"),
        (optim_checks.check_int_at_least, ("step_size", 0, 1), "step_size must be >= 1, got 0"),
    ]
    for check, args, message in cases:
        with pytest.raises(ValueError) as info:
            check(*args)
        assert str(info.value) == message


def test_the_data_layers_int_wording():
    assert _check_int("n", np.int64(3), 1) == 3
    assert _check_int("n", -5) == -5
    with pytest.raises(ValueError, match="^n = 0: must be >= 1$"):
        _check_int("n", 0, 1)
    with pytest.raises(TypeError, match=r"^batch_size must be an integer, got float 2\.0$"):
        _check_int("batch_size", 2.0, 1)
