"""Ragged sequences <-> padded batch-first arrays, lengths and masks.

Conventions: float sequences are padded to ``[batch, time, feature]``, integer token ids to
``[batch, time]``; ``lengths`` is an ``int64`` array ``[batch]`` whose entries are all >= 1; a
mask is a boolean ``[batch, time]`` array that is ``True`` on the valid (leading) steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from sparklstm.validation import Wording, check_int, check_number

__all__ = ["pad_sequences", "lengths_to_mask", "mask_to_lengths", "unpad"]

_TRUNCATE = ("pre", "post")


# The shared int check (sparklstm.validation) in the data layer's words: "n = 0: must be >= 1",
# "n must be an integer, got float 2.5" (also used by data/ and datasets/).
_check_int = partial(
    check_int,
    wording=Wording(
        wrong_type="{name} must be {noun}, got {type} {value!r}",
        out_of_range="{name} = {number}: must be {rule}",
        int_noun="an integer",
    ),
)


def _as_lengths(lengths: ArrayLike, name: str = "lengths") -> np.ndarray:
    """Validate a non-empty 1-D array of whole lengths >= 1; returns it as ``int64``."""
    arr = np.asarray(lengths)
    if (
        arr.dtype == object
        or arr.dtype == bool
        or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating))
    ):
        raise TypeError(f"{name} must be an array of integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D [batch], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one sequence")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}[{i}] = {arr[i]}: lengths must be whole numbers")
    out = arr.astype(np.int64)
    if out.min() < 1:
        i = int(np.argmin(out))
        raise ValueError(f"{name}[{i}] = {out[i]}: every length must be >= 1")
    return out


def pad_sequences(
    sequences: Sequence[ArrayLike],
    *,
    max_len: int | None = None,
    dtype: DTypeLike | None = None,
    pad_value: float = 0,
    truncate: str = "post",
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a list of variable-length sequences into one batch-first array.

    Parameters
    ----------
    sequences : sequence of array_like
        ``B >= 1`` sequences, each of shape ``[t_i]`` or ``[t_i, F]`` with ``t_i >= 1``. All
        must have the same number of dimensions, and 2-D ones the same ``F``.
    max_len : int, optional
        Length of the padded time axis ``T``; longer sequences are truncated (see
        ``truncate``). Default: the longest sequence.
    dtype : dtype, optional
        Output dtype. Default: ``int64`` when every sequence holds integers (token ids),
        otherwise ``float32``. Float input with an integer ``dtype`` must hold whole numbers.
    pad_value : number, default 0
        Value of the padded cells (a whole number for an integer ``dtype``).
    truncate : {"post", "pre"}, default "post"
        Which part of a sequence longer than ``max_len`` is kept: ``"post"`` keeps the first
        ``max_len`` steps, ``"pre"`` keeps the last ``max_len`` steps.

    Returns
    -------
    padded : np.ndarray
        ``[B, T]`` for 1-D sequences with an integer output dtype (token ids), ``[B, T, 1]``
        for 1-D sequences with a float output dtype (univariate series), ``[B, T, F]`` for
        2-D sequences.
    lengths : np.ndarray
        ``int64 [B]``, the kept length of each sequence (``min(t_i, T)``).

    Raises
    ------
    ValueError
        Empty ``sequences``, a zero-length sequence, mixed dimensions or feature sizes, a bad
        ``max_len`` or ``truncate``.
    TypeError
        Non-numeric sequences, a non-numeric ``pad_value``, ``sequences`` not a list.
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of arrays, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError("sequences is empty: need at least one sequence")
    if truncate not in _TRUNCATE:
        raise ValueError(f"truncate must be 'pre' or 'post', got {truncate!r}")
    if max_len is not None:
        max_len = _check_int("max_len", max_len, 1)

    arrays = [np.asarray(s) for s in sequences]
    first = arrays[0]
    if first.ndim not in (1, 2):
        raise ValueError(
            f"sequences[0] has shape {first.shape}: each sequence must be [time] or [time, feature]"
        )
    for i, a in enumerate(arrays):
        if a.dtype == object or not (
            np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)
        ):
            raise TypeError(f"sequences[{i}] must hold numbers, got dtype {a.dtype}")
        if a.ndim != first.ndim:
            raise ValueError(
                f"sequences[{i}] has shape {a.shape} ({a.ndim}-D) but sequences[0] is "
                f"{first.ndim}-D: all sequences need the same number of dimensions"
            )
        if a.shape[0] == 0:
            raise ValueError(f"sequences[{i}] has length 0: every sequence needs >= 1 step")
        if a.ndim == 2 and a.shape[1] != first.shape[1]:
            raise ValueError(
                f"sequences[{i}] has {a.shape[1]} features but sequences[0] has "
                f"{first.shape[1]}: all sequences need the same feature size"
            )

    source_dtype = np.result_type(*(a.dtype for a in arrays))
    if dtype is None:
        out_dtype = np.dtype(np.int64 if np.issubdtype(source_dtype, np.integer) else np.float32)
    else:
        out_dtype = np.dtype(dtype)
        if not (np.issubdtype(out_dtype, np.number) or out_dtype.kind == "b"):
            raise TypeError(f"dtype must be a numeric dtype, got {out_dtype}")
    integer_out = np.issubdtype(out_dtype, np.integer)

    check_number("pad_value", pad_value)
    if integer_out and not float(pad_value).is_integer():
        raise ValueError(f"pad_value = {pad_value}: must be a whole number for dtype {out_dtype}")

    raw_lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    t_max = int(raw_lengths.max()) if max_len is None else max_len
    lengths = np.minimum(raw_lengths, t_max)
    if max_len is not None and (raw_lengths > max_len).any():
        if truncate == "post":
            arrays = [a[:max_len] for a in arrays]
        else:
            arrays = [a[-max_len:] for a in arrays]

    values = np.concatenate(arrays, axis=0)
    if integer_out and np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            flat_pos = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
            row = int(np.searchsorted(np.cumsum(lengths), flat_pos, side="right"))
            raise ValueError(
                f"sequences[{row}] holds non-integer values; cannot convert to dtype {out_dtype}"
            )

    batch = len(arrays)
    if first.ndim == 2:
        shape: tuple[int, ...] = (batch, t_max, first.shape[1])
    elif integer_out:
        shape = (batch, t_max)
    else:
        shape = (batch, t_max, 1)
        values = values[:, None]
    padded = np.full(shape, pad_value, dtype=out_dtype)
    padded[lengths_to_mask(lengths, t_max)] = values
    return padded, lengths


def lengths_to_mask(lengths: ArrayLike, max_len: int | None = None) -> np.ndarray:
    """Boolean mask of the valid steps.

    Parameters
    ----------
    lengths : array_like of int, shape [B]
        Sequence lengths, each >= 1.
    max_len : int, optional
        Size ``T`` of the time axis; default ``max(lengths)``. Must be >= ``max(lengths)``.

    Returns
    -------
    np.ndarray
        ``bool [B, T]``, ``mask[i, t] = t < lengths[i]``.
    """
    lengths = _as_lengths(lengths)
    longest = int(lengths.max())
    if max_len is None:
        max_len = longest
    else:
        max_len = _check_int("max_len", max_len, 1)
        if max_len < longest:
            i = int(np.argmax(lengths))
            raise ValueError(f"max_len = {max_len} is shorter than lengths[{i}] = {longest}")
    return np.arange(max_len)[None, :] < lengths[:, None]


def mask_to_lengths(mask: ArrayLike) -> np.ndarray:
    """Lengths of a prefix mask (``True`` on the first ``lengths[i]`` steps, then ``False``).

    Parameters
    ----------
    mask : array_like of bool, shape [B, T]
        Boolean, or integers that are all 0 or 1.

    Returns
    -------
    np.ndarray
        ``int64 [B]``.

    Raises
    ------
    ValueError
        Not 2-D, empty, a row with no ``True``, or a ``True`` after a ``False`` in a row.
    """
    arr = np.asarray(mask)
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"mask must be boolean, got dtype {arr.dtype}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("mask must hold only 0/1 (or True/False) values")
        arr = arr.astype(bool)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D [batch, time], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"mask is empty (shape {arr.shape})")
    lengths = arr.sum(axis=1, dtype=np.int64)
    if (lengths == 0).any():
        i = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"mask row {i} has no True step: every length must be >= 1")
    expected = np.arange(arr.shape[1])[None, :] < lengths[:, None]
    wrong = (arr != expected).any(axis=1)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        t = int(np.flatnonzero(arr[i] != expected[i])[0])
        raise ValueError(
            f"mask row {i} is not a prefix mask (True steps then False steps): "
            f"step {t} is out of place"
        )
    return lengths


def unpad(padded: ArrayLike, lengths: ArrayLike) -> list[np.ndarray]:
    """Split a padded batch back into its sequences.

    Parameters
    ----------
    padded : array_like, shape [B, T, ...]
        Batch-first padded array.
    lengths : array_like of int, shape [B]
        Valid length of each row, ``1 <= lengths[i] <= T``.

    Returns
    -------
    list of np.ndarray
        ``B`` arrays of shape ``[lengths[i], ...]`` (new memory, not views of ``padded``).
        Univariate float sequences padded to ``[B, T, 1]`` come back as ``[t_i, 1]``.
    """
    arr = np.asarray(padded)
    if arr.ndim < 2:
        raise ValueError(f"padded must be at least 2-D [batch, time, ...], got shape {arr.shape}")
    lengths = _as_lengths(lengths)
    if lengths.shape[0] != arr.shape[0]:
        raise ValueError(
            f"lengths has {lengths.shape[0]} entries but padded has {arr.shape[0]} rows"
        )
    if lengths.max() > arr.shape[1]:
        i = int(np.argmax(lengths))
        raise ValueError(
            f"lengths[{i}] = {lengths[i]} exceeds the padded time axis ({arr.shape[1]} steps)"
        )
    flat = arr[lengths_to_mask(lengths, arr.shape[1])]
    return np.split(flat, np.cumsum(lengths)[:-1])
