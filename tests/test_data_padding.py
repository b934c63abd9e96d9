"""Padding, masks and unpadding: exact arrays on small inputs, round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.data import lengths_to_mask, mask_to_lengths, pad_sequences, unpad


def test_pad_token_ids_exact():
    padded, lengths = pad_sequences([np.array([5, 6, 7]), np.array([8]), [9, 1]])
    np.testing.assert_array_equal(padded, [[5, 6, 7], [8, 0, 0], [9, 1, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert padded.dtype == np.int64
    assert lengths.dtype == np.int64


def test_pad_univariate_float_gets_feature_axis():
    padded, lengths = pad_sequences([np.array([1.5, 2.5]), np.array([3.5])], pad_value=-1)
    assert padded.shape == (2, 2, 1)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded[..., 0], [[1.5, 2.5], [3.5, -1.0]])
    np.testing.assert_array_equal(lengths, [2, 1])


def test_pad_int_sequences_with_float_dtype_are_univariate():
    padded, _ = pad_sequences([[1, 2], [3]], dtype=np.float64)
    assert padded.shape == (2, 2, 1)
    assert padded.dtype == np.float64
    np.testing.assert_array_equal(padded[..., 0], [[1.0, 2.0], [3.0, 0.0]])


def test_pad_multivariate_exact():
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([[7.0, 8.0]])
    padded, lengths = pad_sequences([a, b])
    expected = np.array(
        [[[1, 2], [3, 4], [5, 6]], [[7, 8], [0, 0], [0, 0]]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(padded, expected)
    np.testing.assert_array_equal(lengths, [3, 1])


def test_pad_max_len_longer_than_all():
    padded, lengths = pad_sequences([[1, 2], [3]], max_len=4, pad_value=9)
    np.testing.assert_array_equal(padded, [[1, 2, 9, 9], [3, 9, 9, 9]])
    np.testing.assert_array_equal(lengths, [2, 1])


def test_pad_truncate_post_and_pre():
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6])]
    post, post_len = pad_sequences(seqs, max_len=3, truncate="post")
    pre, pre_len = pad_sequences(seqs, max_len=3, truncate="pre")
    np.testing.assert_array_equal(post, [[1, 2, 3], [5, 6, 0]])
    np.testing.assert_array_equal(pre, [[2, 3, 4], [5, 6, 0]])
    np.testing.assert_array_equal(post_len, [3, 2])
    np.testing.assert_array_equal(pre_len, [3, 2])


def test_pad_float_to_integer_dtype_requires_whole_numbers():
    padded, _ = pad_sequences([np.array([1.0, 2.0]), np.array([3.0])], dtype=np.int32)
    assert padded.dtype == np.int32
    np.testing.assert_array_equal(padded, [[1, 2], [3, 0]])
    with pytest.raises(ValueError, match=r"sequences\[1\] holds non-integer values"):
        pad_sequences([np.array([1.0, 2.0]), np.array([3.5])], dtype=np.int64)


def test_pad_unpad_round_trip_random():
    rng = np.random.default_rng(3)
    seqs = [rng.standard_normal((int(t), 4)).astype(np.float32) for t in rng.integers(1, 9, 20)]
    padded, lengths = pad_sequences(seqs)
    assert padded.shape == (20, max(len(s) for s in seqs), 4)
    back = unpad(padded, lengths)
    assert len(back) == len(seqs)
    for original, restored in zip(seqs, back, strict=True):
        np.testing.assert_array_equal(restored, original)
    # Padding really is pad_value everywhere outside the mask.
    assert not padded[~lengths_to_mask(lengths)].any()


def test_unpad_univariate_and_independent_memory():
    padded, lengths = pad_sequences([np.array([1.0, 2.0, 3.0]), np.array([4.0])])
    back = unpad(padded, lengths)
    np.testing.assert_array_equal(back[0][:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(back[1][:, 0], [4.0])
    back[0][0, 0] = 100.0
    assert padded[0, 0, 0] == 1.0


def test_unpad_token_ids():
    back = unpad(np.array([[1, 2, 0], [3, 4, 5]]), [2, 3])
    np.testing.assert_array_equal(back[0], [1, 2])
    np.testing.assert_array_equal(back[1], [3, 4, 5])


def test_lengths_to_mask_exact():
    mask = lengths_to_mask(np.array([2, 1, 3]))
    np.testing.assert_array_equal(
        mask, [[True, True, False], [True, False, False], [True, True, True]]
    )
    wide = lengths_to_mask([1, 2], max_len=4)
    np.testing.assert_array_equal(wide, [[True, False, False, False], [True, True, False, False]])
    assert wide.dtype == bool


def test_mask_lengths_round_trip():
    lengths = np.array([4, 1, 7, 7, 2], dtype=np.int64)
    back = mask_to_lengths(lengths_to_mask(lengths, 9))
    np.testing.assert_array_equal(back, lengths)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(mask_to_lengths(np.array([[1, 1, 0], [1, 0, 0]])), [2, 1])


def test_lengths_accept_whole_floats():
    np.testing.assert_array_equal(lengths_to_mask(np.array([2.0, 1.0])).sum(axis=1), [2, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(sequences=[]), "sequences is empty"),
        (dict(sequences=[[1, 2], []]), r"sequences\[1\] has length 0"),
        (dict(sequences=[np.ones((2, 3)), np.ones((2, 4))]), r"sequences\[1\] has 4 features"),
        (dict(sequences=[np.ones(2), np.ones((2, 1))]), r"sequences\[1\] has shape \(2, 1\)"),
        (dict(sequences=[np.ones((2, 2, 2))]), r"sequences\[0\] has shape \(2, 2, 2\)"),
        (dict(sequences=[[1, 2]], max_len=0), "max_len = 0: must be >= 1"),
        (dict(sequences=[[1, 2]], truncate="middle"), "truncate must be 'pre' or 'post'"),
        (dict(sequences=[[1, 2]], pad_value=0.5), r"pad_value = 0.5: must be a whole number"),
    ],
)
def test_pad_sequences_errors(kwargs, match):
    sequences = kwargs.pop("sequences")
    with pytest.raises(ValueError, match=match):
        pad_sequences(sequences, **kwargs)


def test_pad_sequences_type_errors():
    with pytest.raises(TypeError, match="sequences must be a list"):
        pad_sequences("abc")
    with pytest.raises(TypeError, match=r"sequences\[1\] must hold numbers"):
        pad_sequences([[1, 2], ["a", "b"]])
    with pytest.raises(TypeError, match="max_len must be an integer"):
        pad_sequences([[1, 2]], max_len=2.0)
    with pytest.raises(TypeError, match="pad_value must be a number"):
        pad_sequences([[1, 2]], pad_value="x")


def test_lengths_errors():
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0: every length must be >= 1"):
        lengths_to_mask([3, 0, 2])
    with pytest.raises(ValueError, match="lengths is empty"):
        lengths_to_mask(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=r"lengths must be 1-D"):
        lengths_to_mask([[1, 2]])
    with pytest.raises(ValueError, match=r"lengths\[0\] = 1.5: lengths must be whole numbers"):
        lengths_to_mask([1.5])
    with pytest.raises(TypeError, match="lengths must be an array of integers"):
        lengths_to_mask(np.array(["a"]))
    with pytest.raises(ValueError, match=r"max_len = 2 is shorter than lengths\[1\] = 3"):
        lengths_to_mask([1, 3], max_len=2)


def test_mask_to_lengths_errors():
    with pytest.raises(ValueError, match="mask row 1 is not a prefix mask.*step 1"):
        mask_to_lengths(np.array([[True, True, False], [True, False, True]]))
    with pytest.raises(ValueError, match="mask row 0 has no True step"):
        mask_to_lengths(np.array([[False, False], [True, False]]))
    with pytest.raises(ValueError, match="mask must be 2-D"):
        mask_to_lengths(np.array([True, False]))
    with pytest.raises(ValueError, match="mask must hold only 0/1"):
        mask_to_lengths(np.array([[1, 2]]))
    with pytest.raises(TypeError, match="mask must be boolean"):
        mask_to_lengths(np.array([[0.5, 1.0]]))


def test_unpad_errors():
    padded = np.zeros((2, 3, 1))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 exceeds the padded time axis"):
        unpad(padded, [1, 4])
    with pytest.raises(ValueError, match="lengths has 3 entries but padded has 2 rows"):
        unpad(padded, [1, 1, 1])
    with pytest.raises(ValueError, match="padded must be at least 2-D"):
        unpad(np.zeros(3), [1, 1, 1])
