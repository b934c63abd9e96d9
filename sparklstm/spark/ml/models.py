"""The fitted LSTM models: ``LSTMClassificationModel`` and ``LSTMRegressionModel``.

Each holds the trained :class:`~sparklstm.model.SequenceModel` and the history of its training,
and transforms with :func:`~sparklstm.spark.inference.predict_dataframe` (``mapInArrow``, rows
kept).
"""

from __future__ import annotations

from typing import Any

from pyspark.ml.base import Model
from pyspark.ml.util import MLReadable, MLReader, MLWritable, MLWriter

from sparklstm.model import SequenceModel
from sparklstm.spark.ml.params import _LSTMClassifierParams, _LSTMParams
from sparklstm.spark.ml.persistence import _LSTMModelReader, _LSTMModelWriter
from sparklstm.spark.vectors import array_to_vector
from sparklstm.training.history import History

__all__ = ["LSTMClassificationModel", "LSTMRegressionModel"]


class _LSTMModel(Model, _LSTMParams, MLWritable):
    """A fitted model: the :class:`SequenceModel` and the round history of its training."""

    _task = "classification"

    def __init__(
        self, sequenceModel: SequenceModel | None = None, history: History | None = None
    ) -> None:
        super().__init__()
        if sequenceModel is not None and not isinstance(sequenceModel, SequenceModel):
            raise TypeError(
                f"sequenceModel must be a SequenceModel, got {type(sequenceModel).__name__}"
            )
        self._sequence_model = sequenceModel
        self._history = history

    @property
    def sequenceModel(self) -> SequenceModel:
        """The trained :class:`~sparklstm.model.SequenceModel` (NumPy; usable without Spark).
        Copies of this Model share it."""
        if self._sequence_model is None:
            raise RuntimeError(f"{self.uid} holds no trained model")
        return self._sequence_model

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

    def write(self) -> MLWriter:
        """An :class:`MLWriter` for this model (``.overwrite()``, ``.save(path)``). On Spark
        Connect the path must be a directory the client and the server share (see the module
        docstring)."""
        return _LSTMModelWriter(self)

    def __repr__(self) -> str:
        inner = repr(self._sequence_model) if self._sequence_model is not None else "untrained"
        return f"{type(self).__name__}(uid={self.uid}, {inner})"


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


def _centred(logits: Any) -> Any:
    """``logits - mean(logits)`` of an array column, in Spark SQL (the same softmax)."""
    from pyspark.sql import functions as F

    total = F.aggregate(logits, F.lit(0.0), lambda acc, value: acc + value)
    return F.transform(logits, lambda value: value - total / F.size(logits))
