"""``python -m jobs.make_data``, run in-process: splits, determinism, schema per task, errors,
and the reference-text conversion against ``sparklstm.data.embeddings``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparklstm.datasets.generate as make_data
from sparklstm.data.embeddings import (
    load_word_vectors,
    read_labelled_token_file,
    write_word_vectors,
)
from sparklstm.data.synthetic import adding_problem, copy_task, noisy_sines, parity
from sparklstm.datasets.generate import BLOCK_ROWS, held_out
from sparklstm.jobs.make_data import main

FLOATS = pa.list_(pa.list_(pa.float32()))


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr); argparse exits count as statuses."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def table(path):
    return pq.read_table(path)


def unpadded(x, lengths):
    return [row[:n].tolist() for row, n in zip(x, lengths, strict=True)]


def generated(task, rows, seed, block=0, seq_len=6, min_len=None):
    rng = np.random.default_rng([seed, block])
    if task == "adding":
        return adding_problem(rows, seq_len, rng, min_len=min_len)
    if task == "sines":
        return noisy_sines(rows, seq_len, 3, rng, noise=0.3, min_len=min_len)
    if task == "parity":
        return parity(rows, seq_len, rng, min_len=min_len)
    return copy_task(rows, seq_len, 5, rng)


# ----------------------------------------------------------------------------- the split
@pytest.mark.parametrize(
    "rows,fraction,test_rows",
    [(100, "0.29", 29), (10, "0.3", 3), (7, "0", 0), (1, "0.5", 0), (4196, "0.1", 419)],
)
def test_held_out_gives_exactly_floor_rows_times_f_spread_evenly(rows, fraction, test_rows):
    f = Fraction(fraction)
    test = held_out(0, rows, f)
    assert test.dtype == bool and test.shape == (rows,) and test.sum() == test_rows
    blocks = np.concatenate([held_out(s, min(13, rows - s), f) for s in range(0, rows, 13)])
    np.testing.assert_array_equal(blocks, test)  # the same rows whatever the block size
    if test_rows > 1:
        gaps = np.diff(np.flatnonzero(test))
        assert gaps.max() - gaps.min() <= 1  # spread evenly
    # A float is taken at its exact binary value (0.29 is a little less than 29/100).
    assert held_out(0, rows, float(f)).sum() == math.floor(rows * Fraction(float(f)))


# ----------------------------------------------------------------------------- generated tasks
TASK_ARGS = {
    "adding": ["--min-len", 3],
    "sines": ["--classes", 3, "--min-len", 2],
    "parity": ["--min-len", 1],
    "copy": ["--symbols", 5],
}


@pytest.mark.parametrize("task", ["adding", "sines", "parity", "copy"])
def test_each_task_writes_its_rows_split_and_schema(tmp_path, capsys, task):
    out = tmp_path / "out"
    status, stdout, stderr = run(
        capsys,
        task,
        "--rows",
        100,
        "--seq-len",
        6,
        "--seed",
        5,
        "--test-fraction",
        "0.29",
        *TASK_ARGS[task],
        "--rows-per-file",
        40,
        "--out",
        out,
    )
    assert (status, stderr) == (0, "")
    assert stdout == (
        f"train: 71 rows -> {out / 'train'} (2 files)\ntest: 29 rows -> {out / 'test'} (1 files)\n"
    )
    min_len = TASK_ARGS[task][-1] if task != "copy" else None
    x, y, lengths = generated(task, 100, seed=5, min_len=min_len)
    test = held_out(0, 100, Fraction("0.29"))
    for split, rows in (("train", ~test), ("test", test)):
        data = table(out / split)
        assert sorted(p.name for p in (out / split).iterdir())[0] == "_SUCCESS"
        assert data.column("features").to_pylist() == unpadded(x[rows], lengths[rows])
        if task == "copy":
            assert data.column("label").to_pylist() == unpadded(y[rows], lengths[rows])
        else:
            assert data.column("label").to_pylist() == y[rows].tolist()
    data = table(out / "train")
    features, labels = data.column("features").to_pylist(), data.column("label").to_pylist()
    sizes = [len(f) for f in features]
    if task == "copy":  # token ids and per-step labels: the string, then the delimiter
        assert data.schema == pa.schema(
            [("features", pa.list_(pa.int32())), ("label", pa.list_(pa.int32()))]
        )
        assert set(sizes) == {13}
        for ids, targets in zip(features, labels, strict=True):
            assert ids[6] == 6 and ids[7:] == [0] * 6 and targets[:7] == [0] * 7
            assert targets[7:] == ids[:6] and all(1 <= i <= 5 for i in ids[:6])
    else:
        label_type = pa.float32() if task == "adding" else pa.int32()
        assert data.schema == pa.schema([("features", FLOATS), ("label", label_type)])
        assert min(sizes) >= min_len and max(sizes) <= 6 and len(set(sizes)) > 1
        width = {len(step) for f in features for step in f}
        assert width == ({2} if task == "adding" else {1})
    if task == "parity":
        assert labels == [int(sum(s[0] for s in f)) % 2 for f in features]
    if task == "sines":
        assert set(labels) == {0, 1, 2}
    if task == "adding":
        marked = [sum(s[0] for s in f if s[1] == 1) for f in features]
        np.testing.assert_allclose(labels, marked, rtol=1e-6)


def test_rows_depend_on_seed_and_rows_only(tmp_path, capsys):
    rows = BLOCK_ROWS + 104  # two blocks
    common = ["sines", "--rows", rows, "--seq-len", 3, "--classes", 3, "--test-fraction", "0.1"]
    assert run(capsys, *common, "--seed", 1, "--out", tmp_path / "a")[0] == 0
    status, stdout, _ = run(
        capsys, *common, "--seed", 1, "--rows-per-file", 1000, "--out", tmp_path / "b"
    )
    assert status == 0
    assert stdout.splitlines() == [
        f"train: 3780 rows -> {tmp_path / 'b' / 'train'} (4 files)",
        f"test: 420 rows -> {tmp_path / 'b' / 'test'} (1 files)",
    ]
    assert run(capsys, *common, "--seed", 1, "--out", tmp_path / "c")[0] == 0
    assert run(capsys, *common, "--seed", 2, "--out", tmp_path / "d")[0] == 0
    for split in ("train", "test"):
        a = table(tmp_path / "a" / split)
        assert table(tmp_path / "b" / split).equals(a)  # other file sizes, same rows
        assert table(tmp_path / "c" / split).equals(a)  # same seed, same rows
        other = table(tmp_path / "d" / split)
        assert other.num_rows == a.num_rows and not other.equals(a)
    # Rows of the second block come from default_rng([seed, 1]).
    x, y, lengths = generated("sines", 104, seed=1, block=1, seq_len=3)
    test = held_out(BLOCK_ROWS, 104, Fraction("0.1"))
    got = table(tmp_path / "a" / "test").slice(409).column("features").to_pylist()
    assert got == unpadded(x[test], lengths[test])
    assert test.sum() == 11  # 420 - 409


def test_overwrite_and_a_failed_run_leave_no_partial_dataset(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = ["parity", "--rows", 20, "--seq-len", 4, "--out", out]
    assert run(capsys, *args)[0] == 0
    status, stdout, stderr = run(capsys, *args)
    assert (status, stdout) == (2, "")
    assert (
        stderr
        == f"make_data: error: {out / 'train'} is not empty; pass --overwrite to replace it\n"
    )
    before = table(out / "train")
    assert run(capsys, *args, "--seed", 9, "--overwrite")[0] == 0
    assert not table(out / "train").equals(before)

    original = make_data._generate
    fresh = tmp_path / "fresh"
    seen = []

    def failing(args, block, n):
        if block == 1:
            seen.extend((fresh / "train").glob("part-*.parquet"))
            raise OSError("No space left on device")
        return original(args, block, n)

    monkeypatch.setattr(make_data, "_generate", failing)
    status, stdout, stderr = run(
        capsys,
        "adding",
        "--rows",
        2 * BLOCK_ROWS,
        "--seq-len",
        2,
        "--rows-per-file",
        100,
        "--out",
        fresh,
    )
    assert (status, stdout, stderr) == (2, "", "make_data: error: No space left on device\n")
    assert len(seen) == 32  # block 0's training rows were on disk when block 1 failed
    assert list(fresh.iterdir()) == []  # and were removed


def test_help_lists_the_tasks(capsys):
    status, stdout, _ = run(capsys, "--help")
    assert status == 0
    for task in ("adding", "sines", "parity", "copy", "reference-text"):
        assert task in stdout
    assert "floor(rows * f)" in stdout
    status, stdout, _ = run(capsys, "copy", "--help")
    assert status == 0 and "--symbols" in stdout and "--min-len" not in stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "the following arguments are required: TASK"),
        (["shuffle", "--out", "o"], "argument TASK: invalid choice: 'shuffle'"),
        (["adding"], "the following arguments are required: --out"),
        (["adding", "--rows", 0, "--out", "o"], "argument --rows: 0 must be >= 1"),
        (["adding", "--rows", "ten", "--out", "o"], "argument --rows: 'ten' is not an integer"),
        (["adding", "--seed", -1, "--out", "o"], "argument --seed: -1 must be >= 0"),
        (["adding", "--test-fraction", 1, "--out", "o"], "--test-fraction: 1 must be in [0, 1)"),
        (["adding", "--test-fraction", "x", "--out", "o"], "'x' is not a number"),
        (["sines", "--classes", 1, "--out", "o"], "argument --classes: 1 must be >= 2"),
        (["copy", "--min-len", 2, "--out", "o"], "unrecognized arguments: --min-len 2"),
        (["adding", "--seq-len", 1, "--out", "o"], "seq_len = 1: must be >= 2"),
        (["parity", "--seq-len", 4, "--min-len", 5, "--out", "o"], "min_len = 5 is greater"),
        (["sines", "--noise", -1, "--out", "o"], "noise = -1.0: must be a finite number >= 0"),
        (["reference-text", "--input", "nope.txt", "--dictionary", "d", "--out", "o"], "nope.txt"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run(capsys, *argv)
    assert status == 2 and stdout == ""
    assert stderr.startswith("make_data: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_output_problems_exit_2_before_writing(tmp_path, capsys):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    status, _, stderr = run(capsys, "parity", "--out", tmp_path / "file")
    assert status == 2 and "exists and is not a directory" in stderr
    out = tmp_path / "out"
    (out / "test").mkdir(parents=True)
    (out / "test" / "keep.txt").write_text("x", encoding="utf-8")
    status, _, stderr = run(capsys, "parity", "--out", out, "--overwrite")
    assert status == 2 and "did not write (keep.txt)" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["test"]  # no OUT/train left behind


# ----------------------------------------------------------------------------- reference text
@pytest.fixture()
def reference_files(tmp_path):
    vocab = {"good": 0, "bad": 1, "film": 2, "UNKNOWN": 3}
    vectors = np.array([[1, 0.5, 0], [-1, 0.25, 0], [0, 0, 1.5], [0.125, 0.125, 0.125]])
    write_word_vectors(tmp_path / "dict.txt", vocab, vectors.astype(np.float32))
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "acting"]
    lines = [f"{i % 2}\t{','.join(rng.choice(words, size=rng.integers(1, 9)))}" for i in range(21)]
    (tmp_path / "ex.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "ex.txt", tmp_path / "dict.txt"


@pytest.mark.parametrize("token_ids", [False, True])
def test_reference_text_matches_the_embeddings_reader(
    tmp_path, capsys, monkeypatch, reference_files, token_ids
):
    monkeypatch.setattr(make_data, "TOKEN_BLOCK_BYTES", 40)  # several blocks per split
    examples, dictionary = reference_files
    out = tmp_path / "out"
    argv = ["reference-text", "--input", examples, "--dictionary", dictionary, "--out", out]
    argv += ["--test-fraction", "0.25", "--rows-per-file", 4]
    status, stdout, stderr = run(capsys, *argv, *(["--token-ids"] if token_ids else []))
    assert (status, stderr) == (0, "")
    assert stdout.splitlines() == [
        f"train: 16 rows -> {out / 'train'} (4 files)",
        f"test: 5 rows -> {out / 'test'} (2 files)",
    ]
    vocab, vectors = load_word_vectors(dictionary)
    ids, labels = read_labelled_token_file(examples, vocab)
    test = held_out(0, len(labels), Fraction("0.25"))
    for split, rows in (("train", ~test), ("test", test)):
        data = table(out / split)
        picked = [seq for seq, keep in zip(ids, rows, strict=True) if keep]
        if token_ids:
            assert data.schema.field("features").type == pa.list_(pa.int32())
            assert data.column("features").to_pylist() == [seq.tolist() for seq in picked]
        else:
            assert data.schema.field("features").type == FLOATS
            want = [vectors[seq].tolist() for seq in picked]
            assert data.column("features").to_pylist() == want
        assert data.schema.field("label").type == pa.int32()
        assert data.column("label").to_pylist() == labels[rows].tolist()
    assert any(3 in seq for seq in ids)  # unknown words were mapped to UNKNOWN


def test_reference_text_without_unknown_row_appends_it_last(tmp_path, capsys):
    (tmp_path / "d.txt").write_text("a\t1,2\nb\t3,4\n", encoding="utf-8")
    (tmp_path / "e.txt").write_text("1\tb,zz,a\n0\tzz\n", encoding="utf-8")
    base = ["--input", tmp_path / "e.txt", "--dictionary", tmp_path / "d.txt"]
    assert run(capsys, "reference-text", *base, "--token-ids", "--out", tmp_path / "ids")[0] == 0
    data = table(tmp_path / "ids" / "train")
    assert data.to_pylist() == [{"features": [1, 2, 0], "label": 1}, {"features": [2], "label": 0}]
    assert not (tmp_path / "ids" / "test").exists()  # no test rows: no test dataset
    assert run(capsys, "reference-text", *base, "--out", tmp_path / "vec")[0] == 0
    assert table(tmp_path / "vec" / "train").column("features").to_pylist() == [
        [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]],
        [[0.0, 0.0]],
    ]
    (tmp_path / "bad.txt").write_text("1\tb\nx\ta\n", encoding="utf-8")
    status, _, stderr = run(
        capsys,
        "reference-text",
        "--input",
        tmp_path / "bad.txt",
        "--dictionary",
        tmp_path / "d.txt",
        "--out",
        tmp_path / "bad",
    )
    assert status == 2 and "line 2: label 'x' is not an integer" in stderr
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- read on Spark
def test_generated_data_reads_on_spark_with_sensible_labels(spark, tmp_path, capsys):
    from pyspark.sql import functions as F

    from sparklstm.spark.schema import Columns, profile_data
    from sparklstm.spark.sources import read_sequences

    out = tmp_path / "sines"
    args = ["--rows", 500, "--seq-len", 8, "--min-len", 4, "--classes", 4, "--out", out]
    assert run(capsys, "sines", *args)[0] == 0
    df = read_sequences(spark, out / "train")
    counts = dict(df.groupBy("label").count().collect())
    assert sorted(counts) == [0, 1, 2, 3] and sum(counts.values()) == 400
    assert min(counts.values()) >= 60  # about 100 each
    lengths = df.select(F.min(F.size("features")), F.max(F.size("features"))).first()
    assert tuple(lengths) == (4, 8)
    profile = profile_data(df, Columns())
    assert (profile.sequence_kind, profile.num_features, profile.label_kind) == (
        "multivariate",
        1,
        "int",
    )
    assert profile.max_label == 3.0

    assert run(capsys, "copy", "--rows", 30, "--seq-len", 4, "--out", tmp_path / "copy")[0] == 0
    profile = profile_data(read_sequences(spark, tmp_path / "copy" / "test"), Columns())
    assert (profile.rows, profile.sequence_kind, profile.max_token) == (6, "tokens", 9)
    assert (profile.label_kind, profile.label_width) == ("array", 9)
    assert 1 <= profile.max_label <= 8  # the data symbols are the only targets besides 0
