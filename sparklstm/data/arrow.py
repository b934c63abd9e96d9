"""Arrow columns -> padded NumPy arrays, with no per-row Python.

A sequence column is ``list<list<float>>`` (``[time][feature]``), ``list<float>`` (univariate)
or ``list<int>`` (token ids); ``large_list`` and ``fixed_size_list`` work alike. The conversion
takes the flattened values and the list lengths (Arrow compute kernels), checks them, and
scatters the values into a padded array in one NumPy assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ArrowSequences",
    "sequence_kind",
    "sequences_from_arrow",
    "labels_from_arrow",
    "batch_to_numpy",
    "sequences_to_arrow",
    "numpy_to_arrow",
]


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _is_list(type_: pa.DataType) -> bool:
    return (
        pa.types.is_list(type_)
        or pa.types.is_large_list(type_)
        or pa.types.is_fixed_size_list(type_)
    )


def _is_number(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_)


def sequence_kind(type_: pa.DataType, name: str) -> str:
    """``"multivariate"``, ``"univariate"`` or ``"tokens"`` for a sequence column type."""
    if _is_list(type_):
        inner = type_.value_type
        if _is_list(inner) and _is_number(inner.value_type):
            return "multivariate"
        if pa.types.is_floating(inner):
            return "univariate"
        if pa.types.is_integer(inner):
            return "tokens"
    raise TypeError(
        f"column {name!r} has type {type_}; a sequence column must be array<array<float>> "
        "([time][feature]), array<float> (univariate) or array<int> (token ids)"
    )


def _list_parts(array: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """Per-row list lengths and the flattened child values; nulls rejected."""
    if array.null_count:
        first = int(np.flatnonzero(np.asarray(array.is_null()))[0])
        raise ValueError(
            f"column {name!r} has {array.null_count} null value(s) (first at row {first})"
        )
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, array.flatten()


def _numbers(values: pa.Array, name: str, dtype: np.dtype) -> np.ndarray:
    if values.null_count:
        raise ValueError(f"column {name!r} has null elements inside its arrays")
    out = values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
        raise ValueError(f"column {name!r} contains NaN or Inf")
    return out


@dataclass(frozen=True, eq=False)
class ArrowSequences:
    """Padded sequences from one Arrow batch."""

    inputs: np.ndarray  # [n, T, F] float or [n, T] int64
    lengths: np.ndarray  # [n] int64


def sequences_from_arrow(
    column: pa.Array | pa.ChunkedArray,
    name: str,
    dtype: np.dtype = np.float32,
    num_features: int | None = None,
) -> ArrowSequences:
    """Convert a sequence column to a padded array and lengths.

    Raises ``TypeError``/``ValueError`` naming the column for a wrong type, nulls, empty
    sequences, ragged inner arrays (steps with different feature counts), a feature count other
    than ``num_features``, or NaN/Inf.
    """
    array = _combine(column)
    kind = sequence_kind(array.type, name)
    n = len(array)
    if n == 0:
        raise ValueError(f"column {name!r} is empty")
    lengths, steps = _list_parts(array, name)
    if lengths.min() < 1:
        first = int(np.argmin(lengths))
        raise ValueError(f"column {name!r}: row {first} has an empty sequence (length 0)")
    total = int(lengths.sum())
    t_max = int(lengths.max())
    row = np.repeat(np.arange(n), lengths)
    step = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    if kind == "multivariate":
        widths, values = _list_parts(steps, name)
        features = int(widths[0])
        if np.any(widths != features):
            bad = int(np.flatnonzero(widths != features)[0])
            raise ValueError(
                f"column {name!r} is ragged: step {int(step[bad])} of row {int(row[bad])} has "
                f"{int(widths[bad])} features, others have {features}"
            )
        flat = _numbers(values, name, dtype).reshape(total, features)
    else:
        features = 1
        flat = _numbers(steps, name, np.int64 if kind == "tokens" else dtype).reshape(total, 1)
    if num_features is not None and kind != "tokens" and features != num_features:
        raise ValueError(
            f"column {name!r} has {features} features per step; expected {num_features}"
        )
    if kind == "tokens":
        padded = np.zeros((n, t_max), dtype=np.int64)
        padded[row, step] = flat[:, 0]
    else:
        padded = np.zeros((n, t_max, features), dtype=dtype)
        padded[row, step] = flat
    return ArrowSequences(padded, lengths)


def labels_from_arrow(
    column: pa.Array | pa.ChunkedArray,
    name: str,
    lengths: np.ndarray | None = None,
    dtype: np.dtype = np.float32,
) -> np.ndarray:
    """A label column: scalar per row (int class or float target), fixed-size vector per row,
    or (with ``lengths``) one label per step padded to ``[n, T]`` / ``[n, T, O]``."""
    array = _combine(column)
    n = len(array)
    if array.null_count:
        first = int(np.flatnonzero(np.asarray(array.is_null()))[0])
        raise ValueError(
            f"column {name!r} has {array.null_count} null value(s) (first at row {first})"
        )
    if _is_number(array.type):
        target_dtype = np.int64 if pa.types.is_integer(array.type) else dtype
        return _numbers(array, name, target_dtype)
    if not _is_list(array.type):
        raise TypeError(
            f"label column {name!r} has type {array.type}; expected a number or an array"
        )
    counts, values = _list_parts(array, name)
    if lengths is None:  # a vector target per row, e.g. multi-output regression
        if np.any(counts != counts[0]):
            raise ValueError(f"label column {name!r} holds arrays of different lengths")
        return _numbers(values, name, dtype).reshape(n, int(counts[0]))
    if np.any(counts < lengths):
        bad = int(np.flatnonzero(counts < lengths)[0])
        raise ValueError(
            f"label column {name!r}: row {bad} has {int(counts[bad])} per-step labels for a "
            f"sequence of length {int(lengths[bad])}"
        )
    if _is_list(values.type):
        widths, inner = _list_parts(values, name)
        flat = _numbers(inner, name, dtype).reshape(len(values), int(widths[0]))
    else:
        target_dtype = np.int64 if pa.types.is_integer(values.type) else dtype
        flat = _numbers(values, name, target_dtype)
    # Scatter by the label arrays' own lengths; steps past a sequence's length are masked later.
    t_max = int(counts.max())
    row = np.repeat(np.arange(n), counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    padded = np.zeros((n, t_max) + flat.shape[1:], dtype=flat.dtype)
    padded[row, step] = flat
    return padded


def batch_to_numpy(
    batch: pa.RecordBatch | pa.Table,
    features_col: str,
    label_col: str | None = None,
    length_col: str | None = None,
    dtype: np.dtype = np.float32,
    per_step_labels: bool = False,
    num_features: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(inputs, lengths, labels)`` from a record batch; a length column, if given, may only
    shorten sequences (each value in ``[1, array length]``)."""
    names = batch.schema.names
    for role, column in (("features", features_col), ("label", label_col), ("length", length_col)):
        if column is not None and column not in names:
            raise ValueError(f"{role} column {column!r} not found; columns are {names}")
    seqs = sequences_from_arrow(batch.column(features_col), features_col, dtype, num_features)
    lengths = seqs.lengths
    if length_col is not None:
        given = _combine(batch.column(length_col))
        if not pa.types.is_integer(given.type):
            raise TypeError(f"length column {length_col!r} must be integer, got {given.type}")
        if given.null_count:
            raise ValueError(f"length column {length_col!r} has null values")
        declared = given.to_numpy(zero_copy_only=False).astype(np.int64)
        bad = np.flatnonzero((declared < 1) | (declared > lengths))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"length column {length_col!r}: row {i} says {int(declared[i])} but its sequence "
                f"has {int(lengths[i])} steps (lengths must be in [1, steps])"
            )
        lengths = declared
    labels = None
    if label_col is not None:
        labels = labels_from_arrow(
            batch.column(label_col), label_col, lengths if per_step_labels else None, dtype
        )
        if per_step_labels:
            t_max = seqs.inputs.shape[1]
            if labels.shape[1] < t_max:
                pad = [(0, 0), (0, t_max - labels.shape[1])] + [(0, 0)] * (labels.ndim - 2)
                labels = np.pad(labels, pad)
            labels = labels[:, :t_max]
    return seqs.inputs, lengths, labels


