"""Distributed decoding of a sequence-to-sequence model: a DataFrame of source sequences in, the
same rows with their decoded output sequences out (``mapInArrow``, every input column kept).

Output columns::

    targets   prediction                                  log-probability
    tokens    array<bigint>: the decoded ids, <end> left  double: of the sequence (with <end>
              out (greedy, or beam search)                when written)
    values    array<double> (output_size 1) or            (none)
              array<array<double>>: the recursive forecast

The model travels as bytes in the task function (or a session file when large), as for
:func:`sparklstm.spark.inference.predict_dataframe`, and is rebuilt once per Python worker.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sparklstm.data.arrow import batch_to_numpy
from sparklstm.model import decoding
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.inference import in_slices, list_array
from sparklstm.spark.schema import sequence_kind_of
from sparklstm.spark.transport import ship
from sparklstm.spark.wire import pack
from sparklstm.validation import check_int

__all__ = ["DecodeSpec", "decode_dataframe", "decode_partition"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSpec:
    """What a decoding task needs besides the model (plain data, shipped with the task)."""

    token: str
    source_col: str
    source_length_col: str | None
    prediction_col: str
    log_prob_col: str | None
    options: decoding.DecodeOptions
    batch_size: int


def decode_dataframe(
    model: Seq2SeqModel,
    df: Any,
    *,
    source_col: str = "source",
    source_length_col: str | None = None,
    prediction_col: str = "prediction",
    log_prob_col: str | None = "logProbability",
    beam_width: int = 1,
    max_len: int = 50,
    length_penalty: float = 0.6,
    horizon: int | None = None,
    batch_size: int = 256,
) -> Any:
    """Append ``model``'s decoded output sequence (and, for tokens, its log-probability) to
    every row of ``df``, on the executors. ``beam_width`` 1 is greedy decoding; real-valued
    models forecast ``horizon`` steps (required for them). Lazy, like any transformation;
    argument and column errors are raised here, naming them."""
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StructField,
        StructType,
    )

    if not isinstance(model, Seq2SeqModel):
        raise TypeError(f"model must be a Seq2SeqModel, got {type(model).__name__}")
    cfg = model.config
    present = df.schema.fieldNames()
    for role, name in (("source_col", source_col), ("source_length_col", source_length_col)):
        if name is not None and name not in present:
            raise ValueError(f"{role} {name!r} not found; columns are {present}")
    kind = sequence_kind_of(df.schema, source_col)
    if cfg.token_source != (kind == "tokens"):
        wanted = "array<int> token ids" if cfg.token_source else "float sequences"
        raise TypeError(f"source column {source_col!r} holds {kind} data; the model takes {wanted}")
    outputs = [prediction_col] + ([log_prob_col] if cfg.token_target and log_prob_col else [])
    for name in outputs:
        if name in present:
            raise ValueError(f"output column {name!r} already exists; choose another name")
    options = decoding.DecodeOptions(
        beam_width=beam_width, max_len=max_len, length_penalty=length_penalty, horizon=horizon
    ).for_model(cfg)
    if cfg.token_target:
        fields = [StructField(prediction_col, ArrayType(LongType(), False))]
        if log_prob_col:
            fields.append(StructField(log_prob_col, DoubleType()))
    else:
        element = DoubleType() if cfg.output_size == 1 else ArrayType(DoubleType(), False)
        fields = [StructField(prediction_col, ArrayType(element, False))]
    check_int("batch_size", batch_size, 1)
    spec = DecodeSpec(
        token=uuid.uuid4().hex,
        source_col=source_col,
        source_length_col=source_length_col,
        prediction_col=prediction_col,
        log_prob_col=log_prob_col if cfg.token_target else None,
        options=options,
        batch_size=int(batch_size),
    )
    payload = pack({"model": cfg.to_dict()}, model.state_dict())
    parcel = ship(
        df.sparkSession, payload, f"sparklstm-model-{spec.token}.npz", keep_until_exit=True
    ).parcel
    logger.info("decoding with %r: new columns %s", model, [f.name for f in fields])
    task = functools.partial(decode_partition, spec=spec, payload=parcel)
    return df.mapInArrow(task, StructType(list(df.schema.fields) + fields))


def decode_partition(
    batches: Iterator[pa.RecordBatch], *, spec: DecodeSpec, payload: Any
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: each input batch, in slices of at most ``spec.batch_size``
    rows, with the decoded columns appended."""
    return in_slices(batches, spec.token, payload, spec.batch_size, _decode_slice, spec)


def _decode_slice(model: Seq2SeqModel, piece: pa.RecordBatch, spec: DecodeSpec) -> pa.RecordBatch:
    cfg = model.config
    source, lengths, _ = batch_to_numpy(
        piece,
        spec.source_col,
        length_col=spec.source_length_col,
        dtype=np.dtype(cfg.dtype),
        num_features=None if cfg.token_source else cfg.input_size,
    )
    try:
        source, lengths = model.prepare_source(source, lengths.astype(np.int64))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"source column {spec.source_col!r}: {exc}") from exc
    columns = list(piece.columns)
    names = list(piece.schema.names) + [spec.prediction_col]
    found = decoding.decode(model.network, source, lengths, spec.options)
    if cfg.token_target:
        counts = np.array([len(s) for s in found.sequences], dtype=np.int32)
        flat = np.concatenate(found.sequences) if counts.sum() else np.zeros(0, np.int64)
        columns.append(list_array(pa.array(flat.astype(np.int64), pa.int64()), counts))
        if spec.log_prob_col:
            columns.append(pa.array(found.log_probs.astype(np.float64)))
            names.append(spec.log_prob_col)
    else:
        rows, horizon = len(lengths), spec.options.horizon
        values = pa.array(found.astype(np.float64).ravel())
        if cfg.output_size == 1:
            columns.append(list_array(values, np.full(rows, horizon, dtype=np.int32)))
        else:
            steps = list_array(values, np.full(rows * horizon, cfg.output_size, dtype=np.int32))
            columns.append(list_array(steps, np.full(rows, horizon, dtype=np.int32)))
    return pa.RecordBatch.from_arrays(columns, names=names)
