"""The estimators: ``LSTMClassifier``, ``LSTMRegressor`` and the encoder-decoder
``LSTMSeq2Seq``.

``fit`` maps the Params to a model configuration and :class:`TrainOptions` (both by the options'
one definition, :mod:`sparklstm.spark.ml.params`) and calls
:func:`~sparklstm.spark.trainer.fit_distributed`. The constructors and ``setParams`` take every
Param by keyword; their signatures and the setters are built from the same definitions.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from pyspark import keyword_only
from pyspark.ml.base import Estimator
from pyspark.ml.param import Param, Params
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReader, MLWriter

from sparklstm.model.factory import AnyModel
from sparklstm.spark.ml.models import (
    LSTMClassificationModel,
    LSTMRegressionModel,
    LSTMSeq2SeqModel,
    _NetworkModel,
)
from sparklstm.spark.ml.params import (
    NUM_CLASSES,
    _LSTMClassifierParams,
    _LSTMParams,
    _LSTMSeq2SeqParams,
    _NetworkParams,
    param_from,
    param_options,
    seq2seq_param_options,
)
from sparklstm.spark.ml.persistence import _LSTMEstimatorReader, _LSTMEstimatorWriter
from sparklstm.training.history import History

__all__ = ["LSTMClassifier", "LSTMRegressor", "LSTMSeq2Seq"]

logger = logging.getLogger(__name__)

# The column Params every estimator has, with Spark ML's usual defaults, ahead of the options.
_COLUMN_DEFAULTS = {
    "featuresCol": "features",
    "labelCol": "label",
    "predictionCol": "prediction",
}
_CLASSIFIER_COLUMN_DEFAULTS = {"probabilityCol": "probability", "rawPredictionCol": "rawPrediction"}


# ------------------------------------------------------------------------------ estimators
class _NetworkEstimator(Estimator, _NetworkParams, DefaultParamsWritable, DefaultParamsReadable):
    """Persistence, the validation split and ``_fit``, shared by every estimator."""

    _task = "classification"

    def _create_model(self, model: AnyModel, history: History) -> _NetworkModel:
        raise NotImplementedError

    @classmethod
    def read(cls) -> MLReader:
        """An :class:`MLReader` for this class (refuses another class's directory)."""
        return _LSTMEstimatorReader(cls)

    def write(self) -> MLWriter:
        """An :class:`MLWriter` for the Params (``.overwrite()``, ``.save(path)``); also on
        Spark Connect, where pyspark's ``DefaultParamsWriter`` cannot overwrite."""
        return _LSTMEstimatorWriter(self)

    def _split(self, dataset: Any) -> tuple[Any, Any]:
        """``(training rows, validation rows or None)`` by ``validationIndicatorCol``; a null
        indicator counts as false (training). Built from the DataFrame's own column, so it is a
        column of the DataFrame's kind of session (classic or Connect) whatever
        ``pyspark.sql.functions`` would build."""
        from pyspark.sql.types import BooleanType

        column = self._validation_col()
        if column is None:
            return dataset, None
        if column not in dataset.columns:
            raise ValueError(
                f"validationIndicatorCol {column!r} not found; columns are {dataset.columns}"
            )
        data_type = dataset.schema[column].dataType
        if not isinstance(data_type, BooleanType):
            raise TypeError(
                f"validationIndicatorCol {column!r} must be boolean, got {data_type.simpleString()}"
            )
        flag = dataset[column]
        return dataset.where(flag.isNull() | ~flag), dataset.where(flag)

    def _fit(self, dataset: Any) -> _NetworkModel:
        from sparklstm.spark.trainer import fit_distributed

        # Everything is validated here, before any Spark job.
        model_options = self._model_options(self._task)
        config = self._training_config()
        train, validation = self._split(dataset)
        logger.info("%s: fitting with %s and %s", self.uid, model_options, config)
        model, history = fit_distributed(
            train,
            model_options,
            config,
            features_col=self.getFeaturesCol(),
            label_col=self.getLabelCol(),
            length_col=self.getLengthCol(),
            validation=validation,
            checkpoint_dir=self.getCheckpointDir(),
            metrics_path=self.getMetricsPath(),
            progress=self.getProgress(),
            **self._fit_columns(),
        )
        return self._copyValues(self._create_model(model, history))


class _LSTMEstimator(_NetworkEstimator, _LSTMParams):
    """The sequence estimators: :class:`LSTMClassifier` and :class:`LSTMRegressor`."""


class LSTMClassifier(_LSTMEstimator, _LSTMClassifierParams):
    """Sequence classification with an LSTM/GRU network, trained on Spark by parameter
    averaging (see :func:`~sparklstm.spark.trainer.fit_distributed`).

    ``featuresCol`` holds ``array<array<float>>`` (``[time][feature]``), ``array<float>``
    (univariate) or ``array<int>`` (token ids; an embedding comes first); ``labelCol`` holds
    class indices ``0..k-1`` (int or whole doubles), or with ``head="all"`` an array of one
    class per step. The number of features (or the vocabulary) and of classes come from the
    data (``numClasses`` fixes the number of classes). Rows whose ``validationIndicatorCol``
    is true are validation data, evaluated every ``validateEvery`` rounds (``earlyStopping``
    watches their loss).

    Examples
    --------
    >>> clf = LSTMClassifier(hiddenSizes=[16], epochs=3, batchSize=16, seed=0)
    >>> clf.getCellType(), clf.getHiddenSizes(), clf.getBatchSize()
    ('lstm', [16], 16)
    >>> model = clf.fit(df)  # doctest: +SKIP
    >>> model.transform(df).select("prediction", "probability")  # doctest: +SKIP
    """

    _task = "classification"

    # Estimator only: the fitted model has Spark ML's ``numClasses`` property instead.
    numClasses: Param[int] = param_from(NUM_CLASSES)

    @keyword_only
    def __init__(self, **params: Any) -> None:
        """Any Param by keyword (see ``explainParams()``); one given as ``None`` keeps its
        default."""
        super().__init__()
        self._setDefault(numClasses=None)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **params: Any) -> LSTMClassifier:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def getNumClasses(self) -> int | None:
        """Gets the value of :py:attr:`numClasses` or its default value."""
        return self.getOrDefault(self.numClasses)

    def _model_options(self, task: str) -> dict[str, Any]:
        options = super()._model_options(task)
        if self.getNumClasses() is not None:
            options["output_size"] = self.getNumClasses()
        return options

    def _create_model(self, model: AnyModel, history: History) -> LSTMClassificationModel:
        return LSTMClassificationModel(model, history)


