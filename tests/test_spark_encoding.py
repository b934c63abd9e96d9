"""The encoder that turns a partition's Arrow batches into cached chunks (no Spark needed)."""

import numpy as np
import pyarrow as pa

from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.spark.partitions import ChunkEncoding, decode_chunk, encode_partition
from tests.test_spark_large_data import _encoding as encoding_with


def _encoding(**changes) -> ChunkEncoding:
    return encoding_with(**{"classification": True, "chunk_rows": 8, **changes})


def _rows(n=20, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, n)
    x = rng.normal(size=(n, 6, 2)).astype(np.float32)
    x[np.arange(6)[None, :] >= lengths[:, None]] = 0
    return x, rng.integers(0, 3, n), lengths


def test_rows_flagged_by_a_rule_are_left_out_and_counted_per_rule():
    x, y, lengths = _rows()
    rules = np.zeros(len(y), np.int32)
    rules[[1, 7, 8]] = [2, 1, 2]  # rule 2 broken by two rows, rule 1 by one
    table = numpy_to_arrow(x, y, lengths).append_column("broken", pa.array(rules))
    out = list(
        encode_partition(
            table.to_batches(max_chunksize=5),
            _encoding(rule_column="broken", num_rules=3),
            partition=0,
        )
    )
    chunks = [batch.to_pylist()[0] for batch in out]
    assert [c["chunk"] for c in chunks] == [0, 1, 2, -2]
    assert [c["rows"] for c in chunks] == [8, 8, 1, 0]
    assert chunks[-1]["rejected"] == [1, 2, 0]
    kept = np.flatnonzero(rules == 0)
    inputs = np.concatenate([decode_chunk(c)[0] for c in chunks[:3]])
    labels = np.concatenate([decode_chunk(c)[2] for c in chunks[:3]])
    np.testing.assert_array_equal(inputs, x[kept])
    np.testing.assert_array_equal(labels, y[kept])


def test_a_partition_whose_rows_all_break_rules_says_so_and_holds_no_chunk():
    x, y, lengths = _rows(3)
    table = numpy_to_arrow(x, y, lengths).append_column("broken", pa.array([1, 1, 3], pa.int32()))
    out = [
        b.to_pylist()[0]
        for b in encode_partition(
            table.to_batches(), _encoding(rule_column="broken", num_rules=3), partition=4
        )
    ]
    assert [(c["partition"], c["chunk"], c["rows"]) for c in out] == [(4, -1, 0), (4, -2, 0)]
    assert out[-1]["rejected"] == [2, 0, 1]


def test_without_flagged_rows_no_count_row_is_written():
    x, y, lengths = _rows(8)
    table = numpy_to_arrow(x, y, lengths).append_column("broken", pa.array(np.zeros(8, np.int32)))
    out = [
        b.to_pylist()[0]
        for b in encode_partition(
            table.to_batches(), _encoding(rule_column="broken", num_rules=2), partition=0
        )
    ]
    assert [c["chunk"] for c in out] == [0] and out[0]["rejected"] == []
