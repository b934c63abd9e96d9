"""The one-process trainer (``SequenceModel.fit`` / ``sparklstm.training.fit.fit``): history rows,
reproducibility, validation split, early stopping, optimizers and their options, bad options."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import sparklstm.training.fit as train_module
from sparklstm import SequenceModel
from sparklstm.data.synthetic import adding_problem, noisy_sines
from sparklstm.optim import SGD, make_schedule

RNG = np.random.default_rng
QUIET = {"progress": False}


def _sines(n=64, seed=0, noise=0.3, seq_len=12, min_len=6):
    return noisy_sines(n, seq_len, 2, RNG(seed), noise=noise, min_len=min_len)


def _classifier(**overrides):
    config = dict(input_size=1, hidden_sizes=[8], output_size=2, seed=0)
    config.update(overrides)
    return SequenceModel(**config)


def _same_params(a, b) -> bool:
    assert a.keys() == b.keys()
    return all(np.array_equal(a[key], b[key]) for key in a)


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]


# ----------------------------------------------------------------------------------- history
def test_history_has_one_row_per_epoch_with_training_and_validation_metrics():
    x, y, lengths = _sines(64, seed=0)
    xv, yv, lv = _sines(40, seed=1)
    model = _classifier()
    history = model.fit(
        x, y, lengths, validation=(xv, yv, lv), epochs=3, batch_size=16, lr=0.01, **QUIET
    )
    assert len(history) == 3
    expected = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    for number, row in enumerate(history.rows, start=1):
        assert set(row) == expected
        assert row["epoch"] == number
        assert math.isfinite(row["loss"]) and row["loss"] > 0
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
        assert row["lr"] == 0.01 and row["seconds"] > 0
        # accuracy over 64 training / 40 validation sequences is a whole count
        assert row["accuracy"] * 64 == pytest.approx(round(row["accuracy"] * 64))
        assert row["val_accuracy"] * 40 == pytest.approx(round(row["val_accuracy"] * 40))
    assert history["epoch"] == [1, 2, 3]
    assert history["val_loss"] == [row["val_loss"] for row in history.rows]
    # The validation columns are the model's metrics on the validation data after the epoch.
    final = model.evaluate(xv, yv, lv)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-9)
    assert history["val_accuracy"][-1] == final["accuracy"]
    assert history.best_epoch == int(np.argmin(history["val_loss"])) + 1
    assert history.stopped_early is False
    # One record for both trainers: the one-process trainer's rounds are its epochs.
    assert history.best_round == history.best_epoch
    assert history.to_dict() == {
        "rows": history.rows,
        "best_round": history.best_epoch,
        "stopped_early": False,
        "summary": {"seed": 0},
    }
    with pytest.raises(KeyError, match="val_rmse"):
        history["val_rmse"]


def test_history_without_validation_has_no_val_columns():
    x, y, lengths = _sines(32)
    history = _classifier().fit(x, y, lengths, epochs=2, **QUIET)
    assert set(history.rows[0]) == {"epoch", "loss", "accuracy", "lr", "seconds"}
    with pytest.raises(KeyError, match="'val_loss'.*accuracy"):
        history["val_loss"]
    with pytest.raises(KeyError, match="no rows"):
        train_module.History()["loss"]


def test_epoch_loss_is_the_mean_loss_before_each_update():
    # One full batch per epoch: the epoch's training loss and accuracy are exactly the model's
    # metrics at the start of the epoch (no dropout, so the training forward pass is the same).
    x, y, lengths = _sines(48, seed=3)
    model = _classifier(dtype="float64")
    before = model.evaluate(x, y, lengths)
    history = model.fit(x, y, lengths, epochs=1, batch_size=48, optimizer="sgd", lr=0.5, **QUIET)
    assert history["loss"][0] == pytest.approx(before["loss"], rel=1e-12)
    assert history["accuracy"][0] == before["accuracy"]
    middle = model.evaluate(x, y, lengths)
    assert middle["loss"] != before["loss"]
    reference = _classifier(dtype="float64")
    two = reference.fit(x, y, lengths, epochs=2, batch_size=48, optimizer="sgd", lr=0.5, **QUIET)
    assert two["loss"][1] == pytest.approx(middle["loss"], rel=1e-12)


def test_regression_history_reports_rmse():
    rng = RNG(0)
    x, y, lengths = adding_problem(60, 8, rng, min_len=4)
    model = SequenceModel(input_size=2, hidden_sizes=[6], task="regression", output_size=1, seed=0)
    history = model.fit(x, y, lengths, epochs=2, batch_size=16, validation_split=0.25, **QUIET)
    assert set(history.rows[0]) == {
        "epoch",
        "loss",
        "rmse",
        "val_loss",
        "val_rmse",
        "val_mae",
        "lr",
        "seconds",
    }
    for row in history.rows:
        # loss is the MSE, rmse its root (summed in float64, so equal to float32 precision)
        assert row["rmse"] == pytest.approx(math.sqrt(row["loss"]), rel=1e-5)
        assert row["val_rmse"] == pytest.approx(math.sqrt(row["val_loss"]), rel=1e-5)
        assert 0 < row["val_mae"] <= row["val_rmse"]


def test_module_fit_and_method_fit_are_the_same():
    x, y, lengths = _sines(40)
    a, b = _classifier(), _classifier()
    ha = a.fit(x, y, lengths, epochs=2, batch_size=8, seed=4, **QUIET)
    hb = train_module.fit(b, x, y, lengths, epochs=2, batch_size=8, seed=4, **QUIET)
    assert _same_params(a.params, b.params)
    assert _without_seconds(ha) == _without_seconds(hb)


# --------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(hidden_sizes=[8, 6], dropout=0.3),
        dict(cell="gru", bidirectional=True, hidden_sizes=[6, 5], dropout=0.5),
    ],
    ids=["lstm", "lstm-dropout", "bigru-dropout"],
)
def test_same_seed_gives_bit_identical_parameters(config):
    x, y, lengths = _sines(50, seed=2)
    options = dict(epochs=3, batch_size=8, lr=0.02, **QUIET)
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        model = _classifier(**config)
        history = model.fit(x, y, lengths, seed=seed, **options)
        runs[name] = (model.state_dict(), _without_seconds(history))
    assert _same_params(runs["a"][0], runs["b"][0])
    assert runs["a"][1] == runs["b"][1]
    assert not _same_params(runs["a"][0], runs["c"][0])
    start = _classifier(**config).state_dict()
    assert not _same_params(start, runs["a"][0])


def test_default_training_seed_is_the_model_seed():
    x, y, lengths = _sines(40)
    a = _classifier(seed=3, dropout=0.2, hidden_sizes=[6, 6])
    b = _classifier(seed=3, dropout=0.2, hidden_sizes=[6, 6])
    a.fit(x, y, lengths, epochs=2, batch_size=8, **QUIET)
    b.fit(x, y, lengths, epochs=2, batch_size=8, seed=3, **QUIET)
    assert _same_params(a.params, b.params)


def test_seed_only_drives_shuffling_and_dropout():
    # No shuffle, no bucketing and no dropout: nothing is random, so the seed cannot matter.
    x, y, lengths = _sines(40)
    a, b = _classifier(), _classifier()
    fixed = dict(epochs=2, batch_size=8, shuffle=False, bucket=False, **QUIET)
    a.fit(x, y, lengths, seed=1, **fixed)
    b.fit(x, y, lengths, seed=2, **fixed)
    assert _same_params(a.params, b.params)
    c = _classifier()
    c.fit(x, y, lengths, seed=2, epochs=2, batch_size=8, **QUIET)  # shuffled
    assert not _same_params(a.params, c.params)


# -------------------------------------------------------------------------- validation_split
def _spy_split(monkeypatch):
    calls = []
    original = train_module.train_validation_split

    def spy(n, fraction, rng, stratify=None):
        result = original(n, fraction, rng, stratify=stratify)
        calls.append({"n": n, "stratify": stratify, "result": result})
        return result

    monkeypatch.setattr(train_module, "train_validation_split", spy)
    return calls


def test_validation_split_holds_out_a_stratified_share(monkeypatch):
    calls = _spy_split(monkeypatch)
    x, _, lengths = _sines(80, seed=4)
    y = np.zeros(80, dtype=np.int64)
    y[RNG(1).permutation(80)[:20]] = 1  # 60 of class 0, 20 of class 1
    model = _classifier()
    history = model.fit(x, y, lengths, validation_split=0.25, epochs=2, batch_size=16, **QUIET)
    assert len(calls) == 1
    train_idx, val_idx = calls[0]["result"]
    np.testing.assert_array_equal(calls[0]["stratify"], y)
    assert len(val_idx) == 20 and len(train_idx) == 60
    assert np.bincount(y[val_idx], minlength=2).tolist() == [15, 5]
    assert np.intersect1d(train_idx, val_idx).size == 0
    # Exactly the same as training on the rest with the held-out rows as explicit validation.
    explicit = _classifier()
    history2 = explicit.fit(
        x[train_idx],
        y[train_idx],
        lengths[train_idx],
        validation=(x[val_idx], y[val_idx], lengths[val_idx]),
        epochs=2,
        batch_size=16,
        **QUIET,
    )
    assert _same_params(model.params, explicit.params)
    assert _without_seconds(history) == _without_seconds(history2)
    assert history["val_loss"][-1] == pytest.approx(
        model.evaluate(x[val_idx], y[val_idx], lengths[val_idx])["loss"], rel=1e-9
    )


def test_validation_split_is_plain_for_regression_and_ignored_with_validation(monkeypatch):
    calls = _spy_split(monkeypatch)
    x, y, lengths = adding_problem(50, 6, RNG(0))
    model = SequenceModel(input_size=2, hidden_sizes=[4], task="regression", output_size=1, seed=0)
    model.fit(x, y, lengths, validation_split=0.3, epochs=1, **QUIET)
    assert len(calls) == 1 and calls[0]["stratify"] is None
    train_idx, val_idx = calls[0]["result"]
    assert (len(train_idx), len(val_idx)) == (35, 15)
    model.fit(x, y, lengths, validation=(x[:5], y[:5]), validation_split=0.3, epochs=1, **QUIET)
    assert len(calls) == 1  # an explicit validation set wins; nothing is split off


# ---------------------------------------------------------------------------- early stopping
def _opposite_labels():
    """Validation labels are the opposite of the training labels: the better the model fits the
    training data, the worse its validation loss, so the validation loss must rise."""
    x, y, lengths = _sines(64, seed=0)
    return (x, y, lengths), (x, 1 - y, lengths), dict(hidden_sizes=[8], seed=0), 0.03, 16


def _overfitting():
    """24 very noisy training sequences memorised by a large model: the validation loss first
    falls, then rises (the best epoch is in the middle)."""
    rng = RNG(1)
    train = noisy_sines(24, 16, 2, rng, noise=1.0)
    validation = noisy_sines(200, 16, 2, rng, noise=1.0)
    return train, validation, dict(hidden_sizes=[32], seed=1), 0.05, 8


@pytest.mark.parametrize("case", [_opposite_labels, _overfitting], ids=["opposite", "overfit"])
def test_early_stopping_restores_the_best_epoch(case):
    (x, y, lengths), validation, config, lr, batch_size = case()
    patience, epochs = 2, 40
    options = dict(lr=lr, batch_size=batch_size, seed=0, **QUIET)
    model = _classifier(**config)
    history = model.fit(
        x, y, lengths, validation=validation, epochs=epochs, early_stopping=patience, **options
    )
    val_loss = history["val_loss"]
    assert history.stopped_early
    assert len(history) < epochs
    best = int(np.argmin(val_loss)) + 1
    assert history.best_epoch == best
    assert len(history) == best + patience  # stopped after `patience` epochs without progress
    if case is _overfitting:
        assert 1 < best and val_loss[best - 1] < val_loss[0]
    # The final parameters are those of the best epoch ...
    assert model.evaluate(*validation)["loss"] == pytest.approx(min(val_loss), rel=1e-6)
    # ... bit for bit: training is a pure function of (seed, epoch), so `best` epochs reproduce
    # them exactly.
    reference = _classifier(**config)
    reference.fit(x, y, lengths, epochs=best, **options)
    assert _same_params(model.params, reference.params)

    # restore_best=False keeps the parameters of the last epoch.
    last = _classifier(**config)
    history = last.fit(
        x,
        y,
        lengths,
        validation=validation,
        epochs=epochs,
        early_stopping=patience,
        restore_best=False,
        **options,
    )
    assert history["val_loss"] == val_loss
    assert last.evaluate(*validation)["loss"] == pytest.approx(val_loss[-1], rel=1e-6)
    reference = _classifier(**config)
    reference.fit(x, y, lengths, epochs=len(val_loss), **options)
    assert _same_params(last.params, reference.params)


def test_without_early_stopping_all_epochs_run_and_last_params_are_kept():
    (x, y, lengths), validation, config, lr, batch_size = _opposite_labels()
    model = _classifier(**config)
    history = model.fit(
        x, y, lengths, validation=validation, epochs=6, lr=lr, batch_size=batch_size, **QUIET
    )
    assert len(history) == 6 and not history.stopped_early and history.best_epoch == 1
    assert model.evaluate(*validation)["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-6)
    assert history["val_loss"][-1] > history["val_loss"][0]


# -------------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    ("sgd", dict(lr=0.1, optimizer_options={"momentum": 0.9, "nesterov": True})),
    ("rmsprop", dict(lr=0.01)),
    ("adadelta", dict()),  # its own default lr=1.0
    ("adam", dict(lr=0.02)),
]


@pytest.mark.parametrize("name,options", OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_every_optimizer_lowers_the_training_loss(name, options):
    x, y, lengths = _sines(64, seed=0)
    model = _classifier()
    initial = model.evaluate(x, y, lengths)["loss"]
    history = model.fit(x, y, lengths, optimizer=name, epochs=20, batch_size=8, **options, **QUIET)
    final = model.evaluate(x, y, lengths)["loss"]
    assert final < 0.7 * initial, (name, initial, final)
    assert history["loss"][-1] < history["loss"][0]
    expected_lr = options.get("lr", 1.0)
    assert history["lr"] == [expected_lr] * 20


def test_sgd_momentum_and_nesterov_change_the_trajectory():
    x, y, lengths = _sines(40)
    results = []
    for extra in ({}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}):
        model = _classifier()
        model.fit(
            x,
            y,
            lengths,
            optimizer="sgd",
            lr=0.05,
            optimizer_options=extra,
            epochs=2,
            batch_size=8,
            **QUIET,
        )
        results.append(model.state_dict())
    assert not _same_params(results[0], results[1])
    assert not _same_params(results[1], results[2])


def test_an_optimizer_instance_is_accepted():
    x, y, lengths = _sines(40)
    a, b = _classifier(), _classifier()
    a.fit(x, y, lengths, optimizer=SGD(lr=0.05, momentum=0.5), epochs=2, batch_size=8, **QUIET)
    b.fit(
        x,
        y,
        lengths,
        optimizer="sgd",
        lr=0.05,
        optimizer_options={"momentum": 0.5},
        epochs=2,
        batch_size=8,
        **QUIET,
    )
    assert _same_params(a.params, b.params)


# ------------------------------------------------------------------ clipping, decay, schedule
BASE = dict(optimizer="adam", lr=0.05, epochs=2, batch_size=16, seed=0, **QUIET)


def _fit_params(**options):
    x, y, lengths = _sines(48, seed=5)
    model = _classifier()
    history = model.fit(x, y, lengths, **{**BASE, **options})
    return model.state_dict(), history


@pytest.mark.parametrize(
    "option,active,inactive",
    [
        ("clip_norm", 0.01, 1e9),
        ("clip_value", 1e-4, 1e9),
        ("weight_decay", 0.5, 0.0),
        (
            "schedule",
            {"name": "cosine", "lr": 0.05, "total_steps": 6},
            {"name": "constant", "lr": 0.05},
        ),
    ],
)
def test_training_options_take_effect(option, active, inactive):
    baseline, _ = _fit_params()
    changed, _ = _fit_params(**{option: active})
    unchanged, _ = _fit_params(**{option: inactive})
    assert not _same_params(baseline, changed)
    # A value that cannot act (a clip nobody reaches, no decay, the same constant rate) changes
    # nothing, so the difference above is the option's doing.
    assert _same_params(baseline, unchanged)


@pytest.mark.parametrize("option", ["clip_value", "clip_norm"])
def test_clipping_bounds_each_sgd_update(option):
    # Plain SGD moves each parameter by lr * clipped gradient: at most lr * clip_value per entry
    # per step, or lr * clip_norm in global norm per step.
    x, y, lengths = _sines(48, seed=5)
    model = _classifier(dtype="float64")
    start = model.state_dict()
    lr, limit, steps = 0.5, 1e-3, 3
    history = model.fit(
        x, y, lengths, optimizer="sgd", lr=lr, epochs=1, batch_size=16, **{option: limit}, **QUIET
    )
    assert len(history) == 1
    deltas = [model.params[key] - start[key] for key in start]
    if option == "clip_value":
        largest = max(float(np.abs(d).max()) for d in deltas)
        assert 0 < largest <= steps * lr * limit + 1e-12
    else:
        norm = math.sqrt(sum(float(np.sum(d * d)) for d in deltas))
        assert 0.5 * lr * limit < norm <= steps * lr * limit + 1e-12


def test_weight_decay_reaches_the_named_optimizer():
    # SGD with weight decay wd on a loss L minimises L + wd/2 |p|^2: the decay shrinks weights.
    plain, _ = _fit_params(optimizer="sgd", lr=0.2, epochs=3)
    decayed, _ = _fit_params(optimizer="sgd", lr=0.2, epochs=3, weight_decay=0.5)

    def norm(params):
        return math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in params.values()))

    assert norm(decayed) < 0.9 * norm(plain)


def test_lr_column_follows_the_schedule():
    # 48 sequences in batches of 16: 3 updates per epoch.
    config = {"name": "cosine", "lr": 0.01, "total_steps": 12}
    _, history = _fit_params(schedule=config, epochs=5)
    schedule = make_schedule("cosine", lr=0.01, total_steps=12)
    expected = [schedule.lr_at(3 * epoch) for epoch in range(5)]  # each epoch's first update
    assert history["lr"] == pytest.approx(expected, rel=1e-12)
    assert history["lr"][0] == 0.01 and history["lr"][4] == 0.0
    _, history = _fit_params(schedule={"name": "step", "lr": 0.1, "step_size": 3, "gamma": 0.5})
    assert history["lr"] == [0.1, 0.05]


def test_the_schedule_sets_the_rate_of_every_update():
    # SGD with one full batch per epoch, float64: p_{k+1} = p_k - lr_k * grad(p_k) exactly.
    x, y, lengths = _sines(32, seed=6)
    model = _classifier(dtype="float64")
    reference = _classifier(dtype="float64")
    schedule = {"name": "step", "lr": 0.4, "step_size": 1, "gamma": 0.5}
    history = model.fit(
        x,
        y,
        lengths,
        optimizer="sgd",
        lr=1.0,  # SGD needs an lr; the schedule overrides it at every step
        schedule=schedule,
        epochs=3,
        batch_size=32,
        **QUIET,
    )
    assert history["lr"] == [0.4, 0.2, 0.1]
    for lr in (0.4, 0.2, 0.1):
        _, grads = reference.loss_and_grads(x, y, lengths)
        for key, value in reference.params.items():
            value -= lr * grads[key]
    for key in reference.params:
        np.testing.assert_allclose(
            model.params[key], reference.params[key], rtol=1e-10, atol=1e-13, err_msg=key
        )


# ------------------------------------------------------------------------------- bad options
_X, _Y, _LENGTHS = _sines(8, seed=7)
BAD_OPTIONS = [
    ({"epoch": 3}, TypeError, "unknown option\\(s\\) 'epoch'"),
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"epochs": 2.5}, TypeError, "epochs must be an int"),
    ({"batch_size": -1}, ValueError, "batch_size must be >= 1"),
    ({"clip_norm": 0}, ValueError, "clip_norm must be > 0"),
    ({"clip_norm": "1"}, TypeError, "clip_norm must be a number"),
    ({"clip_value": float("nan")}, ValueError, "clip_value must be > 0"),
    ({"validation": (_X,)}, TypeError, "validation must be a tuple"),
    ({"validation": _X}, TypeError, "validation must be a tuple"),
    ({"validation": (_X, _Y[:3])}, ValueError, "validation: y has 3 rows"),
    ({"validation": (_X[..., [0, 0]], _Y)}, ValueError, "validation: .*2 features"),
    ({"validation_split": 1.0}, ValueError, "validation_split must be in"),
    ({"validation_split": "0.2"}, TypeError, "validation_split must be a number"),
    ({"early_stopping": 0}, ValueError, "early_stopping must be >= 1"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"optimizer": "adagrad"}, ValueError, "optimizer must be one of 'sgd'.*got 'adagrad'"),
    ({"lr": -0.1}, ValueError, "lr must be > 0"),
    ({"weight_decay": -1}, ValueError, "weight_decay must be >= 0"),
    ({"optimizer_options": {"momentun": 0.9}}, ValueError, "unknown argument.*'momentun'"),
    ({"optimizer_options": 0.9}, TypeError, "optimizer_options must be a dict"),
    ({"schedule": "cosine"}, TypeError, "schedule must be a sparklstm.optim.Schedule"),
    ({"schedule": {"name": "cosine", "lr": 0.1}}, ValueError, "schedule: .*total_steps"),
    ({"shuffle": "no"}, TypeError, "shuffle must be True or False"),
    ({"restore_best": None}, TypeError, "restore_best must be True or False"),
    ({"optimizer": SGD(lr=0.1), "lr": 0.5}, ValueError, "lr: set these on the Optimizer"),
]


def _case_id(options) -> str:
    return "+".join(f"{key}={type(value).__name__}" for key, value in options.items())


@pytest.mark.parametrize(
    "options,error,match",
    [pytest.param(*case, id=f"{i}-{_case_id(case[0])}") for i, case in enumerate(BAD_OPTIONS)],
)
def test_bad_options_raise_before_any_parameter_changes(options, error, match):
    model = _classifier()
    before = model.state_dict()
    with pytest.raises(error, match=match):
        model.fit(_X, _Y, _LENGTHS, **options, **QUIET)
    assert _same_params(before, model.params)


def test_bad_training_data_is_named():
    x, y, lengths = _sines(8)
    model = _classifier()
    before = model.state_dict()
    with pytest.raises(ValueError, match="training data: y has 7 rows"):
        model.fit(x, y[:7], lengths, **QUIET)
    with pytest.raises(ValueError, match="training data: .*class 2, outside"):
        model.fit(x, np.full(8, 2), lengths, **QUIET)
    assert _same_params(before, model.params)


def test_progress_bar_defaults_to_off_when_stderr_is_not_watched(capsys, monkeypatch):
    x, y, lengths = _sines(n=32)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    _classifier().fit(x, y, lengths, epochs=1, batch_size=16)
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a terminal
    _classifier().fit(x, y, lengths, epochs=1, batch_size=16, progress=True)
    assert "epoch 1" in capsys.readouterr().err.lower()
