"""Write NumPy sequences as a directory of Parquet files in the trainer's input schema.

Needs pyarrow only (no Spark, no JVM): padded arrays ``[n, T, F]`` or ``[n, T]`` with lengths
become list columns built from offsets, in row groups of bounded size, so a dataset of any size
streams through a bounded amount of memory (:class:`ParquetDatasetWriter` appends chunks one at
a time; :func:`write_parquet_dataset` writes arrays in one call). Spark and pyarrow read the
result; :func:`sparklstm.spark.sources.read_sequences` loads it for training.

:func:`check_column_name` and :func:`check_path` (from :mod:`sparklstm.validation`, importable
from here too) check the column and path arguments the same way for this writer and for the
Spark reader.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, DTypeLike

from sparklstm.data.arrow import sequences_to_arrow
from sparklstm.validation import Wording, check_column_name, check_int, check_path, resolve_dtype

__all__ = ["ParquetDatasetWriter", "write_parquet_dataset"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

_SUCCESS = "_SUCCESS"
_PART_PREFIX = "part-"
_INT32_MAX = int(np.iinfo(np.int32).max)
# rows_per_file and row_group_bytes: "rows_per_file = 0: must be an integer >= 1" (ValueError).
_COUNT_WORDS = "{name} = {value!r}: must be an integer {rule}"
_COUNT = Wording(wrong_type=_COUNT_WORDS, out_of_range=_COUNT_WORDS, type_error=ValueError)


# --------------------------------------------------------------------------------------------
# Writing with pyarrow
# --------------------------------------------------------------------------------------------


def _offsets_list(values: pa.Array, counts: np.ndarray) -> pa.Array:
    """A list array of ``counts[i]`` consecutive ``values`` per row (int32 offsets)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] > _INT32_MAX:
        raise ValueError("too many values in one piece for int32 list offsets")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def _as_int32(name: str, array: np.ndarray) -> np.ndarray:
    if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > _INT32_MAX):
        raise ValueError(f"{name} holds integers outside the int32 range")
    return array.astype(np.int32, copy=False)


def _numeric(name: str, value: ArrayLike) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_:
        return array.astype(np.int32)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    return array


def _check_finite(name: str, column: pa.Array) -> None:
    values = column.flatten(True) if isinstance(column, pa.ListArray) else column
    if pa.types.is_floating(values.type):
        flat = values.to_numpy(zero_copy_only=False)
        if not np.isfinite(flat).all():
            raise ValueError(f"{name} holds NaN or Inf in its valid steps")


