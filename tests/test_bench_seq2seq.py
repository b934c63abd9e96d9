"""bench/seq2seq.py in --quick mode: the JSON it writes, and scores computed from decoding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import seq2seq
from sparklstm.model.decoding import Decoded
from sparklstm.model.seq2seq import Seq2SeqModel

TOKEN_METRICS = ("greedy_sequence_accuracy", "beam_sequence_accuracy", "token_accuracy")


def _read(path):
    return json.loads(path.read_text())


def _check_document(document, task, split):
    assert document["task"] == task
    assert document["split"] == split
    assert document["quick"] is True
    assert document["command"].startswith(f"python -m bench.seq2seq {task}")
    assert set(document["config"]) >= {"model", "training", "attention", "seeds"}
    assert document["machine"]["cores"] >= 1
    assert document["seconds"] >= 0
    runs = document["runs"]
    assert [(run["attention"], run["seed"]) for run in runs] == [
        (attention, seed)
        for attention in document["config"]["attention"]
        for seed in document["config"]["seeds"]
    ]
    for attention, metrics in document["summary"].items():
        mine = [run for run in runs if run["attention"] == attention]
        for metric, value in metrics.items():
            assert value["per_seed"] == [round(run[metric], 4) for run in mine]
            assert math.isclose(value["mean"], np.mean([run[metric] for run in mine]))
    return runs


def test_addition_quick_scores_decoded_outputs(tmp_path, monkeypatch):
    real_splits = seq2seq.transduction_splits
    seen = {}

    def recording_splits(*args, **kwargs):
        seen.update(real_splits(*args, **kwargs))
        return dict(seen)

    def oracle_beam_search(self, source, source_lengths=None, **kwargs):
        # A "beam search" that writes the targets: the beam score must become 1.
        targets = [np.asarray(t) for t in seen["eval"][1]]
        assert len(source) == len(targets)
        return Decoded(targets, np.zeros(len(targets)), None)

    monkeypatch.setattr(seq2seq, "transduction_splits", recording_splits)
    monkeypatch.setattr(Seq2SeqModel, "beam_search", oracle_beam_search)
    out = tmp_path / "addition.json"
    returned = seq2seq.run(["addition", "--quick", "--reverse-target", "0", "--out", str(out)])
    document = _read(out)
    assert returned["runs"] == document["runs"]
    runs = _check_document(document, "addition", "test")
    assert {run["attention"] for run in runs} == {"luong", "none"}
    eval_sources = seen["eval"][0]
    # The test split holds only the held-out source length (6), and train none.
    assert {len(s) for s in eval_sources} == {6}
    assert 6 not in {len(s) for s in seen["train"][0]}
    for run in runs:
        for metric in TOKEN_METRICS:
            assert isinstance(run[metric], float)
            assert 0.0 <= run[metric] <= 1.0
        assert run["beam_sequence_accuracy"] == 1.0  # the oracle's decoding was scored
        # Greedy decoding scored by the harness agrees with the library's evaluate().
        assert run["greedy_sequence_accuracy"] == run["evaluate_sequence_accuracy"]
        assert run["token_accuracy"] == pytest.approx(run["evaluate_token_accuracy"])
        assert run["eval_rows"] == len(eval_sources)
        for example in run["examples"]:
            assert example["beam"] == example["target"]
            assert example["source"].endswith("=")


def test_addition_quick_validation_stays_in_train(tmp_path):
    out = tmp_path / "addition_validation.json"
    seq2seq.run(["addition", "--quick", "--validation", "--attention", "luong", "--out", str(out)])
    document = _read(out)
    runs = _check_document(document, "addition", "validation")
    data = seq2seq.transduction_splits(
        "addition", seq2seq._merge(seq2seq.CONFIGS["addition"], seq2seq.QUICK["addition"]), True
    )
    # The validation rows are the train split's rows of length 5, left out of training.
    assert {len(s) for s in data["eval"][0]} == {5}
    assert {len(s) for s in data["train"][0]}.isdisjoint({5, 6})
    assert runs[0]["eval_rows"] == len(data["eval"][0])
    per_epoch = runs[0]["validation_sequence_accuracy_per_epoch"]
    assert len(per_epoch) == document["config"]["training"]["epochs"]
    assert all(0.0 <= value <= 1.0 for value in per_epoch)


def test_airline_quick_uses_the_forecasting_protocol(tmp_path):
    out = tmp_path / "airline.json"
    seq2seq.run(["airline", "--quick", "--attention", "none", "--out", str(out)])
    runs = _check_document(_read(out), "airline", "test")
    (run,) = runs
    assert 0.0 < run["fixed_origin_mape"] < 100.0
    assert 0.0 < run["mape"] < 100.0
    assert len(run["fixed_origin_predicted"]) == 36
    # The seasonal naive of the same protocol reproduces the published 13.2% and the 8.06% of
    # bench/accuracy/airline.json: the harness forecasts the months the one-step model does.
    assert run["fixed_origin_seasonal_naive_mape"] == pytest.approx(13.19, abs=0.01)
    assert run["seasonal_naive_mape"] == pytest.approx(8.06, abs=0.01)


def test_reversed_targets_are_scored_as_written(tmp_path, monkeypatch):
    """With --reverse-target the model writes the sum backwards; the harness turns its output
    around before scoring, so an oracle of the reversed targets scores 1."""
    real_splits = seq2seq.transduction_splits
    seen = {}

    def recording_splits(*args, **kwargs):
        seen.update(real_splits(*args, **kwargs))
        return dict(seen)

    def oracle_beam_search(self, source, source_lengths=None, **kwargs):
        targets = [np.asarray(t)[::-1] for t in seen["eval"][1]]
        return Decoded(targets, np.zeros(len(targets)), None)

    monkeypatch.setattr(seq2seq, "transduction_splits", recording_splits)
    monkeypatch.setattr(Seq2SeqModel, "beam_search", oracle_beam_search)
    out = tmp_path / "reversed.json"
    argv = ["addition", "--quick", "--attention", "luong", "--reverse-target", "1"]
    seq2seq.run([*argv, "--out", str(out)])
    (run,) = _read(out)["runs"]
    assert run["beam_sequence_accuracy"] == 1.0
    assert 0.0 <= run["greedy_sequence_accuracy"] <= 1.0


def _constant_forecaster(per_step, values):
    """A Seq2SeqModel whose every decoder step writes ``values`` (K = per_step scaled months):
    all weights zero but the output bias, so the output ignores inputs, states and attention."""
    model = Seq2SeqModel(input_size=1, output_size=per_step, hidden_sizes=[4], seed=0)
    for array in model.params.values():
        array[...] = 0.0
    model.params["output.bias"][...] = values
    return model


def test_airline_forecast_takes_a_seq2seq_model():
    from sparklstm.datasets.airline import (
        SeasonalLogDifferenceScaler,
        forecast,
        forecast_recursive,
        load_airline,
    )

    series = load_airline()[1]
    scaler = SeasonalLogDifferenceScaler.fit(series[:108])
    growth = np.array([0.5, -1.0, 0.25, 2.0])  # scaled year-on-year log growth, K = 4 months
    model = _constant_forecaster(4, growth)
    history = series[72:108]  # L = 24 months of growth need 36 months
    got = forecast(model, scaler, history, horizon=12)
    # Three decoder steps of 4 months in time order: month j grows by growth[j % 4] on the
    # month a year before: x[j] = x[j - 12] * exp(z std + mean).
    factor = np.exp(np.tile(growth, 3) * scaler.std + scaler.mean)
    np.testing.assert_allclose(got, history[-12:] * factor, rtol=1e-5)
    # 36 months from one origin: each 12-month block builds on the block before.
    fixed = forecast_recursive(model, scaler, series[:108], 24, 36, horizon=12)
    np.testing.assert_allclose(fixed[:12], got, rtol=1e-12)
    np.testing.assert_allclose(fixed[12:24], got * factor, rtol=1e-5)
    np.testing.assert_allclose(fixed[24:], got * factor**2, rtol=1e-5)
    # Rows of a batch are forecast independently.
    two = forecast(model, scaler, np.stack([history, series[60:96]]), horizon=12)
    np.testing.assert_allclose(two[1], series[84:96] * factor, rtol=1e-5)


def test_airline_forecast_refuses_a_seq2seq_model_without_its_horizon():
    from sparklstm.datasets.airline import SeasonalLogDifferenceScaler, forecast, load_airline

    series = load_airline()[1]
    scaler = SeasonalLogDifferenceScaler.fit(series[:108])
    model = _constant_forecaster(4, np.zeros(4))
    with pytest.raises(ValueError, match="needs horizon"):
        forecast(model, scaler, series[72:108])
    with pytest.raises(ValueError, match="multiple of the Seq2SeqModel's output_size = 4"):
        forecast(model, scaler, series[72:108], horizon=10)
    tokens = Seq2SeqModel(source_vocab_size=5, target_vocab_size=5, hidden_sizes=[4], seed=0)
    with pytest.raises(ValueError, match="real-valued targets"):
        forecast(tokens, scaler, series[72:108], horizon=12)


def test_airline_quick_direct_output_and_seed_ensemble(tmp_path):
    """--values-per-step 12 writes the 12 months in one decoder step; the ensemble is scored
    on the mean of the seeds' forecasts."""
    from sparklstm.datasets.airline import load_airline, mape

    out = tmp_path / "airline_direct.json"
    argv = ["airline", "--quick", "--attention", "none", "--seeds", "0", "1"]
    seq2seq.run([*argv, "--values-per-step", "12", "--out", str(out)])
    document = _read(out)
    runs = _check_document(document, "airline", "test")
    assert document["config"]["values_per_step"] == 12
    assert len(runs) == 2 and runs[0]["fixed_origin_predicted"] != runs[1]["fixed_origin_predicted"]
    truth = load_airline()[1][-36:]
    mean = np.mean([run["fixed_origin_predicted"] for run in runs], axis=0)
    ensemble = document["ensemble"]["none"]
    assert ensemble["seeds"] == [0, 1]
    assert ensemble["fixed_origin_mape"] == pytest.approx(mape(truth, mean))
    rolling = np.mean([run["predicted"] for run in runs], axis=0)
    assert ensemble["mape"] == pytest.approx(mape(truth, rolling))
    for run in runs:
        assert run["mape"] == pytest.approx(mape(truth, np.array(run["predicted"])), abs=1e-3)