class LSTMRegressor(_LSTMEstimator):
    """Sequence regression with an LSTM/GRU network, trained on Spark by parameter averaging.

    ``labelCol`` holds a number per row, a fixed-size ``array<double>`` per row (several
    targets), or with ``head="all"`` an array of one target per step. Otherwise as
    :class:`LSTMClassifier`; the loss is the mean squared error.

    Examples
    --------
    >>> reg = LSTMRegressor(cellType="gru", hiddenSizes=[16], epochs=3)
    >>> reg.getCellType(), reg.getEpochs()
    ('gru', 3)
    """

    _task = "regression"

    @keyword_only
    def __init__(self, **params: Any) -> None:
        """Any Param by keyword (see ``explainParams()``); one given as ``None`` keeps its
        default."""
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **params: Any) -> LSTMRegressor:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def _create_model(self, model: AnyModel, history: History) -> LSTMRegressionModel:
        return LSTMRegressionModel(model, history)


class LSTMSeq2Seq(_NetworkEstimator, _LSTMSeq2SeqParams):
    """Sequence-to-sequence: an encoder-decoder over LSTM/GRU cells (optionally with attention,
    see :class:`~sparklstm.model.Seq2SeqConfig`), trained on Spark by parameter averaging.

    ``featuresCol`` holds the source sequences (``array<array<float>>``, ``array<float>`` or
    ``array<int>`` token ids) and ``labelCol`` the target sequences: ``array<int>`` token ids
    (softmax over the target vocabulary; the start and end tokens are added by the model,
    so targets hold neither) or float sequences (a real-valued forecast). ``lengthCol`` and
    ``targetLengthCol`` give their lengths (``None``: the arrays' own). The sizes of both
    sides come from the data unless ``sourceVocabSize``/``targetVocabSize`` fix them.
    ``validationIndicatorCol`` and ``earlyStopping`` work as for :class:`LSTMClassifier`. The
    decoding Params (``beamWidth``, ``maxLength``, ``lengthPenalty``, ``horizon``) are those
    the fitted model's ``transform`` uses.

    Examples
    --------
    >>> s2s = LSTMSeq2Seq(featuresCol="source", labelCol="target", hiddenSizes=[32])
    >>> s2s.getAttention(), s2s.getBeamWidth(), s2s.getMaxLength()
    ('luong', 1, 50)
    >>> model = s2s.fit(train_df)  # doctest: +SKIP
    >>> decoded = model.setBeamWidth(4).transform(test_df)  # doctest: +SKIP
    """

    _task = "seq2seq"

    @keyword_only
    def __init__(self, **params: Any) -> None:
        """Any Param by keyword (see ``explainParams()``); one given as ``None`` keeps its
        default."""
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **params: Any) -> LSTMSeq2Seq:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def _create_model(self, model: AnyModel, history: History) -> LSTMSeq2SeqModel:
        return LSTMSeq2SeqModel(model, history)


