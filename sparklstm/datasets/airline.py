"""The Airline passengers series (Box & Jenkins), as shipped inside aeon's wheel.

Monthly totals of international airline passengers, January 1949 to December 1960 (144
values, thousands), read from ``aeon/datasets/data/Airline/Airline.csv`` without importing
aeon (the ``datasets`` extra); nothing is downloaded.

The usual forecasting protocol: the last 36 months (1958-1960) are held out. A model sees
windows of ``input_len`` scaled months and predicts the next ``horizon`` months
(``SequenceModel(input_size=1, head="last", task="regression", output_size=horizon)``). The
scaler (log, then standardise) is fit on the training months only and undone by
:func:`forecast`, which works in passenger units. Training windows have every target month
before the held-out part; test windows have their targets in it, ``horizon`` months at a
time, and their inputs are the months just before (which may be observed test months).

With ``seasonal_difference=True`` the windows hold seasonal log differences instead,
``d[t] = log x[t] - log x[t - 12]`` (the year-on-year growth, SARIMA's ``D = 1``),
standardised by :class:`SeasonalLogDifferenceScaler`; a forecast then needs the 12 months
before the model's inputs too, and is rebuilt from them month by month,
``log x[t] = log x[t - 12] + d[t]``. A trend then becomes a growth rate the network has seen
in training, instead of a level above everything it has seen.

Notation: ``N`` months in the series, ``L = input_len``, ``H = horizon``.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from sparklstm.data.padding import _check_int
from sparklstm.data.scaling import (
    SEASON,
    LogStandardScaler,
    Scaler,
    SeasonalLogDifferenceScaler,
    scaler_from_config,
)
from sparklstm.data.scaling import finite_array as _finite_array
from sparklstm.datasets.extra import package_dir
from sparklstm.metrics import mape

if TYPE_CHECKING:
    from sparklstm.model import SequenceModel
    from sparklstm.model.seq2seq import Seq2SeqModel

__all__ = [
    "TEST_MONTHS",
    "SEASON",
    "LEVELS",
    "load_airline",
    "LogStandardScaler",
    "SeasonalLogDifferenceScaler",
    "scaler_from_config",
    "window_levels",
    "forecast_windows",
    "ForecastSplit",
    "holdout_windows",
    "airline_windows",
    "forecast",
    "forecast_recursive",
    "seasonal_naive",
    "mape",
]

logger = logging.getLogger(__name__)

TEST_MONTHS = 36
LEVELS = ("none", "input-mean")
_NEEDED_FOR = "sparklstm.datasets.airline (the Airline.csv shipped in aeon's wheel)"


def load_airline() -> tuple[np.ndarray, np.ndarray]:
    """The Airline passengers series.

    Returns
    -------
    months : np.ndarray
        ``datetime64[M] [144]``, 1949-01 to 1960-12.
    passengers : np.ndarray
        ``float64 [144]``, thousands of passengers per month.

    Raises
    ------
    ImportError
        aeon is not installed (``pip install 'sparklstm[datasets]'``).
    """
    path = (
        package_dir("aeon", "aeon", _NEEDED_FOR) / "datasets" / "data" / "Airline" / "Airline.csv"
    )
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0]] != ["Date", "Passengers"]:
        raise ValueError(f"{path}: expected the header 'Date,Passengers'")
    body = [r for r in rows[1:] if r]
    months = np.array([r[0].strip() for r in body], dtype="datetime64[M]")
    passengers = np.array([float(r[1]) for r in body], dtype=np.float64)
    if len(months) > 1 and not np.all(np.diff(months) == np.timedelta64(1, "M")):
        raise ValueError(f"{path}: months are not consecutive")
    return months, passengers


def window_levels(scaled: ArrayLike, level: str) -> np.ndarray:
    """``[n, 1]`` level of each window of scaled inputs ``[n, L]`` or ``[n, L, 1]``: their mean
    for ``"input-mean"``, zero for ``"none"``. A model trained on ``inputs - level`` and
    ``targets - level`` forecasts ``output + level`` (scaled)."""
    if level not in LEVELS:
        raise ValueError(f"level = {level!r}: must be one of {list(LEVELS)}")
    flat = np.asarray(scaled, dtype=np.float64).reshape(len(scaled), -1)
    if level == "none":
        return np.zeros((len(flat), 1))
    return flat.mean(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def _series(values: ArrayLike) -> np.ndarray:
    arr = _finite_array("series", values)
    if arr.ndim != 1:
        raise ValueError(f"series must be 1-D, got shape {arr.shape}")
    return arr


def forecast_windows(
    series: ArrayLike, input_len: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Input/target windows over one series.

    Window ``i`` starts at ``s = i * stride``: ``inputs[i] = series[s : s + L]`` and
    ``targets[i] = series[s + L : s + L + H]``.

    Parameters
    ----------
    series : array_like, shape [N]
    input_len, horizon, stride : int
        ``L >= 1``, ``H >= 1``, ``stride >= 1``; ``N >= L + H``.

    Returns
    -------
    inputs : np.ndarray
        ``float64 [n, L]``.
    targets : np.ndarray
        ``float64 [n, H]``, with ``n = (N - L - H) // stride + 1``.
    """
    arr = _series(series)
    input_len = _check_int("input_len", input_len, 1)
    horizon = _check_int("horizon", horizon, 1)
    stride = _check_int("stride", stride, 1)
    if arr.shape[0] < input_len + horizon:
        raise ValueError(
            f"series has {arr.shape[0]} values: need at least input_len + horizon = "
            f"{input_len + horizon}"
        )
    windows = sliding_window_view(arr, input_len + horizon)[::stride]
    return np.ascontiguousarray(windows[:, :input_len]), np.ascontiguousarray(
        windows[:, input_len:]
    )


