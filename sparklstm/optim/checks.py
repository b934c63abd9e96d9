"""Argument checks and the config registry shared by optimizers and schedules."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# argument checks (every failure is a ValueError naming the argument)


def check_real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, np.complexfloating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def check_positive(name: str, value: Any) -> float:
    result = check_real(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result


def check_non_negative(name: str, value: Any) -> float:
    result = check_real(name, value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def check_in_unit(name: str, value: Any, include_one: bool = False) -> float:
    result = check_real(name, value)
    if not (0 <= result <= 1 if include_one else 0 <= result < 1):
        interval = "[0, 1]" if include_one else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return result


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


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
