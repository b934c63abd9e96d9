"""The Spark trainer's driver-side pieces, without a running Spark: the average of a round's
results, the optimizer-state policies, the round's row, the completeness check, and the
checkpoint/resume decisions."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.io.checkpoint import Checkpoint, save_checkpoint
from sparklstm.model.config import ModelConfig
from sparklstm.spark.averaging import (
    DriverState,
    apply_round,
    check_every_worker_answered,
    round_row,
)
from sparklstm.spark.rounds import (
    RoundSpec,
    WeightedMean,
    WorkerResult,
    flatten,
    merge_results,
)
from sparklstm.spark.run_record import check_resumable, starting_checkpoint
from sparklstm.training.options import TrainOptions

NAMES = ("a", "b")


def _params(a, b):
    return {"a": np.asarray(a, np.float32), "b": np.asarray(b, np.float32)}


def _worker(partition, params, weight, *, state=None, step=0, loss=0.0, metric=0.0, before=None):
    vector = flatten(params, NAMES)
    delta = vector.astype(np.float64) - flatten(before, NAMES) if before is not None else 0.0
    return WorkerResult(
        contributors=1,
        examples=int(weight),
        weight=float(weight),
        steps=1,
        loss_sum=loss,
        metric_sum=metric,
        params=WeightedMean.of(vector, weight),
        state=WeightedMean.of(np.asarray(state, np.float64), weight)
        if state is not None
        else WeightedMean(),
        state_step_sum=step * weight,
        states={partition: {"optim/step": np.array(step)}},
        sq_delta_sum=float(weight * np.dot(delta, delta)) if before is not None else 0.0,
    )


def _start():
    zeros = _params([0.0, 0.0], [0.0])
    return DriverState(zeros, None, {}, {n: np.zeros(v.shape) for n, v in zeros.items()})


def test_the_average_is_weighted_by_loss_terms():
    first = _worker(0, _params([1.0, 2.0], [3.0]), 1)
    second = _worker(1, _params([4.0, 8.0], [0.0]), 3)
    after = apply_round(_start(), merge_results(first, second), NAMES, {}, (), TrainOptions())
    np.testing.assert_allclose(after.params["a"], [13 / 4, 26 / 4])
    np.testing.assert_allclose(after.params["b"], [3 / 4])
    # One worker alone: its parameters come back bit for bit.
    alone = apply_round(_start(), second, NAMES, {}, (), TrainOptions())
    np.testing.assert_array_equal(alone.params["a"], [4.0, 8.0])


def test_a_round_where_nobody_trained_changes_nothing():
    start = _start()
    assert apply_round(start, WorkerResult(), NAMES, {}, (), TrainOptions()) is start


def test_block_momentum_follows_its_recurrence():
    cfg = TrainOptions(outer_momentum=0.5, outer_lr=2.0)
    start = _start()
    result = _worker(0, _params([1.0, 1.0], [2.0]), 2)
    first = apply_round(start, result, NAMES, {}, (), cfg)
    # d = mean - theta = (1, 1, 2); v = 0.5 * 0 + d; theta = 0 + 2 v
    np.testing.assert_allclose(flatten(first.velocity, NAMES), [1, 1, 2])
    np.testing.assert_allclose(flatten(first.params, NAMES), [2, 2, 4])
    second = apply_round(first, _worker(0, _params([2.0, 2.0], [4.0]), 2), NAMES, {}, (), cfg)
    # d = 0 (the workers stayed put); v = 0.5 v; theta += 2 * 0.5 v
    np.testing.assert_allclose(flatten(second.velocity, NAMES), [0.5, 0.5, 1])
    np.testing.assert_allclose(flatten(second.params, NAMES), [3, 3, 6])


@pytest.mark.parametrize("policy", ["average", "reset", "local"])
def test_the_state_policies(policy):
    template = {"optim/step": np.array(0), "m": np.zeros(3)}
    cfg = TrainOptions(state_policy=policy)
    result = merge_results(
        _worker(0, _params([0, 0], [0]), 1, state=[1.0, 1.0, 1.0], step=4),
        _worker(1, _params([0, 0], [0]), 3, state=[5.0, 5.0, 5.0], step=8),
    )
    after = apply_round(_start(), result, NAMES, template, ("m",), cfg)
    if policy == "average":
        np.testing.assert_allclose(after.state["m"], [4.0, 4.0, 4.0])
        assert int(after.state["optim/step"]) == 7  # round((4 * 1 + 8 * 3) / 4)
        assert after.states == {}
    elif policy == "reset":
        assert after.state is None and after.states == {}
    else:
        assert after.state is None and sorted(after.states) == [0, 1]


def test_the_rounds_row_reports_losses_metrics_and_the_workers_spread():
    config = ModelConfig(input_size=1, output_size=2)
    before = _params([0.0, 0.0], [0.0])
    result = merge_results(
        _worker(0, _params([1.0, 0.0], [0.0]), 1, loss=2.0, metric=1.0, before=before),
        _worker(1, _params([-1.0, 0.0], [0.0]), 1, loss=4.0, metric=0.0, before=before),
    )
    after = apply_round(DriverState(before, None, {}, {}), result, NAMES, {}, (), TrainOptions())
    row = round_row(4, 2, result, before, after.params, NAMES, config)
    assert (row["round"], row["epoch"], row["workers"]) == (5, 3, 2)
    assert (row["train_loss"], row["train_accuracy"]) == (3.0, 0.5)
    # the two workers moved by +-1 on one coordinate: the average did not move, spread 1
    assert row["update_norm"] == 0.0 and row["drift"] == pytest.approx(1.0)


def _spec(chunk_rows):
    return RoundSpec(
        model_config={},
        optimizer_config={},
        schedule_config={},
        param_names=NAMES,
        state_names=(),
        chunk_rows=chunk_rows,
        batch_size=4,
        seed=0,
        local_steps=1,
        rounds_per_epoch=2,
        shuffle=False,
        bucket=False,
        clip_norm=None,
        clip_value=None,
        state_policy="average",
    )


def test_a_round_missing_a_partitions_result_is_refused():
    spec = _spec(((8,), (8,), ()))  # the third partition has nothing to train on
    both = merge_results(_worker(0, _params([0, 0], [0]), 1), _worker(1, _params([0, 0], [0]), 1))
    check_every_worker_answered(both, spec, 0)
    with pytest.raises(RuntimeError, match="results of 1 of 2 partitions.*driver-memory"):
        check_every_worker_answered(_worker(0, _params([0, 0], [0]), 1), spec, 0)


# ------------------------------------------------------------------ checkpoints and resume
def _checkpoint(round_number, training=None, model=None):
    return Checkpoint(
        round=round_number,
        seed=3,
        run_id="run",
        model_config=(model or ModelConfig(input_size=2)).to_dict(),
        training_config=training if training is not None else TrainOptions().to_dict(),
        params=_params([1.0, 2.0], [3.0]),
    )


def test_a_fresh_run_needs_an_empty_directory_and_a_resumed_one_a_checkpoint(tmp_path):
    assert starting_checkpoint(None, resume=False) is None
    assert starting_checkpoint(tmp_path, resume=False) is None
    with pytest.raises(ValueError, match="holds no checkpoint, so there is nothing"):
        starting_checkpoint(tmp_path, resume=True)
    save_checkpoint(tmp_path, _checkpoint(2), keep=2)
    save_checkpoint(tmp_path, _checkpoint(4), keep=2)
    with pytest.raises(ValueError, match=r"already holds checkpoints \(rounds \[2, 4\]\)"):
        starting_checkpoint(tmp_path, resume=False)
    assert starting_checkpoint(tmp_path, resume=True).round == 4


def test_resuming_allows_only_the_options_that_do_not_change_past_rounds():
    model = ModelConfig(input_size=2)
    saved = _checkpoint(2, TrainOptions(epochs=3, batch_size=8).to_dict())
    check_resumable(saved, model, TrainOptions(epochs=9, batch_size=8, checkpoint_every=5))
    with pytest.raises(ValueError, match=r"training options \['batch_size'\] differ"):
        check_resumable(saved, model, TrainOptions(epochs=3, batch_size=16))
    with pytest.raises(ValueError, match="model configuration differs"):
        check_resumable(
            saved, ModelConfig(input_size=2, hidden_sizes=[8]), TrainOptions(batch_size=8)
        )


def test_a_checkpoint_written_before_an_option_existed_resumes_with_its_default():
    model = ModelConfig(input_size=2)
    older = TrainOptions().to_dict()
    del older["clip_value"], older["outer_lr"]  # as if written before these options
    check_resumable(_checkpoint(2, older), model, TrainOptions())
    with pytest.raises(ValueError, match="outer_lr"):
        check_resumable(_checkpoint(2, older), model, TrainOptions(outer_lr=0.5))
