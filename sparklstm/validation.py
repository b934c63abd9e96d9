"""Input checks shared by the layers, the model and the trainers: each check written once.

Every check raises ``ValueError`` or ``TypeError`` naming the argument and the problem, before
any work is done. The generic checks of scalars (a number, an int >= k, a value in an
:class:`Interval`, a bool, a ``numpy.random.Generator``, a non-empty str, a path) are written
here only; a layer whose messages read differently passes its :class:`Wording` (or ``error=``
/ ``noun=``) instead of writing the check again, so each keeps its exception types and messages.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "check_config",
    "Wording",
    "GOT",
    "REAL_TYPES",
    "check_number",
    "check_real",
    "check_int",
    "check_in_interval",
    "check_bool",
    "check_generator",
    "check_str",
    "check_non_empty_str",
    "check_column_name",
    "check_path",
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

#: What counts as a real number: Python and NumPy ints and floats (never a bool or a complex).
REAL_TYPES: tuple[type, ...] = (int, float, np.integer, np.floating)
_INT_TYPES = (int, np.integer)


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --------------------------------------------------------------------------------------------
# Scalars: numbers, ints, intervals, bools, generators, strings and paths


@dataclass(frozen=True)
class Interval:
    """The values between optional bounds; ``open_minimum``/``open_maximum`` exclude a bound.

    ``str()`` gives the rule in words, as the messages say it: ``>= 1``, ``> 0``, ``<= 5``,
    ``in [0, 1)``, or ``finite`` when there is no bound.
    """

    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    open_maximum: bool = False

    def __contains__(self, value: float) -> bool:
        low, high = self.minimum, self.maximum
        below = low is not None and (value <= low if self.open_minimum else value < low)
        above = high is not None and (value >= high if self.open_maximum else value > high)
        return not (below or above)

    def __str__(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left = "(" if self.open_minimum else "["
            right = ")" if self.open_maximum else "]"
            return f"in {left}{_bound(low)}, {_bound(high)}{right}"
        if low is not None:
            return f"{'>' if self.open_minimum else '>='} {_bound(low)}"
        if high is not None:
            return f"{'<' if self.open_maximum else '<='} {_bound(high)}"
        return "finite"


@dataclass(frozen=True)
class Wording:
    """How a layer words a failed check of a number, and the exception a wrong type raises.

    The fields are format strings over ``name``, ``noun`` (``int_noun`` or ``real_noun``),
    ``type`` (the value's type name), ``value`` (as given), ``number`` (as int or float),
    ``rule`` (the :class:`Interval` in words) and ``minimum`` (the lower bound as given);
    ``noun`` and ``type`` only in ``wrong_type``. ``not_finite`` (NaN or Inf) says the same as
    ``out_of_range`` when empty. Out of range and not finite are always ``ValueError``.
    """

    wrong_type: str = "{name} must be {noun}, got {type}"
    out_of_range: str = "{name} must be {rule}, got {value}"
    not_finite: str = ""
    int_noun: str = "an int"
    real_noun: str = "a number"
    type_error: type[Exception] = TypeError


#: The library's wording: ``seed must be >= 0, got -1``, ``lr must be a number, got str``.
GOT = Wording()


def _wrong_type(name: str, value: Any, noun: str, interval: Interval, wording: Wording) -> None:
    raise wording.type_error(
        wording.wrong_type.format(
            name=name, noun=noun, type=type(value).__name__, value=value, rule=interval
        )
    )


def _out_of_range(
    template: str, name: str, value: Any, number: float, interval: Interval
) -> ValueError:
    return ValueError(
        template.format(
            name=name, value=value, number=number, rule=interval, minimum=interval.minimum
        )
    )


def check_in_interval(
    name: str, value: Any, interval: Interval, *, number: Any = None, wording: Wording = GOT
) -> None:
    """``ValueError`` in ``wording`` unless ``number`` (``value`` as a number; by default
    ``value`` itself) lies in ``interval``."""
    number = value if number is None else number
    if number not in interval:
        raise _out_of_range(wording.out_of_range, name, value, number, interval)


def check_number(
    name: str,
    value: Any,
    *,
    noun: str = "",
    wording: Wording = GOT,
    types: tuple[type, ...] = REAL_TYPES,
) -> Any:
    """``value`` unchanged if it is a number (one of ``types``, never a bool), NaN included."""
    if _is_bool(value) or not isinstance(value, types):
        _wrong_type(name, value, noun or wording.real_noun, Interval(), wording)
    return value


def check_real(
    name: str,
    value: Any,
    interval: Interval = Interval(),
    *,
    noun: str = "",
    wording: Wording = GOT,
    types: tuple[type, ...] = REAL_TYPES,
) -> float:
    """``value`` as a finite float in ``interval``."""
    check_number(name, value, noun=noun, wording=wording, types=types)
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: not finite either
        number = math.inf
    if not math.isfinite(number):
        template = wording.not_finite or wording.out_of_range
        raise _out_of_range(template, name, value, number, interval)
    check_in_interval(name, value, interval, number=number, wording=wording)
    return number


def check_int(name: str, value: Any, minimum: int | None = None, *, wording: Wording = GOT) -> int:
    """``value`` as a Python int (a Python or NumPy integer, never a bool), ``>= minimum``."""
    if _is_bool(value) or not isinstance(value, _INT_TYPES):
        _wrong_type(name, value, wording.int_noun, Interval(minimum), wording)
    number = int(value)
    check_in_interval(name, value, Interval(minimum), number=number, wording=wording)
    return number


def check_bool(name: str, value: Any, *, error: type[Exception] = TypeError) -> bool:
    """``value`` as a bool if it is a Python or NumPy bool."""
    if not _is_bool(value):
        raise error(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_generator(name: str, value: Any, *, hint: bool = False) -> np.random.Generator:
    """``value`` if it is a ``numpy.random.Generator`` (``hint``: the message says how to make
    one); else ``TypeError``."""
    if not isinstance(value, np.random.Generator):
        how = " (numpy.random.default_rng(seed))" if hint else ""
        raise TypeError(f"{name} must be a numpy.random.Generator{how}, got {type(value).__name__}")
    return value


def check_str(name: str, value: Any) -> str:
    """``value`` if it is a str (empty too); else ``TypeError``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_non_empty_str(
    name: str,
    value: Any,
    *,
    noun: str = "str",
    optional: bool = False,
    blank: bool = True,
    error: type[Exception] = TypeError,
) -> str | None:
    """``value`` if it is a non-empty str (``None`` too when ``optional``; only blanks is empty
    unless ``blank``); else ``error`` saying it must be a non-empty ``noun``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not (value if blank else value.strip()):
        raise error(f"{name} must be a non-empty {noun}, got {value!r}")
    return value


def check_column_name(name: str, value: object, optional: bool = False) -> str | None:
    """``value`` if it is a non-empty str (None too when ``optional``); else TypeError naming
    ``name``."""
    return check_non_empty_str(name, value, optional=optional)


def check_path(name: str, path: object) -> str:
    """``path`` as a non-empty str (a str or os.PathLike); else an error naming ``name``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} must be a non-empty path, got {path!r}")
    return text


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An int ``>= minimum`` (1 unless given), in the library's wording."""
    return check_int(name, value, minimum)


