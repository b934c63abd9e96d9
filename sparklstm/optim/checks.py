"""The optimizers' and schedules' argument checks and their config registry.

The checks are the shared ones of :mod:`sparklstm.validation`, in the optimizers' wording:
every failure is a ``ValueError`` naming the argument and showing the value's ``repr`` (``lr
must be > 0, got -1``, ``lr must be a real number, got '0.1'``, ``lr must be finite, got nan``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from typing import Any

from sparklstm import validation
from sparklstm.validation import Interval, Wording

WORDING = Wording(
    wrong_type="{name} must be {noun}, got {value!r}",
    out_of_range="{name} must be {rule}, got {value!r}",
    not_finite="{name} must be finite, got {value!r}",
    real_noun="a real number",
    type_error=ValueError,
)

check_real = partial(validation.check_real, wording=WORDING)
check_positive = partial(check_real, interval=Interval(0, open_minimum=True))
check_non_negative = partial(check_real, interval=Interval(0))
check_flag = partial(validation.check_bool, error=ValueError)
check_int_at_least = partial(validation.check_int, wording=WORDING)


def check_in_unit(name: str, value: Any, include_one: bool = False) -> float:
    """A real number in ``[0, 1)`` (``[0, 1]`` with ``include_one``)."""
    return check_real(name, value, Interval(0, 1, open_maximum=not include_one))


# --------------------------------------------------------------------------------------------
# the config registry


def set_field(obj: Any, name: str, value: Any) -> None:
    """Store a normalised value on a frozen dataclass (used in ``__post_init__`` only)."""
    object.__setattr__(obj, name, value)


def build(kind: str, classes: tuple[type, ...], name: Any, kwargs: Mapping[str, Any]) -> Any:
    """Instantiate the class registered as ``name`` with ``kwargs``, with clear errors."""
    registry = {cls.name: cls for cls in classes}
    if not isinstance(name, str) or name.lower() not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid names are {', '.join(sorted(registry))}")
    cls = registry[name.lower()]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(
            f"{cls.name}: unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"valid arguments are {', '.join(fields)}"
        )
    missing = [
        f.name
        for f in fields.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{cls.name}: missing required argument(s) {', '.join(missing)}")
    return cls(**kwargs)


def split_config(kind: str, config: Any) -> tuple[Any, dict[str, Any]]:
    if not isinstance(config, Mapping):
        raise ValueError(f"{kind} config must be a mapping, got {type(config).__name__}")
    if "name" not in config:
        raise ValueError(f"{kind} config has no 'name' key: {dict(config)!r}")
    rest = {k: v for k, v in config.items() if k != "name"}
    return config["name"], rest
