"""Arrow record batches -> padded NumPy arrays (no per-row Python), with clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparklstm.data.arrow import (
    batch_to_numpy,
    labels_from_arrow,
    sequence_kind,
    sequences_from_arrow,
)


def test_multivariate_float_sequences_are_padded_exactly():
    table = pa.table({"seq": [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[7.0, 8.0]]], "y": [1, 0]})
    x, lengths, y = batch_to_numpy(table, "seq", "y")
    expected = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [0, 0], [0, 0]]], dtype=np.float32)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(lengths, [3, 1])
    np.testing.assert_array_equal(y, [1, 0])
    assert x.dtype == np.float32 and y.dtype == np.int64


def test_univariate_tokens_and_sliced_batches():
    table = pa.table({"u": [[0.5, 1.5], [2.5]], "tok": [[3, 1, 4], [1]]})
    x, lengths, _ = batch_to_numpy(table, "u", dtype=np.float64)
    np.testing.assert_array_equal(x[..., 0], [[0.5, 1.5], [2.5, 0]])
    assert x.dtype == np.float64
    ids, lengths, _ = batch_to_numpy(table.slice(1), "tok")  # a slice keeps its own offsets
    np.testing.assert_array_equal(ids, [[1]])
    ids, lengths, _ = batch_to_numpy(table, "tok")
    np.testing.assert_array_equal(ids, [[3, 1, 4], [1, 0, 0]])
    assert ids.dtype == np.int64


def test_large_and_fixed_size_lists_and_chunked_columns():
    values = pa.array([[1.0, 2.0], [3.0]], type=pa.large_list(pa.float64()))
    assert sequence_kind(values.type, "v") == "univariate"
    s = sequences_from_arrow(values, "v")
    np.testing.assert_array_equal(s.lengths, [2, 1])
    fixed = pa.array(
        [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]], type=pa.list_(pa.list_(pa.float32(), 2))
    )
    s = sequences_from_arrow(fixed, "f")
    assert s.inputs.shape == (2, 2, 2) and s.inputs[1, 1, 1] == 6
    chunked = pa.chunked_array([pa.array([[1.0]]), pa.array([[2.0, 3.0]])])
    s = sequences_from_arrow(chunked, "c")
    np.testing.assert_array_equal(s.inputs[..., 0], [[1, 0], [2, 3]])


def test_length_column_and_per_step_labels():
    table = pa.table(
        {"seq": [[[1.0], [2.0], [3.0]], [[4.0]]], "ys": [[1, 2, 3], [4]], "len": [2, 1]}
    )
    x, lengths, y = batch_to_numpy(table, "seq", "ys", "len", per_step_labels=True)
    np.testing.assert_array_equal(lengths, [2, 1])
    assert y.shape == (2, 3)
    np.testing.assert_array_equal(y[0, :2], [1, 2])
    np.testing.assert_array_equal(y[1, :1], [4])
    vec = labels_from_arrow(pa.array([[1.0, 2.0], [3.0, 4.0]]), "v")
    np.testing.assert_array_equal(vec, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    "table,kwargs,error,match",
    [
        (
            pa.table({"s": [[[1.0, 2.0], [3.0]]]}),
            {},
            ValueError,
            "ragged: step 1 of row 0 has 1 features",
        ),
        (
            pa.table({"s": [[1.0], None]}),
            {},
            ValueError,
            "1 null value\\(s\\) \\(first at row 1\\)",
        ),
        (pa.table({"s": [[1.0], []]}), {}, ValueError, "row 1 has an empty sequence"),
        (pa.table({"s": [[1.0, float("nan")]]}), {}, ValueError, "NaN or Inf"),
        (pa.table({"s": ["abc"]}), {}, TypeError, "must be array<array<float>>"),
        (pa.table({"s": [[1.0]]}), {"label_col": "y"}, ValueError, "label column 'y' not found"),
        (pa.table({"s": [[1.0, 2.0]], "n": [3]}), {"length_col": "n"}, ValueError, "row 0 says 3"),
        (
            pa.table(
                {"s": [[1.0, 2.0]], "y": [None]},
                schema=pa.schema([("s", pa.list_(pa.float64())), ("y", pa.int64())]),
            ),
            {"label_col": "y"},
            ValueError,
            "column 'y' has 1 null",
        ),
        (
            pa.table({"s": [[[1.0, 2.0]]]}),
            {"num_features": 3},
            ValueError,
            "has 2 features per step; expected 3",
        ),
    ],
)
def test_bad_columns_are_named_in_errors(table, kwargs, error, match):
    with pytest.raises(error, match=match):
        batch_to_numpy(table, "s", **kwargs)
