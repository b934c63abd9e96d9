"""Scalers of positive series for forecasting: log then standardise
(:class:`LogStandardScaler`), or seasonal log differences standardised
(:class:`SeasonalLogDifferenceScaler`, ``d[t] = log x[t] - log x[t - season]``). Each is a frozen
dataclass fit on training values only, with ``transform``/``inverse`` and a JSON ``to_config``
that :func:`scaler_from_config` reads back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sparklstm.data.padding import _check_int
from sparklstm.validation import check_config

__all__ = [
    "LogStandardScaler",
    "SeasonalLogDifferenceScaler",
    "Scaler",
    "scaler_from_config",
    "finite_array",
    "SEASON",
]

SEASON = 12  # the default season: a year of monthly values
_CONFIG_TYPE = "LogStandardScaler"
_DIFFERENCE_CONFIG_TYPE = "SeasonalLogDifferenceScaler"


def finite_array(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf")
    return arr


def _check_moments(scaler: Any) -> None:
    """Check a frozen scaler's ``mean`` (finite) and ``std`` (finite, > 0); store floats."""
    for name in ("mean", "std"):
        value = getattr(scaler, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value}: must be finite")
        object.__setattr__(scaler, name, float(value))
    if scaler.std <= 0:
        raise ValueError(f"std = {scaler.std}: must be > 0")


@dataclass(frozen=True)
class LogStandardScaler:
    """``z = (log(x) - mean) / std``, and back: ``x = exp(z * std + mean)``.

    Fit it with :meth:`fit` on the training values only. ``mean`` and ``std`` are those of
    ``log(x)`` (``std`` with ``ddof=0``); :meth:`to_config` / :meth:`from_config` store them
    in JSON exactly (floats round-trip through ``repr``).
    """

    mean: float
    std: float

    def __post_init__(self) -> None:
        _check_moments(self)

    @classmethod
    def fit(cls, values: ArrayLike) -> LogStandardScaler:
        """Fit on positive values (e.g. the training months)."""
        arr = finite_array("values", values)
        if arr.size < 2:
            raise ValueError(f"values has {arr.size} element(s): need at least 2 to fit a scale")
        if (arr <= 0).any():
            raise ValueError("values must be > 0 (the scaler takes their logarithm)")
        logs = np.log(arr)
        std = float(logs.std())
        if std == 0:
            raise ValueError("values are all equal: cannot standardise")
        return cls(float(logs.mean()), std)

    def transform(self, values: ArrayLike) -> np.ndarray:
        """Scaled values, ``float64``, same shape; ``values`` must be > 0."""
        arr = finite_array("values", values)
        if (arr <= 0).any():
            raise ValueError("values must be > 0 (the scaler takes their logarithm)")
        return (np.log(arr) - self.mean) / self.std

    def inverse_transform(self, scaled: ArrayLike) -> np.ndarray:
        """Original units, ``float64``, same shape."""
        arr = finite_array("scaled", scaled)
        return np.exp(arr * self.std + self.mean)

    @property
    def lag(self) -> int:
        """Values before the first scaled one that :meth:`transform` consumes: none."""
        return 0

    def inverse_forecast(self, scaled: ArrayLike, history: ArrayLike) -> np.ndarray:
        """Scaled forecasts ``[..., H]`` in original units (``history`` is not needed: the
        same call as :meth:`SeasonalLogDifferenceScaler.inverse_forecast`)."""
        del history
        return self.inverse_transform(scaled)

    def to_config(self) -> dict[str, Any]:
        """JSON-safe description; :meth:`from_config` rebuilds an equal scaler."""
        return {"type": _CONFIG_TYPE, "mean": self.mean, "std": self.std}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LogStandardScaler:
        """Inverse of :meth:`to_config`."""
        check_config(config, _CONFIG_TYPE, ("type", "mean", "std"))
        return cls(config["mean"], config["std"])


def _positive_values(name: str, values: ArrayLike) -> np.ndarray:
    arr = finite_array(name, values)
    if (arr <= 0).any():
        raise ValueError(f"{name} must be > 0 (the scaler takes their logarithm)")
    return arr


