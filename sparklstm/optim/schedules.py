"""Learning-rate schedules: the rate as a function of the step count."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sparklstm.optim.checks import (
    build,
    check_in_unit,
    check_int_at_least,
    check_non_negative,
    check_positive,
    set_field,
    split_config,
)

# --------------------------------------------------------------------------------------------
# learning-rate schedules


@dataclass(frozen=True)
class Schedule(abc.ABC):
    """Base class of learning-rate schedules: the rate as a function of the step count."""

    name: ClassVar[str]

    @abc.abstractmethod
    def _lr(self, step: int) -> float:
        """The rate for a validated ``step``."""

    def lr_at(self, step: int) -> float:
        """Learning rate of the update after ``step`` updates (0-based).

        Parameters
        ----------
        step : int
            Number of updates already done (``state.step``), >= 0.

        Returns
        -------
        float
        """
        return float(self._lr(check_int_at_least("step", step, 0)))

    def to_config(self) -> dict[str, Any]:
        """JSON-safe parameters, with the schedule's ``"name"``.

        Returns
        -------
        dict
        """
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ConstantLR(Schedule):
    """The same rate at every step.

    Parameters
    ----------
    lr : float
        The learning rate (> 0).
    """

    name: ClassVar[str] = "constant"
    lr: float

    def __post_init__(self) -> None:
        set_field(self, "lr", check_positive("lr", self.lr))

    def _lr(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepLR(Schedule):
    """``lr * gamma ** (step // step_size)``: decay by ``gamma`` every ``step_size`` updates.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    step_size : int
        Updates between decays (>= 1).
    gamma : float
        Multiplicative factor (> 0).
    """

    name: ClassVar[str] = "step"
    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "step_size", check_int_at_least("step_size", self.step_size, 1))
        set_field(self, "gamma", check_positive("gamma", self.gamma))

    def _lr(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class ExponentialLR(Schedule):
    """``lr * gamma ** step``.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    gamma : float
        Factor per update (> 0).
    """

    name: ClassVar[str] = "exponential"
    lr: float
    gamma: float

    def __post_init__(self) -> None:
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "gamma", check_positive("gamma", self.gamma))

    def _lr(self, step: int) -> float:
        return self.lr * self.gamma**step


@dataclass(frozen=True)
class CosineLR(Schedule):
    """Cosine annealing from ``lr`` to ``min_lr`` over ``total_steps``, then ``min_lr``.

    ``min_lr + (lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2`` for
    ``step < total_steps``.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    total_steps : int
        Length of the annealing (>= 1).
    min_lr : float
        Final rate, in [0, lr].
    """

    name: ClassVar[str] = "cosine"
    lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "total_steps", check_int_at_least("total_steps", self.total_steps, 1))
        set_field(self, "min_lr", check_non_negative("min_lr", self.min_lr))
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr ({self.lr}), got {self.min_lr}")

    def _lr(self, step: int) -> float:
        if step >= self.total_steps:
            return self.min_lr
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.total_steps))
        return self.min_lr + (self.lr - self.min_lr) * cosine


@dataclass(frozen=True)
class WarmupLR(Schedule):
    """Linear warm-up before another schedule.

    For ``step < warmup_steps`` the rate is
    ``base.lr_at(0) * (start_factor + (1 - start_factor) * step / warmup_steps)``; afterwards
    ``base.lr_at(step - warmup_steps)``.

    Parameters
    ----------
    base : Schedule or its config dict
        The schedule that starts once warm-up ends.
    warmup_steps : int
        Length of the warm-up (>= 0; 0 means none).
    start_factor : float
        Fraction of ``base.lr_at(0)`` at step 0, in [0, 1].
    """

    name: ClassVar[str] = "warmup"
    base: Schedule
    warmup_steps: int
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        base = self.base
        if isinstance(base, Mapping):
            base = schedule_from_config(base)
        if not isinstance(base, Schedule):
            raise ValueError(f"base must be a Schedule or its config dict, got {base!r}")
        set_field(self, "base", base)
        set_field(self, "warmup_steps", check_int_at_least("warmup_steps", self.warmup_steps, 0))
        set_field(
            self, "start_factor", check_in_unit("start_factor", self.start_factor, include_one=True)
        )

    def _lr(self, step: int) -> float:
        if step < self.warmup_steps:
            fraction = self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
            return self.base.lr_at(0) * fraction
        return self.base.lr_at(step - self.warmup_steps)

    def to_config(self) -> dict[str, Any]:
        """JSON-safe parameters; ``"base"`` is the base schedule's config.

        Returns
        -------
        dict
        """
        return {
            "name": self.name,
            "base": self.base.to_config(),
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
        }


def _schedule_classes() -> tuple[type[Schedule], ...]:
    return (ConstantLR, StepLR, ExponentialLR, CosineLR, WarmupLR)


def make_schedule(name: str, **kwargs: Any) -> Schedule:
    """Build a learning-rate schedule by name.

    Parameters
    ----------
    name : str
        ``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"`` or ``"warmup"``
        (case-insensitive).
    **kwargs
        The schedule's parameters (``base`` of ``"warmup"`` may be a config dict).

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError
        For an unknown name, an unknown or missing argument, or an invalid value.
    """
    return build("schedule", _schedule_classes(), name, kwargs)


def schedule_from_config(config: Mapping[str, Any]) -> Schedule:
    """Inverse of :meth:`Schedule.to_config`.

    Parameters
    ----------
    config : Mapping[str, Any]
        ``{"name": ..., **parameters}``.

    Returns
    -------
    Schedule
    """
    name, kwargs = split_config("schedule", config)
    return make_schedule(name, **kwargs)