def _prepare_directory(path: Path, overwrite: bool) -> bool:
    """Make ``path`` an empty directory; True if this call created it or emptied it."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    if not path.exists():
        path.mkdir(parents=True)
        return True
    entries = sorted(path.iterdir())
    if not entries:
        return False
    if not overwrite:
        raise FileExistsError(f"{path} is not empty; pass overwrite=True to replace the dataset")
    ours = [p for p in entries if p.name == _SUCCESS or _is_part(p.name)]
    others = [p.name for p in entries if p not in ours]
    if others:
        raise FileExistsError(
            f"{path} holds files this writer did not write ({', '.join(others[:3])}); "
            "refusing to overwrite it"
        )
    for p in ours:
        p.unlink()
    return True


def _is_part(name: str) -> bool:
    return name.startswith(_PART_PREFIX) and name.endswith(".parquet")


class ParquetDatasetWriter:
    """Append chunks of sequences to a directory of Parquet files in the input schema.

    Chunks go to an in-memory buffer of Arrow tables, which is written as one row group
    whenever it holds ``row_group_bytes`` or fills the current file; files hold
    ``rows_per_file`` rows (the last one fewer) and are named ``part-00000.parquet``, ... A
    ``_SUCCESS`` file marks a dataset closed without error; Spark and pyarrow ignore it. A
    writer that received no rows leaves no files (and removes the directory if it made or
    emptied it). :meth:`abort` (called when the ``with`` block raises) deletes the files
    written so far, so a failed write leaves no partial dataset for Spark to read.

    Parameters
    ----------
    path : str or os.PathLike
        Output directory; created if missing, and must be empty unless ``overwrite``.
    rows_per_file : int, default 100_000
        Rows per Parquet file, >= 1.
    features_col, label_col : str, default "features" and "label"
    length_col : str, optional
        Also write the lengths as an ``int32`` column of this name (the sequence arrays hold
        only valid steps, so their sizes are the lengths already).
    per_step_labels : bool, optional
        Whether ``[n, T]``/``[n, T, O]`` labels are per-step labels (trimmed to each row's
        length) rather than vector targets. By default they are per-step when their second
        axis has the inputs' length ``T``.
    float_dtype : {float32, float64}, default float32
        Floating values are written in this dtype; integer token ids and class labels are
        written as ``int32``.
    row_group_bytes : int, default 64 MiB
        Target size of a row group; bounds the memory the writer holds.
    compression : str, default "snappy"
    overwrite : bool, default False
        Delete an existing dataset (``part-*.parquet`` and ``_SUCCESS`` files only) at
        ``path``; a directory holding other files is never touched.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> out = tempfile.mkdtemp() + "/data"
    >>> with ParquetDatasetWriter(out, rows_per_file=2) as writer:
    ...     writer.write(np.ones((3, 4, 2), np.float32), np.array([0, 1, 0]), np.array([4, 2, 1]))
    >>> len(writer.files), writer.rows
    (2, 3)
    """

    def __init__(
        self,
        path: PathLike,
        *,
        rows_per_file: int = 100_000,
        features_col: str = "features",
        label_col: str = "label",
        length_col: str | None = None,
        per_step_labels: bool | None = None,
        float_dtype: DTypeLike = np.float32,
        row_group_bytes: int = 64 * 2**20,
        compression: str = "snappy",
        overwrite: bool = False,
    ) -> None:
        for name, value in (("rows_per_file", rows_per_file), ("row_group_bytes", row_group_bytes)):
            check_int(name, value, 1, wording=_COUNT)
        self.features_col = check_column_name("features_col", features_col)
        self.label_col = check_column_name("label_col", label_col)
        self.length_col = check_column_name("length_col", length_col, optional=True)
        named = [c for c in (self.features_col, self.label_col, self.length_col) if c]
        if len(set(named)) != len(named):
            raise ValueError(f"features_col, label_col and length_col must differ, got {named}")
        if per_step_labels is not None and not isinstance(per_step_labels, bool):
            raise TypeError(f"per_step_labels must be a bool or None, got {per_step_labels!r}")
        self.float_dtype = resolve_dtype(float_dtype, "float_dtype")
        self.per_step_labels = per_step_labels
        self.rows_per_file = int(rows_per_file)
        self.row_group_bytes = int(row_group_bytes)
        self.compression = compression
        self.path = Path(check_path("path", path))
        self._owned = _prepare_directory(self.path, bool(overwrite))
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._files: list[str] = []
        self._rows = 0
        self._closed = False

    @property
    def rows(self) -> int:
        """Rows written to files so far (buffered rows count once flushed)."""
        return self._rows

    @property
    def files(self) -> list[str]:
        """Paths of the Parquet files started so far."""
        return list(self._files)

    # -- conversions -------------------------------------------------------------------------

    def _features(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
            return _as_int32("features", x)  # token ids
        return x.astype(self.float_dtype, copy=False)

    def _labels_array(
        self, y: np.ndarray, lengths: np.ndarray, steps: int, per_step: bool
    ) -> pa.Array:
        y = (
            _as_int32("labels", y)
            if np.issubdtype(y.dtype, np.integer)
            else y.astype(self.float_dtype, copy=False)
        )
        if per_step and self.per_step_labels and y.ndim == 1:
            raise ValueError(
                f"per_step_labels=True needs labels [n, T] or [n, T, O], got shape {y.shape}"
            )
        if y.ndim == 1:
            column = pa.array(y)
        elif per_step:
            if y.ndim not in (2, 3) or y.shape[1] != steps:
                raise ValueError(
                    f"per-step labels must be [n, T] or [n, T, O] with T = {steps}, got shape "
                    f"{y.shape}"
                )
            column = sequences_to_arrow(y, lengths)
        elif y.ndim == 2:
            column = _offsets_list(pa.array(y.reshape(-1)), np.full(len(y), y.shape[1]))
        else:
            raise ValueError(
                f"labels of shape {y.shape}: expected [n], [n, K] (vector targets) or per-step "
                "[n, T] / [n, T, O]"
            )
        _check_finite("labels", column)
        return column

    def _table(self, features: pa.Array, labels: pa.Array | None, lengths: np.ndarray) -> pa.Table:
        columns = {self.features_col: features}
        if labels is not None:
            columns[self.label_col] = labels
        if self.length_col is not None:
            columns[self.length_col] = pa.array(lengths.astype(np.int32))
        return pa.table(columns)

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        features: ArrayLike,
        labels: ArrayLike | None = None,
        lengths: ArrayLike | None = None,
    ) -> None:
        """Append padded sequences.

        Parameters
        ----------
        features : array_like
            ``[n, T, F]`` numbers (``array<array<float>>``), ``[n, T]`` floats
            (``array<float>``) or ``[n, T]`` integers (token ids, ``array<int>``).
        labels : array_like, optional
            ``[n]`` (int class or float target), ``[n, K]`` (vector target) or per-step
            ``[n, T]`` / ``[n, T, O]`` (see ``per_step_labels``).
        lengths : array_like, optional
            ``[n]`` valid lengths in ``[1, T]``; only those steps are written. Default: ``T``.
        """
        x = _numeric("features", features)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"features must be [n, T] (univariate or token ids) or [n, T, F], got shape "
                f"{x.shape}"
            )
        n, steps = x.shape[:2]
        if steps == 0 or (x.ndim == 3 and x.shape[2] == 0):
            raise ValueError(f"features of shape {x.shape} have no steps or no features")
        if lengths is None:
            lengths = np.full(n, steps, dtype=np.int64)
        lengths = np.asarray(lengths)
        if not np.issubdtype(lengths.dtype, np.integer) or lengths.shape != (n,):
            raise ValueError(
                f"lengths must be [n] = [{n}] integers, got {lengths.dtype} {lengths.shape}"
            )
        if n and (lengths.min() < 1 or lengths.max() > steps):
            bad = int(np.flatnonzero((lengths < 1) | (lengths > steps))[0])
            raise ValueError(f"lengths[{bad}] = {int(lengths[bad])}: must be in [1, T = {steps}]")
        y = None
        if labels is not None:
            y = _numeric("labels", labels)
            if y.ndim == 0 or y.shape[0] != n:
                raise ValueError(f"labels have shape {y.shape}; features have {n} rows")
        if n == 0:
            return
        per_step = self.per_step_labels
        if per_step is None:
            per_step = y is not None and y.ndim in (2, 3) and y.shape[1] == steps
        x = self._features(x)
        row_bytes = x[0].nbytes + (y[0].nbytes if y is not None else 0)
        values_per_row = int(np.prod(x.shape[1:]))
        piece = max(1, min(self.row_group_bytes // max(row_bytes, 1), _INT32_MAX // values_per_row))
        for start in range(0, n, piece):
            stop = min(n, start + piece)
            column = sequences_to_arrow(x[start:stop], lengths[start:stop])
            _check_finite("features", column)
            label_column = None
            if y is not None:
                label_column = self._labels_array(
                    y[start:stop], lengths[start:stop], steps, per_step
                )
            self.write_table(self._table(column, label_column, lengths[start:stop]))

    def write_ragged(
        self,
        values: ArrayLike,
        sizes: ArrayLike,
        labels: ArrayLike | None = None,
    ) -> None:
        """Append unpadded sequences given as their steps back to back.

        Parameters
        ----------
        values : array_like
            ``[S, F]`` numbers (``array<array<float>>``), ``[S]`` floats (``array<float>``)
            or ``[S]`` integers (token ids), where ``S = sizes.sum()``.
        sizes : array_like
            ``[n]`` integers >= 1: the steps of each sequence, in order.
        labels : array_like, optional
            ``[n]`` or ``[n, K]`` (vector targets).
        """
        v = _numeric("values", values)
        sizes = np.asarray(sizes)
        if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer):
            raise ValueError(f"sizes must be a 1-D integer array, got {sizes.dtype} {sizes.shape}")
        if v.ndim not in (1, 2) or (v.ndim == 2 and v.shape[1] == 0):
            raise ValueError(f"values must be [S] or [S, F] with F >= 1, got shape {v.shape}")
        if sizes.size and sizes.min() < 1:
            raise ValueError(f"sizes[{int(np.argmin(sizes))}] < 1: every sequence needs a step")
        if int(sizes.sum()) != len(v):
            raise ValueError(f"sizes add up to {int(sizes.sum())} steps; values hold {len(v)}")
        y = None
        if labels is not None:
            y = _numeric("labels", labels)
            if y.ndim not in (1, 2) or y.shape[0] != len(sizes):
                raise ValueError(f"labels have shape {y.shape}; expected [{len(sizes)}] or [n, K]")
        if not sizes.size:
            return
        if v.ndim == 1 and np.issubdtype(v.dtype, np.integer):
            v = _as_int32("values", v)
        else:
            v = v.astype(self.float_dtype, copy=False)
        step_bytes = v[0].nbytes if v.ndim == 2 else v.itemsize
        budget = max(1, min(self.row_group_bytes // step_bytes, _INT32_MAX // max(1, v[0].size)))
        ends = np.cumsum(sizes)
        start_row = 0
        while start_row < len(sizes):
            first_step = int(ends[start_row] - sizes[start_row])
            stop_row = int(np.searchsorted(ends, first_step + budget, side="right"))
            stop_row = max(stop_row, start_row + 1)
            counts = sizes[start_row:stop_row]
            block = v[first_step : int(ends[stop_row - 1])]
            if block.ndim == 2:
                inner = _offsets_list(pa.array(block.reshape(-1)), np.full(len(block), v.shape[1]))
            else:
                inner = pa.array(block)
            column = _offsets_list(inner, counts)
            _check_finite("values", column)
            label_column = None
            if y is not None:
                label_column = self._labels_array(y[start_row:stop_row], counts, 0, False)
            self.write_table(self._table(column, label_column, counts))
            start_row = stop_row

    def write_table(self, table: pa.Table) -> None:
        """Append an Arrow table; every table of a dataset must have the same schema."""
        if self._closed:
            raise ValueError(f"the writer for {self.path} is closed")
        if not isinstance(table, pa.Table):
            raise TypeError(f"table must be a pyarrow.Table, got {type(table).__name__}")
        if table.num_rows == 0:
            return
        if self._schema is None:
            self._schema = table.schema
        elif not table.schema.equals(self._schema):
            got = table.schema.to_string(show_schema_metadata=False).replace("\n", ", ")
            want = self._schema.to_string(show_schema_metadata=False).replace("\n", ", ")
            raise ValueError(
                f"a chunk for {self.path} has schema ({got}); the dataset's is ({want})"
            )
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        self._drain(final=False)

    def _room(self) -> int:
        return self.rows_per_file - self._file_rows

    def _drain(self, final: bool) -> None:
        while self._buffered_rows and (
            final
            or self._buffered_rows >= self._room()
            or self._buffered_bytes >= self.row_group_bytes
        ):
            data = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            take = min(self._room(), data.num_rows)
            self._write_group(data.slice(0, take))
            rest = data.slice(take)
            self._buffer = [rest] if rest.num_rows else []
            self._buffered_rows = rest.num_rows
            self._buffered_bytes = rest.nbytes if rest.num_rows else 0

    def _write_group(self, group: pa.Table) -> None:
        if self._writer is None:
            name = self.path / f"{_PART_PREFIX}{len(self._files):05d}.parquet"
            self._writer = pq.ParquetWriter(name, self._schema, compression=self.compression)
            self._files.append(str(name))
            self._file_rows = 0
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._file_rows += group.num_rows
        self._rows += group.num_rows
        if self._file_rows >= self.rows_per_file:
            self._writer.close()
            self._writer = None
            self._file_rows = 0

    def close(self) -> list[str]:
        """Flush, close the last file and mark the dataset complete; returns the file paths.

        If flushing fails (a full disk, say), the dataset is aborted before the error is raised.
        """
        if self._closed:
            return self.files
        try:
            self._drain(final=True)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        if self._rows:
            (self.path / _SUCCESS).touch()
            logger.info(
                "wrote %d rows in %d file(s) to %s", self._rows, len(self._files), self.path
            )
        elif self._owned and not any(self.path.iterdir()):
            self.path.rmdir()
        return self.files

    def abort(self) -> None:
        """Discard the dataset: close the open file and delete the files written so far.

        The directory is removed too if this writer made or emptied it and it is now empty.
        Does nothing after :meth:`close` (a completed dataset is kept).
        """
        if self._closed:
            return
        self._closed = True
        self._buffer = []
        self._buffered_rows = self._buffered_bytes = 0
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._writer = None
            for name in self._files:
                Path(name).unlink(missing_ok=True)
            if self._owned and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()
            logger.info(
                "aborted the dataset at %s (%d file(s) removed)", self.path, len(self._files)
            )
            self._files = []
            self._rows = 0

    def __enter__(self) -> ParquetDatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_parquet_dataset(
    path: PathLike,
    features: ArrayLike,
    labels: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
    **options: Any,
) -> list[str]:
    """Write padded NumPy sequences to a Parquet directory in the trainer's input schema.

    Uses pyarrow only; the arrays are converted and written in pieces of bounded size (see
    :class:`ParquetDatasetWriter`, which also appends chunks one at a time).

    Parameters
    ----------
    path : str or os.PathLike
        Output directory (created; must be empty unless ``overwrite``).
    features : array_like
        ``[n, T, F]`` numbers, ``[n, T]`` floats (univariate) or ``[n, T]`` integer token ids.
    labels : array_like, optional
        ``[n]`` class ids or targets, ``[n, K]`` vector targets, or per-step ``[n, T]`` /
        ``[n, T, O]``.
    lengths : array_like, optional
        ``[n]`` valid lengths in ``[1, T]``; default ``T`` for every row.
    **options
        Keyword arguments of :class:`ParquetDatasetWriter` (``rows_per_file``,
        ``features_col``, ``label_col``, ``length_col``, ``per_step_labels``, ``float_dtype``,
        ``overwrite``, ...).

    Returns
    -------
    list of str
        The Parquet files written.

    Examples
    --------
    >>> import numpy as np, tempfile, pyarrow.parquet as pq
    >>> out = tempfile.mkdtemp() + "/tokens"
    >>> files = write_parquet_dataset(out, np.array([[3, 1, 0], [2, 2, 2]]), np.array([1, 0]),
    ...                               np.array([2, 3]))
    >>> pq.read_table(out).to_pylist()
    [{'features': [3, 1], 'label': 1}, {'features': [2, 2, 2], 'label': 0}]
    """
    with ParquetDatasetWriter(path, **options) as writer:
        writer.write(features, labels, lengths)
    return writer.files
