"""The Params of the LSTM estimators and models, built from the options' one definition.

Every Param that is a model or training option (``cellType``, ``hiddenSizes``, ``localSteps``,
``learningRate``, ...) is made from its field in :class:`~sparklstm.model.config.ModelConfig` or
:class:`~sparklstm.training.options.TrainOptions`: the camelCase name, the doc line, the
default and the check of its values come from there, with a getter ``getX`` beside it (the
estimators add the setters). The few Params that say where things go rather than how to
train (``lengthCol``, ``checkpointDir``, ``metricsPath``, ``progress``,
``inferenceBatchSize``) are defined once in :class:`RunOptions` here, the same way.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
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

from sparklstm.model.config import ModelConfig
from sparklstm.model.decoding import DecodeOptions
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.options import Option, boolean, integer, option_of, options_of, plain, text
from sparklstm.training.options import TrainOptions

__all__ = ["RunOptions", "Seq2SeqColumns", "param_options", "seq2seq_param_options"]


@dataclass(frozen=True)
class RunOptions:
    """Params of the estimators that are not training options: columns and where output goes
    (the trainer takes them as arguments of ``fit_distributed``)."""

    length_col: str | None = text(
        None,
        "integer column of sequence lengths, each in [1, array length]; None uses the arrays' "
        "own lengths",
        optional=True,
    )
    checkpoint_dir: str | None = text(
        None, "directory for training checkpoints (driver-local); None: none", optional=True
    )
    metrics_path: str | None = text(
        None, "JSON-lines file with one object per round (driver-local); None: none", optional=True
    )
    progress: bool = boolean(False, "print one line per round to stderr")
    inference_batch_size: int = integer(
        512, "rows per forward pass when transforming (bounds the executors' memory)"
    )


@dataclass(frozen=True)
class Seq2SeqColumns:
    """The column only an encoder-decoder has in training: the target side's lengths."""

    target_length_col: str | None = text(
        None,
        "integer column of target sequence lengths, each in [1, array length]; None uses the "
        "arrays' own lengths",
        optional=True,
    )


# The decoded sequence's log-probability: an output column in Spark ML's style (like
# probabilityCol: a string, "" leaves the column out), so not an option of the library.
LOG_PROBABILITY_COL = Param(
    Params._dummy(),
    "logProbabilityCol",
    "token targets: column of the decoded sequence's log-probability when transforming "
    '("" leaves it out)',
    typeConverter=TypeConverters.toString,
)


# numClasses: the classifier's Param for ModelConfig.output_size (the regressor takes the
# number of targets from the labels; the fitted model has Spark ML's numClasses property).
NUM_CLASSES = dataclasses.replace(
    option_of(ModelConfig, "output_size"),
    param="numClasses",
    minimum=2,
    optional=True,
    default=None,
)


def param_options() -> tuple[Option, ...]:
    """The options that are Params of every LSTM estimator and model, in order: the model's,
    the Spark trainer's, then the run's. ``seed`` is Spark's shared ``HasSeed`` Param."""
    found = [o for o in options_of(ModelConfig) if o.param_name]
    found += [o for o in options_of(TrainOptions, "spark") if o.name != "seed"]
    found += list(options_of(RunOptions))
    return tuple(found)


def seq2seq_param_options() -> tuple[Option, ...]:
    """The options that are Params of ``LSTMSeq2Seq`` and its model, in order: the model's,
    the Spark trainer's, the run's, the seq2seq columns, then how the model decodes."""
    found = [o for o in options_of(Seq2SeqConfig) if o.param_name]
    found += [o for o in options_of(TrainOptions, "spark") if o.name != "seed"]
    found += list(options_of(RunOptions))
    found += list(options_of(Seq2SeqColumns))
    found += list(options_of(DecodeOptions))
    return tuple(found)


def stable_seed(name: str) -> int:
    """A default seed that is the same in every process (``hash(str)`` is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


# Spark's converter first (it accepts what Spark ML users pass: NumPy numbers, whole floats
# for ints, ...), then the option's own check, so a bad value fails when it is set (in the
# constructor or a setter), naming the Param, long before any training.
_SPARK_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": TypeConverters.toInt,
    "float": TypeConverters.toFloat,
    "bool": TypeConverters.toBoolean,
    "choice": TypeConverters.toString,
    "str": TypeConverters.toString,
    "ints": lambda v: TypeConverters.toListInt([v] if isinstance(v, (int, np.integer)) else v),
    "floats": lambda v: TypeConverters.toListFloat([v] if isinstance(v, (int, float)) else v),
    "mapping": lambda v: _json_dict(v.to_config() if hasattr(v, "to_config") else v),
}


def _json_dict(value: Any) -> Any:
    """A dict Param must survive Spark ML's JSON metadata unchanged."""
    if isinstance(value, Mapping):
        try:
            if json.loads(json.dumps(value)) != value:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"must be a dict of JSON values, got {value!r}") from None
    return value


def param_from(option: Option) -> Param:
    """The ``pyspark.ml`` Param of one option. ``None`` passes (``_set`` skips converters for
    None, but ``set`` -- used when loading saved Params -- does not)."""
    named = dataclasses.replace(option, name=option.param_name)
    spark_convert = _SPARK_CONVERTERS[option.kind]

    def convert(value: Any) -> Any:
        if value is None:
            return None
        return plain(named.check(spark_convert(value)))

    return Param(Params._dummy(), option.param_name, option.help, typeConverter=convert)


