"""The fitted models: ``LSTMClassificationModel`` and ``LSTMRegressionModel``, which hold a
trained :class:`~sparklstm.model.SequenceModel` and transform with
:func:`~sparklstm.spark.inference.predict_dataframe`, and ``LSTMSeq2SeqModel``, which holds a
:class:`~sparklstm.model.Seq2SeqModel` and transforms with
:func:`~sparklstm.spark.decoding.decode_dataframe` (``mapInArrow``, rows kept, both). Each keeps
the round history of its training.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml.base import Model
from pyspark.ml.util import MLReadable, MLReader, MLWritable, MLWriter

from sparklstm.model import SequenceModel
from sparklstm.model.factory import AnyModel
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.ml.params import (
    _LSTMClassifierParams,
    _LSTMParams,
    _LSTMSeq2SeqParams,
    _NetworkParams,
    seq2seq_param_options,
)
from sparklstm.spark.ml.persistence import (
    SEQ2SEQ_STRUCTURE,
    SEQUENCE_STRUCTURE,
    _LSTMModelReader,
    _LSTMModelWriter,
)
from sparklstm.spark.vectors import array_to_vector
from sparklstm.training.history import History

__all__ = ["LSTMClassificationModel", "LSTMRegressionModel", "LSTMSeq2SeqModel"]


class _NetworkModel(Model, _NetworkParams, MLWritable):
    """A fitted model: the trained core model (``_core_class``) and the round history of its
    training. ``_structure`` names the Params that define the network, each with how to read
    its value from the core model's configuration (persistence checks them)."""

    _task = "classification"
    _core_class: type = SequenceModel
    _structure: Any = SEQUENCE_STRUCTURE

    def __init__(self, model: AnyModel | None = None, history: History | None = None) -> None:
        super().__init__()
        core = self._core_class
        if model is not None and not isinstance(model, core):
            raise TypeError(
                f"{type(self).__name__} holds a {core.__name__}, got {type(model).__name__}"
            )
        self._core = model
        self._history = history

    @property
    def _core_model(self) -> Any:
        if self._core is None:
            raise RuntimeError(f"{self.uid} holds no trained model")
        return self._core

    @property
    def hasSummary(self) -> bool:
        """Whether the round history of the training is available."""
        return self._history is not None

    @property
    def summary(self) -> History:
        """The training's :class:`~sparklstm.spark.metrics.History`: ``rows`` (one dict
        per round: losses, metrics, ``val_*`` with validation data, timings), ``best_round``,
        ``stopped_early`` and the run ``summary``."""
        if self._history is None:
            raise RuntimeError(f"no training summary available for {self.uid}")
        return self._history

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per training round (``summary.rows``); empty if there is no summary."""
        return [] if self._history is None else list(self._history.rows)

    def write(self) -> MLWriter:
        """An :class:`MLWriter` for this model (``.overwrite()``, ``.save(path)``). On Spark
        Connect the path must be a directory the client and the server share (see
        :mod:`sparklstm.spark.ml.persistence`)."""
        return _LSTMModelWriter(self)

    def __repr__(self) -> str:
        inner = repr(self._core) if self._core is not None else "untrained"
        return f"{type(self).__name__}(uid={self.uid}, {inner})"


class _LSTMModel(_NetworkModel, _LSTMParams):
    """A fitted sequence model: the :class:`SequenceModel` and the round history."""

    def __init__(
        self, sequenceModel: SequenceModel | None = None, history: History | None = None
    ) -> None:
        super().__init__(sequenceModel, history)

    @property
    def sequenceModel(self) -> SequenceModel:
        """The trained :class:`~sparklstm.model.SequenceModel` (NumPy; usable without Spark).
        Copies of this Model share it."""
        return self._core_model

    def setFeaturesCol(self, value: str):
        """Sets the value of :py:attr:`featuresCol`."""
        return self._set(featuresCol=value)

    def setLengthCol(self, value: str | None):
        """Sets the value of :py:attr:`lengthCol`."""
        return self._set(lengthCol=value)

    def setPredictionCol(self, value: str):
        """Sets the value of :py:attr:`predictionCol` ("" leaves the column out)."""
        return self._set(predictionCol=value)

    def setInferenceBatchSize(self, value: int):
        """Sets the value of :py:attr:`inferenceBatchSize`."""
        return self._set(inferenceBatchSize=value)

    def _output_columns(self) -> dict[str, str | None]:
        return {
            "prediction_col": self.getPredictionCol() or None,
            "probability_col": None,
            "raw_col": None,
        }

    def _transform(self, dataset: Any) -> Any:
        from sparklstm.spark.inference import predict_dataframe

        return predict_dataframe(
            self.sequenceModel,
            dataset,
            features_col=self.getFeaturesCol(),
            length_col=self.getLengthCol(),
            batch_size=self.getInferenceBatchSize(),
            **self._output_columns(),
        )


class LSTMClassificationModel(
    _LSTMModel, _LSTMClassifierParams, MLReadable["LSTMClassificationModel"]
):
    """Model fitted by :class:`LSTMClassifier`.

    ``transform`` appends ``predictionCol`` (double class index; per step: array<double>),
    ``probabilityCol`` (class probabilities) and ``rawPredictionCol`` (logits; per sequence
    centred to mean zero, which leaves the softmax unchanged and makes element 1 of a two-class
    model order the rows as its probability does, as ``BinaryClassificationEvaluator`` reads
    it, like the ``[-m, m]`` of Spark's logistic regression). With one output per sequence
    (``head="last"``) the two are ``Vector`` columns, as every Spark ML classifier writes them,
    so Spark's evaluators (``BinaryClassificationEvaluator``, ``MulticlassClassificationEvaluator``
    with ``logLoss``, ...) read them; with one output per step (``head="all"``) they stay
    ``array<array<double>>``, since Spark ML has no vector of vectors. Set a column name to
    ``""`` to leave it out.
    """

    _task = "classification"

    @property
    def numClasses(self) -> int:
        """Number of classes the model predicts."""
        return self.sequenceModel.config.output_size

    def setProbabilityCol(self, value: str) -> LSTMClassificationModel:
        """Sets the value of :py:attr:`probabilityCol` ("" leaves the column out)."""
        return self._set(probabilityCol=value)

    def setRawPredictionCol(self, value: str) -> LSTMClassificationModel:
        """Sets the value of :py:attr:`rawPredictionCol` ("" leaves the column out)."""
        return self._set(rawPredictionCol=value)

    def _output_columns(self) -> dict[str, str | None]:
        return {
            "prediction_col": self.getPredictionCol() or None,
            "probability_col": self.getProbabilityCol() or None,
            "raw_col": self.getRawPredictionCol() or None,
        }

    def _transform(self, dataset: Any) -> Any:
        predicted = super()._transform(dataset)
        if self.sequenceModel.config.head != "last":
            return predicted
        session = predicted.sparkSession
        # array<double> -> Vector on the executors (no Python per row); logits centred first.
        probability, raw = self.getProbabilityCol(), self.getRawPredictionCol()
        if probability:
            vectors = array_to_vector(predicted[probability], session)
            predicted = predicted.withColumn(probability, vectors)
        if raw:
            vectors = array_to_vector(_centred(predicted[raw]), session)
            predicted = predicted.withColumn(raw, vectors)
        return predicted

    @classmethod
    def read(cls) -> MLReader[LSTMClassificationModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


class LSTMRegressionModel(_LSTMModel, MLReadable["LSTMRegressionModel"]):
    """Model fitted by :class:`LSTMRegressor`.

    ``transform`` appends ``predictionCol``: a double per row (one target), an array<double>
    (several targets, or one per step), or an array<array<double>> (several targets per step).
    """

    _task = "regression"

    @classmethod
    def read(cls) -> MLReader[LSTMRegressionModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


class LSTMSeq2SeqModel(_NetworkModel, _LSTMSeq2SeqParams, MLReadable["LSTMSeq2SeqModel"]):
    """Model fitted by :class:`LSTMSeq2Seq`.

    ``transform`` appends, to every row, the decoded output sequence in ``predictionCol``:
    ``array<bigint>`` token ids (``<end>`` left out; greedy decoding with ``beamWidth`` 1, else
    beam search, at most ``maxLength`` tokens) with its log-probability in
    ``logProbabilityCol`` (``""`` leaves it out); or, for real-valued targets, the recursive
    forecast of ``horizon`` steps (``array<double>``, or ``array<array<double>>`` with several
    values per step). See :func:`~sparklstm.spark.decoding.decode_dataframe`.
    """

    _task = "seq2seq"
    _core_class = Seq2SeqModel
    _structure = SEQ2SEQ_STRUCTURE

    def __init__(
        self, seq2seqModel: Seq2SeqModel | None = None, history: History | None = None
    ) -> None:
        super().__init__(seq2seqModel, history)

    @property
    def seq2seqModel(self) -> Seq2SeqModel:
        """The trained :class:`~sparklstm.model.Seq2SeqModel` (NumPy; usable without Spark).
        Copies of this Model share it."""
        return self._core_model

    def _transform(self, dataset: Any) -> Any:
        from sparklstm.spark.decoding import decode_dataframe

        options = self._decode_options()
        return decode_dataframe(
            self.seq2seqModel,
            dataset,
            source_col=self.getFeaturesCol(),
            source_length_col=self.getLengthCol(),
            prediction_col=self.getPredictionCol(),
            log_prob_col=self.getLogProbabilityCol() or None,
            beam_width=options.beam_width,
            max_len=options.max_len,
            length_penalty=options.length_penalty,
            horizon=options.horizon,
            batch_size=self.getInferenceBatchSize(),
        )

    @classmethod
    def read(cls) -> MLReader[LSTMSeq2SeqModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


def _model_setter(param_name: str) -> Any:
    def set_(self: Any, value: Any) -> Any:
        return self._set(**{param_name: value})

    set_.__name__ = "set" + param_name[:1].upper() + param_name[1:]
    set_.__doc__ = f"Sets the value of :py:attr:`{param_name}`."
    return set_


# What a fitted encoder-decoder may change: where its columns are and how it decodes.
for _option in seq2seq_param_options():
    if _option.name in {
        "length_col",
        "inference_batch_size",
        "beam_width",
        "max_len",
        "length_penalty",
        "horizon",
    }:
        setattr(
            LSTMSeq2SeqModel,
            _model_setter(_option.param_name).__name__,
            _model_setter(_option.param_name),
        )
for _name in ("featuresCol", "predictionCol", "logProbabilityCol"):
    setattr(LSTMSeq2SeqModel, _model_setter(_name).__name__, _model_setter(_name))


def _centred(logits: Any) -> Any:
    """``logits - mean(logits)`` of an array column, in Spark SQL (the same softmax)."""
    from pyspark.sql import functions as F

    total = F.aggregate(logits, F.lit(0.0), lambda acc, value: acc + value)
    return F.transform(logits, lambda value: value - total / F.size(logits))