def _set_given(instance: Params, kwargs: Mapping[str, Any]) -> Any:
    """``setParams``: set the Params the caller passed; ``None`` means the default (it clears
    the Param: optional Params default to None, ``validationIndicatorCol`` has no default).
    An unknown name is one line naming it."""
    unknown = sorted(
        name for name in kwargs if not isinstance(getattr(type(instance), name, None), Param)
    )
    if unknown:
        known = sorted(p.name for p in instance.params)
        raise TypeError(
            f"{type(instance).__name__}: unknown Param(s) {', '.join(map(repr, unknown))}; "
            f"valid Params are {', '.join(known)}"
        )
    for name, value in kwargs.items():
        if value is None:
            instance.clear(instance.getParam(name))
    return instance._set(**{name: value for name, value in kwargs.items() if value is not None})


def _setter(param_name: str) -> Any:
    def set_(self: Params, value: Any) -> Any:
        return _set_given(self, {param_name: value})

    set_.__name__ = "set" + param_name[:1].upper() + param_name[1:]
    set_.__doc__ = f"Sets the value of :py:attr:`{param_name}` (None: its default)."
    return set_


def _keyword_signature(cls: type, defaults: Mapping[str, Any]) -> inspect.Signature:
    """``(self, *, featuresCol='features', ..., learningRate=None, ...)``: what ``help()`` and
    editors show for the generic ``__init__``/``setParams``."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in defaults.items()
    ]
    return inspect.Signature(parameters)


_SHARED_PARAMS = ("featuresCol", "labelCol", "predictionCol", "seed", "validationIndicatorCol")
for _cls, _options in ((_LSTMEstimator, param_options()), (LSTMSeq2Seq, seq2seq_param_options())):
    for _name in (*_SHARED_PARAMS, *(option.param_name for option in _options)):
        setattr(_cls, _setter(_name).__name__, _setter(_name))
for _name in ("probabilityCol", "rawPredictionCol", "numClasses"):
    setattr(LSTMClassifier, _setter(_name).__name__, _setter(_name))
LSTMSeq2Seq.setLogProbabilityCol = _setter("logProbabilityCol")
for _cls, _columns, _options, _extra in (
    (
        LSTMClassifier,
        {**_COLUMN_DEFAULTS, **_CLASSIFIER_COLUMN_DEFAULTS},
        param_options(),
        {"numClasses": None},
    ),
    (LSTMRegressor, _COLUMN_DEFAULTS, param_options(), {}),
    (
        LSTMSeq2Seq,
        _COLUMN_DEFAULTS,
        seq2seq_param_options(),
        {"logProbabilityCol": "logProbability"},
    ),
):
    _defaults = {
        **_columns,
        "validationIndicatorCol": None,
        "seed": None,
        **{option.param_name: option.plain_default() for option in _options},
        **_extra,
    }
    for _method in (_cls.__init__, _cls.setParams):
        _method.__signature__ = _keyword_signature(_cls, _defaults)