def check_probability(name: str, value: Any, allow_one: bool = False) -> float:
    """A float in ``[0, 1)`` (``[0, 1]`` with ``allow_one``); NumPy integers are not taken."""
    interval = Interval(0, 1, open_maximum=not allow_one)
    return check_real(name, value, interval, noun="a float", types=(int, float, np.floating))


# --------------------------------------------------------------------------------------------
# Options, dtypes and arrays


def resolve_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """``"float32"``/``"float64"``/NumPy dtype -> ``np.dtype``; anything else is a TypeError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if resolved.name not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {resolved.name}")
    return resolved


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


def _as_array(x: Any, name: str, dtype: np.dtype | None) -> np.ndarray:
    """``x`` as a NumPy array (lists converted, in ``dtype`` when given); ragged input (rows of
    different lengths) is one line saying to pad it."""
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype=dtype)
        except ValueError as exc:
            raise _ragged_error(name) from exc
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype == object:
        raise _ragged_error(name)
    return x


def as_float_sequences(x: Any, name: str, input_size: int | None, dtype: np.dtype) -> np.ndarray:
    """``x`` as a float ``[batch, time, features]`` array of ``dtype``, checked."""
    x = _as_array(x, name, dtype)
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
    x = _as_array(x, name, None)
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


def check_config(config: Any, config_type: str, keys: Iterable[str]) -> Mapping[str, Any]:
    """``config`` if it is a mapping with exactly ``keys`` whose ``"type"`` is ``config_type``
    (what a ``from_config`` of a JSON-described object reads back)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    expected = set(keys)
    if set(config) != expected:
        raise ValueError(
            f"config must have exactly the keys {sorted(expected)}, got {sorted(config)}"
        )
    if config["type"] != config_type:
        raise ValueError(f"config['type'] = {config['type']!r}: expected {config_type!r}")
    return config
