"""The tree step that merges a round's results on the executors before the driver."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark import reduction
from sparklstm.spark.reduction import collect_round_results, group_size
from sparklstm.spark.rounds import RESULT_SCHEMA, WeightedMean, WorkerResult, merge_results
from sparklstm.spark.trainer import fit_distributed
from sparklstm.spark.wire import decode_result, encode_result


def _results(count: int, size: int = 50) -> list[WorkerResult]:
    rng = np.random.default_rng(7)
    results = []
    for p in range(count):
        weight = float(rng.integers(1, 40))
        results.append(
            WorkerResult(
                contributors=1,
                examples=int(weight),
                weight=weight,
                steps=2,
                loss_sum=float(rng.random()) * weight,
                max_grad_norm=float(rng.random()),
                params=WeightedMean.of(rng.normal(size=size).astype(np.float32), weight),
                state=WeightedMean.of(rng.normal(size=2 * size), weight),
                sq_delta_sum=float(rng.random()),
                chunks_read=p % 3,
            )
        )
    return results


def _frame(spark, results):
    rows = [(p, encode_result(r)) for p, r in enumerate(results)]
    # Rows in shuffled order and several partitions: the merge must not depend on either.
    order = np.random.default_rng(1).permutation(len(rows))
    return spark.createDataFrame([rows[i] for i in order], RESULT_SCHEMA).repartition(3)


def test_group_sizes():
    assert [group_size(p) for p in (1, 2, 4, 5, 9, 10, 64, 65, 512)] == [1, 2, 2, 3, 3, 4, 8, 9, 23]


def test_the_tree_step_merges_groups_in_partition_order(any_spark):
    results = _results(11)
    flat = functools.reduce(merge_results, results, WorkerResult())
    df = _frame(any_spark, results)

    size = len(encode_result(results[0]))
    direct, none = collect_round_results(df, 11, size)  # small results: every row comes back
    assert [p for p, _ in direct] == list(range(11)) and none == []

    # Groups of 4: 0-3, 4-7, 8-10; rows computed alongside come back apart, not merged.
    extra = any_spark.createDataFrame([(5, b"five"), (2, b"two")], RESULT_SCHEMA)
    tree, beside = collect_round_results(df, 11, size, tree=True, alongside=extra)
    assert [p for p, _ in tree] == [0, 4, 8]
    assert beside == [(2, b"two"), (5, b"five")]
    merged = functools.reduce(
        merge_results, (decode_result(data) for _, data in tree), WorkerResult()
    )
    for name in ("contributors", "examples", "steps", "chunks_read"):
        assert getattr(merged, name) == getattr(flat, name)
    for name in ("weight", "loss_sum", "sq_delta_sum", "max_grad_norm"):
        assert getattr(merged, name) == pytest.approx(getattr(flat, name), rel=1e-12)
    np.testing.assert_allclose(merged.params.mean(), flat.params.mean(), rtol=1e-12)
    np.testing.assert_allclose(merged.state.mean(), flat.state.mean(), rtol=1e-12)
    # The same bytes every time: the order of the sums is fixed.
    assert collect_round_results(df, 11, size, tree=True) == (tree, [])


def test_training_through_the_tree_step_is_deterministic_and_matches_the_direct_merge(
    any_spark, monkeypatch
):
    x, y, lengths = noisy_sines(300, 10, 3, np.random.default_rng(4), min_len=4)
    df = any_spark.createDataFrame(numpy_to_arrow(x, y, lengths))
    model = {"input_size": 1, "hidden_sizes": [6], "output_size": 3, "seed": 1}
    options = {"rounds": 2, "local_steps": 2, "batch_size": 16, "num_partitions": 5}
    direct, history = fit_distributed(df, model, options, progress=False)
    assert [row["results_collected"] for row in history.rows] == [5, 5]

    monkeypatch.setattr(reduction, "TREE_MERGE_BYTES", 0)  # 5 partitions: groups of 3
    tree, history = fit_distributed(df, model, options, progress=False)
    again, _ = fit_distributed(df, model, options, progress=False)
    assert [row["results_collected"] for row in history.rows] == [2, 2]
    for name, value in direct.params.items():
        np.testing.assert_array_equal(tree.params[name], again.params[name])
        np.testing.assert_allclose(tree.params[name], value, rtol=1e-5, atol=1e-6)
