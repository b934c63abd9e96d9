"""``AnomalyDetector``: a next-step LSTM forecaster of normal behaviour, its calibrated
threshold, and scoring of long streams with carried state (one process).

    detector = AnomalyDetector(input_size=1, hidden_sizes=[32], seed=0)
    detector.fit([normal_train], epochs=30, lr=3e-3)      # windows of normal data
    detector.calibrate([normal_held_out])                  # threshold at the false-alarm rate
    result = detector.score(stream)                        # step/window scores and flags
    detector.save("detector"); AnomalyDetector.load("detector")

Features are standardised with the mean and standard deviation of the data ``fit`` sees; the
forecaster reads ``x_t`` and predicts ``x_{t+1}`` (:mod:`sparklstm.anomaly.scoring`). Training
cuts windows of ``window_length`` steps every ``stride`` steps from the normal series (each
starts from a zero state); scoring reads a whole stream chunk by chunk with the state carried
across chunks (:func:`~sparklstm.model.streams.iter_stream_outputs`), which equals one pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sparklstm.anomaly.options import LOSS_OPTION, AnomalyOptions
from sparklstm.anomaly.scoring import TrailingMean, quantile_threshold, step_scores
from sparklstm.model.config import ModelConfig
from sparklstm.model.files import load_model_file, save_model_file
from sparklstm.model.sequence_model import SequenceModel
from sparklstm.model.streams import StreamGroup, iter_stream_outputs

__all__ = ["AnomalyDetector", "AnomalyScores", "Standardiser", "training_windows"]

logger = logging.getLogger(__name__)

FILE_KIND = "anomaly_detector"
FILE_VERSION = 1


@dataclass(frozen=True)
class AnomalyScores:
    """Per step of one stream: ``step`` scores, ``window`` scores (the trailing mean over
    ``score_window`` steps) and ``flags`` (window score above the threshold; step 0, which
    has no forecast, has NaN scores and is never flagged)."""

    step: np.ndarray
    window: np.ndarray
    flags: np.ndarray


@dataclass(frozen=True)
class Standardiser:
    """``z = (x - mean) / scale`` per feature, fit on normal data (``scale``: the standard
    deviation, 1 for a constant feature)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, series: Sequence[np.ndarray]) -> Standardiser:
        stacked = np.concatenate(series, axis=0)
        mean = stacked.mean(axis=0)
        std = stacked.std(axis=0)
        return cls(mean, np.where(std > 0, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


def as_series(name: str, series: Any, features: int | None) -> np.ndarray:
    """One series as a finite float64 ``(steps, F)`` array, checked before any work."""
    array = np.asarray(series, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name}: shape {np.shape(series)}; a series is (steps,) or (steps, F)")
    if features is not None and array.shape[1] != features:
        raise ValueError(f"{name}: {array.shape[1]} features, the detector takes {features}")
    if len(array) < 2:
        raise ValueError(f"{name}: {len(array)} step(s); a series needs at least 2")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or Inf (clean or fill it first)")
    return array


# Streams are checked for NaN/Inf in blocks of this many steps (a memory-mapped stream is
# never read whole).
_CHECK_BLOCK = 1 << 16


def stream_view(name: str, stream: Any, features: int) -> np.ndarray:
    """One stream as a ``(steps, F)`` array without a copy (a ``numpy.memmap`` stays on
    disk), its values checked block by block before any work."""
    array = stream if isinstance(stream, np.ndarray) else np.asarray(stream, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ValueError(f"{name}: shape {np.shape(stream)}; a series is (steps,) or (steps, F)")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name}: values must be real numbers, got {array.dtype}")
    if array.shape[1] != features:
        raise ValueError(f"{name}: {array.shape[1]} features, the detector takes {features}")
    if len(array) < 2:
        raise ValueError(f"{name}: {len(array)} step(s); a series needs at least 2")
    for start in range(0, len(array), _CHECK_BLOCK):
        if not np.isfinite(array[start : start + _CHECK_BLOCK]).all():
            raise ValueError(f"{name}: contains NaN or Inf (from step {start}; clean it first)")
    return array


class _StandardisedInputs:
    """Steps ``[0, length)`` of a raw stream, standardised slice by slice as
    :class:`~sparklstm.model.streams.StreamGroup` reads them (only a chunk in memory)."""

    def __init__(self, raw: np.ndarray, standardiser: Standardiser, length: int, dtype) -> None:
        self.raw, self.standardiser, self.length, self.dtype = raw, standardiser, length, dtype

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(self.length)
        piece = np.asarray(self.raw[start:stop], dtype=np.float64)
        return self.standardiser(piece).astype(self.dtype)


def _series_list(name: str, series: Any, features: int | None) -> list[np.ndarray]:
    if isinstance(series, np.ndarray) and series.dtype != object:
        raise TypeError(
            f"{name} must be a list of series (one array per series); wrap one as [series]"
        )
    items = [as_series(f"{name}[{i}]", s, features) for i, s in enumerate(series)]
    if not items:
        raise ValueError(f"{name}: no series given")
    return items


def training_windows(
    series: Sequence[np.ndarray], length: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs, targets, lengths)``: windows ``x[s : s + L]`` with targets ``x[s + 1 : s +
    L + 1]`` every ``stride`` steps of each series, plus the series' tail window (so every
    step is a target somewhere); a series shorter than ``L + 1`` gives one shorter window,
    zero-padded with its length."""
    inputs, targets, lengths = [], [], []
    features = series[0].shape[1]
    for x in series:
        pairs = len(x) - 1  # (input, next step) pairs
        size = min(length, pairs)
        starts = list(range(0, pairs - size + 1, stride))
        if starts[-1] != pairs - size:
            starts.append(pairs - size)
        view_in = sliding_window_view(x[:-1], size, axis=0)  # (n, F, size)
        view_out = sliding_window_view(x[1:], size, axis=0)
        for s in starts:
            window_in = np.zeros((length, features))
            window_out = np.zeros((length, features))
            window_in[:size] = view_in[s].T
            window_out[:size] = view_out[s].T
            inputs.append(window_in)
            targets.append(window_out)
            lengths.append(size)
    return np.stack(inputs), np.stack(targets), np.array(lengths, dtype=np.int64)


class AnomalyDetector:
    """A next-step forecaster of normal behaviour with a calibrated threshold.

    Parameters
    ----------
    options : :class:`AnomalyOptions` or its dict (window_length, window_stride, score,
        score_window, false_alarm_rate, chunk_length); keywords of it may be given directly.
    **model_options : the forecaster's :class:`ModelConfig` fields (``input_size``,
        ``hidden_sizes``, ``cell``, ``regression_loss`` -- ``"mse"`` by default
        (see :data:`~sparklstm.anomaly.options.LOSS_OPTION`), or ``"gaussian_nll"`` --,
        ``seed``, ``dtype``, ...); ``head="all"``, ``task="regression"`` and
        ``output_size=input_size`` are the detector's.
    """

    def __init__(self, options: AnomalyOptions | dict | None = None, **model_options: Any):
        option_names = {f for f in AnomalyOptions.__dataclass_fields__}
        given = {k: model_options.pop(k) for k in list(model_options) if k in option_names}
        if isinstance(options, AnomalyOptions):
            if given:
                raise TypeError(f"give {sorted(given)} inside options, not beside it")
        else:
            options = AnomalyOptions.from_dict({**(options or {}), **given})
        self.options = options
        for fixed in ("head", "task", "output_size", "vocab_size"):
            if fixed in model_options:
                raise ValueError(
                    f"{fixed}: the detector sets it (a next-step forecaster of float series: "
                    "head='all', task='regression', output_size=input_size)"
                )
        if "input_size" not in model_options:
            raise ValueError("input_size: give the number of features per step")
        model_options.setdefault("regression_loss", LOSS_OPTION.default)
        config = ModelConfig(
            head="all",
            task="regression",
            output_size=model_options["input_size"],
            **model_options,
        )
        self.model = SequenceModel(config=config)
        self.score_name = options.score_for(config)
        self.standardiser: Standardiser | None = None
        self.threshold: float | None = None

    # ------------------------------------------------------------------ training
    @property
    def config(self) -> ModelConfig:
        """The forecaster's configuration."""
        return self.model.config

    @property
    def features(self) -> int:
        return int(self.model.config.input_size)

    def windows(self, series: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The standardised training windows of ``series`` (see :func:`training_windows`)."""
        if self.standardiser is None:
            raise ValueError("the detector has no standardiser yet: call fit first")
        dtype = np.dtype(self.model.config.dtype)
        scaled = [self.standardiser(x) for x in series]
        inputs, targets, lengths = training_windows(
            scaled, self.options.window_length, self.options.stride
        )
        return inputs.astype(dtype), targets.astype(dtype), lengths

    def fit(
        self, series: Sequence[Any], validation: Sequence[Any] | None = None, **train_options: Any
    ):
        """Fit the standardiser and train the forecaster on windows of the normal ``series``
        (``validation``: other normal series, for early stopping and the history's
        ``val_loss``); ``train_options`` are :meth:`SequenceModel.fit`'s. Returns its
        history."""
        items = _series_list("series", series, self.features)
        checked_validation = None
        if validation is not None:
            checked_validation = _series_list("validation", validation, self.features)
        if self.standardiser is None:
            self.standardiser = Standardiser.fit(items)
        x, y, lengths = self.windows(items)
        logger.info("anomaly detector: %d training windows of %d steps", len(x), x.shape[1])
        windows = None if checked_validation is None else self.windows(checked_validation)
        return self.model.fit(x, y, lengths, validation=windows, **train_options)

    def fit_calibrated(
        self, series: Sequence[Any], validation: Sequence[Any] | None = None, **train_options: Any
    ):
        """Train on the start of each normal series and calibrate on its end: the last
        ``floor(calibration_fraction * steps)`` steps of each are held out of training and
        their window scores set the threshold (0: every step of the series is used for
        both). What :class:`~sparklstm.spark.ml.anomaly.LSTMAnomalyDetector` does on Spark.
        Returns the training history."""
        items = _series_list("series", series, self.features)
        heads = []
        for index, x in enumerate(items):
            steps = self.options.head_steps(len(x))
            if steps < 2:
                raise ValueError(
                    f"series[{index}]: {steps} step(s) left for training after the calibration "
                    f"share; give longer series or a smaller calibration_fraction"
                )
            heads.append(x[:steps])
        history = self.fit(heads, validation=validation, **train_options)
        cut = self.options.calibration_fraction > 0
        starts = [len(head) if cut else 0 for head in heads]
        self.calibrate(items, start=starts)
        return history

    # ------------------------------------------------------------------- scoring
    def iter_scores(
        self, stream: Any, chunk_length: int | None = None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start, step scores, window scores)`` of one stream, chunk by chunk with carried
        state (and a carried tail for the window scores); the concatenation equals one pass
        over the whole stream. Only a chunk is standardised and run at a time, so memory
        beyond the stream itself (which may be a ``numpy.memmap``) is bounded by the chunk
        length."""
        if self.standardiser is None:
            raise ValueError("the detector is not fitted: call fit first")
        raw = stream_view("stream", stream, self.features)
        dtype = np.dtype(self.model.config.dtype)
        chunk = self.options.chunk_length if chunk_length is None else chunk_length
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk_length must be an int >= 1, got {chunk!r}")
        inputs = _StandardisedInputs(raw, self.standardiser, len(raw) - 1, dtype)
        group = StreamGroup.of([inputs])
        trailing = TrailingMean(self.options.score_window)
        first = np.array([np.nan])  # step 0: nothing predicts it
        scored = iter_stream_outputs(self.model.network, group, chunk)
        for start, _, outputs, layout in scored:
            steps = start + layout.row_time  # positions of the inputs; targets are one later
            targets = self.standardiser(np.asarray(raw[steps + 1], dtype=np.float64))
            scores = step_scores(outputs, targets, self.score_name)
            if start == 0:
                scores = np.concatenate([first, scores])
            yield (0 if start == 0 else start + 1), scores, trailing(scores)

    def step_scores(self, stream: Any, chunk_length: int | None = None) -> np.ndarray:
        """``(steps,)`` step scores of ``stream`` (NaN at step 0)."""
        return np.concatenate([s for _, s, _ in self.iter_scores(stream, chunk_length)])

    def score(self, stream: Any, chunk_length: int | None = None) -> AnomalyScores:
        """Step and window scores and flags of one stream (flags need :meth:`calibrate`)."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold: call calibrate first")
        steps, windows = [], []
        for _, step, window in self.iter_scores(stream, chunk_length):
            steps.append(step)
            windows.append(window)
        step, window = np.concatenate(steps), np.concatenate(windows)
        return AnomalyScores(step, window, self.flags(window))

    def flags(self, window_scores: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.asarray(window_scores) > self.threshold

    def calibrate(self, series: Sequence[Any], start: int | Sequence[int] = 0) -> float:
        """Set the threshold from normal series: the ``(1 - false_alarm_rate)`` quantile of
        their window scores from step ``start`` on (per series, or one for all; the steps
        before it only warm the state, e.g. the part the forecaster was fit on)."""
        items = _series_list("series", series, self.features)
        starts = [start] * len(items) if isinstance(start, (int, np.integer)) else list(start)
        if len(starts) != len(items):
            raise ValueError(f"start has {len(starts)} entries for {len(items)} series")
        pooled = []
        for index, (x, s) in enumerate(zip(items, starts, strict=True)):
            if not 0 <= s <= len(x):
                raise ValueError(f"start[{index}] = {s}: outside the series' {len(x)} steps")
            windows = np.concatenate([w for _, _, w in self.iter_scores(x)])
            pooled.append(windows[s:])
        self.threshold = quantile_threshold(np.concatenate(pooled), self.options.false_alarm_rate)
        logger.info("anomaly detector: threshold %.6g", self.threshold)
        return self.threshold

    # --------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """One bundle (a directory, or a ``.npz`` file): the forecaster's parameters, the
        standardiser's arrays and the threshold (``.npz``, no pickle), the config and the
        options (JSON)."""
        if self.standardiser is None:
            raise ValueError("save: the detector is not fitted")
        arrays = dict(self.model.params)
        arrays["anomaly.mean"] = np.asarray(self.standardiser.mean, dtype=np.float64)
        arrays["anomaly.scale"] = np.asarray(self.standardiser.scale, dtype=np.float64)
        arrays["anomaly.threshold"] = np.array(
            np.nan if self.threshold is None else self.threshold, dtype=np.float64
        )
        metadata = {"anomaly_options": self.options.to_dict()}
        return save_model_file(
            path,
            self.model.config.to_dict(),
            arrays,
            metadata,
            kind=FILE_KIND,
            format_version=FILE_VERSION,
        )

    @classmethod
    def load(cls, path: str | Path) -> AnomalyDetector:
        """Read a detector written by :meth:`save` (never unpickles)."""
        holder: dict[str, Any] = {}

        def build(config: dict, arrays: dict) -> Any:
            holder["config"], holder["arrays"] = config, arrays
            return SequenceModel.from_config(config)

        model = load_model_file(
            path, build, kind=FILE_KIND, format_version=FILE_VERSION, what="anomaly detector"
        )
        options = AnomalyOptions.from_dict(model.metadata.get("anomaly_options", {}))
        detector = cls.from_model(model, options)
        arrays = dict(holder["arrays"])
        mean, scale = arrays.pop("anomaly.mean"), arrays.pop("anomaly.scale")
        threshold = float(arrays.pop("anomaly.threshold"))
        detector.model.load_state_dict(arrays)
        detector.standardiser = Standardiser(mean, scale)
        detector.threshold = None if np.isnan(threshold) else threshold
        return detector

    @classmethod
    def from_model(
        cls,
        model: SequenceModel,
        options: AnomalyOptions,
        standardiser: Standardiser | None = None,
        threshold: float | None = None,
    ) -> AnomalyDetector:
        """A detector around an already built forecaster (a loaded or Spark-trained one)."""
        cfg = model.config
        if cfg.head != "all" or cfg.task != "regression" or cfg.output_size != cfg.input_size:
            raise ValueError(
                "the forecaster must be a next-step model: head='all', task='regression', "
                "output_size == input_size"
            )
        detector = cls.__new__(cls)
        detector.options = options
        detector.model = model
        detector.score_name = options.score_for(cfg)
        detector.standardiser = standardiser
        detector.threshold = threshold
        return detector

    def __repr__(self) -> str:
        return (
            f"AnomalyDetector({self.model!r}, score={self.score_name!r}, "
            f"threshold={self.threshold!r})"
        )