@dataclass(frozen=True)
class SeasonalLogDifferenceScaler:
    """Standardised seasonal log differences, and back from the months before.

    ``transform``: ``z[t] = (log x[t] - log x[t - season] - mean) / std`` for every ``t`` with
    a value ``season`` steps before, so ``[..., N]`` values give ``[..., N - season]``.
    ``inverse_forecast``: the forecasts after ``history`` (values, oldest first),
    ``log x[t] = log x[t - season] + z[t] * std + mean``, each month built on the one a season
    before it, observed or itself forecast (so ``H > season`` works too).

    Fit it with :meth:`fit` on the training values only (``mean`` and ``std``, ``ddof=0``, of
    their seasonal log differences).
    """

    season: int
    mean: float
    std: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "season", _check_int("season", self.season, 1))
        _check_moments(self)

    @classmethod
    def fit(cls, values: ArrayLike, season: int = SEASON) -> SeasonalLogDifferenceScaler:
        """Fit on positive values ``[N]`` (e.g. the training months), ``N >= season + 2``."""
        season = _check_int("season", season, 1)
        arr = _positive_values("values", values)
        if arr.ndim != 1 or arr.size < season + 2:
            raise ValueError(
                f"values has shape {arr.shape}: need 1-D with at least season + 2 = "
                f"{season + 2} values to fit a scale"
            )
        differences = np.log(arr[season:]) - np.log(arr[:-season])
        std = float(differences.std())
        if std == 0:
            raise ValueError("the seasonal log differences are all equal: cannot standardise")
        return cls(season, float(differences.mean()), std)

    @property
    def lag(self) -> int:
        """Values before the first scaled one that :meth:`transform` consumes: ``season``."""
        return self.season

    def transform(self, values: ArrayLike) -> np.ndarray:
        """``[..., N]`` positive values -> ``float64 [..., N - season]`` scaled differences."""
        arr = _positive_values("values", values)
        if arr.ndim == 0 or arr.shape[-1] <= self.season:
            raise ValueError(
                f"values has shape {arr.shape}: need more than season = {self.season} values "
                "along the last axis"
            )
        logs = np.log(arr)
        return (logs[..., self.season :] - logs[..., : -self.season] - self.mean) / self.std

    def inverse_forecast(self, scaled: ArrayLike, history: ArrayLike) -> np.ndarray:
        """Scaled forecasts ``[..., H]`` -> original units, continuing ``history [..., >= season]``.

        Forecast month ``j`` is ``x[j] = x[j - season] * exp(z[j] * std + mean)``, where
        ``x[j - season]`` is ``history`` for ``j < season`` and forecast month ``j - season``
        otherwise; one vectorised step per season of the horizon."""
        growth = finite_array("scaled", scaled) * self.std + self.mean  # [..., H]
        past = _positive_values("history", history)
        if past.ndim == 0 or past.shape[-1] < self.season:
            raise ValueError(
                f"history has shape {past.shape}: need at least season = {self.season} values "
                "along the last axis"
            )
        if growth.ndim == 0 or growth.shape[:-1] != past.shape[:-1]:
            raise ValueError(
                f"scaled has shape {growth.shape} and history {past.shape}: they must agree "
                "on every axis but the last"
            )
        logs = np.log(past[..., -self.season :])  # the season before the first forecast
        out = np.empty_like(growth)
        for start in range(0, growth.shape[-1], self.season):
            block = growth[..., start : start + self.season]
            logs = logs[..., : block.shape[-1]] + block
            out[..., start : start + block.shape[-1]] = logs
        return np.exp(out)

    def to_config(self) -> dict[str, Any]:
        """JSON-safe description; :meth:`from_config` rebuilds an equal scaler."""
        return {
            "type": _DIFFERENCE_CONFIG_TYPE,
            "season": self.season,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SeasonalLogDifferenceScaler:
        """Inverse of :meth:`to_config`."""
        check_config(config, _DIFFERENCE_CONFIG_TYPE, ("type", "season", "mean", "std"))
        return cls(config["season"], config["mean"], config["std"])


Scaler = LogStandardScaler | SeasonalLogDifferenceScaler


def scaler_from_config(config: Mapping[str, Any]) -> Scaler:
    """The scaler a ``to_config`` document describes, by its ``type``."""
    kinds = {_CONFIG_TYPE: LogStandardScaler, _DIFFERENCE_CONFIG_TYPE: SeasonalLogDifferenceScaler}
    kind = config.get("type") if isinstance(config, Mapping) else None
    if kind not in kinds:
        raise ValueError(f"scaler config type = {kind!r}: must be one of {sorted(kinds)}")
    return kinds[kind].from_config(config)
