"""``LSTMAnomalyDetector``: anomaly detection from a model of normal behaviour on Spark, and
its fitted ``LSTMAnomalyModel`` (issue 17, part 2).

Data: one row per series, the whole series in ``featuresCol`` as ``array<double>`` (or
``array<float>``): univariate, since the Spark trainer reads one regression target per step
(a multivariate series is scored by the one-process :class:`~sparklstm.anomaly.AnomalyDetector`).
One row per series keeps a series in order inside one task without a sort, and scoring
carries the state from chunk to chunk, so an executor's memory is bounded by the row and the
chunk, not by a whole partition of windows.

``fit`` does what :meth:`AnomalyDetector.fit_calibrated` does in one process, with Spark SQL
and the Spark trainer:

1. each training row's first ``size - floor(calibrationFraction * size)`` steps are its
   training part; the mean and standard deviation of all training parts' steps standardise
   the data (one aggregation);
2. training windows of ``windowLength`` steps every ``windowStride`` steps (and each part's
   tail window) are cut in Spark SQL (``sequence``/``slice``, no Python per row) with the next
   step as per-step target, and :func:`~sparklstm.spark.trainer.fit_distributed` trains the
   next-step forecaster on them by the usual rounds (``regression_loss`` the ``loss`` Param);
   rows whose ``validationIndicatorCol`` is true give the validation windows;
3. each training row is scored on the executors with carried state (``mapInArrow``) and the
   threshold is the exact ``(1 - falseAlarmRate)`` quantile of the window scores of the held-out
   ends (an ordered ``limit``, nothing collected but one number).

``LSTMAnomalyModel.transform`` keeps every row and adds ``anomalyScoreCol`` (the step scores,
``array<double>``, NaN at step 0), ``windowScoreCol`` (``array<double>``) and ``flagCol``
(``array<boolean>``), each ``""`` to leave out; a null series gets null columns. Saved and
loaded as the other models are (:mod:`sparklstm.spark.ml.persistence`); ``model/`` is the
detector's own bundle (``AnomalyDetector.load`` reads it without Spark).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import MLReadable, MLReader

from sparklstm.anomaly.detector import AnomalyDetector, Standardiser
from sparklstm.anomaly.options import LOSS_OPTION, AnomalyOptions
from sparklstm.model.config import ModelConfig
from sparklstm.options import Option, options_of
from sparklstm.spark.ml.estimators import _keyword_signature, _NetworkEstimator, _set_given
from sparklstm.spark.ml.models import _model_setter, _NetworkModel
from sparklstm.spark.ml.params import (
    RunOptions,
    _NetworkParams,
    add_params,
    param_defaults,
)
from sparklstm.spark.ml.persistence import _LSTMModelReader
from sparklstm.spark.wire import pack, unpack
from sparklstm.training.history import History
from sparklstm.training.options import TrainOptions

__all__ = ["LSTMAnomalyDetector", "LSTMAnomalyModel", "anomaly_param_options"]

logger = logging.getLogger(__name__)

# The forecaster's options that are Params here: a one-direction float model of one feature
# (vocabSize, embeddingDim, head and bidirectional are the detector's to set).
_MODEL_PARAMS = ("cell", "hidden_sizes", "dropout")
_RUN_PARAMS = ("checkpoint_dir", "metrics_path", "progress")


def anomaly_param_options() -> tuple[Option, ...]:
    """The options that are Params of the detector and its model, in order: the forecaster's,
    its loss, the detector's, the Spark trainer's, then the run's."""
    found = [o for o in options_of(ModelConfig) if o.name in _MODEL_PARAMS]
    found.append(LOSS_OPTION)
    found += list(options_of(AnomalyOptions))
    found += [o for o in options_of(TrainOptions, "spark") if o.name != "seed"]
    # Where output goes; not lengthCol (a series is its whole array) nor inferenceBatchSize
    # (transform scores one row at a time, chunk by chunk).
    found += [o for o in options_of(RunOptions) if o.name in _RUN_PARAMS]
    return tuple(found)


def _column_param(name: str, doc: str) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=TypeConverters.toString)


