"""Data sources: the pyarrow Parquet writer (``sparklstm.io.parquet``, no Spark) and
``read_sequences`` on Spark.

Round trips compare against the unpadded NumPy rows exactly; parse errors must name the
column, the number of bad rows and the first bad row; every format's DataFrame must pass
``profile_data``, the trainer's schema check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm.data.embeddings import (
    load_word_vectors,
    read_labelled_token_file,
    write_word_vectors,
)
from sparklstm.io import parquet
from sparklstm.io.parquet import ParquetDatasetWriter, write_parquet_dataset
from sparklstm.spark import sources
from sparklstm.spark.schema import Columns, profile_data
from sparklstm.spark.sources import read_sequences


def unpadded(x, lengths):
    """The valid steps of each padded row, as nested Python lists."""
    return [row[:n].tolist() for row, n in zip(x, lengths, strict=True)]


def listing(path):
    return sorted(p.name for p in path.iterdir())


def text_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def rows_of(df):
    return [row.asDict(recursive=True) for row in df.collect()]


def by_label(rows, label="label"):
    return {row[label]: row for row in rows}


def test_the_writer_imports_no_spark_and_sources_re_exports_it():
    code = (
        "import sys, sparklstm.io.parquet; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
    for name in ("ParquetDatasetWriter", "write_parquet_dataset"):
        assert getattr(sources, name) is getattr(parquet, name)
        assert name in sources.__all__ and name in parquet.__all__


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(7)
    n, steps = 23, 6
    lengths = rng.integers(1, steps + 1, size=n)
    x = rng.standard_normal((n, steps, 3))  # float64 in, float32 out
    x[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan  # padding is never read
    tokens = rng.integers(0, 50, size=(n, steps))
    per_step = rng.integers(0, 4, size=(n, steps))
    return x, tokens, per_step, lengths


# ----------------------------------------------------------------------------- writer (pyarrow)
def test_multivariate_round_trip_with_lengths_and_length_column(tmp_path, arrays):
    x, _, _, lengths = arrays
    y = np.arange(len(x))
    files = write_parquet_dataset(tmp_path / "d", x, y, lengths, length_col="n")
    assert [f.rsplit("/", 1)[1] for f in files] == ["part-00000.parquet"]
    assert listing(tmp_path / "d") == ["_SUCCESS", "part-00000.parquet"]
    table = pq.read_table(tmp_path / "d")
    assert table.schema == pa.schema(
        [("features", pa.list_(pa.list_(pa.float32()))), ("label", pa.int32()), ("n", pa.int32())]
    )
    assert table.column("features").to_pylist() == unpadded(x.astype(np.float32), lengths)
    assert table.column("label").to_pylist() == y.tolist()
    assert table.column("n").to_pylist() == lengths.tolist()


@pytest.mark.parametrize(
    "case", ["univariate_float_label", "tokens_per_step", "vector_target", "float64", "bool"]
)
def test_each_input_kind_round_trips_exactly(tmp_path, arrays, case):
    x, tokens, per_step, lengths = arrays
    n = len(x)
    kwargs = {}
    if case == "univariate_float_label":
        features, labels = x[..., 0], np.linspace(-1, 1, n)
        want_x = unpadded(features.astype(np.float32), lengths)
        want_y = labels.astype(np.float32).tolist()
        types = (pa.list_(pa.float32()), pa.float32())
    elif case == "tokens_per_step":
        features, labels = tokens, per_step  # [n, T] ints + [n, T] labels: both trimmed
        want_x, want_y = unpadded(tokens, lengths), unpadded(per_step, lengths)
        types = (pa.list_(pa.int32()), pa.list_(pa.int32()))
    elif case == "vector_target":
        features, labels = x, per_step[:, :2] * 0.5  # [n, K] float: kept whole
        kwargs = {"per_step_labels": False}
        want_x = unpadded(x.astype(np.float32), lengths)
        want_y = labels.astype(np.float32).tolist()
        types = (pa.list_(pa.list_(pa.float32())), pa.list_(pa.float32()))
    elif case == "float64":
        features, labels = x, np.arange(n)
        kwargs = {"float_dtype": np.float64}
        want_x, want_y = unpadded(x, lengths), list(range(n))
        types = (pa.list_(pa.list_(pa.float64())), pa.int32())
    else:
        features, labels = x[..., :1], per_step[:, 0] > 1  # bool labels become 0/1 ints
        want_x = unpadded(x[..., :1].astype(np.float32), lengths)
        want_y = (per_step[:, 0] > 1).astype(int).tolist()
        types = (pa.list_(pa.list_(pa.float32())), pa.int32())
    write_parquet_dataset(tmp_path / "d", features, labels, lengths, **kwargs)
    table = pq.read_table(tmp_path / "d")
    assert (table.schema.field("features").type, table.schema.field("label").type) == types
    assert table.column("features").to_pylist() == want_x
    assert table.column("label").to_pylist() == want_y


def test_streaming_writes_split_files_and_bound_row_groups(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((100, 5, 2)).astype(np.float32)  # 40 bytes of values per row
    y = np.arange(100)
    with ParquetDatasetWriter(tmp_path / "d", rows_per_file=30, row_group_bytes=400) as writer:
        for start in range(0, 100, 7):  # chunks that straddle file boundaries
            writer.write(x[start : start + 7], y[start : start + 7])
        writer.write(x[:0], y[:0])  # an empty chunk is a no-op
    assert writer.rows == 100 and len(writer.files) == 4
    assert listing(tmp_path / "d") == ["_SUCCESS"] + [f"part-0000{i}.parquet" for i in range(4)]
    for path, rows in zip(writer.files, [30, 30, 30, 10], strict=True):
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == rows
        group_rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sum(group_rows) == rows and max(group_rows) <= 2 * 400 // 40
    assert pq.ParquetFile(writer.files[0]).metadata.num_row_groups > 1
    table = pq.read_table(tmp_path / "d")
    assert table.column("label").to_pylist() == y.tolist()  # order kept across chunks
    assert table.column("features").to_pylist() == x.tolist()

    # With the default budget, small chunks are buffered into one row group per file.
    with ParquetDatasetWriter(tmp_path / "e", rows_per_file=60) as writer:
        for start in range(0, 100, 10):
            writer.write(x[start : start + 10], y[start : start + 10])
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in writer.files]
    assert groups == [1, 1]
    assert pq.read_table(tmp_path / "e").column("label").to_pylist() == y.tolist()


def test_one_big_write_is_cut_into_pieces_of_bounded_size(tmp_path):
    x = np.arange(64 * 4 * 2, dtype=np.float32).reshape(64, 4, 2)
    with ParquetDatasetWriter(tmp_path / "d", rows_per_file=50, row_group_bytes=256) as writer:
        writer.write(x)  # no labels: a features-only (inference) dataset
    table = pq.read_table(tmp_path / "d")
    assert table.column_names == ["features"]
    assert table.column("features").to_pylist() == x.tolist()
    meta = pq.ParquetFile(writer.files[0]).metadata
    assert meta.num_row_groups > 1
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 2 * 256 // 32


def test_write_ragged_matches_write_of_the_padded_arrays(tmp_path, arrays):
    x, tokens, _, lengths = arrays
    y = np.arange(len(x))
    steps = np.concatenate([row[:n] for row, n in zip(x, lengths, strict=True)])
    ids = np.concatenate([row[:n] for row, n in zip(tokens, lengths, strict=True)])
    write_parquet_dataset(tmp_path / "padded", x, y, lengths)
    with ParquetDatasetWriter(tmp_path / "ragged", rows_per_file=10) as writer:
        writer.write_ragged(steps, lengths, y)
    assert len(writer.files) == 3
    assert pq.read_table(tmp_path / "ragged").equals(pq.read_table(tmp_path / "padded"))
    with ParquetDatasetWriter(tmp_path / "tokens", row_group_bytes=16) as writer:
        writer.write_ragged(ids, lengths, y)
    table = pq.read_table(tmp_path / "tokens")
    assert table.column("features").to_pylist() == unpadded(tokens, lengths)
    assert table.column("label").to_pylist() == y.tolist()


def test_overwrite_replaces_only_a_dataset(tmp_path):
    x = np.ones((6, 2, 1))
    path = tmp_path / "d"
    write_parquet_dataset(path, x, np.arange(6), rows_per_file=2)
    assert len(listing(path)) == 4
    with pytest.raises(FileExistsError, match="is not empty; pass overwrite=True"):
        write_parquet_dataset(path, x[:1], np.zeros(1, int))
    assert pq.read_table(path).num_rows == 6  # untouched
    write_parquet_dataset(path, x[:1], np.array([9]), overwrite=True)
    assert listing(path) == ["_SUCCESS", "part-00000.parquet"]
    assert pq.read_table(path).column("label").to_pylist() == [9]

    (path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError, match=r"did not write \(notes.txt\)"):
        write_parquet_dataset(path, x[:1], np.zeros(1, int), overwrite=True)
    assert listing(path) == ["_SUCCESS", "notes.txt", "part-00000.parquet"]
    with pytest.raises(FileExistsError, match="not a directory"):
        write_parquet_dataset(path / "notes.txt", x[:1], np.zeros(1, int))

    empty = tmp_path / "empty"
    empty.mkdir()
    write_parquet_dataset(empty, x, np.arange(6))  # an empty directory needs no overwrite
    assert pq.read_table(empty).num_rows == 6


def test_abort_and_failed_writes_leave_no_partial_dataset(tmp_path):
    x, y = np.ones((12, 3, 2)), np.arange(12)
    path = tmp_path / "made"
    with pytest.raises(RuntimeError, match="boom"):
        with ParquetDatasetWriter(path, rows_per_file=5) as writer:
            writer.write(x, y)  # two full files are on disk by now
            assert len(list(path.glob("part-*.parquet"))) >= 2
            raise RuntimeError("boom")
    assert not path.exists()
    with pytest.raises(ValueError, match="is closed"):
        writer.write(x, y)

    existing = tmp_path / "existing"
    existing.mkdir()
    writer = ParquetDatasetWriter(existing, rows_per_file=5)
    writer.write(x, y)
    writer.abort()
    assert existing.is_dir() and listing(existing) == []  # a directory it did not make stays
    assert writer.files == [] and writer.rows == 0

    done = tmp_path / "done"
    writer = ParquetDatasetWriter(done)
    writer.write(x, y)
    assert len(writer.close()) == 1
    writer.abort()  # after close: the completed dataset is kept
    assert listing(done) == ["_SUCCESS", "part-00000.parquet"]

    full = tmp_path / "full"
    writer = ParquetDatasetWriter(full, rows_per_file=5)
    writer.write(x, y)  # two files written, two rows buffered

    def no_space(group):
        raise OSError("No space left on device")

    writer._write_group = no_space
    with pytest.raises(OSError, match="No space"):
        writer.close()  # the final flush fails: the dataset is aborted
    assert not full.exists()

    with ParquetDatasetWriter(tmp_path / "nothing") as writer:
        writer.write(x[:0], y[:0])
    assert not (tmp_path / "nothing").exists() and writer.files == []


@pytest.mark.parametrize(
    "where,value,match",
    [
        ("x", np.nan, "features holds NaN or Inf in its valid steps"),
        ("x", -np.inf, "features holds NaN or Inf in its valid steps"),
        ("y", np.inf, "labels holds NaN or Inf"),
    ],
)
def test_nan_and_inf_in_valid_steps_are_rejected(tmp_path, where, value, match):
    x, y = np.zeros((40, 4, 2)), np.zeros(40)
    lengths = np.full(40, 3)
    (x if where == "x" else y)[33, ...] = value
    path = tmp_path / "d"
    with pytest.raises(ValueError, match=match):
        with ParquetDatasetWriter(path, rows_per_file=10) as writer:
            writer.write(x[:30], y[:30], lengths[:30])
            assert len(writer.files) == 3 and len(listing(path)) == 3
            writer.write(x[30:], y[30:], lengths[30:])
    assert not path.exists()  # the three finished files were removed
    x[33], y[33] = 0, 0
    x[:, 3] = np.nan  # padding (step 3 >= length 3) may hold anything
    write_parquet_dataset(tmp_path / "d", x, y, lengths)
    assert pq.read_table(tmp_path / "d").column("features").to_pylist()[0] == [[0.0, 0.0]] * 3


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((np.zeros((2, 3, 1)), None, [1, 4]), {}, ValueError, r"lengths\[1\] = 4: must be in"),
        ((np.zeros((2, 3, 1)), None, [0, 1]), {}, ValueError, r"lengths\[0\] = 0"),
        ((np.zeros((2, 3, 1)), None, [1.0, 2.0]), {}, ValueError, "lengths must be"),
        ((np.zeros((2, 3, 1)), [1, 2, 3]), {}, ValueError, "labels have shape"),
        ((np.zeros((2, 3, 1)), [1, 2]), {"per_step_labels": True}, ValueError, "per_step"),
        ((np.zeros((2, 3, 1)), np.zeros((2, 4))), {"per_step_labels": True}, ValueError, "T = 3"),
        ((np.zeros(3),), {}, ValueError, "features must be"),
        ((np.array([["a"]]),), {}, TypeError, "features must hold numbers"),
        ((np.zeros((1, 2), np.int64) + 2**40,), {}, ValueError, "outside the int32 range"),
    ],
)
def test_writer_argument_errors(tmp_path, args, kwargs, error, match):
    writer = ParquetDatasetWriter(tmp_path / "d", **kwargs)
    with pytest.raises(error, match=match):
        writer.write(*args)


def test_writer_option_and_schema_errors(tmp_path):
    with pytest.raises(ValueError, match="rows_per_file = 0"):
        ParquetDatasetWriter(tmp_path / "a", rows_per_file=0)
    with pytest.raises(ValueError, match="must differ"):
        ParquetDatasetWriter(tmp_path / "a", label_col="features")
    with pytest.raises(TypeError, match="float_dtype"):
        ParquetDatasetWriter(tmp_path / "a", float_dtype=np.int32)
    with ParquetDatasetWriter(tmp_path / "b") as writer:
        writer.write(np.zeros((2, 3, 1)), [0, 1])
        with pytest.raises(ValueError, match="has schema .*label: float.*the dataset's is"):
            writer.write(np.zeros((2, 3, 1)), [0.5, 1.5])
    assert pq.read_table(tmp_path / "b").num_rows == 2


# ----------------------------------------------------------------------------- Parquet on Spark
def test_written_parquet_reads_back_on_spark_in_the_trainer_schema(spark, tmp_path, arrays):
    x, tokens, per_step, lengths = arrays
    y = np.arange(len(x))
    write_parquet_dataset(tmp_path / "multi", x, y, lengths, rows_per_file=10, length_col="n")
    write_parquet_dataset(tmp_path / "tokens", tokens, per_step, lengths)

    df = read_sequences(spark, tmp_path / "multi", length_col="n", num_partitions=3)
    assert df.rdd.getNumPartitions() == 3
    assert df.schema.simpleString() == "struct<features:array<array<float>>,label:int,n:int>"
    rows = by_label(rows_of(df))
    want = unpadded(x.astype(np.float32), lengths)
    assert sorted(rows) == y.tolist()
    for i in y:
        assert rows[i]["features"] == want[i] and rows[i]["n"] == lengths[i]
    profile = profile_data(df, Columns(length="n"))
    assert (profile.rows, profile.sequence_kind, profile.num_features) == (23, "multivariate", 3)
    assert (profile.label_kind, profile.max_label) == ("int", 22.0)

    df = read_sequences(spark, str(tmp_path / "tokens"))
    assert df.schema.simpleString() == "struct<features:array<int>,label:array<int>>"
    got = sorted((r["features"], r["label"]) for r in rows_of(df))
    assert got == sorted(zip(unpadded(tokens, lengths), unpadded(per_step, lengths), strict=True))
    profile = profile_data(df, Columns())
    assert (profile.sequence_kind, profile.max_token) == ("tokens", int(tokens.max()))
    assert (profile.label_kind, profile.label_width) == ("array", int(lengths.max()))

    with pytest.raises(ValueError, match=r"label column 'y' not found .*columns are \['features'"):
        read_sequences(spark, tmp_path / "tokens", label_col="y")


# ----------------------------------------------------------------------------- csv and json
def test_csv_multivariate_with_header_and_length_column(spark, tmp_path):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 5, size=12)
    x = np.round(rng.uniform(-10, 10, size=(12, 4, 2)), 3)
    lines = ["features,label,n,note"]
    for i, (row, n) in enumerate(zip(x, lengths, strict=True)):
        text = ";".join(",".join(f"{v:g}" for v in step) for step in row[:n])
        lines.append(f'"{text}",{i % 3},{n},row{i}')
    path = text_file(tmp_path, "train.csv", "\n".join(lines) + "\n")
    df = read_sequences(spark, path, "csv", length_col="n")
    assert df.schema.simpleString() == (
        "struct<features:array<array<float>>,label:int,n:int,note:string>"
    )
    rows = {row["note"]: row for row in rows_of(df)}
    want = unpadded(x.astype(np.float32), lengths)
    for i in range(12):
        row = rows[f"row{i}"]
        assert (row["features"], row["label"], row["n"]) == (want[i], i % 3, lengths[i])
    profile = profile_data(df, Columns(length="n"))
    assert (profile.sequence_kind, profile.num_features, profile.max_label) == (
        "multivariate",
        2,
        2.0,
    )


def test_csv_without_header_custom_separators_and_float_labels(spark, tmp_path):
    path = text_file(tmp_path, "t.tsv", "1 2.5|-3 4e-1\t1.25\n5 6\t-2\n")
    df = read_sequences(
        spark,
        path,
        "csv",
        features_col="_c0",
        label_col="_c1",
        header=False,
        csv_sep="\t",
        step_sep="|",
        value_sep=" ",
        label_type="float",
    )
    assert df.schema.simpleString() == "struct<_c0:array<array<float>>,_c1:float>"
    rows = sorted(rows_of(df), key=lambda r: r["_c1"])
    assert rows == [
        {"_c0": [[5.0, 6.0]], "_c1": -2.0},
        {"_c0": [[1.0, 2.5], [-3.0, np.float32(0.4).item()]], "_c1": 1.25},
    ]
    assert profile_data(df, Columns("_c0", "_c1")).label_kind == "float"
    with pytest.raises(ValueError, match=r"features column 'features' not found .*'_c0', '_c1'"):
        read_sequences(spark, path, "csv", header=False, csv_sep="\t")


def test_csv_tokens_and_univariate_with_array_labels(spark, tmp_path):
    path = text_file(tmp_path, "s.csv", 'seq,y,k\n" 3, 1 ,4","0,1,2",0\n"7","3",1\n')
    df = read_sequences(
        spark,
        path,
        "csv",
        features_col="seq",
        label_col="y",
        sequence_type="tokens",
        label_type="int_array",
    )
    assert df.schema.simpleString() == "struct<seq:array<int>,y:array<int>,k:string>"
    assert sorted((r["seq"], r["y"]) for r in rows_of(df)) == [([3, 1, 4], [0, 1, 2]), ([7], [3])]
    profile = profile_data(df, Columns("seq", "y"))
    assert (profile.sequence_kind, profile.max_token, profile.label_width) == ("tokens", 7, 3)

    df = read_sequences(
        spark,
        path,
        "csv",
        features_col="seq",
        label_col="y",
        sequence_type="univariate",
        label_type="float_array",
    )
    assert df.schema.simpleString() == "struct<seq:array<float>,y:array<float>,k:string>"
    assert sorted((r["seq"], r["y"]) for r in rows_of(df)) == [
        ([3.0, 1.0, 4.0], [0.0, 1.0, 2.0]),
        ([7.0], [3.0]),
    ]
    assert profile_data(df, Columns("seq", "y")).sequence_kind == "univariate"

    # step_sep plays no part in univariate text, so it may equal value_sep.
    semi = text_file(tmp_path, "semi.csv", "seq,k\n0.5;1.5,1\n2,0\n")
    df = read_sequences(
        spark,
        semi,
        "csv",
        features_col="seq",
        label_col="k",
        sequence_type="univariate",
        value_sep=";",
    )
    assert sorted((r["seq"], r["k"]) for r in rows_of(df)) == [([0.5, 1.5], 1), ([2.0], 0)]


def test_json_arrays_are_cast_and_strings_parsed(spark, tmp_path):
    records = [
        {"f": [[1, 2], [3, 4]], "y": 1, "t": "5,6", "v": [0.5, 2], "n": 2, "id": "a"},
        {"f": [[5.5, 6]], "y": 0.0, "t": "7", "v": [1, 2], "n": 1, "id": "b"},
    ]
    path = text_file(tmp_path, "d.json", "".join(json.dumps(r) + "\n" for r in records))
    df = read_sequences(spark, path, "json", features_col="f", label_col="y", validate=False)
    assert df.schema["f"].dataType.simpleString() == "array<array<float>>"
    assert df.schema["y"].dataType.simpleString() == "float"  # JSON 0.0 makes it a double
    df = read_sequences(
        spark, path, "json", features_col="f", label_col="y", length_col="n", label_type="int"
    )
    assert df.schema.simpleString() == (
        "struct<f:array<array<float>>,id:string,n:int,t:string,v:array<double>,y:int>"
    )
    rows = {r["id"]: r for r in rows_of(df)}
    assert (rows["a"]["f"], rows["a"]["y"], rows["a"]["n"]) == ([[1.0, 2.0], [3.0, 4.0]], 1, 2)
    assert (rows["b"]["f"], rows["b"]["y"], rows["b"]["n"]) == ([[5.5, 6.0]], 0, 1)
    profile = profile_data(df, Columns("f", "y", "n"))
    assert (profile.sequence_kind, profile.num_features, profile.label_kind) == (
        "multivariate",
        2,
        "int",
    )

    df = read_sequences(
        spark, path, "json", features_col="t", label_col="v", sequence_type="tokens"
    )
    assert df.schema["t"].dataType.simpleString() == "array<int>"
    assert df.schema["v"].dataType.simpleString() == "array<float>"  # float_array by default
    rows = sorted((r["t"], r["v"]) for r in rows_of(df))
    assert rows == [([5, 6], [0.5, 2.0]), ([7], [1.0, 2.0])]
    df = read_sequences(
        spark,
        path,
        "json",
        features_col="f",
        label_col="v",
        sequence_type="multivariate",
        label_type="float_array",
        num_partitions=2,
    )
    assert df.rdd.getNumPartitions() == 2
    assert profile_data(df, Columns("f", "v")).label_width == 2

    with pytest.raises(ValueError, match=r"label column 'v' holds .*non-int.*: 1 of 2 row\(s\)"):
        read_sequences(spark, path, "json", features_col="f", label_col="v", label_type="int_array")
    with pytest.raises(TypeError, match="features column 'f' has type array<array<double>>"):
        read_sequences(
            spark, path, "json", features_col="f", label_col=None, sequence_type="tokens"
        )


def test_unparseable_values_name_column_count_and_first_bad_row(spark, tmp_path):
    path = text_file(
        tmp_path,
        "bad.csv",
        'f,y\n"1,2;3,4",1\n"5,6",0\n"1,x;3,4",0\n"1,2;3",1\n"9,NaN",1\n"1,2",1.5\n"1,2",\n',
    )
    with pytest.raises(ValueError) as info:
        read_sequences(spark, path, "csv", features_col="f", label_col="y")
    message = str(info.value)
    assert message.startswith(f"{path} (format 'csv'): ")
    assert "features column 'f' holds text that is not 'v,v;v,v...' (steps split by ';') of " in (
        message
    )
    assert """finite numbers: 2 of 7 row(s), first '{"f":"1,x;3,4","y":"0"}'""" in message
    assert "steps with different numbers of features: 1 of 7 row(s), first " in message
    assert "label column 'y' is null: 1 of 7 row(s)" in message
    assert "label column 'y' holds text that is not an integer (pass label_type='float'" in message
    assert """1 of 7 row(s), first '{"f":"1,2","y":"1.5"}'""" in message

    # validate=False leaves the bad values as nulls for the trainer's own checks.
    df = read_sequences(spark, path, "csv", features_col="f", label_col="y", validate=False)
    rows = rows_of(df)
    assert rows[2] == {"f": [[1.0, None], [3.0, 4.0]], "y": 0} and rows[5]["y"] is None

    broken = text_file(tmp_path, "bad.json", '{"f": "1,2", "y": 1}\n{"f": "3,4", \n')
    with pytest.raises(ValueError, match=r"json input holds malformed records: 1 of 2 row\(s\)"):
        read_sequences(spark, broken, "json", features_col="f", label_col="y")
    empty_steps = text_file(tmp_path, "e.json", '{"f": [], "y": 1}\n{"f": [[1.0]], "y": 1}\n')
    with pytest.raises(ValueError, match=r"'f' holds an empty sequence: 1 of 2 row\(s\)"):
        read_sequences(spark, empty_steps, "json", features_col="f", label_col="y")
    lengths = text_file(tmp_path, "n.csv", "f,n\n1,0\n2,x\n3,1\n")
    with pytest.raises(ValueError, match=r"length column 'n' .*integers >= 1: 2 of 3 row\(s\)"):
        read_sequences(
            spark,
            lengths,
            "csv",
            features_col="f",
            label_col=None,
            length_col="n",
            sequence_type="univariate",
        )


# ----------------------------------------------------------------------------- reference text
VOCAB = [f"w{i}" for i in range(12)]


@pytest.fixture()
def reference_files(tmp_path):
    """A dictionary with distinct vectors (row i is [i, -i / 4]) plus UNKNOWN, and examples of
    many lengths mixing known and unknown tokens."""
    vocab = {word: i for i, word in enumerate(VOCAB + ["UNKNOWN"])}
    vectors = np.array([[i, -i / 4] for i in range(len(VOCAB))] + [[-7.5, 7.5]], np.float32)
    write_word_vectors(tmp_path / "dict.txt", vocab, vectors)
    rng = np.random.default_rng(3)
    words = VOCAB + ["oov1", "oov2"]
    lines = []
    for i in range(30):
        tokens = [words[k] for k in rng.integers(0, len(words), size=rng.integers(1, 20))]
        lines.append(f"{i}\t{','.join(tokens)}")
        if i % 10 == 0:
            lines.append("  \t ")  # blank lines (with tabs) are skipped, as in embeddings.py
    (tmp_path / "ex.txt").write_text("\r\n".join(lines) + "\n", encoding="utf-8")
    return str(tmp_path / "ex.txt"), str(tmp_path / "dict.txt")


def _expected_reference(examples, dictionary):
    vocab, vectors = load_word_vectors(dictionary)
    ids, labels = read_labelled_token_file(examples, vocab)
    return {int(label): vectors[seq].tolist() for seq, label in zip(ids, labels, strict=True)}


@pytest.mark.parametrize("broadcast", [True, False])
def test_reference_text_vectors_in_token_order(spark, reference_files, broadcast):
    examples, dictionary = reference_files
    threshold = "spark.sql.autoBroadcastJoinThreshold"
    saved = spark.conf.get(threshold)
    if not broadcast:  # a sort-merge join, which sorts the token rows by token
        spark.conf.set(threshold, "-1")
    try:
        df = read_sequences(
            spark,
            examples,
            "text",
            dictionary=dictionary,
            length_col="steps",
            broadcast_dictionary=broadcast,
            num_partitions=3,
        )
        rows = by_label(rows_of(df))
    finally:
        spark.conf.set(threshold, saved)
    assert df.rdd.getNumPartitions() == 3
    assert df.schema.simpleString() == "struct<features:array<array<float>>,label:int,steps:int>"
    expected = _expected_reference(examples, dictionary)
    assert sorted(rows) == list(range(30))
    for label, want in expected.items():
        assert rows[label]["features"] == want, label  # order of tokens kept in every row
        assert rows[label]["steps"] == len(want)
    assert any([-7.5, 7.5] in r["features"] for r in rows.values())  # unknown tokens seen
    profile = profile_data(df, Columns(length="steps"))
    assert (profile.rows, profile.sequence_kind, profile.num_features) == (30, "multivariate", 2)
    assert (profile.label_kind, profile.max_label) == ("int", 29.0)


def test_reference_text_without_unknown_row_and_without_labels(spark, tmp_path):
    dictionary = text_file(tmp_path, "d.txt", "a\t1,2\nb\t3,4\n")
    examples = text_file(tmp_path, "e.txt", "1\tb,zz,a\n0\tzz\n")
    df = read_sequences(spark, examples, "text", dictionary=dictionary, features_col="x")
    got = sorted((r["label"], r["x"]) for r in rows_of(df))
    assert got == [(0, [[0.0, 0.0]]), (1, [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])]
    assert _expected_reference(examples, dictionary) == dict(got)
    df = read_sequences(spark, examples, "text", dictionary=dictionary, label_col=None)
    assert df.columns == ["features"]


@pytest.mark.parametrize(
    "text,match",
    [
        ("a 1,2\nb\t3,4\n", r"lines without a tab .*: 1 of 2 line\(s\), first 'a 1,2'$"),
        ("a\t1,2\n\t3,4\n", r"lines with an empty word: 1 of 2 line\(s\)"),
        ("a\t1,x\nb\tNaN,1\nc\t1,2\n", r"not finite numbers: 2 of 3 line\(s\), first 'a\\t1,x'"),
        ("a\t1,2\nb\t3\n", "vectors have between 1 and 2 values"),
        ("a\t1,2\nb\t3,4\na\t5,6\n", r"1 duplicate word\(s\), e.g. 'a'"),
        ("\n \n", r"holds no word vectors \(the file is empty\)"),
    ],
)
def test_malformed_dictionaries(spark, tmp_path, text, match):
    dictionary = text_file(tmp_path, "d.txt", text)
    examples = text_file(tmp_path, "e.txt", "1\ta\n")
    with pytest.raises(ValueError, match=match):
        read_sequences(spark, examples, "text", dictionary=dictionary)


def test_malformed_reference_examples(spark, tmp_path):
    dictionary = text_file(tmp_path, "d.txt", "a\t1,2\n")
    examples = text_file(tmp_path, "e.txt", "1\ta\nx\ta\nnotab\n1\t \n1\ta,,a\n0\ta,b\n")
    with pytest.raises(ValueError) as info:
        read_sequences(spark, examples, "text", dictionary=dictionary)
    message = str(info.value)
    assert message.startswith(f"{examples} (format 'text', lines 'label<TAB>tok1,tok2,...'): ")
    for part in (
        "lines without a tab: 1 of 6 row(s), first 'notab'",
        "labels that are not integers: 1 of 6 row(s), first 'x\\ta'",
        "empty token lists: 1 of 6 row(s), first '1\\t '",
        "empty tokens (two commas in a row?): 1 of 6 row(s), first '1\\ta,,a'",
    ):
        assert part in message


# ----------------------------------------------------------------------------- options
def test_missing_paths_raise_file_not_found(spark, tmp_path):
    dictionary = text_file(tmp_path, "d.txt", "a\t1\n")
    examples = text_file(tmp_path, "e.txt", "1\ta\n")
    nope = str(tmp_path / "nope")
    for format in ("parquet", "csv", "json"):
        with pytest.raises(FileNotFoundError, match="path: no such file .*" + re.escape(nope)):
            read_sequences(spark, tmp_path / "nope", format)
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        read_sequences(spark, tmp_path / "nope", "text", dictionary=dictionary)
    with pytest.raises(FileNotFoundError, match="dictionary: no such file .*nodict"):
        read_sequences(spark, examples, "text", dictionary=tmp_path / "nodict")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"format": "avro"}, ValueError, "format = 'avro': must be one of 'parquet', 'csv'"),
        ({"format": "csv", "step_sep": ",", "value_sep": ","}, ValueError, "must differ"),
        ({"format": "json", "step_sep": "|", "value_sep": "|"}, ValueError, "must differ"),
        ({"format": "csv", "dictionary": "d.txt"}, ValueError, "only used with format='text'"),
        ({"format": "text"}, ValueError, "format='text' needs dictionary="),
        (
            {"format": "text", "dictionary": "d", "sequence_type": "tokens"},
            ValueError,
            "produces word vectors",
        ),
        ({"sequence_type": "words"}, ValueError, "sequence_type = 'words'"),
        ({"label_type": "str"}, ValueError, "label_type = 'str'"),
        ({"label_col": "features"}, ValueError, "must differ, got"),
        ({"features_col": ""}, TypeError, "features_col must be a non-empty str"),
        ({"value_sep": ""}, ValueError, "value_sep must be a non-empty str"),
        ({"num_partitions": 0}, ValueError, "num_partitions = 0"),
        ({"num_partitions": True}, ValueError, "num_partitions = True"),
    ],
)
def test_option_errors(spark, kwargs, error, match):
    with pytest.raises(error, match=match):
        read_sequences(spark, "data.csv", **kwargs)


def test_path_must_be_a_path(spark):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        read_sequences(spark, 3)
