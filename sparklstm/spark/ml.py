"""The ``pyspark.ml`` face of sparklstm: Estimators, Models and their persistence.

``LSTMClassifier`` and ``LSTMRegressor`` are Estimators; ``fit`` maps their Params to a model
configuration and a :class:`~sparklstm.spark.config.DistributedConfig` and calls
:func:`~sparklstm.spark.trainer.fit_distributed`. The fitted ``LSTMClassificationModel`` /
``LSTMRegressionModel`` hold the :class:`~sparklstm.model.SequenceModel` and the round history,
and transform with :func:`~sparklstm.spark.inference.predict_dataframe`. Sizes the data
determines (``input_size`` or ``vocab_size``, the number of classes or regression targets) are
not Params: training reads them from the data.

Persistence follows Spark ML: a model directory holds ``metadata/`` (Spark's Params JSON, as
``DefaultParamsWriter.saveMetadata`` writes it, plus the round history) and ``model/`` (the
core model in :meth:`SequenceModel.save`'s format, so ``SequenceModel.load(path + "/model")``
works without Spark). An Estimator's directory holds ``metadata/`` only. Models reload inside a
saved ``PipelineModel``; the layout is the same on both kinds of session, so a model saved on
one kind loads on the other.

Where the files go:

* **Classic session**: paths resolve as Spark resolves them. Local paths (plain or ``file://``)
  are written and read directly; other Hadoop URIs (``hdfs://``, ``s3a://``) go through a local
  temporary directory and the Hadoop ``FileSystem`` API.
* **Spark Connect** (no JVM in this process): the server writes and reads ``metadata/`` and
  reads ``model/`` (``binaryFile``), so loading takes any path or URI the server can read, and
  an Estimator saves wherever the server can write. The weights' files must keep their names,
  which no DataFrame writer can do, so this client writes ``model/`` itself: a fitted model
  (alone or in a ``PipelineModel``) saves only to a directory that the client and the server
  see at the same path -- one machine, or a shared file system mounted alike -- given as an
  absolute plain path or ``file://`` URI. Another URI is refused in one line before anything is
  written; after the server has written ``metadata/`` the writer checks that the client sees
  it at the same path, and otherwise fails in one line before it writes any weights. To get a
  model into HDFS or S3 from a Connect client, save it to a local directory and copy it there
  (or save it with a classic session). ``overwrite()`` deletes the path first, by the server
  (the call pyspark's own Connect writers make).

Loading checks what it reads and never unpickles: another class's directory, an unsupported
``metadataVersion``, a malformed history, missing weights, or Params that disagree with the
weights (``cellType``, ``hiddenSizes``, ...) raise :class:`~sparklstm.persistence.ModelFileError`,
one line naming the file and the problem.

Examples
--------
>>> clf = LSTMClassifier(hiddenSizes=[32], epochs=5, batchSize=32)  # doctest: +SKIP
>>> model = clf.fit(train_df)  # doctest: +SKIP
>>> model.transform(test_df).select("prediction", "probability").show()  # doctest: +SKIP
>>> model.write().overwrite().save("/tmp/lstm")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import urllib.parse
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.errors import PySparkException
from pyspark.ml.base import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasSeed,
    HasValidationIndicatorCol,
)
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)

from sparklstm.config import CELLS, HEADS, ModelConfig
from sparklstm.model import SequenceModel
from sparklstm.persistence import ARRAYS_NAME, MANIFEST_NAME, ModelFileError
from sparklstm.spark.config import (
    INVALID_ROW_POLICIES,
    LR_SCALINGS,
    SMALL_PARTITION_POLICIES,
    STATE_POLICIES,
    DistributedConfig,
)
from sparklstm.spark.metrics import RoundHistory
from sparklstm.spark.session import is_connect
from sparklstm.validation import check_choice, check_positive_int

__all__ = [
    "LSTMClassifier",
    "LSTMRegressor",
    "LSTMClassificationModel",
    "LSTMRegressionModel",
]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "rmsprop", "adadelta", "adam")
MODEL_DIR = "model"
METADATA_DIR = "metadata"
METADATA_VERSION = 1
# The ``metadataVersion``s the readers understand; the writer writes METADATA_VERSION.
SUPPORTED_METADATA_VERSIONS = (1,)


# ------------------------------------------------------------------------ type converters
# Each converts like Spark's TypeConverters, then checks the range, so that a bad value fails
# when it is set (in the constructor or a setter), naming the Param, long before any training.
def _one_of(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        return check_choice(name, TypeConverters.toString(value), choices)

    return convert


def _int_at_least(name: str, minimum: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        return check_positive_int(name, TypeConverters.toInt(value), minimum)

    return convert


def _float_in(name: str, low: float, high: float = math.inf, *, open_low: bool = False):
    def convert(value: Any) -> float:
        number = TypeConverters.toFloat(value)
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if number < low or (open_low and number == low) or number >= high:
            bound = f"{'(' if open_low else '['}{low}, {high})"
            raise ValueError(f"{name} must be in {bound}, got {value!r}")
        return number

    return convert


def _positive_ints(name: str) -> Callable[[Any], list[int]]:
    def convert(value: Any) -> list[int]:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = [value]
        values = TypeConverters.toListInt(value)
        if not values:
            raise ValueError(f"{name} must be a non-empty list of ints")
        return [check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values)]

    return convert


def _column_name(name: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = TypeConverters.toString(value)
        if not text:
            raise ValueError(f"{name} must be a non-empty column name")
        return text

    return convert


def _stable_seed(name: str) -> int:
    """A default seed that is the same in every process (``hash(str)`` is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def _p(name: str, doc: str, converter: Callable[[Any], Any]) -> Param:
    """A Param whose converter lets None through (``_set`` skips converters for None, but
    ``set`` -- used when loading saved Params -- does not)."""

    def convert(value: Any) -> Any:
        return None if value is None else converter(value)

    return Param(Params._dummy(), name, doc, typeConverter=convert)


# ------------------------------------------------------------------------------ the Params
class _LSTMParams(
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasSeed,
    HasValidationIndicatorCol,
):
    """Params of the LSTM estimators and models (the models keep the values they were fit
    with). Optional Params default to ``None``: the data or the library decides."""

    lengthCol: Param[str] = _p(
        "lengthCol",
        "integer column of sequence lengths, each in [1, array length]; None uses the arrays' "
        "own lengths",
        _column_name("lengthCol"),
    )
    # ---- the network
    cellType: Param[str] = _p(
        "cellType",
        "recurrent cell: lstm, peephole (LSTM with peephole connections) or gru",
        _one_of("cellType", CELLS),
    )
    hiddenSizes: Param[list[int]] = _p(
        "hiddenSizes",
        "hidden size of each stacked recurrent layer (a list of ints >= 1)",
        _positive_ints("hiddenSizes"),
    )
    bidirectional: Param[bool] = _p(
        "bidirectional", "every recurrent layer runs in both directions", TypeConverters.toBoolean
    )
    dropout: Param[float] = _p(
        "dropout",
        "dropout rate in [0, 1) between stacked recurrent layers (training only)",
        _float_in("dropout", 0.0, 1.0),
    )
    head: Param[str] = _p(
        "head",
        "last: one output per sequence; all: one output per valid step (per-step labels)",
        _one_of("head", HEADS),
    )
    vocabSize: Param[int] = _p(
        "vocabSize",
        "number of token ids for array<int> token inputs; None takes max id + 1 from the data",
        _int_at_least("vocabSize", 1),
    )
    embeddingDim: Param[int] = _p(
        "embeddingDim",
        "embedding width for token inputs (None: 32); float inputs have no embedding",
        _int_at_least("embeddingDim", 1),
    )
    # ---- training
    epochs: Param[int] = _p(
        "epochs", "passes over the data (ignored when rounds is set)", _int_at_least("epochs", 1)
    )
    rounds: Param[int] = _p(
        "rounds",
        "total averaging rounds instead of epochs; None uses epochs",
        _int_at_least("rounds", 1),
    )
    localSteps: Param[int] = _p(
        "localSteps",
        "minibatch updates each worker makes between two parameter averages; None means one "
        "average per epoch",
        _int_at_least("localSteps", 1),
    )
    batchSize: Param[int] = _p(
        "batchSize", "sequences per minibatch on each worker (>= 1)", _int_at_least("batchSize", 1)
    )
    numPartitions: Param[int] = _p(
        "numPartitions",
        "repartition the training data into this many partitions (= workers per round); None "
        "keeps the DataFrame's partitioning",
        _int_at_least("numPartitions", 1),
    )
    optimizer: Param[str] = _p(
        "optimizer",
        "the workers' optimizer: sgd, rmsprop, adadelta or adam",
        _one_of("optimizer", OPTIMIZERS),
    )
    learningRate: Param[float] = _p(
        "learningRate",
        "learning rate (> 0); None uses the optimizer's default",
        _float_in("learningRate", 0.0, open_low=True),
    )
    lrScaling: Param[str] = _p(
        "lrScaling",
        "scale the rate with the number of workers: none, linear or sqrt",
        _one_of("lrScaling", LR_SCALINGS),
    )
    warmupRounds: Param[int] = _p(
        "warmupRounds",
        "linear learning-rate warm-up over this many rounds (>= 0)",
        _int_at_least("warmupRounds", 0),
    )
    statePolicy: Param[str] = _p(
        "statePolicy",
        "optimizer state at each average: average, reset or local",
        _one_of("statePolicy", STATE_POLICIES),
    )
    outerMomentum: Param[float] = _p(
        "outerMomentum",
        "block momentum on the averaged update, in [0, 1) (0: plain averaging)",
        _float_in("outerMomentum", 0.0, 1.0),
    )
    clipNorm: Param[float] = _p(
        "clipNorm",
        "clip each step's gradient to this global L2 norm (> 0); None: no clipping",
        _float_in("clipNorm", 0.0, open_low=True),
    )
    weightDecay: Param[float] = _p(
        "weightDecay", "L2 weight decay (>= 0)", _float_in("weightDecay", 0.0)
    )
    validateEvery: Param[int] = _p(
        "validateEvery",
        "rounds between two validations (with validation rows)",
        _int_at_least("validateEvery", 1),
    )
    earlyStopping: Param[int] = _p(
        "earlyStopping",
        "stop after this many validations without a better validation loss, and keep the best "
        "parameters; None disables",
        _int_at_least("earlyStopping", 1),
    )
    checkpointDir: Param[str] = _p(
        "checkpointDir",
        "directory for training checkpoints (driver-local); None: none",
        TypeConverters.toString,
    )
    cacheDir: Param[str] = _p(
        "cacheDir",
        "for sessions that cannot cache DataFrames (serverless): a directory every executor "
        "reaches, where the encoded data are kept as Parquet; None: Spark's block store",
        TypeConverters.toString,
    )
    checkpointEvery: Param[int] = _p(
        "checkpointEvery", "rounds between two checkpoints", _int_at_least("checkpointEvery", 1)
    )
    metricsPath: Param[str] = _p(
        "metricsPath",
        "JSON-lines file with one object per round (driver-local); None: none",
        TypeConverters.toString,
    )
    progress: Param[bool] = _p(
        "progress", "print one line per round to stderr", TypeConverters.toBoolean
    )
    smallPartitions: Param[str] = _p(
        "smallPartitions",
        "a partition with fewer rows than batchSize: error, train (anyway) or skip",
        _one_of("smallPartitions", SMALL_PARTITION_POLICIES),
    )
    invalidRows: Param[str] = _p(
        "invalidRows",
        "rows with nulls, NaN/Inf, bad lengths or labels: error or skip (counted in the summary)",
        _one_of("invalidRows", INVALID_ROW_POLICIES),
    )
    inferenceBatchSize: Param[int] = _p(
        "inferenceBatchSize",
        "rows per forward pass when transforming (bounds the executors' memory)",
        _int_at_least("inferenceBatchSize", 1),
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(
            seed=_stable_seed(type(self).__name__),
            lengthCol=None,
            cellType="lstm",
            hiddenSizes=[64],
            bidirectional=False,
            dropout=0.0,
            head="last",
            vocabSize=None,
            embeddingDim=None,
            epochs=10,
            rounds=None,
            localSteps=None,
            batchSize=32,
            numPartitions=None,
            optimizer="adam",
            learningRate=None,
            lrScaling="none",
            warmupRounds=0,
            statePolicy="average",
            outerMomentum=0.0,
            clipNorm=None,
            weightDecay=0.0,
            validateEvery=1,
            earlyStopping=None,
            checkpointDir=None,
            cacheDir=None,
            checkpointEvery=1,
            metricsPath=None,
            progress=False,
            smallPartitions="error",
            invalidRows="error",
            inferenceBatchSize=512,
        )

    def getLengthCol(self) -> str | None:
        """Gets the value of :py:attr:`lengthCol` or its default value."""
        return self.getOrDefault(self.lengthCol)

    def getCellType(self) -> str:
        """Gets the value of :py:attr:`cellType` or its default value."""
        return self.getOrDefault(self.cellType)

    def getHiddenSizes(self) -> list[int]:
        """Gets the value of :py:attr:`hiddenSizes` or its default value."""
        return self.getOrDefault(self.hiddenSizes)

    def getBidirectional(self) -> bool:
        """Gets the value of :py:attr:`bidirectional` or its default value."""
        return self.getOrDefault(self.bidirectional)

    def getDropout(self) -> float:
        """Gets the value of :py:attr:`dropout` or its default value."""
        return self.getOrDefault(self.dropout)

    def getHead(self) -> str:
        """Gets the value of :py:attr:`head` or its default value."""
        return self.getOrDefault(self.head)

    def getVocabSize(self) -> int | None:
        """Gets the value of :py:attr:`vocabSize` or its default value."""
        return self.getOrDefault(self.vocabSize)

    def getEmbeddingDim(self) -> int | None:
        """Gets the value of :py:attr:`embeddingDim` or its default value."""
        return self.getOrDefault(self.embeddingDim)

    def getEpochs(self) -> int:
        """Gets the value of :py:attr:`epochs` or its default value."""
        return self.getOrDefault(self.epochs)

    def getRounds(self) -> int | None:
        """Gets the value of :py:attr:`rounds` or its default value."""
        return self.getOrDefault(self.rounds)

    def getLocalSteps(self) -> int | None:
        """Gets the value of :py:attr:`localSteps` or its default value."""
        return self.getOrDefault(self.localSteps)

    def getBatchSize(self) -> int:
        """Gets the value of :py:attr:`batchSize` or its default value."""
        return self.getOrDefault(self.batchSize)

    def getNumPartitions(self) -> int | None:
        """Gets the value of :py:attr:`numPartitions` or its default value."""
        return self.getOrDefault(self.numPartitions)

    def getOptimizer(self) -> str:
        """Gets the value of :py:attr:`optimizer` or its default value."""
        return self.getOrDefault(self.optimizer)

    def getLearningRate(self) -> float | None:
        """Gets the value of :py:attr:`learningRate` or its default value."""
        return self.getOrDefault(self.learningRate)

    def getLrScaling(self) -> str:
        """Gets the value of :py:attr:`lrScaling` or its default value."""
        return self.getOrDefault(self.lrScaling)

    def getWarmupRounds(self) -> int:
        """Gets the value of :py:attr:`warmupRounds` or its default value."""
        return self.getOrDefault(self.warmupRounds)

    def getStatePolicy(self) -> str:
        """Gets the value of :py:attr:`statePolicy` or its default value."""
        return self.getOrDefault(self.statePolicy)

    def getOuterMomentum(self) -> float:
        """Gets the value of :py:attr:`outerMomentum` or its default value."""
        return self.getOrDefault(self.outerMomentum)

    def getClipNorm(self) -> float | None:
        """Gets the value of :py:attr:`clipNorm` or its default value."""
        return self.getOrDefault(self.clipNorm)

    def getWeightDecay(self) -> float:
        """Gets the value of :py:attr:`weightDecay` or its default value."""
        return self.getOrDefault(self.weightDecay)

    def getValidateEvery(self) -> int:
        """Gets the value of :py:attr:`validateEvery` or its default value."""
        return self.getOrDefault(self.validateEvery)

    def getEarlyStopping(self) -> int | None:
        """Gets the value of :py:attr:`earlyStopping` or its default value."""
        return self.getOrDefault(self.earlyStopping)

    def getCheckpointDir(self) -> str | None:
        """Gets the value of :py:attr:`checkpointDir` or its default value."""
        return self.getOrDefault(self.checkpointDir)

    def getCacheDir(self) -> str | None:
        """Gets the value of :py:attr:`cacheDir` or its default value."""
        return self.getOrDefault(self.cacheDir)

    def getCheckpointEvery(self) -> int:
        """Gets the value of :py:attr:`checkpointEvery` or its default value."""
        return self.getOrDefault(self.checkpointEvery)

    def getMetricsPath(self) -> str | None:
        """Gets the value of :py:attr:`metricsPath` or its default value."""
        return self.getOrDefault(self.metricsPath)

    def getProgress(self) -> bool:
        """Gets the value of :py:attr:`progress` or its default value."""
        return self.getOrDefault(self.progress)

    def getSmallPartitions(self) -> str:
        """Gets the value of :py:attr:`smallPartitions` or its default value."""
        return self.getOrDefault(self.smallPartitions)

    def getInvalidRows(self) -> str:
        """Gets the value of :py:attr:`invalidRows` or its default value."""
        return self.getOrDefault(self.invalidRows)

    def getInferenceBatchSize(self) -> int:
        """Gets the value of :py:attr:`inferenceBatchSize` or its default value."""
        return self.getOrDefault(self.inferenceBatchSize)

    def _validation_col(self) -> str | None:
        """The validation indicator column, or None when it is not set (it has no default)."""
        if self.isDefined(self.validationIndicatorCol):
            return self.getValidationIndicatorCol() or None
        return None

    # ------------------------------------------------------------ mapping to the library
    def _model_options(self, task: str) -> dict[str, Any]:
        """The model configuration dict for :func:`fit_distributed` (sizes left to the data)."""
        options: dict[str, Any] = {
            "cell": self.getCellType(),
            "hidden_sizes": list(self.getHiddenSizes()),
            "bidirectional": self.getBidirectional(),
            "dropout": self.getDropout(),
            "head": self.getHead(),
            "task": task,
            "seed": self.getSeed() % 2**63,
        }
        if self.getVocabSize() is not None:
            options["vocab_size"] = self.getVocabSize()
        if self.getEmbeddingDim() is not None:
            options["embedding_dim"] = self.getEmbeddingDim()
        # Build once with stand-in sizes, so that a bad combination fails before any job.
        stand_in = dict(options, output_size=2 if task == "classification" else 1)
        if "vocab_size" not in options:
            stand_in["vocab_size" if "embedding_dim" in options else "input_size"] = 2
        ModelConfig.from_dict(stand_in)
        return options

    def _training_config(self) -> DistributedConfig:
        """The validated :class:`DistributedConfig` these Params describe."""
        return DistributedConfig(
            epochs=self.getEpochs(),
            rounds=self.getRounds(),
            local_steps=self.getLocalSteps(),
            batch_size=self.getBatchSize(),
            num_partitions=self.getNumPartitions(),
            optimizer=self.getOptimizer(),
            lr=self.getLearningRate(),
            weight_decay=self.getWeightDecay(),
            lr_scaling=self.getLrScaling(),
            warmup_rounds=self.getWarmupRounds(),
            state_policy=self.getStatePolicy(),
            outer_momentum=self.getOuterMomentum(),
            clip_norm=self.getClipNorm(),
            seed=self.getSeed() % 2**63,
            validate_every=self.getValidateEvery(),
            early_stopping=self.getEarlyStopping(),
            checkpoint_every=self.getCheckpointEvery(),
            small_partitions=self.getSmallPartitions(),
            invalid_rows=self.getInvalidRows(),
            cache_dir=self.getCacheDir(),
        )


class _LSTMClassifierParams(_LSTMParams, HasProbabilityCol, HasRawPredictionCol):
    """Params of :class:`LSTMClassifier` and :class:`LSTMClassificationModel`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)


# ------------------------------------------------------------------------------ estimators
class _LSTMEstimator(Estimator, _LSTMParams, DefaultParamsWritable, DefaultParamsReadable):
    """Setters and ``_fit`` shared by :class:`LSTMClassifier` and :class:`LSTMRegressor`."""

    _task = "classification"

    def _create_model(self, model: SequenceModel, history: RoundHistory) -> _LSTMModel:
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

    def _fit(self, dataset: Any) -> _LSTMModel:
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
        )
        return self._copyValues(self._create_model(model, history))

    # ------------------------------------------------------------------------- setters
    def setFeaturesCol(self, value: str):
        """Sets the value of :py:attr:`featuresCol`."""
        return self._set(featuresCol=value)

    def setLabelCol(self, value: str):
        """Sets the value of :py:attr:`labelCol`."""
        return self._set(labelCol=value)

    def setPredictionCol(self, value: str):
        """Sets the value of :py:attr:`predictionCol`."""
        return self._set(predictionCol=value)

    def setLengthCol(self, value: str | None):
        """Sets the value of :py:attr:`lengthCol`."""
        return self._set(lengthCol=value)

    def setValidationIndicatorCol(self, value: str | None):
        """Sets the value of :py:attr:`validationIndicatorCol` (None: no validation rows)."""
        return _set_given(self, {"validationIndicatorCol": value})

    def setSeed(self, value: int):
        """Sets the value of :py:attr:`seed`."""
        return self._set(seed=value)

    def setCellType(self, value: str):
        """Sets the value of :py:attr:`cellType`."""
        return self._set(cellType=value)

    def setHiddenSizes(self, value: list[int]):
        """Sets the value of :py:attr:`hiddenSizes`."""
        return self._set(hiddenSizes=value)

    def setBidirectional(self, value: bool):
        """Sets the value of :py:attr:`bidirectional`."""
        return self._set(bidirectional=value)

    def setDropout(self, value: float):
        """Sets the value of :py:attr:`dropout`."""
        return self._set(dropout=value)

    def setHead(self, value: str):
        """Sets the value of :py:attr:`head`."""
        return self._set(head=value)

    def setVocabSize(self, value: int | None):
        """Sets the value of :py:attr:`vocabSize`."""
        return self._set(vocabSize=value)

    def setEmbeddingDim(self, value: int | None):
        """Sets the value of :py:attr:`embeddingDim`."""
        return self._set(embeddingDim=value)

    def setEpochs(self, value: int):
        """Sets the value of :py:attr:`epochs`."""
        return self._set(epochs=value)

    def setRounds(self, value: int | None):
        """Sets the value of :py:attr:`rounds`."""
        return self._set(rounds=value)

    def setLocalSteps(self, value: int | None):
        """Sets the value of :py:attr:`localSteps`."""
        return self._set(localSteps=value)

    def setBatchSize(self, value: int):
        """Sets the value of :py:attr:`batchSize`."""
        return self._set(batchSize=value)

    def setNumPartitions(self, value: int | None):
        """Sets the value of :py:attr:`numPartitions`."""
        return self._set(numPartitions=value)

    def setOptimizer(self, value: str):
        """Sets the value of :py:attr:`optimizer`."""
        return self._set(optimizer=value)

    def setLearningRate(self, value: float | None):
        """Sets the value of :py:attr:`learningRate`."""
        return self._set(learningRate=value)

    def setLrScaling(self, value: str):
        """Sets the value of :py:attr:`lrScaling`."""
        return self._set(lrScaling=value)

    def setWarmupRounds(self, value: int):
        """Sets the value of :py:attr:`warmupRounds`."""
        return self._set(warmupRounds=value)

    def setStatePolicy(self, value: str):
        """Sets the value of :py:attr:`statePolicy`."""
        return self._set(statePolicy=value)

    def setOuterMomentum(self, value: float):
        """Sets the value of :py:attr:`outerMomentum`."""
        return self._set(outerMomentum=value)

    def setClipNorm(self, value: float | None):
        """Sets the value of :py:attr:`clipNorm`."""
        return self._set(clipNorm=value)

    def setWeightDecay(self, value: float):
        """Sets the value of :py:attr:`weightDecay`."""
        return self._set(weightDecay=value)

    def setValidateEvery(self, value: int):
        """Sets the value of :py:attr:`validateEvery`."""
        return self._set(validateEvery=value)

    def setEarlyStopping(self, value: int | None):
        """Sets the value of :py:attr:`earlyStopping`."""
        return self._set(earlyStopping=value)

    def setCheckpointDir(self, value: str | None):
        """Sets the value of :py:attr:`checkpointDir`."""
        return self._set(checkpointDir=value)

    def setCacheDir(self, value: str | None):
        """Sets the value of :py:attr:`cacheDir`."""
        return self._set(cacheDir=value)

    def setCheckpointEvery(self, value: int):
        """Sets the value of :py:attr:`checkpointEvery`."""
        return self._set(checkpointEvery=value)

    def setMetricsPath(self, value: str | None):
        """Sets the value of :py:attr:`metricsPath`."""
        return self._set(metricsPath=value)

    def setProgress(self, value: bool):
        """Sets the value of :py:attr:`progress`."""
        return self._set(progress=value)

    def setSmallPartitions(self, value: str):
        """Sets the value of :py:attr:`smallPartitions`."""
        return self._set(smallPartitions=value)

    def setInvalidRows(self, value: str):
        """Sets the value of :py:attr:`invalidRows`."""
        return self._set(invalidRows=value)

    def setInferenceBatchSize(self, value: int):
        """Sets the value of :py:attr:`inferenceBatchSize`."""
        return self._set(inferenceBatchSize=value)


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
    numClasses: Param[int] = _p(
        "numClasses",
        "number of classes (the output layer's size); None takes max label + 1 from the data. "
        "Set it when the training rows may lack the highest classes (e.g. a next-character "
        "model trained on a slice of a text); a label >= numClasses is an error",
        _int_at_least("numClasses", 2),
    )

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
        lengthCol: str | None = None,
        validationIndicatorCol: str | None = None,
        seed: int | None = None,
        cellType: str = "lstm",
        hiddenSizes: list[int] | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
        vocabSize: int | None = None,
        embeddingDim: int | None = None,
        numClasses: int | None = None,
        epochs: int = 10,
        rounds: int | None = None,
        localSteps: int | None = None,
        batchSize: int = 32,
        numPartitions: int | None = None,
        optimizer: str = "adam",
        learningRate: float | None = None,
        lrScaling: str = "none",
        warmupRounds: int = 0,
        statePolicy: str = "average",
        outerMomentum: float = 0.0,
        clipNorm: float | None = None,
        weightDecay: float = 0.0,
        validateEvery: int = 1,
        earlyStopping: int | None = None,
        checkpointDir: str | None = None,
        cacheDir: str | None = None,
        checkpointEvery: int = 1,
        metricsPath: str | None = None,
        progress: bool = False,
        smallPartitions: str = "error",
        invalidRows: str = "error",
        inferenceBatchSize: int = 512,
    ) -> None:
        """Any Param given as ``None`` keeps its default."""
        super().__init__()
        self._setDefault(numClasses=None)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
        lengthCol: str | None = None,
        validationIndicatorCol: str | None = None,
        seed: int | None = None,
        cellType: str = "lstm",
        hiddenSizes: list[int] | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
        vocabSize: int | None = None,
        embeddingDim: int | None = None,
        numClasses: int | None = None,
        epochs: int = 10,
        rounds: int | None = None,
        localSteps: int | None = None,
        batchSize: int = 32,
        numPartitions: int | None = None,
        optimizer: str = "adam",
        learningRate: float | None = None,
        lrScaling: str = "none",
        warmupRounds: int = 0,
        statePolicy: str = "average",
        outerMomentum: float = 0.0,
        clipNorm: float | None = None,
        weightDecay: float = 0.0,
        validateEvery: int = 1,
        earlyStopping: int | None = None,
        checkpointDir: str | None = None,
        cacheDir: str | None = None,
        checkpointEvery: int = 1,
        metricsPath: str | None = None,
        progress: bool = False,
        smallPartitions: str = "error",
        invalidRows: str = "error",
        inferenceBatchSize: int = 512,
    ) -> LSTMClassifier:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def setProbabilityCol(self, value: str) -> LSTMClassifier:
        """Sets the value of :py:attr:`probabilityCol` ("" leaves the column out)."""
        return self._set(probabilityCol=value)

    def getNumClasses(self) -> int | None:
        """Gets the value of :py:attr:`numClasses` or its default value."""
        return self.getOrDefault(self.numClasses)

    def _model_options(self, task: str) -> dict[str, Any]:
        options = super()._model_options(task)
        if self.getNumClasses() is not None:
            options["output_size"] = self.getNumClasses()
        return options

    def setNumClasses(self, value: int | None) -> LSTMClassifier:
        """Sets the value of :py:attr:`numClasses` (None: from the data)."""
        return self._set(numClasses=value)

    def setRawPredictionCol(self, value: str) -> LSTMClassifier:
        """Sets the value of :py:attr:`rawPredictionCol` ("" leaves the column out)."""
        return self._set(rawPredictionCol=value)

    def _create_model(self, model: SequenceModel, history: RoundHistory) -> LSTMClassificationModel:
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
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        lengthCol: str | None = None,
        validationIndicatorCol: str | None = None,
        seed: int | None = None,
        cellType: str = "lstm",
        hiddenSizes: list[int] | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
        vocabSize: int | None = None,
        embeddingDim: int | None = None,
        epochs: int = 10,
        rounds: int | None = None,
        localSteps: int | None = None,
        batchSize: int = 32,
        numPartitions: int | None = None,
        optimizer: str = "adam",
        learningRate: float | None = None,
        lrScaling: str = "none",
        warmupRounds: int = 0,
        statePolicy: str = "average",
        outerMomentum: float = 0.0,
        clipNorm: float | None = None,
        weightDecay: float = 0.0,
        validateEvery: int = 1,
        earlyStopping: int | None = None,
        checkpointDir: str | None = None,
        cacheDir: str | None = None,
        checkpointEvery: int = 1,
        metricsPath: str | None = None,
        progress: bool = False,
        smallPartitions: str = "error",
        invalidRows: str = "error",
        inferenceBatchSize: int = 512,
    ) -> None:
        """Any Param given as ``None`` keeps its default."""
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        lengthCol: str | None = None,
        validationIndicatorCol: str | None = None,
        seed: int | None = None,
        cellType: str = "lstm",
        hiddenSizes: list[int] | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
        vocabSize: int | None = None,
        embeddingDim: int | None = None,
        epochs: int = 10,
        rounds: int | None = None,
        localSteps: int | None = None,
        batchSize: int = 32,
        numPartitions: int | None = None,
        optimizer: str = "adam",
        learningRate: float | None = None,
        lrScaling: str = "none",
        warmupRounds: int = 0,
        statePolicy: str = "average",
        outerMomentum: float = 0.0,
        clipNorm: float | None = None,
        weightDecay: float = 0.0,
        validateEvery: int = 1,
        earlyStopping: int | None = None,
        checkpointDir: str | None = None,
        cacheDir: str | None = None,
        checkpointEvery: int = 1,
        metricsPath: str | None = None,
        progress: bool = False,
        smallPartitions: str = "error",
        invalidRows: str = "error",
        inferenceBatchSize: int = 512,
    ) -> LSTMRegressor:
        """Sets the Params given (only those given)."""
        return _set_given(self, self._input_kwargs)

    def _create_model(self, model: SequenceModel, history: RoundHistory) -> LSTMRegressionModel:
        return LSTMRegressionModel(model, history)


def _set_given(instance: Params, kwargs: Mapping[str, Any]) -> Any:
    """``setParams``: set the Params the caller passed; ``None`` means the default (it clears
    the Param: optional Params default to None, ``validationIndicatorCol`` has no default)."""
    for name, value in kwargs.items():
        if value is None:
            instance.clear(instance.getParam(name))
    return instance._set(**{name: value for name, value in kwargs.items() if value is not None})


# ------------------------------------------------------------------------------ the models
class _LSTMModel(Model, _LSTMParams, MLWritable):
    """A fitted model: the :class:`SequenceModel` and the round history of its training."""

    def __init__(
        self, sequenceModel: SequenceModel | None = None, history: RoundHistory | None = None
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
    def summary(self) -> RoundHistory:
        """The training's :class:`~sparklstm.spark.metrics.RoundHistory`: ``rows`` (one dict
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
    ``probabilityCol`` (array<double> of class probabilities; per step: array<array<double>>)
    and ``rawPredictionCol`` (logits, same shapes as the probabilities). Set a column name to
    ``""`` to leave it out.
    """

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

    @classmethod
    def read(cls) -> MLReader[LSTMClassificationModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


class LSTMRegressionModel(_LSTMModel, MLReadable["LSTMRegressionModel"]):
    """Model fitted by :class:`LSTMRegressor`.

    ``transform`` appends ``predictionCol``: a double per row (one target), an array<double>
    (several targets, or one per step), or an array<array<double>> (several targets per step).
    """

    @classmethod
    def read(cls) -> MLReader[LSTMRegressionModel]:
        """An :class:`MLReader` for this class."""
        return _LSTMModelReader(cls)


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays turned into JSON-ready Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# The Params that define the network, each with the value the weights imply (read from the
# loaded SequenceModel's config). The saved Params must agree with the weights; None for
# vocabSize / embeddingDim means "the data decides" and agrees with any value.
_STRUCTURE: dict[str, Callable[[ModelConfig], Any]] = {
    "cellType": lambda config: config.cell,
    "hiddenSizes": lambda config: list(config.hidden_sizes),
    "bidirectional": lambda config: config.bidirectional,
    "dropout": lambda config: config.dropout,
    "head": lambda config: config.head,
    "vocabSize": lambda config: config.vocab_size,
    "embeddingDim": lambda config: config.embedding_dim,
}
_DATA_DECIDES = frozenset({"vocabSize", "embeddingDim"})


def _implied_structure(config: ModelConfig) -> dict[str, Any]:
    return {name: implied(config) for name, implied in _STRUCTURE.items()}


def _agrees(name: str, stated: Any, implied: Any) -> bool:
    return stated == implied or (stated is None and name in _DATA_DECIDES)


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _model_task(cls: type[_LSTMModel]) -> str:
    return "classification" if issubclass(cls, LSTMClassificationModel) else "regression"


def _json_kind(value: Any) -> str:
    """What a JSON value is, for messages: ``a string``, ``an array``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _one_line(error: BaseException) -> str:
    """The first non-empty line of ``error``'s message (Spark appends JVM stack traces)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ------------------------------------------------------------------------------ persistence
# Where the files go. A classic session resolves a path as Spark does (Hadoop, in the JVM of
# this process): a local path is written and read directly, any other URI through a local
# temporary directory and the Hadoop FileSystem API. A Spark Connect client has no JVM: its
# server writes and reads the metadata (a DataFrame, as Spark ML's own writers do) and reads
# the weights (the binaryFile source), but the weights' two files must keep their names, which
# no DataFrame writer can do, so this client writes them itself.
_EXISTS = "path {path!r} already exists; use .write().overwrite().save(path) to replace it"
_WEIGHT_FILES = (MANIFEST_NAME, ARRAYS_NAME)


def _hadoop_path(spark: Any, path: str) -> tuple[Any, Any, str | None]:
    """Classic sessions only: ``(FileSystem, qualified Path, local path or None)`` of ``path``,
    resolved as Spark resolves it (relative paths and paths without a scheme against the
    default file system). The local path is set when the file system is the local one."""
    sc = spark.sparkContext
    hadoop_path = sc._jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(sc._jsc.hadoopConfiguration())
    qualified = fs.makeQualified(hadoop_path)
    uri = qualified.toUri()
    local = uri.getPath() if (uri.getScheme() or "file") == "file" else None
    return fs, qualified, local


def _client_path(path: str) -> str:
    """Spark Connect: the absolute path on this client's file system that ``path`` names (a
    plain path, a relative one against this process's working directory, or a ``file:`` URI).
    Any other URI is refused in one line: only the server could write there."""
    parts = urllib.parse.urlsplit(path)
    scheme = parts.scheme.lower()
    if not scheme:
        return os.path.abspath(path)
    if scheme == "file" and parts.netloc in ("", "localhost"):
        return os.path.abspath(parts.path)
    raise ValueError(
        f"path {path!r}: on Spark Connect this client writes a fitted model's weights itself, "
        f"to its own file system, not to {scheme}:// URIs; save to a local or shared directory "
        "that the client and the server see at the same path (or with a classic session), "
        "then copy it there"
    )


def save_sequence_model(spark: Any, model: SequenceModel, path: str) -> None:
    """``model.save`` at ``path``. On a classic session: a local path or ``file:`` URI directly,
    any other Hadoop URI through a local temporary directory and
    ``FileSystem.copyFromLocalFile``. On Spark Connect: on this client's file system (a plain
    path or ``file:`` URI; other URIs raise ``ValueError``)."""
    if is_connect(spark):
        model.save(_client_path(path))
        return
    fs, target, local = _hadoop_path(spark, path)
    if local is not None:
        model.save(local)
        return
    jvm = spark.sparkContext._jvm
    scratch = tempfile.mkdtemp(prefix="sparklstm-save-")
    try:
        staged = model.save(os.path.join(scratch, MODEL_DIR))
        source = jvm.org.apache.hadoop.fs.Path(staged.resolve().as_uri())
        fs.copyFromLocalFile(False, True, source, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_sequence_model(spark: Any, path: str) -> SequenceModel:
    """Inverse of :func:`save_sequence_model`; :class:`ModelFileError` if ``path`` is missing
    or does not hold a valid model. On Spark Connect the server reads the files: any path or
    URI the server can read (a copy of the files comes to this client)."""
    if is_connect(spark):
        return _load_through_server(spark, path)
    fs, source, local = _hadoop_path(spark, path)
    if local is not None:
        return SequenceModel.load(local)
    if not fs.exists(source):
        raise ModelFileError(f"{path}: no such file or directory")
    jvm = spark.sparkContext._jvm
    scratch = tempfile.mkdtemp(prefix="sparklstm-load-")
    try:
        staged = os.path.join(scratch, MODEL_DIR)
        fs.copyToLocalFile(False, source, jvm.org.apache.hadoop.fs.Path("file://" + staged), True)
        return _load_staged(staged, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load_staged(staged: str, path: str) -> SequenceModel:
    """``SequenceModel.load`` of a local copy of ``path``; a failure names ``path``."""
    try:
        return SequenceModel.load(staged)
    except ModelFileError as exc:
        raise ModelFileError(str(exc).replace(staged, path)) from exc


def _load_through_server(spark: Any, path: str) -> SequenceModel:
    """Spark Connect: the weights directory ``path`` read by the server (``binaryFile``, its
    two files only), copied to a local temporary directory and loaded from there."""
    try:
        rows = (
            spark.read.format("binaryFile")
            .option("pathGlobFilter", "{" + ",".join(_WEIGHT_FILES) + "}")
            .load(path)
            .select("path", "content")
            .collect()
        )
    except PySparkException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            raise ModelFileError(f"{path}: no such file or directory") from exc
        raise ModelFileError(
            f"{path}: the Spark Connect server cannot read the model files ({_one_line(exc)})"
        ) from exc
    found: dict[str, bytes] = {}
    for row in rows:
        name = row["path"].rstrip("/").rsplit("/", 1)[-1]
        if name in found:  # one in path, another in a subdirectory
            raise ModelFileError(f"{path}: holds more than one {name}; a model directory has one")
        found[name] = bytes(row["content"])
    scratch = tempfile.mkdtemp(prefix="sparklstm-load-")
    try:
        staged = os.path.join(scratch, MODEL_DIR)
        os.mkdir(staged)
        for name, content in found.items():
            with open(os.path.join(staged, name), "wb") as file:
                file.write(content)
        return _load_staged(staged, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_metadata(
    spark: Any,
    instance: Params,
    path: str,
    extra: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Write what ``DefaultParamsWriter.saveMetadata`` writes (one JSON line, in
    ``<path>/metadata``) through ``spark`` -- on Spark Connect the server writes it -- and
    return the line."""
    text = DefaultParamsWriter._get_metadata_to_save(instance, spark, extra, params)
    where = os.path.join(path, METADATA_DIR)
    try:
        spark.createDataFrame([(text,)], schema=["value"]).coalesce(1).write.text(where)
    except PySparkException as exc:
        if exc.getCondition() == "PATH_ALREADY_EXISTS":
            raise FileExistsError(_EXISTS.format(path=path) + f" ({where} exists)") from exc
        raise OSError(f"path {path!r}: cannot write {where} ({_one_line(exc)})") from exc
    return text


def _check_client_sees(path: str, text: str) -> None:
    """Spark Connect: this client must find, at its own ``path``, the metadata line the server
    has just written there; otherwise the weights it writes next would land elsewhere."""
    folder = os.path.join(_client_path(path), METADATA_DIR)
    lines = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            if name.startswith("part-"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as file:
                    lines.append(file.read().rstrip("\n"))
    if text not in lines:
        raise ValueError(
            f"path {path!r}: the Spark Connect server wrote the metadata there, but this client "
            f"does not see it at {folder}; the client writes the weights itself, so save to a "
            "directory that the client and the server see at the same path (one machine, or a "
            "shared file system mounted alike), given as an absolute path (the server resolves a "
            "relative one against its own working directory)"
        )


def _exists_on_server(spark: Any, path: str) -> bool:
    """Spark Connect: whether the server finds ``path`` (a file or directory). Resolving a
    file source checks that its path exists (and lists it: a model directory is small)."""
    try:
        spark.read.format("binaryFile").load(path).schema  # noqa: B018 (the server resolves it)
    except PySparkException as exc:
        return exc.getCondition() != "PATH_NOT_FOUND"
    return True


def _delete_on_server(path: str) -> None:
    """Spark Connect: the server deletes ``path`` if it exists, as Spark ML writers do before
    an overwrite. It is the call pyspark's own Connect writers make (``Pipeline``,
    ``CrossValidator``); it goes to the active Connect session."""
    from pyspark.ml.connect.readwrite import RemoteMLWriter

    try:
        RemoteMLWriter.handleOverwrite(path, True)
    except PySparkException as exc:
        raise OSError(
            f"path {path!r}: the Spark Connect server cannot delete it to overwrite it "
            f"({_one_line(exc)})"
        ) from exc


class _Writer(MLWriter):
    """An :class:`MLWriter` for both kinds of session. ``save`` refuses a path that exists
    unless ``overwrite()`` was called; then the path is deleted first, as Spark ML does: by
    the JVM on a classic session (``MLWriter.save``), by the server on Spark Connect (where
    ``MLWriter.save`` would need a JVM in this process)."""

    def save(self, path: str) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty string, got {path!r}")
        spark = self.sparkSession
        if not is_connect(spark):
            if not self.shouldOverwrite:
                fs, qualified, _ = _hadoop_path(spark, path)
                if fs.exists(qualified):
                    raise FileExistsError(_EXISTS.format(path=path))
            super().save(path)
            return
        self._check_connect_path(spark, path)
        if self.shouldOverwrite:
            _delete_on_server(path)
        self.saveImpl(path)

    def _check_connect_path(self, spark: Any, path: str) -> None:
        """Spark Connect: refuse ``path`` before anything is written or deleted."""
        if not self.shouldOverwrite and _exists_on_server(spark, path):
            raise FileExistsError(_EXISTS.format(path=path))


class _LSTMEstimatorWriter(_Writer):
    """Writes an Estimator's Params: ``<path>/metadata`` only (no weights), so on Spark
    Connect any path or URI the server can write."""

    def __init__(self, instance: _LSTMEstimator) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        _write_metadata(self.sparkSession, self.instance, path)
        logger.info("saved %s to %s", self.instance.uid, path)


class _LSTMModelWriter(_Writer):
    """Writes ``<path>/metadata`` (Spark's Params JSON and the round history) and
    ``<path>/model`` (the core model files). On Spark Connect the server writes the metadata
    and this client the weights: ``path`` must be a directory both see at the same path; the
    writer checks that the client sees the metadata the server wrote before it writes the
    weights."""

    def __init__(self, instance: _LSTMModel) -> None:
        super().__init__()
        self.instance = instance

    def _check_connect_path(self, spark: Any, path: str) -> None:
        # The client writes here too: its own file system decides (the server's copy of the
        # directory is the same one, which saveImpl checks).
        if not self.shouldOverwrite and os.path.lexists(_client_path(path)):
            raise FileExistsError(_EXISTS.format(path=path))

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        model = self.instance.sequenceModel
        history = self.instance._history
        extra = {
            "sparklstm": {
                "metadataVersion": METADATA_VERSION,
                "task": model.config.task,
                "history": None if history is None else _plain(history.to_dict()),
            }
        }
        # The Params set, plus those that disagree with the weights (a Model wrapped around a
        # SequenceModel keeps the default Params): the reader refuses Params that disagree.
        params = {param.name: value for param, value in self.instance._paramMap.items()}
        for name, implied in _implied_structure(model.config).items():
            if not _agrees(name, self.instance.getOrDefault(name), implied):
                params[name] = implied
        text = _write_metadata(spark, self.instance, path, extra, params)
        if is_connect(spark):
            _check_client_sees(path, text)
        save_sequence_model(spark, model, os.path.join(path, MODEL_DIR))
        logger.info("saved %s to %s", self.instance.uid, path)


# ------------------------------------------------------------------------------ reading
# Every problem with a saved directory is a one-line ModelFileError that starts with the path
# of the file at fault. Nothing is unpickled or imported: the metadata is JSON, the weights
# are read by SequenceModel.load (npz without pickle, checked against their digests).
def _read_metadata(spark: Any, path: str, cls: type[Params]) -> dict[str, Any]:
    """The JSON ``<path>/metadata`` that DefaultParamsWriter wrote, checked to name ``cls``."""
    where = os.path.join(path, METADATA_DIR)
    try:
        row = spark.read.text(where).first()
    except PySparkException as exc:
        raise ModelFileError(f"{where}: cannot read the metadata ({_one_line(exc)})") from exc
    if row is None:
        raise ModelFileError(f"{where}: the metadata is empty")
    try:
        metadata = json.loads(row[0])
    except ValueError as exc:
        raise ModelFileError(f"{where}: the metadata is not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: the metadata is {_json_kind(metadata)}, not an object")
    for key in ("class", "uid"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise ModelFileError(f"{where}: the metadata's {key!r} is not a non-empty string")
    expected = _class_name(cls)
    if metadata["class"] != expected:
        raise ModelFileError(
            f"{where}: holds a {metadata['class']}, not a {expected}; load it with its own "
            "class (or PipelineModel.load)"
        )
    return metadata


def _set_saved_params(
    instance: Params, metadata: Mapping[str, Any], where: str, skip: Collection[str] = ()
) -> None:
    """Set the ``paramMap`` and ``defaultParamMap`` of ``metadata`` on ``instance`` (as
    ``DefaultParamsReader.getAndSetParams`` does), refusing unknown and invalid Params."""
    for key in ("paramMap", "defaultParamMap"):
        values = metadata.get(key, {})
        if not isinstance(values, dict):
            raise ModelFileError(f"{where}: the {key} is {_json_kind(values)}, not an object")
        for name, value in values.items():
            if name in skip:
                continue
            # Looked up on the class: no property of the instance runs.
            if not isinstance(getattr(type(instance), name, None), Param):
                raise ModelFileError(
                    f"{where}: the {key} holds {name!r}, which is not a Param of "
                    f"{type(instance).__name__}"
                )
            param = instance.getParam(name)
            if key == "defaultParamMap" and value is None:  # as Params._setDefault does
                instance._setDefault(**{name: None})
                continue
            try:
                converted = param.typeConverter(value)
            except (TypeError, ValueError) as exc:
                raise ModelFileError(
                    f"{where}: Param {name} is {value!r} in the {key}, which is invalid: "
                    f"{_one_line(exc)}"
                ) from exc
            if key == "paramMap":
                instance.set(param, converted)
            else:
                instance._setDefault(**{name: converted})


def _check_metadata_version(version: Any, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{where}: metadataVersion {version!r} is not an integer")
    if version not in SUPPORTED_METADATA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_METADATA_VERSIONS)
        detail = (
            "the model is newer than this library; upgrade sparklstm to read it"
            if version > max(SUPPORTED_METADATA_VERSIONS)
            else "this library cannot read that version"
        )
        raise ModelFileError(
            f"{where}: metadataVersion {version} is not supported (supported: {supported}); "
            f"{detail}"
        )


def _saved_history(saved: Any, where: str) -> RoundHistory | None:
    """The :class:`RoundHistory` the writer stored (``RoundHistory.to_dict``), checked."""
    if saved is None:
        return None
    if not isinstance(saved, dict):
        raise ModelFileError(
            f"{where}: the training history is {_json_kind(saved)}, not an object "
            "(rows, best_round, stopped_early, summary)"
        )
    rows = saved.get("rows", [])
    if not isinstance(rows, list):
        raise ModelFileError(
            f"{where}: the history's rows is {_json_kind(rows)}, not an array of objects "
            "(one per round)"
        )
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ModelFileError(
                f"{where}: the history's row {index} is {_json_kind(row)}, not an object"
            )
    best_round = saved.get("best_round")
    if best_round is not None and (not isinstance(best_round, int) or isinstance(best_round, bool)):
        raise ModelFileError(
            f"{where}: the history's best_round is {_json_kind(best_round)}, not an integer or null"
        )
    stopped_early = saved.get("stopped_early", False)
    if not isinstance(stopped_early, bool):
        raise ModelFileError(
            f"{where}: the history's stopped_early is {_json_kind(stopped_early)}, not a boolean"
        )
    summary = saved.get("summary", {})
    if not isinstance(summary, dict):
        raise ModelFileError(
            f"{where}: the history's summary is {_json_kind(summary)}, not an object"
        )
    return RoundHistory(
        rows=list(rows), best_round=best_round, stopped_early=stopped_early, summary=dict(summary)
    )


class _LSTMModelReader(MLReader):
    """Reads what :class:`_LSTMModelWriter` wrote, into ``cls``, and checks it: the class,
    the metadata version, the history, and that the Params agree with the weights."""

    def __init__(self, cls: type[_LSTMModel]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> _LSTMModel:
        spark = self.sparkSession
        metadata = _read_metadata(spark, path, self.cls)
        where = os.path.join(path, METADATA_DIR)
        extra = metadata.get("sparklstm")
        if not isinstance(extra, dict):
            raise ModelFileError(
                f"{where}: no 'sparklstm' section; not a model saved by sparklstm.spark.ml"
            )
        _check_metadata_version(extra.get("metadataVersion"), where)
        task = _model_task(self.cls)
        if extra.get("task") != task:
            raise ModelFileError(
                f"{where}: describes a {extra.get('task')!r} model, but names "
                f"{_class_name(self.cls)}, which holds {task} models"
            )
        history = _saved_history(extra.get("history"), where)
        weights = os.path.join(path, MODEL_DIR)
        model = load_sequence_model(spark, weights)
        config = model.config
        if config.task != task:
            raise ModelFileError(
                f"{weights}: holds a {config.task} model, but the metadata ({where}) says {task}"
            )
        instance = self.cls(model, history)
        instance._resetUid(metadata["uid"])
        _set_and_check_params(instance, metadata, config, where, weights)
        return instance


def _set_and_check_params(
    instance: _LSTMModel, metadata: Mapping[str, Any], config: ModelConfig, where: str, weights: str
) -> None:
    """Set the saved Params on ``instance``; every Param that defines the network must agree
    with the weights' ``config``."""
    builtin = {name: instance.getOrDefault(name) for name in _STRUCTURE}
    # numClasses is the Estimator's Param (the Model has a property of that name); if the
    # metadata holds it anyway, it must be the number of outputs.
    is_classifier = isinstance(instance, LSTMClassificationModel)
    for key in ("paramMap", "defaultParamMap") if is_classifier else ():
        values = metadata.get(key)
        stated = values.get("numClasses") if isinstance(values, dict) else None
        if stated is not None and stated != config.output_size:
            raise _disagreement(where, weights, "numClasses", stated, config.output_size)
    _set_saved_params(instance, metadata, where, skip=("numClasses",) if is_classifier else ())
    explicit = set(metadata.get("paramMap", {}))
    for name, implied in _implied_structure(config).items():
        stated = instance.getOrDefault(name)
        if _agrees(name, stated, implied):
            continue
        if name not in explicit and stated == builtin[name]:
            # An untouched default: a Model wrapped around a SequenceModel, saved before the
            # writer stored the Params its weights imply. The weights decide.
            logger.info("%s: Param %s taken from the weights: %r", where, name, implied)
            instance._set(**{name: implied})
            continue
        raise _disagreement(where, weights, name, stated, implied)


def _disagreement(where: str, weights: str, name: str, stated: Any, implied: Any) -> ModelFileError:
    return ModelFileError(
        f"{where}: Param {name} is {stated!r} in the metadata, but the weights in {weights} "
        f"imply {implied!r}; the metadata does not describe these weights"
    )


class _LSTMEstimatorReader(MLReader):
    """Reads an Estimator's Params (what ``DefaultParamsWriter`` wrote) into ``cls`` only:
    another class's directory, or a fitted model's, is refused, and no other class is
    imported."""

    def __init__(self, cls: type[_LSTMEstimator]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> _LSTMEstimator:
        metadata = _read_metadata(self.sparkSession, path, self.cls)
        where = os.path.join(path, METADATA_DIR)
        if "sparklstm" in metadata:
            raise ModelFileError(
                f"{where}: names {_class_name(self.cls)}, an Estimator, but holds a fitted model "
                "(its metadata has a 'sparklstm' section); load it with "
                "LSTMClassificationModel.load or LSTMRegressionModel.load"
            )
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        _set_saved_params(instance, metadata, where)
        return instance
