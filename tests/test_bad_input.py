"""Bad input gets one clear line before any work: data in another format than the one asked
for (sniffed for local paths, Spark's read errors translated for the rest), and class labels
that are not 0..K-1 when the number of classes is taken from the data.

Each case is checked through the library (``read_sequences``, ``fit_distributed``) and through
``jobs/train.py`` run in-process by ``run_job``: exit status 1, exactly one line on stderr
naming the path (or column) and the remedy, no traceback.
"""

from __future__ import annotations

import gzip
import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.cli import run_job
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.jobs import train
from sparklstm.spark.schema import Columns, model_sizes, profile_data
from sparklstm.spark.sources import read_sequences, write_parquet_dataset
from sparklstm.spark.trainer import fit_distributed

ROWS, STEPS, FEATURES = 24, 5, 2
TINY = {"hidden_sizes": [4], "seed": 0}
ONE_ROUND = {"rounds": 1, "local_steps": 1, "batch_size": 4, "num_partitions": 1}


def sequences(labels):
    """``len(labels)`` multivariate sequences [n, STEPS, FEATURES] with these labels."""
    rng = np.random.default_rng(0)
    labels = np.asarray(labels)
    return rng.standard_normal((len(labels), STEPS, FEATURES)).astype(np.float32), labels


def cycled(values, n=ROWS):
    return np.resize(np.asarray(values), n)


@pytest.fixture
def parquet_data(tmp_path):
    """A Parquet dataset as Spark leaves one: part files, ``_SUCCESS`` and hidden files."""
    out = tmp_path / "parquet"
    write_parquet_dataset(out, *sequences(cycled([0, 1, 2])), rows_per_file=10)
    assert (out / "_SUCCESS").exists()
    # Sorted before the parts; not data. (Hadoop checks a part's .crc, so none is faked here.)
    (out / "._SUCCESS.crc").write_bytes(b"crc\x00\x01\x02" * 4)
    (out / ".notes").write_text("not data\n")
    (out / "_committed_0").write_text("{}\n")
    return out


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('features,label\n"0.1,0.2;0.3,0.4",1\n"0.5,0.6;0.7,0.8",0\n')
    return path


@pytest.fixture
def json_file(tmp_path):
    path = tmp_path / "train.json"
    rows = [{"features": [[0.1, 0.2], [0.3, 0.4]], "label": 1}] * 3
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def binary_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message, message
    return message