def test_airline_quick_second_validation_origin(tmp_path):
    """--origin-year 1953 scores one 36-month forecast of 1954-56 from Dec 1953, trained on
    1949-1953 only; origins whose 36 months reach 1958 are refused."""
    from sparklstm.datasets.airline import load_airline, mape, seasonal_naive

    series = load_airline()[1]
    out = tmp_path / "origin.json"
    argv = ["airline", "--quick", "--validation", "--input-len", "24", "--attention", "none"]
    argv += ["--origin-year", "1953"]
    seq2seq.run([*argv, "--out", str(out)])
    document = _read(out)
    (run,) = _check_document(document, "airline", "validation")
    assert document["config"]["dataset"]["origin"] == "1953-12"
    naive = mape(series[60:96], seasonal_naive(series[:60], 36))
    assert run["fixed_origin_seasonal_naive_mape"] == pytest.approx(naive)
    # Training windows end by Dec 1953: 60 months, 48 year-on-year growths, 24 in + 12 out.
    assert run["train_windows"] == 48 - 36 + 1
    with pytest.raises(ValueError, match="--origin-year 1955: needs --validation"):
        seq2seq.run([*argv[:-1], "1955", "--out", str(tmp_path / "late.json")])
    with pytest.raises(ValueError, match="--origin-year 1953: needs --validation"):
        seq2seq.run(["airline", "--quick", "--origin-year", "1953", "--out", str(out)])