# Output columns in Spark ML's style (a name; "" leaves the column out), not library options.
ANOMALY_SCORE_COL = _column_param(
    "anomalyScoreCol", 'column of the step scores, array<double> ("" leaves it out)'
)
WINDOW_SCORE_COL = _column_param(
    "windowScoreCol", 'column of the window scores, array<double> ("" leaves it out)'
)
FLAG_COL = _column_param(
    "flagCol",
    'column of the flags (window score above the threshold), array<boolean> ("" leaves it out)',
)
_OUTPUT_DEFAULTS = {
    "anomalyScoreCol": "anomalyScore",
    "windowScoreCol": "windowScore",
    "flagCol": "anomalyFlag",
}
# What the weights imply (persistence checks the saved Params against them).
ANOMALY_STRUCTURE = {
    "cellType": lambda config: config.cell,
    "hiddenSizes": lambda config: list(config.hidden_sizes),
    "dropout": lambda config: config.dropout,
    "loss": lambda config: config.regression_loss,
}


class _AnomalyParams(_NetworkParams):
    """Params of :class:`LSTMAnomalyDetector` and :class:`LSTMAnomalyModel`."""

    anomalyScoreCol: Param[str] = ANOMALY_SCORE_COL
    windowScoreCol: Param[str] = WINDOW_SCORE_COL
    flagCol: Param[str] = FLAG_COL

    @classmethod
    def _options(cls) -> tuple[Option, ...]:
        return anomaly_param_options()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(**_OUTPUT_DEFAULTS)

    def getAnomalyScoreCol(self) -> str:
        """Gets the value of :py:attr:`anomalyScoreCol` or its default value."""
        return self.getOrDefault(self.anomalyScoreCol)

    def getWindowScoreCol(self) -> str:
        """Gets the value of :py:attr:`windowScoreCol` or its default value."""
        return self.getOrDefault(self.windowScoreCol)

    def getFlagCol(self) -> str:
        """Gets the value of :py:attr:`flagCol` or its default value."""
        return self.getOrDefault(self.flagCol)

    def _anomaly_options(self) -> AnomalyOptions:
        return AnomalyOptions(**self._values(options_of(AnomalyOptions)))

    def _model_options(self) -> dict[str, Any]:
        """The forecaster's configuration dict (one feature; checked now, before any job)."""
        options = {
            name: value
            for name, value in self._values(
                o for o in options_of(ModelConfig) if o.name in _MODEL_PARAMS
            ).items()
            if value is not None
        }
        options.update(
            head="all",
            task="regression",
            regression_loss=self.getOrDefault("loss"),
            seed=self.getSeed() % 2**63,
        )
        ModelConfig.from_dict({**options, "input_size": 1, "output_size": 1})
        self._anomaly_options().score_for(ModelConfig(**options, input_size=1, output_size=1))
        return options


add_params(_AnomalyParams, anomaly_param_options())


def _series_type_check(dataset: Any, column: str) -> None:
    """The features column holds one univariate series per row, or one clear line."""
    from pyspark.sql.types import ArrayType, DoubleType, FloatType

    if column not in dataset.columns:
        raise ValueError(f"featuresCol {column!r} not found; columns are {dataset.columns}")
    data_type = dataset.schema[column].dataType
    if not (
        isinstance(data_type, ArrayType)
        and isinstance(data_type.elementType, (DoubleType, FloatType))
    ):
        raise TypeError(
            f"featuresCol {column!r} has type {data_type.simpleString()}; the anomaly detector "
            "takes one univariate series per row as array<double> (score a multivariate series "
            "with sparklstm.anomaly.AnomalyDetector)"
        )


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _double(value: float) -> str:
    """A double literal that Spark SQL reads back exactly."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


# ------------------------------------------------------------------------------ executors
def _detector_payload(detector: AnomalyDetector) -> bytes:
    arrays = dict(detector.model.params)
    arrays["anomaly.mean"] = np.asarray(detector.standardiser.mean, dtype=np.float64)
    arrays["anomaly.scale"] = np.asarray(detector.standardiser.scale, dtype=np.float64)
    header = {
        "model": detector.config.to_dict(),
        "options": detector.options.to_dict(),
        "threshold": detector.threshold,
    }
    return pack(header, arrays)


def _detector_from(payload: bytes) -> AnomalyDetector:
    from sparklstm.model.sequence_model import SequenceModel

    header, arrays = unpack(payload)
    mean, scale = arrays.pop("anomaly.mean"), arrays.pop("anomaly.scale")
    model = SequenceModel.from_config(header["model"])
    model.load_state_dict(arrays)
    return AnomalyDetector.from_model(
        model,
        AnomalyOptions.from_dict(header["options"]),
        Standardiser(mean, scale),
        header["threshold"],
    )


def _rows(column: pa.Array) -> Iterator[np.ndarray | None]:
    """Each row's series as float64 (None for a null row), without a Python list per value."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False).astype(np.float64)
    for index in range(len(column)):
        if not column[index].is_valid:
            yield None
        else:
            yield values[offsets[index] : offsets[index + 1]]


