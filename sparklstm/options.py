"""How an option is defined, once: its type, default, allowed values, one line of help and the
names it takes in each view (the Python keyword, Spark ML's camelCase Param, the jobs' flag).

A configuration dataclass declares each field with one of :func:`integer`, :func:`real`,
:func:`boolean`, :func:`choice`, :func:`text`, :func:`integers`, :func:`reals` or
:func:`mapping`; the field's metadata carries its :class:`Option`. :func:`check_fields` then
validates a whole instance from those definitions, and the views (``pyspark.ml`` Params, the
command-line options) are built from the same definitions by :func:`options_of`, so no view
writes a name, a default or a list of choices again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparklstm.validation import (
    Interval,
    check_bool,
    check_choice,
    check_in_interval,
    check_int,
    check_non_empty_str,
    check_real,
)

__all__ = [
    "Option",
    "integer",
    "real",
    "boolean",
    "choice",
    "text",
    "integers",
    "reals",
    "mapping",
    "options_of",
    "option_of",
    "check_fields",
    "camel_case",
]

KINDS = ("int", "float", "bool", "choice", "str", "ints", "floats", "mapping")


@dataclass(frozen=True)
class Option:
    """One option's definition (the field name and default come from the dataclass field).

    ``minimum``/``maximum`` bound numbers (``open_minimum``/``open_maximum``: strictly);
    ``optional``: ``None`` is allowed (and means "the library or the data decides");
    ``scopes``: the trainers that take it (``"local"``: the one-process ``fit``; ``"spark"``:
    ``fit_distributed``, its Spark ML Params and the training job); ``param``/``flag``: the
    Spark ML Param name and the command-line flag when they are not the derived ones (``""``:
    the view has no such option); ``view_defaults``: a view whose default differs, with the
    reason in the help (e.g. the jobs' fixed seed).
    """

    kind: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    open_maximum: bool = False
    optional: bool = False
    scopes: frozenset[str] = frozenset({"local", "spark"})
    param: str | None = None
    flag: str | None = None
    resumable: bool = False
    view_defaults: Mapping[str, Any] = field(default_factory=dict)
    # Filled in by options_of: the field's name and default.
    name: str = ""
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}")

    @property
    def param_name(self) -> str:
        """The Spark ML Param name ("" when there is none)."""
        return camel_case(self.name) if self.param is None else self.param

    @property
    def flag_name(self) -> str:
        """The command-line flag ("" when there is none)."""
        return "--" + self.name.replace("_", "-") if self.flag is None else self.flag

    @property
    def bounds(self) -> Interval:
        """The numbers allowed (``minimum``/``maximum`` and whether each is open)."""
        return Interval(self.minimum, self.maximum, self.open_minimum, self.open_maximum)

    def check(self, value: Any) -> Any:
        """``value`` validated and normalised (ints to int, sequences to tuples, ...)."""
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{self.name} must be {self.describe()}, got None")
        if self.kind == "int":
            minimum = -(2**63) if self.minimum is None else int(self.minimum)
            number = check_int(self.name, value, minimum)
            check_in_interval(self.name, number, self.bounds)
            return number
        if self.kind == "float":
            return check_real(self.name, value, self.bounds)
        if self.kind == "bool":
            return check_bool(self.name, value)
        if self.kind == "choice":
            return check_choice(self.name, value, self.choices)
        if self.kind == "str":
            return check_non_empty_str(
                self.name, value, noun="path or URI", blank=False, error=ValueError
            )
        if self.kind in ("ints", "floats"):
            return self._check_sequence(value)
        if not isinstance(value, Mapping):
            raise TypeError(f"{self.name} must be a dict, got {type(value).__name__}")
        return dict(value)

    def _check_sequence(self, value: Any) -> tuple[Any, ...]:
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            value = (value,)
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            raise ValueError(f"{self.name} must be a non-empty list, got {value!r}")
        if len(value) == 0:
            raise ValueError(f"{self.name} must be a non-empty list, got {value!r}")
        if self.kind == "ints":
            minimum = int(self.minimum or 1)
            items = [check_int(f"{self.name}[{i}]", v, minimum) for i, v in enumerate(value)]
        else:
            items = [check_real(f"{self.name}[{i}]", v, self.bounds) for i, v in enumerate(value)]
        return tuple(items)

    def describe(self) -> str:
        """What a valid value is, in words (for messages and help)."""
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        if self.kind == "str":
            return "a non-empty path or URI"
        if self.kind == "mapping":
            return "a dict"
        noun = {"int": "an int", "float": "a number", "ints": "a list of ints"}.get(
            self.kind, "a list of numbers"
        )
        return f"{noun} {self.range_text()}"

    def range_text(self) -> str:
        """The allowed range in words, e.g. ``>= 1`` or ``in [0, 1)``."""
        return str(self.bounds)

    def plain_default(self) -> Any:
        """The default as JSON and Spark ML hold it (tuples as lists)."""
        return plain(self.default)


def plain(value: Any) -> Any:
    """Tuples as lists, recursively: how JSON, argparse and Spark ML Params hold values."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def camel_case(name: str) -> str:
    """``local_steps`` -> ``localSteps`` (Spark ML's Param style)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field(default: Any, option: Option) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"option": option})
    return field(default=default, metadata={"option": option})


def integer(default: int | None, help: str, *, minimum: int = 1, **kw: Any) -> Any:
    """An int option (``minimum`` inclusive, default 1)."""
    return _field(default, Option("int", help, minimum=minimum, **kw))


def real(default: float | None, help: str, **kw: Any) -> Any:
    """A float option (see :class:`Option` for the bounds)."""
    return _field(default, Option("float", help, **kw))


def boolean(default: bool, help: str, **kw: Any) -> Any:
    """A True/False option."""
    return _field(default, Option("bool", help, **kw))


def choice(default: str | None, choices: Sequence[str], help: str, **kw: Any) -> Any:
    """One of a fixed set of strings."""
    return _field(default, Option("choice", help, choices=tuple(choices), **kw))


def text(default: str | None, help: str, **kw: Any) -> Any:
    """A non-empty string (a path or URI)."""
    return _field(default, Option("str", help, **kw))


def integers(default: tuple[int, ...] | None, help: str, **kw: Any) -> Any:
    """A non-empty list of ints >= 1 (held as a tuple)."""
    return _field(default, Option("ints", help, minimum=1, **kw))


def reals(default: tuple[float, ...] | None, help: str, **kw: Any) -> Any:
    """A non-empty list of finite numbers (held as a tuple)."""
    return _field(default, Option("floats", help, **kw))


def mapping(default: Mapping[str, Any] | None, help: str, **kw: Any) -> Any:
    """A dict of further settings (JSON on the command line)."""
    return _field(default, Option("mapping", help, **kw))


def options_of(cls: type, scope: str | None = None) -> tuple[Option, ...]:
    """The options a configuration dataclass defines, with their names and defaults filled in
    (only those of ``scope`` when given), in declaration order."""
    found = []
    for item in dataclasses.fields(cls):
        option = item.metadata.get("option")
        if option is None or (scope is not None and scope not in option.scopes):
            continue
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = None
        found.append(dataclasses.replace(option, name=item.name, default=default))
    return tuple(found)


def option_of(cls: type, name: str) -> Option:
    """The definition of one option of a configuration dataclass, by its field name."""
    for option in options_of(cls):
        if option.name == name:
            return option
    raise KeyError(f"{cls.__name__} has no option {name!r}")


def check_fields(instance: Any) -> None:
    """Validate and normalise every option field of a frozen dataclass instance in place."""
    for option in options_of(type(instance)):
        object.__setattr__(instance, option.name, option.check(getattr(instance, option.name)))