def _list_of(values: pa.Array, counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def sequences_to_arrow(inputs: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """Padded NumPy sequences -> an Arrow list column, keeping only each row's valid steps:
    ``[n, T, F]`` floats -> ``list<list<float>>``, ``[n, T]`` ints -> ``list<int>`` (tokens),
    ``[n, T]`` floats -> ``list<float>``. The inverse of :func:`sequences_from_arrow`."""
    inputs = np.asarray(inputs)
    if inputs.ndim not in (2, 3):
        raise ValueError(f"inputs must be [n, T] or [n, T, F], got shape {inputs.shape}")
    n, t_max = inputs.shape[:2]
    if lengths is None:
        lengths = np.full(n, t_max, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (n,) or (n and (lengths.min() < 0 or lengths.max() > t_max)):
        raise ValueError(f"lengths must be [n] = [{n}] values in [0, {t_max}]")
    valid = np.arange(t_max)[None, :] < lengths[:, None]
    steps = inputs[valid]  # [sum(lengths), ...] in row order
    if inputs.ndim == 3:
        width = inputs.shape[2]
        inner = _list_of(pa.array(steps.reshape(-1)), np.full(len(steps), width))
        return _list_of(inner, lengths)
    return _list_of(pa.array(steps), lengths)


def numpy_to_arrow(
    inputs: np.ndarray,
    labels: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    *,
    features_col: str = "features",
    label_col: str = "label",
) -> pa.Table:
    """A table in the trainer's input schema from padded NumPy arrays: the sequence column,
    and the label column (scalar per row, a vector per row, or per-step labels ``[n, T]``
    trimmed to each row's length when they share the inputs' time axis)."""
    columns = {features_col: sequences_to_arrow(inputs, lengths)}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[:1] != inputs.shape[:1]:
            raise ValueError(f"labels have {labels.shape[0]} rows; inputs have {inputs.shape[0]}")
        if labels.ndim == 1:
            columns[label_col] = pa.array(labels)
        elif labels.shape[1] == inputs.shape[1] and labels.ndim in (2, 3):
            columns[label_col] = sequences_to_arrow(labels, lengths)
        elif labels.ndim == 2:
            columns[label_col] = _list_of(
                pa.array(labels.reshape(-1)), np.full(len(labels), labels.shape[1])
            )
        else:
            raise ValueError(f"labels of shape {labels.shape} do not fit the input schema")
    return pa.table(columns)
