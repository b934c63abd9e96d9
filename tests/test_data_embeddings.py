"""Word-vector dictionary files and labelled token files."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.data import load_word_vectors, read_labelled_token_file, write_word_vectors


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_load_exact_with_unknown_row(tmp_path):
    path = _write(tmp_path / "dict.txt", "the\t0.5,-1,2\nUNKNOWN\t0,0,1\ncat\t1e-1,2.5,3\n")
    vocab, vectors = load_word_vectors(path)
    assert vocab == {"the": 0, "UNKNOWN": 1, "cat": 2}
    np.testing.assert_array_equal(
        vectors, np.array([[0.5, -1, 2], [0, 0, 1], [0.1, 2.5, 3]], dtype=np.float32)
    )
    assert vectors.dtype == np.float32


def test_load_appends_zero_unknown_row(tmp_path):
    path = _write(tmp_path / "dict.txt", "a\t1,2\r\n\nb\t3,4\r\n\n")
    vocab, vectors = load_word_vectors(path, dtype=np.float64)
    assert vocab == {"a": 0, "b": 1, "UNKNOWN": 2}
    np.testing.assert_array_equal(vectors, [[1, 2], [3, 4], [0, 0]])
    assert vectors.dtype == np.float64
    vocab, vectors = load_word_vectors(path, unknown_token="<unk>")
    assert vocab["<unk>"] == 2
    assert "UNKNOWN" not in vocab


def test_write_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vocab = {"zeta": 2, "alpha": 0, "with,comma": 1, "UNKNOWN": 3}
    for dtype in (np.float32, np.float64):
        vectors = rng.standard_normal((4, 5)).astype(dtype)
        path = tmp_path / f"vectors-{np.dtype(dtype).name}.txt"
        write_word_vectors(path, vocab, vectors)
        loaded_vocab, loaded = load_word_vectors(path, dtype=dtype)
        assert loaded_vocab == vocab
        np.testing.assert_array_equal(loaded, vectors)
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("alpha\t")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a\t1,2\nb\t1,2,3\n", r"dict.txt, line 2: 3 values, but line 1 has 2"),
        ("a\t1,2\nb 1,2\n", r"dict.txt, line 2: no tab"),
        ("a\t1,2\n\nb\t1,x\n", r"dict.txt, line 3: 'x' is not a number"),
        ("a\t1,2\nb\t1,\n", r"dict.txt, line 2: '' is not a number"),
        ("a\t1,2\nb\tnan,2\n", r"dict.txt, line 2: vector holds NaN or Inf"),
        ("a\t1,2\nb\t1,inf\n", r"dict.txt, line 2: vector holds NaN or Inf"),
        ("a\t1,2\nb\t3,4\na\t5,6\n", r"dict.txt, line 3: duplicate word 'a' \(first on line 1\)"),
        ("\t1,2\n", r"dict.txt, line 1: empty word"),
        ("\n\n", r"dict.txt: no word vectors"),
    ],
)
def test_load_errors(tmp_path, text, match):
    path = _write(tmp_path / "dict.txt", text)
    with pytest.raises(ValueError, match=match):
        load_word_vectors(path)


def test_load_dtype_must_be_float(tmp_path):
    path = _write(tmp_path / "dict.txt", "a\t1,2\n")
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        load_word_vectors(path, dtype=np.int64)


def test_read_labelled_tokens_exact(tmp_path):
    vocab = {"the": 0, "cat": 1, "sat": 2, "UNKNOWN": 3}
    path = _write(tmp_path / "train.txt", "1\tthe,cat,sat\n\n0\tthe,dog\r\n-1\tsat\n")
    sequences, labels = read_labelled_token_file(path, vocab)
    assert [s.tolist() for s in sequences] == [[0, 1, 2], [0, 3], [2]]
    assert all(s.dtype == np.int64 for s in sequences)
    np.testing.assert_array_equal(labels, [1, 0, -1])
    assert labels.dtype == np.int64


def test_read_labelled_tokens_with_loaded_vocab(tmp_path):
    dict_path = _write(tmp_path / "dict.txt", "good\t1,0\nbad\t0,1\n")
    vocab, vectors = load_word_vectors(dict_path)
    data = _write(tmp_path / "data.txt", "1\tgood,good,meh\n0\tbad\n")
    sequences, labels = read_labelled_token_file(data, vocab)
    unknown = vocab["UNKNOWN"]
    assert unknown == 2
    assert [s.tolist() for s in sequences] == [[0, 0, unknown], [1]]
    np.testing.assert_array_equal(vectors[sequences[0]], [[1, 0], [1, 0], [0, 0]])
    np.testing.assert_array_equal(labels, [1, 0])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\ta,b\n0 a,b\n", r"data.txt, line 2: no tab"),
        ("1\ta\nx\tb\n", r"data.txt, line 2: label 'x' is not an integer"),
        ("1.5\ta\n", r"data.txt, line 1: label '1.5' is not an integer"),
        ("1\ta\n\n0\t \n", r"data.txt, line 3: empty token list"),
        ("1\ta,,b\n", r"data.txt, line 1: empty token"),
        ("\n", r"data.txt: no examples"),
    ],
)
def test_read_labelled_errors(tmp_path, text, match):
    path = _write(tmp_path / "data.txt", text)
    with pytest.raises(ValueError, match=match):
        read_labelled_token_file(path, {"a": 0, "UNKNOWN": 1})


def test_read_labelled_needs_unknown_in_vocab(tmp_path):
    path = _write(tmp_path / "data.txt", "1\ta\n")
    with pytest.raises(ValueError, match="vocab has no entry for unknown_token 'UNKNOWN'"):
        read_labelled_token_file(path, {"a": 0})


def test_write_errors(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(ValueError, match="vocab has 1 words but vectors has 2 rows"):
        write_word_vectors(path, {"a": 0}, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"vocab\['b'\] = 0: ids must be distinct"):
        write_word_vectors(path, {"a": 0, "b": 0}, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"vocab\['b'\] = 5: ids must be distinct"):
        write_word_vectors(path, {"a": 0, "b": 5}, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="without tab or newline"):
        write_word_vectors(path, {"a\tb": 0}, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="vectors contain NaN or Inf"):
        write_word_vectors(path, {"a": 0}, np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="vectors must be a non-empty 2-D"):
        write_word_vectors(path, {"a": 0}, np.zeros(3))
    assert not path.exists()
