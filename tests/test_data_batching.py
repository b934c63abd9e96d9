"""Minibatch plans, length bucketing, padding accounting and train/validation splits."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.data import (
    bucketed_batches,
    minibatch_indices,
    padding_fraction,
    train_validation_split,
)


def _flat(batches):
    return np.sort(np.concatenate(batches))


def _skewed_lengths(rng, n=2000):
    # Mostly short sequences with a long tail: unbucketed batches are mostly padding.
    return np.minimum(rng.geometric(0.05, size=n), 400).astype(np.int64)


def test_minibatch_indices_unshuffled_exact():
    batches = minibatch_indices(7, 3, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(b.dtype == np.int64 for b in batches)
    dropped = minibatch_indices(7, 3, shuffle=False, drop_last=True)
    assert [b.tolist() for b in dropped] == [[0, 1, 2], [3, 4, 5]]
    assert [b.tolist() for b in minibatch_indices(6, 3, shuffle=False, drop_last=True)] == [
        [0, 1, 2],
        [3, 4, 5],
    ]


def test_minibatch_indices_shuffled_covers_all_and_is_deterministic():
    a = minibatch_indices(103, 10, rng=np.random.default_rng(5))
    b = minibatch_indices(103, 10, rng=np.random.default_rng(5))
    c = minibatch_indices(103, 10, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(_flat(a), np.arange(103))
    assert [len(x) for x in a] == [10] * 10 + [3]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))
    assert not np.array_equal(np.concatenate(a), np.arange(103))


def test_minibatch_indices_errors():
    with pytest.raises(ValueError, match="rng is required when shuffle=True"):
        minibatch_indices(10, 2)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        minibatch_indices(10, 2, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="n = 0: must be >= 1"):
        minibatch_indices(0, 2, shuffle=False)
    with pytest.raises(ValueError, match="batch_size = 0: must be >= 1"):
        minibatch_indices(5, 0, shuffle=False)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        minibatch_indices(5, 2.0, shuffle=False)
    with pytest.raises(ValueError, match="drop_last=True with 3 examples < batch_size=4"):
        minibatch_indices(3, 4, shuffle=False, drop_last=True)


def test_bucketed_unshuffled_order_is_documented_order():
    lengths = np.array([5, 1, 4, 1, 3, 9, 2])
    # C = 2 * 2 = 4: chunk [0..3] sorted by length (ties by index): 1, 3, 2, 0;
    # chunk [4..6]: 6, 4, 5. Then cut into batches of 2.
    batches = bucketed_batches(lengths, 2, shuffle=False, bucket_size_multiplier=2)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0], [6, 4], [5]]
    dropped = bucketed_batches(lengths, 2, shuffle=False, bucket_size_multiplier=2, drop_last=True)
    assert [b.tolist() for b in dropped] == [[1, 3], [2, 0], [6, 4]]


def test_bucketed_covers_every_index_once():
    rng = np.random.default_rng(0)
    lengths = _skewed_lengths(rng, 1001)
    batches = bucketed_batches(lengths, 32, rng=rng, bucket_size_multiplier=8)
    np.testing.assert_array_equal(_flat(batches), np.arange(1001))
    sizes = sorted(len(b) for b in batches)
    assert sizes == [1001 % 32] + [32] * (1001 // 32)
    dropped = bucketed_batches(lengths, 32, rng=rng, bucket_size_multiplier=8, drop_last=True)
    assert all(len(b) == 32 for b in dropped)
    assert len(np.unique(np.concatenate(dropped))) == 32 * (1001 // 32)


def test_bucketing_reduces_padding_on_skewed_lengths():
    rng = np.random.default_rng(1)
    lengths = _skewed_lengths(rng)
    plain = padding_fraction(lengths, minibatch_indices(len(lengths), 32, rng=rng))
    bucketed = padding_fraction(lengths, bucketed_batches(lengths, 32, rng=rng))
    assert plain > 0.6
    assert bucketed < 0.2
    assert bucketed < plain / 4
    # Full sort (one chunk holding everything) pads least of all.
    sorted_once = padding_fraction(
        lengths, bucketed_batches(lengths, 32, rng=rng, bucket_size_multiplier=1000)
    )
    assert sorted_once < bucketed


def test_bucketed_deterministic_per_seed_and_differs_between_epochs():
    lengths = _skewed_lengths(np.random.default_rng(2), 500)
    a = bucketed_batches(lengths, 16, rng=np.random.default_rng(9), bucket_size_multiplier=4)
    b = bucketed_batches(lengths, 16, rng=np.random.default_rng(9), bucket_size_multiplier=4)
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    rng = np.random.default_rng(9)
    epoch1 = bucketed_batches(lengths, 16, rng=rng, bucket_size_multiplier=4)
    epoch2 = bucketed_batches(lengths, 16, rng=rng, bucket_size_multiplier=4)
    assert not np.array_equal(np.concatenate(epoch1), np.concatenate(epoch2))


def test_bucketed_errors():
    with pytest.raises(ValueError, match="rng is required when shuffle=True"):
        bucketed_batches([1, 2], 1)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0: every length must be >= 1"):
        bucketed_batches([1, 0], 1, shuffle=False)
    with pytest.raises(ValueError, match="bucket_size_multiplier = 0: must be >= 1"):
        bucketed_batches([1, 2], 1, shuffle=False, bucket_size_multiplier=0)


def test_padding_fraction_exact():
    lengths = np.array([1, 4, 2, 2])
    # batch [0, 1]: 2 * 4 cells, 5 valid; batch [2, 3]: 2 * 2 cells, 4 valid.
    assert padding_fraction(lengths, [np.array([0, 1]), np.array([2, 3])]) == pytest.approx(
        1 - 9 / 12
    )
    assert padding_fraction(lengths, [[1], [0], [2, 3]]) == 0.0


def test_padding_fraction_errors():
    with pytest.raises(ValueError, match="batches is empty"):
        padding_fraction([1, 2], [])
    with pytest.raises(ValueError, match=r"batches\[1\] is empty"):
        padding_fraction([1, 2], [[0], []])
    with pytest.raises(ValueError, match=r"batches hold index 2, outside \[0, 2\)"):
        padding_fraction([1, 2], [[0, 2]])
    with pytest.raises(TypeError, match="batches must hold integer indices"):
        padding_fraction([1, 2], [[0.0, 1.0]])


def test_split_partitions_and_sizes():
    train, val = train_validation_split(50, 0.2, np.random.default_rng(0))
    assert len(val) == 10
    assert len(train) == 40
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(50))
    assert np.all(np.diff(train) > 0)
    assert np.all(np.diff(val) > 0)
    assert train.dtype == np.int64
    assert val.dtype == np.int64
    again = train_validation_split(50, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(again[1], val)
    other = train_validation_split(50, 0.2, np.random.default_rng(1))
    assert not np.array_equal(other[1], val)


def test_split_never_leaves_a_side_empty():
    train, val = train_validation_split(3, 0.01, np.random.default_rng(0))
    assert (len(train), len(val)) == (2, 1)
    train, val = train_validation_split(3, 0.99, np.random.default_rng(0))
    assert (len(train), len(val)) == (1, 2)


def test_stratified_split_is_proportional():
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    rng = np.random.default_rng(4)
    labels = labels[rng.permutation(100)]
    train, val = train_validation_split(100, 0.2, rng, stratify=labels)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=3), [12, 6, 2])
    np.testing.assert_array_equal(np.bincount(labels[train], minlength=3), [48, 24, 8])


def test_stratified_split_keeps_every_class_in_training():
    # Class "b" has 1 example and "c" has 2: neither may leave the training set entirely.
    labels = np.array(["a"] * 7 + ["b"] + ["c"] * 2)
    for seed in range(5):
        train, val = train_validation_split(10, 0.5, np.random.default_rng(seed), stratify=labels)
        assert set(labels[train]) == {"a", "b", "c"}
        assert len(val) == 5
        assert "b" not in set(labels[val])


def test_stratified_split_shrinks_when_classes_need_it(caplog):
    labels = np.array([0, 0, 1, 1, 2, 2])
    with caplog.at_level("WARNING", logger="sparklstm.data.batching"):
        train, val = train_validation_split(6, 0.9, np.random.default_rng(0), stratify=labels)
    # Asked for 5 validation examples; keeping each class in training allows only 3.
    assert len(val) == 3
    np.testing.assert_array_equal(np.bincount(labels[train]), [1, 1, 1])
    assert "only 3 validation examples" in caplog.text


def test_stratified_split_all_singletons_falls_back(caplog):
    with caplog.at_level("WARNING", logger="sparklstm.data.batching"):
        train, val = train_validation_split(
            4, 0.25, np.random.default_rng(0), stratify=np.arange(4)
        )
    assert (len(train), len(val)) == (3, 1)
    assert "without stratification" in caplog.text


def test_split_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"validation_fraction = 0.0: must be in \(0, 1\)"):
        train_validation_split(10, 0.0, rng)
    with pytest.raises(ValueError, match=r"validation_fraction = 1: must be in \(0, 1\)"):
        train_validation_split(10, 1, rng)
    with pytest.raises(ValueError, match="n = 1: must be >= 2"):
        train_validation_split(1, 0.5, rng)
    with pytest.raises(ValueError, match=r"stratify must have shape \(10,\)"):
        train_validation_split(10, 0.5, rng, stratify=np.zeros(9))
    with pytest.raises(ValueError, match="rng is required when splitting"):
        train_validation_split(10, 0.5, None)
    with pytest.raises(TypeError, match="validation_fraction must be a number"):
        train_validation_split(10, "0.5", rng)
