"""Distributed inference: a DataFrame of sequences in, the same rows with predictions out.

::

    driver: model (config + params) ──bytes inside the task function──▶ every Python worker
                                                                          builds the SequenceModel
                                                                          once per call
    executors: Arrow record batch ──slices of <= batch_size rows──▶ padded NumPy ──forward──▶
               head outputs ──▶ Arrow columns appended to the untouched input columns

Every input row comes out exactly once, with its columns unchanged and the new columns
appended (``mapInArrow`` with the input schema plus the new fields). No row becomes a Python
object and nothing is collected to the driver.

Output columns (``O`` = ``output_size``, ``T_i`` = row ``i``'s length)::

    task            head    prediction                       probability / raw
    classification  last    double (argmax class index)      array<double> (O)
    regression      last    double (O = 1) | array<double>   raw: array<double> (O)
    classification  all     array<double> (T_i)              array<array<double>> (T_i x O)
    regression      all     array<double> (O = 1)            raw: array<array<double>> (T_i x O)
                            | array<array<double>>

``probability = softmax(raw)`` row by row (per step for head "all"); regression models have no
probability column.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sparklstm.data.arrow import batch_to_numpy
from sparklstm.memory import keep_large_allocations_on_heap
from sparklstm.model import SequenceModel
from sparklstm.model.factory import model_from_config
from sparklstm.nn.losses import softmax
from sparklstm.spark.blas import limit_blas_threads
from sparklstm.spark.rounds import task_cpus
from sparklstm.spark.schema import quoted_name, sequence_kind_of
from sparklstm.spark.transport import Parcel, receive, ship
from sparklstm.spark.vectors import is_vector, vector_to_array
from sparklstm.spark.wire import pack, unpack

__all__ = [
    "cached_model",
    "in_slices",
    "list_array",
    "output_fields",
    "predict_dataframe",
    "predict_partition",
]

logger = logging.getLogger(__name__)

# Models rebuilt on this Python worker, keyed by the token of the call they came from
# (most recently used last). A reused worker serves many tasks of the same call from one model;
# the bound keeps a long-lived worker from holding every model it ever saw.
_MODEL_CACHE: OrderedDict[str, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 4
# The array<double> copy of a Vector features column that inference tasks read.
VECTOR_COPY = "__sparklstm_features_array"


@dataclass(frozen=True)
class PredictSpec:
    """What an inference task needs besides the model (plain data, shipped with the task)."""

    token: str  # identifies the call's model in the worker's cache
    features_col: str
    length_col: str | None
    prediction_col: str | None
    probability_col: str | None
    raw_col: str | None
    batch_size: int
    # A Vector features column is read from this array<double> copy, which the output drops.
    vector_copy: str | None = None


# ------------------------------------------------------------------------------ the schema
def output_fields(
    model: SequenceModel,
    prediction_col: str | None,
    probability_col: str | None,
    raw_col: str | None,
) -> list[Any]:
    """The Spark fields :func:`predict_dataframe` appends, in order (see the module table).

    ``probability_col`` is ignored for regression models.
    """
    from pyspark.sql.types import ArrayType, DoubleType, StructField

    config = model.config
    per_step = config.head == "all"

    def arrays(type_: Any, depth: int) -> Any:
        for _ in range(depth):
            type_ = ArrayType(type_)
        return type_

    vector = 0 if config.task == "classification" or config.output_size == 1 else 1
    fields = []
    if prediction_col is not None:
        fields.append(StructField(prediction_col, arrays(DoubleType(), per_step + vector)))
    if probability_col is not None and config.task == "classification":
        fields.append(StructField(probability_col, arrays(DoubleType(), per_step + 1)))
    if raw_col is not None:
        fields.append(StructField(raw_col, arrays(DoubleType(), per_step + 1)))
    return fields


# ------------------------------------------------------------------------------ the driver
def _check_name(role: str, name: Any) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"{role} must be a non-empty column name or None, got {name!r}")


def _check_inputs(
    model: SequenceModel,
    df: Any,
    features_col: str,
    length_col: str | None,
    outputs: dict[str, str | None],
    batch_size: int,
    validate: bool,
) -> None:
    """Raise ``TypeError``/``ValueError`` naming the argument or column, before any work."""
    from pyspark.sql import functions as F

    if not isinstance(model, SequenceModel):
        hint = ""
        if type(model).__name__ == "Seq2SeqModel":
            hint = "; a Seq2SeqModel decodes with sparklstm.spark.decoding.decode_dataframe"
        raise TypeError(f"model must be a SequenceModel, got {type(model).__name__}{hint}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_name("features_col", features_col)
    if features_col is None:
        raise TypeError("features_col must be a column name, got None")
    _check_name("length_col", length_col)
    for role, name in outputs.items():
        _check_name(role, name)
    schema = df.schema
    present = schema.fieldNames()
    for role, name in (("features", features_col), ("length", length_col)):
        if name is not None and name not in present:
            raise ValueError(f"{role} column {name!r} not found; columns are {present}")
    if length_col is not None:
        type_name = schema[length_col].dataType.typeName()
        if type_name not in ("byte", "short", "integer", "long"):
            raise TypeError(f"length column {length_col!r} must be integer, got {type_name}")
    wanted = [name for name in outputs.values() if name is not None]
    if not wanted:
        raise ValueError("no output column: give prediction_col, probability_col or raw_col")
    for role, name in outputs.items():
        if name is not None and name in present:
            raise ValueError(
                f"{role} {name!r} already exists in the DataFrame; choose another name or drop "
                "the column first"
            )
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"output columns must differ, got {outputs}")

    config = model.config
    kind = (
        "univariate" if is_vector(schema, features_col) else sequence_kind_of(schema, features_col)
    )
    if config.uses_tokens and kind != "tokens":
        raise TypeError(
            f"features column {features_col!r} holds {kind} float sequences; the model takes "
            f"token ids (vocab_size={config.vocab_size}): expected array<int>"
        )
    if not config.uses_tokens:
        if kind == "tokens":
            raise TypeError(
                f"features column {features_col!r} holds integer token ids (array<int>); the "
                f"model takes float inputs (input_size={config.input_size})"
            )
        if kind == "univariate" and config.input_size != 1:
            raise ValueError(
                f"features column {features_col!r} is univariate (1 feature per step); the "
                f"model expects input_size={config.input_size}"
            )
        if kind == "multivariate" and validate:
            # try_element_at: element_at fails on an empty array under ANSI mode (Spark 4).
            step = F.try_element_at(F.col(features_col), F.lit(1))
            first = df.select(F.size(step).alias("width")).where(F.col("width") > 0).first()
            if first is not None and first["width"] != config.input_size:
                raise ValueError(
                    f"features column {features_col!r} has {first['width']} features per step; "
                    f"the model expects input_size={config.input_size}"
                )


def predict_dataframe(
    model: SequenceModel,
    df: Any,
    *,
    features_col: str = "features",
    length_col: str | None = None,
    prediction_col: str | None = "prediction",
    probability_col: str | None = "probability",
    raw_col: str | None = None,
    batch_size: int = 512,
    validate: bool = True,
) -> Any:
    """Append ``model``'s predictions to every row of ``df``, on the executors.

    Parameters
    ----------
    model : SequenceModel
        A trained model; its config and parameters travel as bytes (``sparklstm.spark.wire``)
        inside the task function, so this works on Spark Connect as on a classic session.
    df : pyspark.sql.DataFrame
        A sequence column (``array<array<float>>`` ``[time][feature]``, ``array<float>`` or
        ``array<int>`` token ids, as in training) and any other columns, which pass through.
    features_col : the sequence column.
    length_col : optional integer column; each value in ``[1, array length]`` shortens its row.
    prediction_col, probability_col, raw_col : names of the new columns; ``None`` leaves one
        out. ``probability_col`` applies to classification models only (ignored otherwise);
        ``raw_col`` holds the head's raw outputs (logits or regression values).
    batch_size : rows per forward pass; each Arrow batch is processed in slices of at most
        this many rows, which bounds the executors' memory.
    validate : also run one small job reading the first row's feature count, so a model whose
        ``input_size`` does not match fails here rather than in a task (array<array<...>>
        columns only; the executors check every batch in any case).

    Returns
    -------
    pyspark.sql.DataFrame
        ``df``'s columns, then the new ones (types in the module docstring). Lazy, like any
        transformation.

    Raises
    ------
    ValueError, TypeError
        Missing features or length column, an output column that already exists, a features
        column of the wrong type or width for the model; naming the column. Bad rows (null or
        empty sequences, NaN, lengths out of range, token ids outside the vocabulary) fail the
        task with the column named.

    Examples
    --------
    >>> scored = predict_dataframe(model, df, raw_col="logits")  # doctest: +SKIP
    >>> scored.select("id", "prediction", "probability").show()  # doctest: +SKIP
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    outputs = {"prediction_col": prediction_col, "probability_col": probability_col}
    outputs["raw_col"] = raw_col
    if isinstance(model, SequenceModel) and model.config.task != "classification":
        outputs["probability_col"] = probability_col = None
    _check_inputs(model, df, features_col, length_col, outputs, batch_size, validate)
    fields = output_fields(model, prediction_col, probability_col, raw_col)
    schema = StructType(list(df.schema.fields) + fields)
    vector_copy = None
    if is_vector(df.schema, features_col):
        vector_copy = VECTOR_COPY
        df = df.withColumn(
            vector_copy, vector_to_array(F.col(quoted_name(features_col)), df.sparkSession)
        )
    spec = PredictSpec(
        vector_copy=vector_copy,
        token=uuid.uuid4().hex,
        features_col=features_col,
        length_col=length_col,
        prediction_col=prediction_col,
        probability_col=probability_col,
        raw_col=raw_col,
        batch_size=int(batch_size),
    )
    # The model's bytes, in the task function or (large) as a session file that stays while
    # this process runs: the DataFrame returned is lazy, its jobs may run much later.
    payload = pack({"model": model.config.to_dict()}, model.state_dict())
    parcel = ship(
        df.sparkSession, payload, f"sparklstm-model-{spec.token}.npz", keep_until_exit=True
    ).parcel
    logger.info(
        "predicting with %r: new columns %s, batch_size %d",
        model,
        [f.name for f in fields],
        batch_size,
    )
    task = functools.partial(predict_partition, spec=spec, payload=parcel)
    return df.mapInArrow(task, schema)