def train_job(args, capsys, monkeypatch):
    """Run ``jobs/train.py ARGS`` in this process as spark-submit would: ``(status, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["train.py", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        run_job(train.main, "train.py")
    return exit_info.value.code, capsys.readouterr().err


def assert_one_error_line(status, err, *parts):
    assert status == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("train.py: error: "), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


# ---------------------------------------------------------------- format: the library
def test_csv_read_as_parquet_names_the_file_and_the_format_to_pass(spark, csv_file):
    with pytest.raises(ValueError) as exc_info:
        read_sequences(spark, csv_file)  # format defaults to parquet
    message = one_line(exc_info)
    assert message.startswith(f"path {csv_file}: not Parquet (it starts like CSV text: ")
    assert "'features,label'" in message and message.endswith("pass format='csv'")
    # A file: URI is a local path too.
    with pytest.raises(ValueError, match=r"not Parquet .* pass format='csv'"):
        read_sequences(spark, f"file://{csv_file}")


def test_parquet_directory_read_as_csv_skips_success_and_hidden_files(spark, parquet_data):
    with pytest.raises(ValueError) as exc_info:
        read_sequences(spark, parquet_data, "csv")
    message = one_line(exc_info)
    assert message.startswith(f"path {parquet_data} is Parquet (the file ")
    assert "part-00000.parquet), not CSV; pass format='parquet' (the default)" in message
    # Partitioned data (key=value directories) is looked into; the text formats likewise.
    nested = parquet_data.parent / "partitioned"
    pq.write_to_dataset(pq.read_table(parquet_data), nested, partition_cols=["label"])
    (nested / "_SUCCESS").touch()
    for format in ("csv", "json"):
        with pytest.raises(
            ValueError, match=rf"Parquet \(the file .*label=0.*not {format.upper()}"
        ):
            read_sequences(spark, nested, format)
    # The data itself reads as Parquet, _SUCCESS and .crc files and all.
    assert read_sequences(spark, parquet_data).count() == ROWS
    # A directory of no data files (a job that wrote nothing) is named as such.
    empty = parquet_data.parent / "empty"
    empty.mkdir()
    (empty / "_SUCCESS").touch()
    with pytest.raises(ValueError, match=rf"^path {empty}: the directory holds no data files"):
        read_sequences(spark, empty)


def test_json_and_binary_read_as_parquet(spark, json_file, binary_file, tmp_path):
    with pytest.raises(ValueError) as exc_info:
        read_sequences(spark, json_file)
    message = one_line(exc_info)
    assert message.startswith(f"path {json_file}: not Parquet (it starts like JSON text: ")
    assert message.endswith("pass format='json'")
    with pytest.raises(ValueError) as exc_info:
        read_sequences(spark, binary_file)
    assert f"path {binary_file}: not Parquet (it is binary, unknown format" in one_line(exc_info)
    compressed = tmp_path / "train.csv.gz"
    compressed.write_bytes(gzip.compress(b"features,label\n"))
    with pytest.raises(ValueError, match=r"gzip-compressed.*pass format='csv'"):
        read_sequences(spark, compressed)


def test_spark_read_errors_become_one_line(spark, csv_file, parquet_data):
    # A glob is not sniffed (nor is an hdfs:// or s3a:// path): Spark's error is translated.
    pattern = str(csv_file.parent / "*.csv")
    with pytest.raises(ValueError) as exc_info:
        read_sequences(spark, pattern)
    message = one_line(exc_info)
    assert message.startswith(f"path {pattern}: Spark could not read it as parquet (")
    assert "is not a Parquet file" in message
    assert message.endswith(
        "check that format='parquet' is the data's format (parquet, csv, json or text)"
    )
    # A Parquet file cut short (the sniff cannot tell) fails in Spark, and is one line too.
    part = sorted(parquet_data.glob("part-*"))[0]
    cut = parquet_data.parent / "cut.parquet"
    cut.write_bytes(part.read_bytes()[:100])
    with pytest.raises(
        ValueError, match=r"^path .*cut\.parquet: Spark could not read it as parquet"
    ):
        read_sequences(spark, cut)
    # Parquet read as CSV where it cannot be sniffed: the 'PAR1' column name gives it away.
    with pytest.raises(ValueError, match=r"is Parquet, not CSV .*pass format='parquet'"):
        read_sequences(spark, str(parquet_data / "part-*.parquet"), "csv")


# ---------------------------------------------------------------- format: the train job
@pytest.mark.parametrize(
    "data, format, expected",
    [
        ("csv_file", None, ["(it starts like CSV text: 'features,label')", "pass --format csv"]),
        ("json_file", None, ["not Parquet (it starts like JSON text: ", "pass --format json"]),
        ("binary_file", None, ["(it is binary, unknown format", "with --format naming"]),
        ("parquet_data", "csv", ["is Parquet (the file ", "not CSV; drop --format csv"]),
        ("parquet_data", "json", ["is Parquet (the file ", "not JSON; drop --format json"]),
    ],
)  # fmt: skip
def test_train_job_names_the_data_and_the_format_flag(
    spark, request, tmp_path, capsys, monkeypatch, data, format, expected
):
    path = request.getfixturevalue(data)
    args = ["--data", path, "--output", tmp_path / "model"]
    status, err = train_job(args + (["--format", format] if format else []), capsys, monkeypatch)
    assert_one_error_line(status, err, f"train.py: error: --data {path}", *expected)
    assert not (tmp_path / "model").exists()


def test_train_job_names_the_validation_path_and_unknown_formats(
    spark, parquet_data, csv_file, tmp_path, capsys, monkeypatch
):
    args = ["--data", parquet_data, "--validation", csv_file, "--output", tmp_path / "model"]
    status, err = train_job(args, capsys, monkeypatch)
    assert_one_error_line(status, err, f"--validation {csv_file}: not Parquet", "pass --format csv")
    # An unknown format from a config file (the flag's choices catch it on the command line).
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data": {"format": "xml"}}))
    args = ["--config", config, "--data", parquet_data, "--output", tmp_path / "model"]
    status, err = train_job(args, capsys, monkeypatch)
    assert_one_error_line(
        status, err, f"--format 'xml' (reading --data {parquet_data}): must be one of parquet"
    )
    # Spark's own read error (a file the sniff cannot tell) is one line through run_job too.
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(sorted(parquet_data.glob("part-*"))[0].read_bytes()[:100])
    status, err = train_job(["--data", cut, "--output", tmp_path / "model"], capsys, monkeypatch)
    assert_one_error_line(
        status, err, f"--data {cut}: Spark could not read it as parquet", "--format parquet"
    )


# ---------------------------------------------------------------- class labels
def label_frame(spark, labels):
    x, y = sequences(labels)
    return spark.createDataFrame(numpy_to_arrow(x, y, np.full(len(y), STEPS))).coalesce(1)


@pytest.mark.parametrize(
    "labels, shown, missing",
    [
        ([0, 1, 2, 3, 1000], "(0, 1, 2, 3, 1000)", "1001 classes, only 5 of them present."),
        ([0, 2], "(0, 2)", "3 classes, only 2 of them present."),
        ([1, 2, 3], "(1, 2, 3)", "4 classes, only 3 of them present (no label 0)."),
    ],
)
def test_class_labels_taken_from_the_data_must_be_0_to_k_minus_1(spark, labels, shown, missing):
    df = label_frame(spark, cycled(labels))
    profile = profile_data(df, Columns())
    assert profile.min_label == min(labels) and profile.num_labels == len(labels)
    assert profile.labels_are_classes is False
    with pytest.raises(ValueError) as exc_info:
        model_sizes(profile, "classification", "last", TINY)
    message = one_line(exc_info)
    assert message.startswith(
        f"label column 'label' has {len(labels)} distinct labels {shown}; taken as classes"
    )
    assert missing in message
    assert "pyspark.ml.feature.StringIndexer" in message and "output_size" in message
    assert "numClasses" in message and "--num-classes" in message
    # The trainer: before any round runs.
    with pytest.raises(ValueError, match=r"label column 'label' has .*StringIndexer"):
        fit_distributed(df, TINY, ONE_ROUND, progress=False)
    # Given the number of classes explicitly, the same labels are fine.
    classes = max(labels) + 1
    assert model_sizes(profile, "classification", "last", {**TINY, "output_size": classes})
    model, history = fit_distributed(
        df, {**TINY, "output_size": classes}, ONE_ROUND, progress=False
    )
    assert model.config.output_size == classes and len(history) == 1


def test_many_labels_are_listed_in_part(spark):
    labels = np.arange(0, 60, 3)  # 20 labels, gaps everywhere
    profile = profile_data(label_frame(spark, cycled(labels, 40)), Columns())
    assert profile.num_labels == 20 and profile.some_labels == tuple(range(0, 30, 3))
    with pytest.raises(ValueError) as exc_info:
        model_sizes(profile, "classification", "last", None)
    assert "has 20 distinct labels (0, 3, 6, 9, 12, 15, 18, 21, 24, ..., 57)" in one_line(exc_info)


def test_labels_that_are_classes_pass_and_per_step_labels_may_have_gaps(spark):
    profile = profile_data(label_frame(spark, cycled([0, 1, 2, 3])), Columns())
    assert profile.labels_are_classes is True and profile.some_labels == ()
    assert model_sizes(profile, "classification", "last", TINY)["output_size"] == 4
    # Regression on integer targets has no classes to check.
    gappy = profile_data(label_frame(spark, cycled([0, 5, 9])), Columns())
    assert model_sizes(gappy, "regression", "last", TINY)["output_size"] == 1
    with pytest.raises(ValueError, match="has 3 distinct labels"):
        model_sizes(gappy, "classification", "last", TINY)
    # Per-step labels of a next-token model: a slice of text lacks some tokens, and the
    # classes are max + 1 as before.
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 6, size=(ROWS, STEPS))
    per_step = np.array([0, 2, 5])[rng.integers(0, 3, size=(ROWS, STEPS))]
    df = spark.createDataFrame(numpy_to_arrow(tokens, per_step, np.full(ROWS, STEPS))).coalesce(1)
    profile = profile_data(df, Columns())
    assert profile.label_kind == "array" and profile.min_label == 0
    options = {**TINY, "head": "all", "embedding_dim": 3}
    assert model_sizes(profile, "classification", "all", options)["output_size"] == 6
    model, _ = fit_distributed(df, options, ONE_ROUND, progress=False)
    assert model.config.output_size == 6


def test_train_job_labels_error_and_explicit_class_count(spark, tmp_path, capsys, monkeypatch):
    data = tmp_path / "labels"
    write_parquet_dataset(data, *sequences(cycled([0, 1, 2, 3, 1000])))
    common = ["--data", data, "--hidden-sizes", "4", "--rounds", "1", "--local-steps", "1"]
    common += ["--batch-size", "4", "--partitions", "1", "--quiet"]
    status, err = train_job(common + ["--output", tmp_path / "m1"], capsys, monkeypatch)
    assert_one_error_line(
        status,
        err,
        "label column 'label' has 5 distinct labels (0, 1, 2, 3, 1000)",
        "StringIndexer",
        "--num-classes",
    )
    assert not (tmp_path / "m1").exists()
    args = common + ["--num-classes", "1001", "--output", tmp_path / "m2"]
    status, err = train_job(args, capsys, monkeypatch)
    assert status == 0, err
    assert SequenceModel.load(tmp_path / "m2").config.output_size == 1001