def _scores(detector: AnomalyDetector, series: np.ndarray, column: str):
    """``(step, window)`` scores of one row; a series of fewer than 2 steps has only NaNs."""
    if len(series) < 2:
        return np.full(len(series), np.nan), np.full(len(series), np.nan)
    try:
        steps, windows = [], []
        for _, step, window in detector.iter_scores(series):
            steps.append(step)
            windows.append(window)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"featuresCol {column!r}: {exc}") from None
    return np.concatenate(steps), np.concatenate(windows)


def _list_column(pieces: list[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    counts = np.array([0 if p is None else len(p) for p in pieces], dtype=np.int32)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    kept = [p for p in pieces if p is not None]
    flat = np.concatenate(kept) if kept else np.empty(0)
    mask = pa.array([p is None for p in pieces], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type), mask=mask)


def _transform_batches(
    batches: Iterator[pa.RecordBatch], *, payload: bytes, column: str, outputs: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``: every row kept, with its step and window scores and flags."""
    detector = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if detector is None:
            detector = _detector_from(payload)
        steps, windows, flags = [], [], []
        for series in _rows(batch.column(column)):
            if series is None:
                steps.append(None)
                windows.append(None)
                flags.append(None)
                continue
            step, window = _scores(detector, series, column)
            steps.append(step)
            windows.append(window)
            flags.append(detector.flags(window))
        arrays, names = list(batch.columns), list(batch.schema.names)
        for key, pieces, kind in (
            ("score", steps, pa.float64()),
            ("window", windows, pa.float64()),
            ("flag", flags, pa.bool_()),
        ):
            if outputs.get(key):
                arrays.append(_list_column(pieces, kind))
                names.append(outputs[key])
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def _calibration_batches(
    batches: Iterator[pa.RecordBatch], *, payload: bytes, column: str
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``: the window scores of each training row's held-out end (or of every
    step with ``calibrationFraction`` 0), one row each."""
    detector = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if detector is None:
            detector = _detector_from(payload)
        pieces = []
        for series in _rows(batch.column(column)):
            if series is None or len(series) < 2:
                continue
            _, window = _scores(detector, series, column)
            start = detector.options.head_steps(len(series))
            pieces.append(window[start if detector.options.calibration_fraction > 0 else 0 :])
        flat = np.concatenate(pieces) if pieces else np.empty(0)
        flat = flat[np.isfinite(flat)]
        if flat.size:
            yield pa.RecordBatch.from_arrays([pa.array(flat)], names=["score"])


# ------------------------------------------------------------------------------ estimator
class LSTMAnomalyDetector(_NetworkEstimator, _AnomalyParams):
    """Anomaly detection from a next-step LSTM forecaster of normal behaviour, trained on
    Spark by parameter averaging; see the module's documentation for the steps.

    ``featuresCol`` holds one normal series per row (``array<double>``); ``labelCol`` is not
    read. The Params: the forecaster's (``cellType``, ``hiddenSizes``, ``dropout``, ``loss``:
    ``mse``, the default, or ``gaussian_nll``), the detector's (``windowLength``, ``windowStride``,
    ``score``, ``scoreWindow``, ``falseAlarmRate``, ``calibrationFraction``,
    ``chunkLength``), the trainer's (``epochs``, ``localSteps``, ``learningRate``, ...).

    Examples
    --------
    >>> detector = LSTMAnomalyDetector(hiddenSizes=[16], windowLength=64, falseAlarmRate=0.01)
    >>> detector.getLoss(), detector.getScoreWindow(), detector.getCalibrationFraction()
    ('mse', 1, 0.2)
    >>> model = detector.fit(normal_df)  # doctest: +SKIP
    >>> model.transform(stream_df).select("anomalyScore", "anomalyFlag")  # doctest: +SKIP
    """

    _task = "regression"

    @keyword_only
    def __init__(self, **params: Any) -> None:
        """Any Param by keyword (see ``explainParams()``); one given as ``None`` keeps its
        default."""
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **params: Any) -> LSTMAnomalyDetector:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def _windows(self, rows: Any, column: str, standardiser: Standardiser, head: bool) -> Any:
        """Training windows of ``rows`` in Spark SQL: ``window`` (inputs) and ``target`` (the
        next steps), standardised; ``head``: only each row's training part."""
        options = self._anomaly_options()
        f = _q(column)
        fraction = _double(options.calibration_fraction)
        steps = f"size({f}) - CAST(floor({fraction} * size({f})) AS INT)" if head else f"size({f})"
        mean, scale = _double(standardiser.mean[0]), _double(standardiser.scale[0])
        length, stride = options.window_length, options.stride
        parts = rows.selectExpr(
            f"transform(slice({f}, 1, {steps}), v -> (CAST(v AS DOUBLE) - {mean}) / {scale}) AS z"
        ).where("size(z) >= 2")
        sized = parts.selectExpr("z", f"least({length}, size(z) - 1) AS n")
        starts = sized.selectExpr(
            "z",
            "n",
            f"explode(array_union(sequence(0, size(z) - 1 - n, {stride}), "
            "array(size(z) - 1 - n))) AS s",
        )
        return starts.selectExpr("slice(z, s + 1, n) AS window", "slice(z, s + 2, n) AS target")

    def _standardiser(self, rows: Any, column: str) -> Standardiser:
        options = self._anomaly_options()
        f = _q(column)
        fraction = _double(options.calibration_fraction)
        steps = f"size({f}) - CAST(floor({fraction} * size({f})) AS INT)"
        values = rows.selectExpr(f"explode(slice({f}, 1, {steps})) AS v").selectExpr(
            "CAST(v AS DOUBLE) AS v"
        )
        row = values.selectExpr("avg(v) AS mean", "stddev_pop(v) AS std", "count(v) AS n").first()
        if row is None or not row["n"]:
            raise ValueError(f"featuresCol {column!r}: no training steps (no rows, or all null)")
        std = float(row["std"] or 0.0)
        return Standardiser(np.array([float(row["mean"])]), np.array([std if std > 0 else 1.0]))

    def _fit(self, dataset: Any) -> LSTMAnomalyModel:
        from sparklstm.spark.trainer import fit_distributed

        # Everything is validated here, before any Spark job.
        model_options = self._model_options()
        options = self._anomaly_options()
        config = self._training_config()
        column = self.getFeaturesCol()
        _series_type_check(dataset, column)
        train, validation = self._split(dataset)
        bad = train.where(
            f"exists({_q(column)}, v -> v IS NULL OR isnan(v) OR abs(v) = 'Infinity')"
        )
        if bad.limit(1).count():
            raise ValueError(
                f"featuresCol {column!r} holds null, NaN or infinite values; clean or fill them "
                "first"
            )
        train = train.where(f"{_q(column)} IS NOT NULL")
        standardiser = self._standardiser(train, column)
        windows = self._windows(train, column, standardiser, head=True)
        validation_windows = None
        if validation is not None:
            validation_windows = self._windows(validation, column, standardiser, head=False)
        logger.info("%s: fitting %s with %s and %s", self.uid, model_options, options, config)
        model, history = fit_distributed(
            windows,
            model_options,
            config,
            features_col="window",
            label_col="target",
            validation=validation_windows,
            checkpoint_dir=self.getCheckpointDir(),
            metrics_path=self.getMetricsPath(),
            progress=self.getProgress(),
        )
        detector = AnomalyDetector.from_model(model, options, standardiser)
        detector.threshold = self._calibrate(train, column, detector)
        return self._copyValues(LSTMAnomalyModel(detector, history))

    def _calibrate(self, train: Any, column: str, detector: AnomalyDetector) -> float:
        """The exact ``(1 - rate)`` quantile of the calibration window scores (the
        ``⌈(1 - rate) n⌉``-th smallest, as :func:`quantile_threshold`): an ordered limit."""
        import functools

        task = functools.partial(
            _calibration_batches, payload=_detector_payload(detector), column=column
        )
        scores = train.select(column).mapInArrow(task, "score double")
        count = scores.count()
        if count == 0:
            raise ValueError(
                "calibration: no scored normal steps (longer series or a larger "
                "calibrationFraction)"
            )
        rank = max(1, math.ceil((1.0 - detector.options.false_alarm_rate) * count - 1e-9))
        row = (
            scores.orderBy(scores["score"].desc())
            .limit(count - rank + 1)
            .selectExpr("min(score) AS threshold")
            .first()
        )
        return float(row["threshold"])


# ------------------------------------------------------------------------------ the model
class LSTMAnomalyModel(_NetworkModel, _AnomalyParams, MLReadable["LSTMAnomalyModel"]):
    """Model fitted by :class:`LSTMAnomalyDetector`: the :class:`AnomalyDetector` (forecaster,
    standardiser, threshold) and the round history. ``transform`` scores every row's series
    with carried state, chunk by chunk, and adds the step scores, window scores and flags."""

    _task = "regression"
    _core_class = AnomalyDetector
    _structure = ANOMALY_STRUCTURE

    def __init__(
        self, anomalyDetector: AnomalyDetector | None = None, history: History | None = None
    ) -> None:
        super().__init__(anomalyDetector, history)

    @property
    def anomalyDetector(self) -> AnomalyDetector:
        """The fitted :class:`~sparklstm.anomaly.AnomalyDetector` (NumPy; usable without
        Spark). Copies of this Model share it."""
        return self._core_model

    @property
    def threshold(self) -> float:
        """The calibrated threshold on the window score."""
        return float(self.anomalyDetector.threshold)

    def _transform(self, dataset: Any) -> Any:
        import functools

        from pyspark.sql.types import ArrayType, BooleanType, DoubleType, StructField, StructType

        column = self.getFeaturesCol()
        _series_type_check(dataset, column)
        outputs = {
            "score": self.getAnomalyScoreCol(),
            "window": self.getWindowScoreCol(),
            "flag": self.getFlagCol(),
        }
        fields = list(dataset.schema.fields)
        for key, kind in (
            ("score", DoubleType()),
            ("window", DoubleType()),
            ("flag", BooleanType()),
        ):
            name = outputs[key]
            if not name:
                continue
            if name in dataset.columns:
                raise ValueError(f"output column {name!r} already exists; set another name")
            fields.append(StructField(name, ArrayType(kind, True), True))
        task = functools.partial(
            _transform_batches,
            payload=_detector_payload(self.anomalyDetector),
            column=column,
            outputs=outputs,
        )
        return dataset.mapInArrow(task, StructType(fields))

    @classmethod
    def read(cls) -> MLReader[LSTMAnomalyModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


# Setters: every Param on the estimator; on the model, the columns and the scoring Params.
for _option in anomaly_param_options():
    setattr(
        LSTMAnomalyDetector,
        "set" + _option.param_name[:1].upper() + _option.param_name[1:],
        lambda self, value, _n=_option.param_name: _set_given(self, {_n: value}),
    )
for _name in (
    "featuresCol",
    "labelCol",
    "predictionCol",
    "seed",
    "validationIndicatorCol",
    *_OUTPUT_DEFAULTS,
):
    setattr(
        LSTMAnomalyDetector,
        "set" + _name[:1].upper() + _name[1:],
        lambda self, value, _n=_name: _set_given(self, {_n: value}),
    )
for _name in ("featuresCol", *_OUTPUT_DEFAULTS):
    setattr(LSTMAnomalyModel, _model_setter(_name).__name__, _model_setter(_name))
_defaults = {
    "featuresCol": "features",
    "labelCol": "label",
    "predictionCol": "prediction",
    "validationIndicatorCol": None,
    "seed": None,
    **param_defaults(anomaly_param_options()),
    **_OUTPUT_DEFAULTS,
}
for _method in (LSTMAnomalyDetector.__init__, LSTMAnomalyDetector.setParams):
    _method.__signature__ = _keyword_signature(LSTMAnomalyDetector, _defaults)