# ------------------------------------------------------------------------------ executors
def cached_model(token: str, payload: Parcel) -> Any:
    """The model of the call ``token`` (of the class its config names), rebuilt from
    ``payload`` at most once per worker per call (LRU of 4)."""
    model = _MODEL_CACHE.get(token)
    if model is None:
        header, params = unpack(receive(payload))
        model = model_from_config(header["model"])
        model.load_state_dict(params)
        _MODEL_CACHE[token] = model
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    else:
        _MODEL_CACHE.move_to_end(token)
    return model


def list_array(values: pa.Array, counts: np.ndarray) -> pa.Array:
    """A list array whose row ``i`` holds the next ``counts[i]`` of ``values``."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _rows_of_vectors(matrix: np.ndarray, counts: np.ndarray | None = None) -> pa.Array:
    """``(m, O)`` -> ``list<double>`` per row, or with ``counts`` ``list<list<double>>``."""
    m, width = matrix.shape
    inner = list_array(pa.array(matrix.astype(np.float64).ravel()), np.full(m, width))
    return inner if counts is None else list_array(inner, counts)


def output_columns(
    model: SequenceModel, outputs: np.ndarray, lengths: np.ndarray, spec: PredictSpec
) -> list[pa.Array]:
    """Arrow columns from the head's ``outputs``: ``(n, O)`` for head "last", padded
    ``(n, T, O)`` for head "all" (only each row's first ``lengths[i]`` steps are kept)."""
    config = model.config
    per_step = config.head == "all"
    counts = None
    if per_step:
        valid = np.arange(outputs.shape[1])[None, :] < lengths[:, None]
        outputs = outputs[valid]  # (sum(lengths), O), rows in order
        counts = lengths
    columns = []
    if spec.prediction_col is not None:
        if config.task == "classification":
            predicted = pa.array(outputs.argmax(axis=1).astype(np.float64))
        elif config.output_size == 1:
            predicted = pa.array(outputs[:, 0].astype(np.float64))
        else:
            predicted = None
        if predicted is None:
            columns.append(_rows_of_vectors(outputs, counts))
        else:
            columns.append(predicted if counts is None else list_array(predicted, counts))
    if spec.probability_col is not None and config.task == "classification":
        columns.append(_rows_of_vectors(softmax(outputs), counts))
    if spec.raw_col is not None:
        columns.append(_rows_of_vectors(outputs, counts))
    return columns


def _predict_slice(
    model: SequenceModel, piece: pa.RecordBatch, spec: PredictSpec
) -> pa.RecordBatch:
    config = model.config
    inputs, lengths, _ = batch_to_numpy(
        piece,
        spec.vector_copy or spec.features_col,
        length_col=spec.length_col,
        dtype=np.dtype(config.dtype),
        num_features=None if config.uses_tokens else config.input_size,
    )
    if not config.uses_tokens and inputs.ndim == 2:  # univariate: one feature per step
        inputs = inputs[..., None]
    try:
        outputs = model.forward(inputs, lengths, batch_size=spec.batch_size)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"features column {spec.features_col!r}: {exc}") from exc
    if spec.vector_copy is not None:
        piece = piece.drop_columns([spec.vector_copy])
    names = piece.schema.names + [
        name
        for name in (spec.prediction_col, spec.probability_col, spec.raw_col)
        if name is not None
    ]
    columns = list(piece.columns) + output_columns(model, outputs, lengths, spec)
    return pa.RecordBatch.from_arrays(columns, names=names)


def predict_partition(
    batches: Iterator[pa.RecordBatch], *, spec: PredictSpec, payload: Any
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: each input batch, in slices of at most ``spec.batch_size``
    rows, with the prediction columns appended. An empty partition yields nothing."""
    return in_slices(batches, spec.token, payload, spec.batch_size, _predict_slice, spec)


def in_slices(
    batches: Iterator[pa.RecordBatch],
    token: str,
    payload: Any,
    batch_size: int,
    work: Any,
    spec: Any,
) -> Iterator[pa.RecordBatch]:
    """``work(model, piece, spec)`` of each input batch in slices of at most ``batch_size``
    rows, with the call's model built on the first non-empty batch (BLAS threads limited to
    the task's cores); an empty partition yields nothing."""
    model = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if model is None:
            limit_blas_threads(task_cpus())
            keep_large_allocations_on_heap()
            model = cached_model(token, payload)
        for start in range(0, batch.num_rows, batch_size):
            yield work(model, batch.slice(start, batch_size), spec)
