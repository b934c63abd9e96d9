"""Anomaly detection on the series shipped with aeon: the LSTM forecaster (Gaussian NLL head,
and an MSE head) beside an LSTM autoencoder and two simple baselines (moving-average residual,
matrix-profile discord).

    python -m bench.anomaly KDD-TSAD_135 --seeds 0 1 2
    python -m bench.anomaly Daphnet_S06R02E0 --seeds 0 1 2

writes ``bench/accuracy/anomaly_<name>.json``.

Protocol (every setting is chosen without the test labels):

- The normal part is cut in two: the detectors fit on its first 80% (``fit``) and are
  calibrated -- and the forecaster's settings chosen -- on the rest (``calibration``).
  KDD-TSAD_135: the normal part is the archive's training part (steps 0-1199); the test part
  is steps 1200-7500 (one labelled anomaly). Daphnet_S06R02E0 (no labelled anomaly at all in
  aeon's copy): the first 70% of the recording is the normal part, the last 30% the test part,
  on which only the false-alarm rate can be measured.
- The period ``p`` is the first autocorrelation peak of the fit part (no labels); the window
  score averages ``p // 4`` steps (a quarter period, declared before looking at any test
  score); the baselines are run with windows of ``p`` and of ``p // 4`` steps (both kept).
- Forecaster settings (hidden size, training window) are chosen from a small grid by the
  validation loss (NLL, or MSE for the MSE head) on the calibration part: forecasting quality
  on normal data, never an anomaly label.
- Every detector's threshold is the (1 - 1%) quantile of its window scores on the
  calibration part; streams are scored from step 0 with carried state (the normal part warms
  the state), metrics are computed on the test part only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm.anomaly import (
    AnomalyDetector,
    average_precision,
    flag_metrics,
    quantile_threshold,
    top_score_hit,
    window_scores,
)
from sparklstm.anomaly.baselines import discord_distances, moving_average_residual
from sparklstm.anomaly.detector import Standardiser
from sparklstm.datasets.anomaly import ANOMALY_SERIES, load_anomaly_series

logger = logging.getLogger("bench.anomaly")

OUT_DIR = Path(__file__).resolve().parent / "accuracy"
FIT_SHARE = 0.8
FALSE_ALARM_RATE = 0.01
GRID = [
    {"hidden_sizes": [32], "window_length": 64},
    {"hidden_sizes": [32], "window_length": 128},
    {"hidden_sizes": [64], "window_length": 128},
]
TRAIN = {
    "epochs": 1000,
    "batch_size": 16,
    "lr": 3e-3,
    "clip_norm": 5.0,
    "early_stopping": 50,
    "restore_best": True,
    "progress": False,
}


def estimate_period(x: np.ndarray, low: int = 8, high: int = 512) -> int:
    """The lag of the highest autocorrelation peak in ``[low, high]`` after the first
    negative value, of the channel-summed autocorrelation of standardised ``x``."""
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    n = len(z)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(z, size, axis=0)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=0)[:n].sum(axis=1)
    acf /= acf[0]
    high = min(high, n // 2)
    negative = np.flatnonzero(acf[1:high] < 0)
    start = max(low, int(negative[0]) + 1 if negative.size else low)
    peaks = [t for t in range(start, high - 1) if acf[t] >= acf[t - 1] and acf[t] >= acf[t + 1]]
    if not peaks:
        return low
    return int(max(peaks, key=lambda t: acf[t]))


def split(name: str) -> dict[str, Any]:
    series = load_anomaly_series(name)
    values, labels = series.values, series.labels
    normal_end = series.train_end if series.train_end is not None else int(0.7 * len(values))
    if labels[:normal_end].any():
        raise ValueError(f"{name}: labelled anomalies inside the normal part")
    fit_end = int(FIT_SHARE * normal_end)
    return {
        "series": series,
        "values": values,
        "labels": labels,
        "normal_end": normal_end,
        "fit_end": fit_end,
    }


def evaluate(
    step: np.ndarray, window: np.ndarray, threshold: float, labels: np.ndarray, begin: int
) -> dict[str, Any]:
    """Metrics of the test part ``[begin, end)``: flags of the window score at the threshold,
    average precision and (one anomaly) the top-score hit, of the step and window scores."""
    test_labels = labels[begin:]
    flags = window[begin:] > threshold
    at_threshold = flag_metrics(test_labels, flags)
    if not test_labels.any():
        # No labelled anomaly: precision, recall and F1 are undefined; false alarms are not.
        at_threshold = {
            "flagged": at_threshold["fp"],
            "steps": at_threshold["fp"] + at_threshold["tn"],
            "false_alarm_rate": at_threshold["false_alarm_rate"],
        }
    result: dict[str, Any] = {"threshold": threshold, "at_threshold": at_threshold}
    if test_labels.any():
        for kind, scores in (("step", step), ("window", window)):
            result[f"{kind}_average_precision"] = average_precision(test_labels, scores[begin:])
            hit = top_score_hit(test_labels, scores[begin:])
            hit["top_index"] += begin
            hit["range"] = [r + begin for r in hit["range"]]
            result[f"{kind}_top_hit"] = hit
    return result


def run_lstm(data: dict[str, Any], loss: str, seeds: list[int], score_window: int) -> dict:
    values, labels = data["values"], data["labels"]
    fit_part = values[: data["fit_end"]]
    calibration = values[data["fit_end"] : data["normal_end"]]
    features = values.shape[1]
    common = dict(input_size=features, regression_loss=loss, score_window=score_window)
    # Settings: the grid point with the lowest validation loss (seed 0).
    search = []
    for point in GRID:
        detector = AnomalyDetector(seed=seeds[0], **common, **point)
        started = time.perf_counter()
        history = detector.fit([fit_part], validation=[calibration], **TRAIN)
        best = min(row["val_loss"] for row in history.rows)
        search.append({**point, "val_loss": best, "seconds": time.perf_counter() - started})
        logger.info("%s %s val_loss %.4f", loss, point, best)
    chosen = min(search, key=lambda row: row["val_loss"])
    setting = {k: chosen[k] for k in GRID[0]}
    runs = []
    for seed in seeds:
        detector = AnomalyDetector(seed=seed, **common, **setting)
        started = time.perf_counter()
        history = detector.fit([fit_part], validation=[calibration], **TRAIN)
        seconds = time.perf_counter() - started
        normal = values[: data["normal_end"]]
        detector.calibrate([normal], start=data["fit_end"])
        scores = detector.score(values)
        row = evaluate(scores.step, scores.window, detector.threshold, labels, data["normal_end"])
        row.update(
            seed=seed,
            epochs=len(history.rows),
            best_val_loss=min(r["val_loss"] for r in history.rows),
            train_seconds=seconds,
        )
        runs.append(row)
        logger.info("%s seed %d: %s", loss, seed, _brief(row))
    return {
        "model": {"cell": "lstm", "regression_loss": loss, **setting},
        "score": "nll" if loss == "gaussian_nll" else "squared_error",
        "selection": search,
        "runs": runs,
        "summary": _summary(runs),
    }


AUTOENCODER = {"hidden_sizes": [32], "attention": "none", "sampling_rate": 0.0}


def run_autoencoder(data: dict[str, Any], seeds: list[int], score_window: int) -> dict:
    """An LSTM encoder-decoder (Seq2SeqModel, no attention) reconstructing each window of
    ``score_window`` standardised steps backwards from the encoder's final state (decoded
    recursively at scoring); the step score of ``t`` is the mean squared reconstruction error
    of the window ending at ``t`` (NaN for the first ``score_window - 1`` steps), the window
    score its trailing mean, the threshold as for the other detectors."""
    from numpy.lib.stride_tricks import sliding_window_view

    from sparklstm.model.seq2seq import Seq2SeqModel

    values, labels = data["values"], data["labels"]
    scaler = Standardiser.fit([values[: data["fit_end"]]])
    z = scaler(values).astype(np.float32)
    m = score_window
    windows = sliding_window_view(z, m, axis=0).transpose(0, 2, 1)  # (n, m, F); n = L - m + 1
    fit_windows = windows[: data["fit_end"] - m + 1]
    calibration_windows = windows[data["fit_end"] - m + 1 : data["normal_end"] - m + 1]
    runs = []
    for seed in seeds:
        model = Seq2SeqModel(
            input_size=values.shape[1], output_size=values.shape[1], seed=seed, **AUTOENCODER
        )
        started = time.perf_counter()
        history = model.fit(
            np.ascontiguousarray(fit_windows),
            np.ascontiguousarray(fit_windows[:, ::-1]),
            validation=(
                np.ascontiguousarray(calibration_windows),
                np.ascontiguousarray(calibration_windows[:, ::-1]),
            ),
            **{**TRAIN, "epochs": min(TRAIN["epochs"], 300)},
        )
        seconds = time.perf_counter() - started
        errors = np.empty(len(windows))
        for start in range(0, len(windows), 1024):
            batch = np.ascontiguousarray(windows[start : start + 1024])
            rebuilt = model.forecast(batch, m)[:, ::-1]
            errors[start : start + len(batch)] = np.square(rebuilt - batch).mean(axis=(1, 2))
        step = np.full(len(values), np.nan)
        step[m - 1 :] = errors
        window = window_scores(step, score_window)
        calibration = window[data["fit_end"] : data["normal_end"]]
        threshold = quantile_threshold(calibration, FALSE_ALARM_RATE)
        row = evaluate(step, window, threshold, labels, data["normal_end"])
        row.update(
            seed=seed,
            epochs=len(history.rows),
            best_val_loss=min(r["val_loss"] for r in history.rows),
            train_seconds=seconds,
        )
        runs.append(row)
        logger.info("autoencoder seed %d: %s", seed, _brief(row))
    return {
        "model": {"kind": "seq2seq autoencoder", "window": m, **AUTOENCODER},
        "score": "mean squared reconstruction error of the window ending at the step",
        "runs": runs,
        "summary": _summary(runs),
    }


def run_baseline(data: dict[str, Any], kind: str, period: int, score_window: int) -> dict:
    values, labels = data["values"], data["labels"]
    scaler = Standardiser.fit([values[: data["fit_end"]]])
    z = scaler(values)
    if kind == "moving_average":
        step = moving_average_residual(z, period)
    else:
        step = discord_distances(z, z[: data["fit_end"]], period)
        # The fit part is its own reference (distance 0): only later steps are scored.
        step[: data["fit_end"]] = np.nan
    window = window_scores(step, score_window)
    threshold = quantile_threshold(window[data["fit_end"] : data["normal_end"]], FALSE_ALARM_RATE)
    row = evaluate(step, window, threshold, labels, data["normal_end"])
    logger.info("%s: %s", kind, _brief(row))
    return {"window": period, "runs": [row], "summary": _summary([row])}


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    brief = {k: round(v, 4) for k, v in row["at_threshold"].items() if isinstance(v, float)}
    for kind in ("step", "window"):
        if f"{kind}_top_hit" in row:
            brief[f"{kind}_ap"] = round(row[f"{kind}_average_precision"], 4)
            brief[f"{kind}_hit"] = row[f"{kind}_top_hit"]["hit"]
            brief[f"{kind}_top"] = row[f"{kind}_top_hit"]["top_index"]
    return brief


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("precision", "recall", "f1", "false_alarm_rate"):
        if key not in runs[0]["at_threshold"]:
            continue
        values = [run["at_threshold"][key] for run in runs]
        summary[key] = {"mean": float(np.mean(values)), "values": values}
    for kind in ("step", "window"):
        if f"{kind}_top_hit" in runs[0]:
            ap = [run[f"{kind}_average_precision"] for run in runs]
            hits = [run[f"{kind}_top_hit"]["hit"] for run in runs]
            strict = [run[f"{kind}_top_hit"]["hit_strict"] for run in runs]
            summary[f"{kind}_average_precision"] = {"mean": float(np.mean(ap)), "values": ap}
            summary[f"{kind}_top_hits"] = f"{sum(hits)}/{len(hits)}"
            summary[f"{kind}_top_hits_strict"] = f"{sum(strict)}/{len(strict)}"
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(ANOMALY_SERIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("sparklstm").setLevel(logging.WARNING)
    started = time.perf_counter()
    data = split(args.name)
    period = estimate_period(data["values"][: data["fit_end"]])
    score_window = max(1, period // 4)
    logger.info("period %d, score window %d", period, score_window)
    results = {
        "dataset": args.name,
        "command": f"python -m bench.anomaly {args.name} --seeds {' '.join(map(str, args.seeds))}",
        "environment": {
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "protocol": __doc__.split("\n\n", 3)[3].strip(),
        "steps": len(data["values"]),
        "channels": list(data["series"].channels),
        "fit_steps": [0, data["fit_end"]],
        "calibration_steps": [data["fit_end"], data["normal_end"]],
        "test_steps": [data["normal_end"], len(data["values"])],
        "labelled_ranges_in_test": int(
            np.sum(np.diff(np.r_[0, data["labels"][data["normal_end"] :]]) == 1)
        ),
        "period": period,
        "score_window": score_window,
        "false_alarm_rate_target": FALSE_ALARM_RATE,
        "train_options": TRAIN,
        "methods": {
            "lstm_gaussian_nll": run_lstm(data, "gaussian_nll", args.seeds, score_window),
            "lstm_mse": run_lstm(data, "mse", args.seeds, score_window),
            "lstm_autoencoder": run_autoencoder(data, args.seeds, score_window),
            # Baseline windows: the period, and the score window (both label-free, both kept).
            "moving_average_residual": run_baseline(data, "moving_average", period, score_window),
            "moving_average_residual_short": run_baseline(
                data, "moving_average", score_window, score_window
            ),
            "matrix_profile_discord": run_baseline(data, "discord", period, score_window),
            "matrix_profile_discord_short": run_baseline(
                data, "discord", score_window, score_window
            ),
        },
    }
    results["seconds"] = time.perf_counter() - started
    out = args.out or OUT_DIR / f"anomaly_{args.name.lower().replace('-', '_')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    logger.info("wrote %s", out)
    return results


if __name__ == "__main__":
    main()