def test_addition_errors_counts_digit_places():
    from bench.seq2seq_addition_errors import operand_lengths, wrong_places

    assert operand_lengths("215+1=") == (3, 1)
    assert operand_lengths("12+34=") == (2, 2)
    assert wrong_places("216", "226") == (1,)  # the tens digit
    assert wrong_places("104", "04") == (2,)  # the hundreds digit missing
    assert wrong_places("99", "108") == (0, 1, 2)
    assert wrong_places("470", "470") == ()


def test_dates_quick_cosine_schedule_anneals_lr(tmp_path):
    """--schedule cosine: lr (1 + cos(pi k / K)) / 2 at update k of K = epochs * batches."""
    out = tmp_path / "dates.json"
    document = seq2seq.run(
        ["dates", "--quick", "--attention", "luong", "--epochs", "2", "--lr", "0.004"]
        + ["--schedule", "cosine", "--out", str(out)]
    )
    assert _read(out)["config"]["schedule"] == "cosine"
    (run,) = _check_document(document, "dates", "test")
    # Epoch 1 starts at update 0 (lr), epoch 2 at update K / 2 (lr (1 + cos(pi / 2)) / 2).
    assert run["lr_per_epoch"] == pytest.approx([0.004, 0.002])
    options = seq2seq.training_options(document["config"], run["train_rows"])
    batches = -(-run["train_rows"] // 32)
    assert options["schedule"] == {"name": "cosine", "lr": 0.004, "total_steps": 2 * batches}
    constant = seq2seq.training_options(seq2seq.CONFIGS["dates"], 1000)
    assert "schedule" not in constant
    with pytest.raises(SystemExit):
        seq2seq.run(["airline", "--quick", "--schedule", "cosine"])
