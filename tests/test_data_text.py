"""Character vocabulary and next-token windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparklstm.data import CharVocab, next_token_windows


def test_vocab_sorted_with_unknown_first():
    vocab = CharVocab.from_text("banana band")
    assert vocab.symbols == ("\ufffd", " ", "a", "b", "d", "n")
    assert len(vocab) == 6
    assert vocab.unknown == "\ufffd"
    assert vocab.unknown_id == 0


def test_encode_exact_and_unknown():
    vocab = CharVocab.from_text("abc")
    ids = vocab.encode("cab?a")
    np.testing.assert_array_equal(ids, [3, 1, 2, 0, 1])
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == "cab\ufffda"
    assert vocab.encode("").shape == (0,)
    assert vocab.decode(np.array([], dtype=np.int32)) == ""


def test_encode_decode_round_trip_unicode():
    text = "Grüße, 世界! 🙂 naïve\ttab\nline"
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert 0 not in ids


def test_min_count_drops_rare_chars():
    vocab = CharVocab.from_text("aaabbc", min_count=2)
    assert vocab.symbols == ("\ufffd", "a", "b")
    np.testing.assert_array_equal(vocab.encode("abc"), [1, 2, 0])
    assert "a" in vocab
    assert "c" not in vocab


def test_custom_unknown_in_text_maps_to_zero():
    vocab = CharVocab.from_text("a?b", unknown="?")
    assert vocab.symbols == ("?", "a", "b")
    np.testing.assert_array_equal(vocab.encode("?ab!"), [0, 1, 2, 0])
    assert vocab.decode([0, 2]) == "?b"


def test_config_round_trip_through_json():
    vocab = CharVocab.from_text("hello, wörld", min_count=1, unknown="#")
    config = json.loads(json.dumps(vocab.to_config()))
    again = CharVocab.from_config(config)
    assert again == vocab
    assert again.symbols == vocab.symbols
    np.testing.assert_array_equal(again.encode("hello"), vocab.encode("hello"))


def test_vocab_is_immutable():
    vocab = CharVocab.from_text("ab")
    with pytest.raises(AttributeError, match="immutable"):
        vocab.unknown = "x"


def test_vocab_errors():
    with pytest.raises(ValueError, match="text is empty"):
        CharVocab.from_text("")
    with pytest.raises(TypeError, match="text must be a str"):
        CharVocab.from_text(b"abc")
    with pytest.raises(ValueError, match="min_count = 0: must be >= 1"):
        CharVocab.from_text("abc", min_count=0)
    with pytest.raises(ValueError, match="unknown = 'ab': must be exactly one character"):
        CharVocab.from_text("abc", unknown="ab")
    with pytest.raises(ValueError, match=r"symbols\[2\] = 'a' is a duplicate of id 1"):
        CharVocab(["a", "b", "a"])
    with pytest.raises(ValueError, match=r"symbols\[0\] = '\?' is the unknown symbol"):
        CharVocab(["?"], unknown="?")
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"ids\[1\] = 4 is outside the vocabulary \[0, 4\)"):
        vocab.decode([1, 4])
    with pytest.raises(ValueError, match=r"ids\[0\] = -1 is outside"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="ids must be 1-D"):
        vocab.decode([[1, 2]])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode([1.0])
    with pytest.raises(ValueError, match="config must have exactly the keys"):
        CharVocab.from_config({"symbols": ["a"]})
    with pytest.raises(ValueError, match=r"config\['type'\] = 'Other'"):
        CharVocab.from_config({"type": "Other", "unknown": "?", "symbols": []})
    with pytest.raises(TypeError, match=r"config\['symbols'\] must be a list"):
        CharVocab.from_config({"type": "CharVocab", "unknown": "?", "symbols": "ab"})


def test_windows_exact_default_stride():
    inputs, targets = next_token_windows(np.arange(10, dtype=np.int32), 3)
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(targets, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert inputs.dtype == np.int32
    assert inputs.flags.c_contiguous
    assert targets.flags.c_contiguous


def test_windows_exact_overlapping_stride_drops_tail():
    inputs, targets = next_token_windows(np.arange(9), 3, stride=2)
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(targets, [[1, 2, 3], [3, 4, 5], [5, 6, 7]])


def test_windows_match_definition_on_text():
    vocab = CharVocab.from_text("the quick brown fox jumps over the lazy dog")
    ids = vocab.encode("the quick brown fox jumps over the lazy dog")
    seq_len, stride = 5, 3
    inputs, targets = next_token_windows(ids, seq_len, stride)
    n = (len(ids) - 1 - seq_len) // stride + 1
    assert inputs.shape == targets.shape == (n, seq_len)
    starts = np.arange(n) * stride
    t = np.arange(seq_len)
    np.testing.assert_array_equal(inputs, ids[starts[:, None] + t])
    np.testing.assert_array_equal(targets, ids[starts[:, None] + t + 1])
    # Minimum size: exactly seq_len + 1 ids gives one window.
    one_in, one_out = next_token_windows(ids[:6], 5)
    assert one_in.shape == (1, 5)
    np.testing.assert_array_equal(one_out[0], ids[1:6])


def test_windows_errors():
    with pytest.raises(ValueError, match=r"ids has 3 tokens: need at least seq_len \+ 1 = 4"):
        next_token_windows(np.arange(3), 3)
    with pytest.raises(ValueError, match="seq_len = 0: must be >= 1"):
        next_token_windows(np.arange(3), 0)
    with pytest.raises(ValueError, match="stride = 0: must be >= 1"):
        next_token_windows(np.arange(5), 2, stride=0)
    with pytest.raises(ValueError, match="ids must be 1-D"):
        next_token_windows(np.zeros((2, 5), dtype=np.int64), 2)
    with pytest.raises(TypeError, match="ids must be integer token ids"):
        next_token_windows(np.zeros(5), 2)
