"""The anomaly-detection series shipped inside aeon's wheel (no download, aeon not imported).

- ``KDD-TSAD_135``: ``135_UCR_Anomaly_InternalBleeding16`` of the UCR time-series anomaly
  archive (Wu & Keogh 2021; the KDD Cup 2021 data): one univariate series of 7,501 steps whose
  first 1,200 (the ``_TRAIN`` file, the same values) are normal, with one labelled anomaly in
  the rest (steps 4,187 to 4,198).
- ``Daphnet_S06R02E0``: subject 6, run 2 of the Daphnet freezing-of-gait recordings (Bächlin
  et al. 2010): 7,040 steps of 9 accelerometer channels (ankle, thigh, trunk; 3 axes each) at
  64 Hz. In aeon's copy every ``is_anomaly`` label is 0: this recording holds no labelled
  freezing episode, so it measures false alarms only.

Files are CSV with a ``timestamp`` column first, the values, then ``is_anomaly`` (0/1).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sparklstm.datasets.extra import package_dir

__all__ = ["AnomalySeries", "ANOMALY_SERIES", "load_anomaly_series", "read_anomaly_csv"]

_NEEDED_FOR = "sparklstm.datasets.anomaly (the anomaly CSV files shipped in aeon's wheel)"

# name -> (folder, full-series file, normal training file or None)
ANOMALY_SERIES = {
    "KDD-TSAD_135": (
        "KDD-TSAD_135",
        "135_UCR_Anomaly_InternalBleeding16_TEST.csv",
        "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
    ),
    "Daphnet_S06R02E0": ("Daphnet_S06R02E0", "S06R02E0.csv", None),
}


class AnomalySeries(NamedTuple):
    """One labelled series: ``values`` float64 ``(steps, channels)``, ``labels`` int64
    ``(steps,)`` (1: anomalous), ``channels`` their names, and ``train_end``: the steps
    ``[0, train_end)`` are the archive's normal training part (None when it defines none)."""

    name: str
    values: np.ndarray
    labels: np.ndarray
    channels: tuple[str, ...]
    train_end: int | None


def read_anomaly_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(values, labels, channel names)`` of one ``timestamp, values..., is_anomaly`` CSV."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        if len(header) < 3 or header[-1] != "is_anomaly":
            raise ValueError(f"{path}: expected columns timestamp, values..., is_anomaly")
        body = [row for row in rows if row]
    values = np.array([[float(v) for v in row[1:-1]] for row in body], dtype=np.float64)
    labels = np.array([int(row[-1]) for row in body], dtype=np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: is_anomaly must be 0 or 1")
    return values, labels, tuple(header[1:-1])


def load_anomaly_series(name: str) -> AnomalySeries:
    """Load ``KDD-TSAD_135`` or ``Daphnet_S06R02E0`` from aeon's installed data files.

    Raises
    ------
    ImportError
        aeon is not installed (``pip install 'sparklstm[datasets]'``).
    """
    if name not in ANOMALY_SERIES:
        raise ValueError(f"name = {name!r}: not one of {sorted(ANOMALY_SERIES)}")
    folder, full_name, train_name = ANOMALY_SERIES[name]
    base = package_dir("aeon", "aeon", _NEEDED_FOR) / "datasets" / "data" / folder
    values, labels, channels = read_anomaly_csv(base / full_name)
    train_end = None
    if train_name is not None:
        train_values, train_labels, _ = read_anomaly_csv(base / train_name)
        train_end = len(train_values)
        if not np.array_equal(train_values, values[:train_end]) or train_labels.any():
            raise ValueError(f"{name}: the training file is not the normal start of the series")
    return AnomalySeries(name, values, labels, channels, train_end)
