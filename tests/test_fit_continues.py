"""A later ``fit`` call on the same model continues the earlier run (issue 12, item 2): the
optimizer state, the epoch counter, the data order and dropout streams, the schedule and the
seed carry over, so n calls of ``fit(epochs=1)`` are one ``fit(epochs=n)``, bit for bit.
``initial_epoch`` starts a new run instead."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import sparklstm.training.fit as train_module
from sparklstm import SequenceModel
from sparklstm.data.synthetic import noisy_sines
from sparklstm.optim import SGD, StepLR

QUIET = {"progress": False}
N, BATCH = 40, 8  # 5 steps per epoch
STEPS_PER_EPOCH = N // BATCH


def _data(n=N, seed=0):
    return noisy_sines(n, 10, 2, np.random.default_rng(seed), noise=0.3, min_len=5)


def _model(**overrides):
    config = dict(input_size=1, hidden_sizes=[6], output_size=2, dtype="float64", seed=0)
    config.update(overrides)
    return SequenceModel(**config)


def _same_params(a, b) -> bool:
    assert a.keys() == b.keys()
    return all(np.array_equal(a[key], b[key]) for key in a)


def _rows(*histories):
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for history in histories
        for row in history.rows
    ]


# Each case: model config overrides, fit options (the same on every call), and how the epochs
# are split over the calls.
CASES = {
    "adam": (dict(), dict(optimizer="adam", lr=0.02), [1, 1, 1]),
    "adam-2+1": (dict(), dict(optimizer="adam", lr=0.02), [2, 1]),
    "sgd-momentum": (dict(), dict(optimizer=SGD(lr=0.05, momentum=0.9)), [1, 1, 1]),
    "dropout": (dict(hidden_sizes=[6, 5], dropout=0.3), dict(lr=0.02), [1, 1, 1]),
    "cosine": (
        dict(),
        dict(
            optimizer="adam",
            lr=0.05,
            schedule={"name": "cosine", "lr": 0.05, "total_steps": 3 * STEPS_PER_EPOCH},
        ),
        [1, 1, 1],
    ),
    "validation_split": (dict(), dict(lr=0.02, validation_split=0.25), [1, 1, 1]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_called_again_equals_one_longer_fit(case):
    config, options, split = CASES[case]
    x, y, lengths = _data()
    options = dict(batch_size=BATCH, **options, **QUIET)
    total = sum(split)

    stepwise = _model(**config)
    histories = [stepwise.fit(x, y, lengths, epochs=epochs, **options) for epochs in split]
    once = _model(**config)
    history = once.fit(x, y, lengths, epochs=total, **options)

    assert _same_params(stepwise.params, once.params)
    assert not _same_params(stepwise.params, _model(**config).params)  # it did train
    # The epoch numbers continue across calls; every column (lr, val_*) agrees.
    assert [row["epoch"] for row in _rows(*histories)] == list(range(1, total + 1))
    assert _rows(*histories) == _rows(history)
    if case == "cosine":
        lrs = [row["lr"] for row in _rows(*histories)]
        assert lrs[0] == 0.05 and lrs[0] > lrs[1] > lrs[2]  # the schedule went on
    if case == "validation_split":
        assert "val_loss" in history.rows[0]
    state = stepwise.fit_state
    assert state.epochs_done == total == once.fit_state.epochs_done
    assert state.optimizer_state.step == once.fit_state.optimizer_state.step > 0
    assert state.seed == 0


def test_a_changed_lr_applies_and_the_state_is_kept():
    # Rates are powers of two so that the halving schedule gives exactly the second call's lr.
    x, y, lengths = _data()
    options = dict(batch_size=BATCH, optimizer="adam", **QUIET)
    stepwise = _model()
    first = stepwise.fit(x, y, lengths, epochs=1, lr=2.0**-5, **options)
    second = stepwise.fit(x, y, lengths, epochs=1, lr=2.0**-6, **options)
    once = _model()
    history = once.fit(
        x,
        y,
        lengths,
        epochs=2,
        schedule=StepLR(lr=2.0**-5, step_size=STEPS_PER_EPOCH, gamma=0.5),
        **options,
    )
    assert _same_params(stepwise.params, once.params)
    assert _rows(first, second) == _rows(history)
    assert [row["lr"] for row in _rows(first, second)] == [2.0**-5, 2.0**-6]


def test_a_seedless_fit_reuses_the_seed_its_first_call_drew(monkeypatch):
    drawn = []
    original = train_module.resolve_seed

    def spy(seed):
        value = original(seed)
        drawn.append(value)
        return value

    monkeypatch.setattr(train_module, "resolve_seed", spy)
    x, y, lengths = _data()
    config = dict(seed=None, hidden_sizes=[6, 5], dropout=0.3)
    options = dict(batch_size=BATCH, lr=0.02, **QUIET)
    stepwise = _model(**config)
    once = _model(**config)
    once.load_state_dict(stepwise.state_dict())  # the same (random) starting weights

    stepwise.fit(x, y, lengths, epochs=1, **options)
    stepwise.fit(x, y, lengths, epochs=1, **options)
    first_seed = drawn[0]
    once.fit(x, y, lengths, epochs=2, seed=first_seed, **options)
    assert _same_params(stepwise.params, once.params)
    assert stepwise.fit_state.seed == first_seed


def test_initial_epoch_zero_restarts_with_a_fresh_optimizer_state():
    x, y, lengths = _data()
    config = dict(hidden_sizes=[6, 5], dropout=0.3)
    options = dict(batch_size=BATCH, lr=0.02, **QUIET)
    restarted = _model(**config)
    restarted.fit(x, y, lengths, epochs=1, **options)
    trained = restarted.state_dict()
    history = restarted.fit(x, y, lengths, epochs=1, initial_epoch=0, **options)

    # The same as a fresh model given the trained weights: fresh Adam state, epoch 0's order
    # and dropout masks.
    fresh = _model(**config)
    fresh.load_state_dict(trained)
    reference = fresh.fit(x, y, lengths, epochs=1, **options)
    assert _same_params(restarted.params, fresh.params)
    assert _rows(history) == _rows(reference)
    assert history["epoch"] == [1]
    assert restarted.fit_state.epochs_done == 1
    assert restarted.fit_state.optimizer_state.step == STEPS_PER_EPOCH

    # ... and not what continuing gives.
    continued = _model(**config)
    continued.fit(x, y, lengths, epochs=2, **options)
    assert not _same_params(restarted.params, continued.params)


def test_an_explicit_initial_epoch_numbers_the_epochs_and_later_calls_go_on_from_it():
    x, y, lengths = _data()
    options = dict(batch_size=BATCH, lr=0.02, **QUIET)
    model = _model()
    assert model.fit(x, y, lengths, epochs=2, initial_epoch=3, **options)["epoch"] == [4, 5]
    assert model.fit(x, y, lengths, epochs=1, **options)["epoch"] == [6]
    assert model.fit_state.epochs_done == 6
    assert model.fit_state.optimizer_state.step == 3 * STEPS_PER_EPOCH


def test_a_different_optimizer_kind_gets_a_fresh_state(caplog):
    x, y, lengths = _data()
    options = dict(batch_size=BATCH, **QUIET)
    sgd = dict(optimizer="sgd", lr=0.05, optimizer_options={"momentum": 0.9})
    switched = _model()
    switched.fit(x, y, lengths, epochs=1, optimizer="adam", lr=0.02, **options)
    with caplog.at_level(logging.INFO, logger="sparklstm.training.fit"):
        history = switched.fit(x, y, lengths, epochs=1, **sgd, **options)
    assert any("fresh" in record.getMessage() for record in caplog.records)

    restarted = _model()
    restarted.fit(x, y, lengths, epochs=1, optimizer="adam", lr=0.02, **options)
    reference = restarted.fit(x, y, lengths, epochs=1, initial_epoch=1, **sgd, **options)
    assert _same_params(switched.params, restarted.params)
    assert _rows(history) == _rows(reference)
    assert history["epoch"] == [2]
    assert switched.fit_state.optimizer.name == "sgd"
    assert switched.fit_state.optimizer_state.step == STEPS_PER_EPOCH


@pytest.mark.parametrize(
    "value,error",
    [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_a_bad_initial_epoch_is_named_before_anything_changes(value, error):
    x, y, lengths = _data(8)
    model = _model()
    before = model.state_dict()
    with pytest.raises(error, match="initial_epoch must be"):
        model.fit(x, y, lengths, epochs=1, initial_epoch=value, **QUIET)
    assert _same_params(before, model.params)
    assert getattr(model, "fit_state", None) is None