@dataclass(frozen=True)
class ForecastSplit:
    """Scaled training and test windows, and the scaler fit on the training months.

    ``x_*`` are ``float64 [n, L, 1]`` (one feature per step) and ``y_*`` are
    ``float64 [n, H]``, all scaled. ``*_target_start[i]`` is the index in the series of
    window ``i``'s first target month (its inputs are the ``L`` months before, made from the
    ``L + scaler.lag`` months before).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scaler: Scaler
    train_target_start: np.ndarray
    test_target_start: np.ndarray


def holdout_windows(
    series: ArrayLike,
    input_len: int,
    horizon: int,
    test_months: int = TEST_MONTHS,
    seasonal_difference: bool = False,
) -> ForecastSplit:
    """Scaled windows with the last ``test_months`` values held out as test targets.

    The scaler is fit on ``series[:N - test_months]``. Training windows (stride 1) are all
    windows whose targets end by ``N - test_months``. Test windows tile the held-out part:
    targets ``series[c + k H : c + (k + 1) H]`` for ``c = N - test_months`` and
    ``k = 0 .. test_months / H - 1``, each with the ``L`` values before it as inputs.
    With ``seasonal_difference`` the windows hold :class:`SeasonalLogDifferenceScaler`
    values, so the first ``SEASON`` months are never a window's input or target.

    Parameters
    ----------
    series : array_like, shape [N]
        Positive values.
    input_len, horizon : int
        ``L >= 1``, ``H >= 1``; ``H`` must divide ``test_months``.
    test_months : int, default 36
        Held-out values, ``>= 1``; ``N - test_months >= L + H`` (at least one training
        window; ``+ SEASON`` with ``seasonal_difference``).
    seasonal_difference : bool, default False
        Scale with :class:`SeasonalLogDifferenceScaler` instead of :class:`LogStandardScaler`.

    Returns
    -------
    ForecastSplit
    """
    arr = _series(series)
    input_len = _check_int("input_len", input_len, 1)
    horizon = _check_int("horizon", horizon, 1)
    test_months = _check_int("test_months", test_months, 1)
    cut = arr.shape[0] - test_months
    lag = SEASON if seasonal_difference else 0
    if test_months % horizon:
        raise ValueError(
            f"horizon = {horizon} must divide test_months = {test_months} (test windows tile "
            "the held-out months)"
        )
    if cut < input_len + horizon + lag:
        needed = "input_len + horizon" + (" + 12 (seasonal_difference)" if lag else "")
        raise ValueError(
            f"series has {arr.shape[0]} values: {cut} before the {test_months} held-out ones, "
            f"need at least {needed} = {input_len + horizon + lag}"
        )
    scaler: Scaler = (
        SeasonalLogDifferenceScaler.fit(arr[:cut]) if lag else LogStandardScaler.fit(arr[:cut])
    )
    scaled = scaler.transform(arr)  # scaled[i] belongs to month i + lag
    x_train, y_train = forecast_windows(scaled[: cut - lag], input_len, horizon)
    x_test, y_test = forecast_windows(scaled[cut - lag - input_len :], input_len, horizon, horizon)
    train_start = np.arange(len(x_train), dtype=np.int64) + input_len + lag
    test_start = cut + horizon * np.arange(len(x_test), dtype=np.int64)
    logger.debug(
        "%d training and %d test windows (L=%d, H=%d, %d held-out values)",
        len(x_train),
        len(x_test),
        input_len,
        horizon,
        test_months,
    )
    return ForecastSplit(
        x_train[..., None], y_train, x_test[..., None], y_test, scaler, train_start, test_start
    )


def airline_windows(
    input_len: int = 24,
    horizon: int = 12,
    test_months: int = TEST_MONTHS,
    seasonal_difference: bool = False,
) -> ForecastSplit:
    """:func:`holdout_windows` over the Airline series (last 36 months held out)."""
    return holdout_windows(load_airline()[1], input_len, horizon, test_months, seasonal_difference)


# --------------------------------------------------------------------------------------------
# Forecasts and their error
# --------------------------------------------------------------------------------------------


def forecast(
    model: SequenceModel | Seq2SeqModel,
    scaler: Scaler,
    history: ArrayLike,
    batch_size: int = 512,
    level: str = "none",
    horizon: int | None = None,
) -> np.ndarray:
    """Forecast in original units from the months before, with a fitted model.

    Parameters
    ----------
    model : SequenceModel or Seq2SeqModel
        Trained on scaled windows (e.g. :func:`holdout_windows`): a ``SequenceModel`` with
        ``input_size=1``, ``head="last"``, ``task="regression"``, ``output_size=H``, or a
        ``Seq2SeqModel`` with ``input_size=1`` and real-valued targets of ``output_size=K``
        months per decoder step, which writes ``H / K`` steps, each fed back as the next
        decoder input (:meth:`Seq2SeqModel.forecast`; ``K = 1``: month by month, ``K = H``:
        all ``H`` months in one step).
    scaler : LogStandardScaler or SeasonalLogDifferenceScaler
        The scaler the training windows were made with.
    history : array_like
        ``[L + scaler.lag]`` or ``[n, L + scaler.lag]`` values in original units
        (passengers), oldest first.
    batch_size : int, default 512
    level : {"none", "input-mean"}, default "none"
        The window level the model was trained without (:func:`window_levels`): taken out of
        the scaled inputs and added back to the outputs.
    horizon : int, optional
        ``H``: needed for a ``Seq2SeqModel`` (a multiple of its ``output_size``); for a
        ``SequenceModel`` it is ``output_size`` and, if given, must equal it.

    Returns
    -------
    np.ndarray
        ``float64 [H]`` or ``[n, H]``: the next ``H`` values in original units.
    """
    steps = _forecast_steps(model, horizon)
    arr = np.asarray(history, dtype=np.float64)
    single = arr.ndim == 1
    if arr.ndim not in (1, 2) or arr.shape[-1] <= scaler.lag:
        raise ValueError(
            f"history must be [L + {scaler.lag}] or [n, L + {scaler.lag}] with L >= 1, got "
            f"shape {arr.shape}"
        )
    arr = arr[None] if single else arr
    scaled = scaler.transform(arr)  # (n, L)
    levels = window_levels(scaled, level)  # (n, 1)
    inputs = (scaled - levels)[..., None]  # (n, L, 1)
    if steps is None:
        outputs = model.forward(inputs, batch_size=batch_size)  # (n, H)
    else:
        # (n, H / K, K) decoder steps of K months each, in time order -> (n, H)
        outputs = model.forecast(inputs, steps).reshape(len(inputs), -1)
    result = scaler.inverse_forecast(np.asarray(outputs, dtype=np.float64) + levels, arr)
    return result[0] if single else result


def _forecast_steps(model: SequenceModel | Seq2SeqModel, horizon: int | None) -> int | None:
    """Decoder steps of a ``Seq2SeqModel`` forecasting ``horizon`` values (None for a
    ``SequenceModel``, which writes them all at once); checks the model and ``horizon``."""
    cfg = model.config
    if cfg.head == "seq2seq":
        if cfg.token_source or cfg.token_target or cfg.input_size != 1:
            raise ValueError(
                "forecast needs a Seq2SeqModel with input_size=1 and real-valued targets "
                "(output_size), not token ids"
            )
        per_step = int(cfg.output_size)
        if horizon is None or isinstance(horizon, bool) or int(horizon) != horizon:
            raise ValueError(
                f"horizon = {horizon!r}: a Seq2SeqModel forecast needs horizon, the months "
                f"to write (a multiple of its output_size = {per_step})"
            )
        if horizon < 1 or horizon % per_step:
            raise ValueError(
                f"horizon = {horizon}: must be a positive multiple of the Seq2SeqModel's "
                f"output_size = {per_step} (months per decoder step)"
            )
        return int(horizon) // per_step
    if cfg.uses_tokens or cfg.input_size != 1 or cfg.head != "last" or cfg.task != "regression":
        raise ValueError("forecast needs a model with input_size=1, head='last', task='regression'")
    if horizon is not None and horizon != cfg.output_size:
        raise ValueError(
            f"horizon = {horizon}: this SequenceModel forecasts output_size = "
            f"{cfg.output_size} values; leave horizon out or give that"
        )
    return None


def forecast_recursive(
    model: SequenceModel | Seq2SeqModel,
    scaler: Scaler,
    history: ArrayLike,
    input_len: int,
    steps: int,
    batch_size: int = 512,
    level: str = "none",
    horizon: int | None = None,
) -> np.ndarray:
    """Forecast ``steps`` values after ``history`` from one origin, feeding forecasts back.

    Each call of :func:`forecast` reads the last ``input_len + scaler.lag`` known values
    (observed, then forecast) and adds the model's ``H`` next ones, until ``steps`` are known:
    the fixed-origin protocol, where no value after ``history`` is ever an input.

    Parameters
    ----------
    model, scaler, batch_size, level, horizon : as for :func:`forecast` (each call adds
        ``horizon`` values; for a ``Seq2SeqModel`` that is the horizon it was trained on)
    history : array_like
        ``[N]`` or ``[n, N]`` values in original units, ``N >= input_len + scaler.lag``.
    input_len : int
        ``L``, the window length the model was trained on.
    steps : int
        Values to forecast, >= 1.

    Returns
    -------
    np.ndarray
        ``float64 [steps]`` or ``[n, steps]``.
    """
    input_len = _check_int("input_len", input_len, 1)
    steps = _check_int("steps", steps, 1)
    known = np.asarray(history, dtype=np.float64)
    reach = input_len + scaler.lag
    if known.ndim not in (1, 2) or known.shape[-1] < reach:
        raise ValueError(
            f"history has shape {known.shape}: need [N] or [n, N] with N >= input_len + "
            f"{scaler.lag} = {reach}"
        )
    origin = known.shape[-1]
    while known.shape[-1] < origin + steps:
        block = forecast(model, scaler, known[..., -reach:], batch_size, level, horizon)
        known = np.concatenate([known, block], axis=-1)
    return known[..., origin : origin + steps]


def seasonal_naive(history: ArrayLike, horizon: int, season: int = SEASON) -> np.ndarray:
    """Repeat the last ``season`` values for ``horizon`` steps.

    Parameters
    ----------
    history : array_like
        ``[N]`` or ``[n, N]`` values with ``N >= season``.
    horizon : int
        Steps to forecast, >= 1.
    season : int, default 12

    Returns
    -------
    np.ndarray
        ``[horizon]`` or ``[n, horizon]``: ``forecast[j] = history[N - season + j % season]``.
    """
    arr = np.asarray(history, dtype=np.float64)
    horizon = _check_int("horizon", horizon, 1)
    season = _check_int("season", season, 1)
    if arr.ndim not in (1, 2) or arr.shape[-1] < season:
        raise ValueError(
            f"history must be [N] or [n, N] with N >= season = {season}, got shape {arr.shape}"
        )
    n = arr.shape[-1]
    return arr[..., n - season + np.arange(horizon) % season]
