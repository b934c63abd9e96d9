"""The versioned accuracy configs (bench/configs) load and are valid, and bench.accuracy runs end
to end on a tiny override, writing the documented record with real values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.accuracy import (
    METRICS,
    load_accuracy_config,
    make_data_argv,
    run,
)
from sparklstm import SequenceModel
from sparklstm.datasets import load_ucr
from sparklstm.datasets.generate import task_options
from sparklstm.model.config import ModelConfig
from sparklstm.spark.config import DistributedConfig

CONFIGS = sorted((Path(__file__).parent.parent / "bench" / "configs").glob("*.json"))


def test_the_five_datasets_have_configs():
    names = {path.stem for path in CONFIGS}
    assert {"japanese_vowels", "basic_motions", "gun_point", "airline", "kjv"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid(path):
    config = load_accuracy_config(path)
    assert config.task in METRICS and config.seeds == (0, 1, 2)
    if config.dataset.get("validation"):  # a split for choosing settings: no target, no paper
        assert not config.target and not config.references
    else:
        assert "value" in config.target and config.references
    DistributedConfig.coerce({**config.training, "seed": 0})
    sizes = {"vocab_size": 8} if config.task == "kjv" else {"input_size": 3}
    ModelConfig.from_dict({**sizes, "output_size": 8, **config.model})
    argv = make_data_argv(config.dataset, Path("out"), None)
    assert argv[0] == config.task and argv[-3:] == ["--out", "out", "--overwrite"]
    assert set(config.dataset) - {"task"} <= set(task_options(config.task))


def _write(tmp_path, document):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"extra": 1}, "unknown key(s) extra"),
        ({"training": {"lrr": 0.1}}, "'lrr'"),
        ({"model": {"hidden": [4]}}, "'hidden'"),
        ({"data": {"path": "x"}}, "data.path"),
        ({"output": {"model": "x"}}, "output.model"),
        ({"evaluation": {"seq_len": 5}}, "evaluation.seq_len"),
        ({"target": {"min": 1}}, "target.min"),
        ({"dataset": {"task": "ucr", "name": "GunPoint", "scale": True}}, "dataset.scale"),
        ({"dataset": {"task": "ucr"}}, "dataset.name is required"),
        ({"dataset": {"task": "nope"}}, "dataset.task = 'nope'"),
        ({"training": {"seed": 1}}, "training.seed"),
        ({"training": {"batch_size": 0}}, "batch_size"),
        ({"seeds": []}, "seeds must be"),
    ],
)
def test_bad_config_names_the_key(tmp_path, change, message):
    document = json.loads((CONFIGS[0].parent / "gun_point.json").read_text(encoding="utf-8"))
    document.update(change)
    with pytest.raises(ValueError) as info:
        load_accuracy_config(_write(tmp_path, document))
    assert message in str(info.value) and "bad.json" in str(info.value)


def test_accuracy_job_end_to_end(spark, tmp_path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [
        str(CONFIGS[0].parent / "japanese_vowels.json"),
        "--seeds",
        "3",
        "--epochs",
        "1",
        "--limit-rows",
        "64",
        "--out",
        str(out),
        "--work-dir",
        str(work),
        "--quiet",
    ]
    document = run(argv)
    printed = capsys.readouterr().out
    assert "japanese_vowels seed 3: accuracy" in printed and "mean over 1 seed(s)" in printed
    written = json.loads((out / "japanese_vowels.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(document))
    for key in (
        "dataset",
        "metric",
        "target",
        "references",
        "command",
        "config",
        "overrides",
        "machine",
        "runs",
        "summary",
        "mean",
        "target_met",
    ):
        assert key in written, key
    assert written["complete"] and written["overrides"] == {"epochs": 1, "limit_rows": 64}
    assert written["machine"]["cores"] >= 1 and "blas" in written["machine"]
    (result,) = written["runs"]
    assert result["seed"] == 3 and result["epochs"] == 1 and result["train_rows"] == 64
    assert 0.0 <= result["accuracy"] <= 1.0 and result["training_seconds"] > 0
    assert written["mean"] == result["accuracy"]

    # The accuracy is that of the saved predictions against the official test labels (the
    # first 64 rows), and the saved model reproduces those predictions.
    test = load_ucr("JapaneseVowels", "test")
    predictions = np.array(result["predictions"])
    assert len(predictions) == result["test_rows"] == 64
    assert result["accuracy"] == np.mean(predictions == test.labels[:64])
    stats = json.loads((work / "data" / "standardize.json").read_text(encoding="utf-8"))
    train = load_ucr("JapaneseVowels", "train")
    valid = np.arange(train.features.shape[1]) < train.lengths[:, None]
    np.testing.assert_allclose(stats["mean"], train.features[valid].mean(axis=0))
    x = (test.features[:64] - stats["mean"]) / stats["std"]
    model = SequenceModel.load(result["model"])
    np.testing.assert_array_equal(model.predict(x, lengths=test.lengths[:64]), predictions)


def test_airline_scores_rolling_and_fixed_origin_forecasts(tmp_path):
    """Both airline protocols, checked against a hand recursion with a small untrained model:
    the rolling forecasts start every 12 months from the observed months; the fixed-origin
    forecast feeds its own forecasts back and never sees a held-out month."""
    from bench.accuracy import airline_forecasts, fixed_origin_forecast, score_airline
    from sparklstm.datasets.airline import LogStandardScaler, load_airline, mape
    from sparklstm.jobs import make_data

    document = json.loads((CONFIGS[0].parent / "airline.json").read_text(encoding="utf-8"))
    document["dataset"] = {"task": "airline", "input_len": 24, "horizon": 12, "level": "input-mean"}
    config = load_accuracy_config(_write(tmp_path, document))
    data_dir = tmp_path / "data"
    make_data.build(make_data_argv(config.dataset, data_dir, None))
    model = SequenceModel(
        input_size=1, hidden_sizes=[4], output_size=12, task="regression", dtype="float64", seed=1
    )
    scaler = LogStandardScaler.from_config(
        json.loads((data_dir / "scaler.json").read_text(encoding="utf-8"))
    )
    _, series = load_airline()
    cut = len(series) - 36

    def step(scaled_window):
        level = scaled_window.mean()
        return model.forward((scaled_window - level)[None, :, None])[0] + level

    scaled = list(scaler.transform(series[:cut]))
    for _ in range(3):
        scaled.extend(step(np.asarray(scaled[-24:])))
    expected_fixed = scaler.inverse_transform(np.asarray(scaled[cut:]))
    fixed = fixed_origin_forecast(model, config, data_dir)
    np.testing.assert_allclose(fixed["predicted"], expected_fixed, rtol=1e-12)
    np.testing.assert_array_equal(fixed["truth"], series[cut:])

    rolling = airline_forecasts(model, config, data_dir)
    observed = scaler.transform(series)
    expected_rolling = np.concatenate(
        [scaler.inverse_transform(step(observed[s - 24 : s])) for s in (cut, cut + 12, cut + 24)]
    )
    np.testing.assert_allclose(rolling["predicted"].ravel(), expected_rolling, rtol=1e-12)
    # The first 12 months are the same forecast under both protocols; later ones differ.
    np.testing.assert_allclose(fixed["predicted"][:12], expected_rolling[:12], rtol=1e-12)
    assert not np.allclose(fixed["predicted"][12:], expected_rolling[12:])

    scores = score_airline(model, config, data_dir, None)
    assert scores["mape"] == pytest.approx(mape(series[cut:], expected_rolling))
    assert scores["fixed_origin_mape"] == pytest.approx(mape(series[cut:], expected_fixed))
    # The seasonal naive of the whole held-out period repeats 1957: the published 13.2%.
    assert scores["fixed_origin_seasonal_naive_mape"] == pytest.approx(13.19, abs=0.01)


def test_resume_keeps_finished_seeds_and_refuses_other_settings(spark, tmp_path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    base = [str(CONFIGS[0].parent / "japanese_vowels.json"), "--epochs", "1"]
    base += ["--limit-rows", "32", "--out", str(out), "--work-dir", str(work), "--quiet"]
    first = run([*base, "--seeds", "5"])
    resumed = run([*base, "--seeds", "5", "6", "--resume"])
    assert "japanese_vowels seed 5: kept from" in capsys.readouterr().out
    assert resumed["runs"][0] == first["runs"][0]  # not retrained
    assert [r["seed"] for r in resumed["runs"]] == [5, 6] and resumed["complete"]
    assert resumed["resumed_from"] == {"commands": [first["command"]], "seeds": [5]}
    assert resumed["mean"] == pytest.approx(np.mean([r["accuracy"] for r in resumed["runs"]]))
    with pytest.raises(ValueError, match="different overrides"):
        run([*base[:2], "2", *base[3:], "--seeds", "5", "--resume"])


@pytest.mark.parametrize("validation", [False, True])
def test_airline_with_seasonal_differences_rebuilds_each_year_from_the_one_before(
    tmp_path, validation
):
    """The shipped config's representation: every 12 forecast months are last year's months
    times the model's growth factors; the fixed-origin forecast builds 1959 on its own 1958.
    The validation split scores 1955-1957 the same way and never reads 1958-1960."""
    from bench.accuracy import airline_forecasts, fixed_origin_forecast
    from sparklstm.datasets.airline import (
        SeasonalLogDifferenceScaler,
        forecast_recursive,
        load_airline,
    )
    from sparklstm.jobs import make_data

    document = json.loads((CONFIGS[0].parent / "airline.json").read_text(encoding="utf-8"))
    document["dataset"]["validation"] = validation
    config = load_accuracy_config(_write(tmp_path, document))
    data_dir = tmp_path / "data"
    make_data.build(make_data_argv(config.dataset, data_dir, None))
    windows = json.loads((data_dir / "windows.json").read_text(encoding="utf-8"))
    assert windows["seasonal_difference"] and windows["validation"] == validation
    _, series = load_airline()
    series = series[:-36] if validation else series
    cut = len(series) - 36
    scaler = SeasonalLogDifferenceScaler.fit(series[:cut])
    assert scaler.to_config() == json.loads((data_dir / "scaler.json").read_text(encoding="utf-8"))
    model = SequenceModel(
        input_size=1, hidden_sizes=[4], output_size=12, task="regression", dtype="float64", seed=2
    )

    def growth(history):  # [36] passengers -> the model's 12 year-on-year factors
        z = (np.log(history[12:]) - np.log(history[:-12]) - scaler.mean) / scaler.std
        return np.exp(model.forward(z[None, :, None])[0] * scaler.std + scaler.mean)

    known = list(series[:cut])
    for _ in range(3):
        known.extend(np.asarray(known[-12:]) * growth(np.asarray(known[-36:])))
    fixed = fixed_origin_forecast(model, config, data_dir)
    np.testing.assert_allclose(fixed["predicted"], known[cut:], rtol=1e-12)
    library = forecast_recursive(model, scaler, series[:cut], 24, 36)  # the same protocol
    np.testing.assert_allclose(fixed["predicted"], library, rtol=1e-12)
    np.testing.assert_array_equal(fixed["truth"], series[cut:])
    rolling = airline_forecasts(model, config, data_dir)
    expected = [series[s - 12 : s] * growth(series[s - 36 : s]) for s in (cut, cut + 12, cut + 24)]
    np.testing.assert_allclose(rolling["predicted"], np.stack(expected), rtol=1e-12)