def _getter(param_name: str) -> Callable[[Params], Any]:
    def get(self: Params) -> Any:
        return self.getOrDefault(param_name)

    get.__name__ = "get" + param_name[:1].upper() + param_name[1:]
    get.__doc__ = f"Gets the value of :py:attr:`{param_name}` or its default value."
    return get


def add_params(cls: type, options: Iterable[Option]) -> type:
    """Put each option's Param and getter on ``cls`` (as Spark's ``HasX`` mixins declare them);
    returns ``cls``."""
    for option in options:
        setattr(cls, option.param_name, param_from(option))
        getter = _getter(option.param_name)
        setattr(cls, getter.__name__, getter)
    return cls


def param_defaults(options: Iterable[Option]) -> dict[str, Any]:
    return {option.param_name: option.plain_default() for option in options}


class _NetworkParams(
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasSeed,
    HasValidationIndicatorCol,
):
    """What the Params of every estimator and model share: the shared columns, the seed, and
    reading the option Params of ``_options()`` back as the library's options. Optional Params
    default to ``None``: the data or the library decides."""

    @classmethod
    def _options(cls) -> tuple[Option, ...]:
        raise NotImplementedError

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(seed=stable_seed(type(self).__name__), **param_defaults(self._options()))

    def _validation_col(self) -> str | None:
        """The validation indicator column, or None when it is not set (it has no default)."""
        if self.isDefined(self.validationIndicatorCol):
            return self.getValidationIndicatorCol() or None
        return None

    def _values(self, options: Iterable[Option]) -> dict[str, Any]:
        """The library's option names and the values these Params hold."""
        return {option.name: self.getOrDefault(option.param_name) for option in options}

    def _config_values(self, config_class: type) -> dict[str, Any]:
        """The model options of ``config_class`` these Params set (``None``s left out)."""
        values = self._values(o for o in options_of(config_class) if o.param_name)
        return {name: value for name, value in values.items() if value is not None}

    def _training_config(self) -> TrainOptions:
        """The validated :class:`TrainOptions` these Params describe."""
        values = self._values(o for o in options_of(TrainOptions, "spark") if o.name != "seed")
        return TrainOptions(**values, seed=self.getSeed() % 2**63)

    def _fit_columns(self) -> dict[str, Any]:
        """Column arguments of ``fit_distributed`` beyond features, label and length."""
        return {}


class _LSTMParams(_NetworkParams):
    """Params of the LSTM estimators and models (the models keep the values they were fit
    with); one per option of :func:`param_options`."""

    @classmethod
    def _options(cls) -> tuple[Option, ...]:
        return param_options()

    def _model_options(self, task: str) -> dict[str, Any]:
        """The model configuration dict for :func:`fit_distributed` (sizes left to the data)."""
        options = self._config_values(ModelConfig)
        options.update(task=task, seed=self.getSeed() % 2**63)
        # Build once with stand-in sizes, so that a bad combination fails before any job.
        stand_in = dict(
            options, output_size=options.get("output_size", 2 if task == "classification" else 1)
        )
        if "vocab_size" not in options:
            stand_in["vocab_size" if "embedding_dim" in options else "input_size"] = 2
        ModelConfig.from_dict(stand_in)
        return options


add_params(_LSTMParams, param_options())


class _LSTMClassifierParams(_LSTMParams, HasProbabilityCol, HasRawPredictionCol):
    """Params of :class:`LSTMClassifier` and :class:`LSTMClassificationModel`."""


class _LSTMSeq2SeqParams(_NetworkParams):
    """Params of :class:`LSTMSeq2Seq` and :class:`LSTMSeq2SeqModel`: one per option of
    :func:`seq2seq_param_options`, and ``logProbabilityCol``. ``featuresCol`` is the source
    sequence, ``labelCol`` the target sequence, ``lengthCol``/``targetLengthCol`` their
    lengths."""

    logProbabilityCol: Param[str] = LOG_PROBABILITY_COL

    @classmethod
    def _options(cls) -> tuple[Option, ...]:
        return seq2seq_param_options()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(logProbabilityCol="logProbability")

    def getLogProbabilityCol(self) -> str:
        """Gets the value of :py:attr:`logProbabilityCol` or its default value."""
        return self.getOrDefault(self.logProbabilityCol)

    def _model_options(self, task: str = "seq2seq") -> dict[str, Any]:
        """The seq2seq configuration dict for :func:`fit_distributed`: ``head="seq2seq"``,
        the sizes the data decides left out."""
        options = self._config_values(Seq2SeqConfig)
        options.update(head="seq2seq", seed=self.getSeed() % 2**63)
        # Built once with stand-in sizes, so that a bad combination fails before any job.
        # Token targets are the stand-in, so the start and end tokens are checked too.
        stand_in = dict(options)
        if "source_vocab_size" not in options:
            stand_in["input_size"] = 1
        if "target_vocab_size" not in options:
            tokens = (options["start_token"], options["end_token"])
            stand_in["target_vocab_size"] = max(3, *tokens) + 1
        Seq2SeqConfig.from_dict(stand_in)
        return options

    def _decode_options(self) -> DecodeOptions:
        """The validated :class:`DecodeOptions` these Params describe."""
        return DecodeOptions(**self._values(options_of(DecodeOptions)))

    def _fit_columns(self) -> dict[str, Any]:
        return {"target_length_col": self.getOrDefault("targetLengthCol")}


add_params(_LSTMSeq2SeqParams, seq2seq_param_options())
