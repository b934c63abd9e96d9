"""The jobs with sequence-to-sequence models, run in-process: make_data -> train.py --head
seq2seq -> predict.py -> evaluate.py on a small ``addition`` dataset (token targets; both kinds
of session) and a small Airline forecasting dataset (real-valued targets), each figure checked
against the library on the same model and data; the per-horizon forecast metrics against
NumPy; and the bad combinations refused in one line before Spark starts."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.cli import run_job
from sparklstm.jobs import evaluate as evaluate_job
from sparklstm.jobs import make_data
from sparklstm.jobs import predict as predict_job
from sparklstm.jobs import train as train_job
from sparklstm.model.decoding import DecodeOptions
from sparklstm.model.seq2seq import Seq2SeqModel, per_step_metrics
from sparklstm.options import options_of
from sparklstm.spark.rounds import add_totals
from sparklstm.spark.session import is_connect


def _json_line(text: str, prefix: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, text
    return json.loads(lines[-1][len(prefix) :])


def _ids(table, column: str) -> list[np.ndarray]:
    return [np.array(row, dtype=np.int64) for row in table.column(column).to_pylist()]


# ------------------------------------------------------------ per-horizon forecast metrics
def _by_hand(forecast: np.ndarray, targets: list[np.ndarray]) -> dict[str, float]:
    """RMSE, MAE and MAPE (over non-zero targets) in all and per step, with NumPy."""
    errors: dict[int, list[float]] = {}
    wanted: dict[int, list[float]] = {}
    for row, target in enumerate(targets):
        for step, value in enumerate(target[:, 0]):
            errors.setdefault(step, []).append(forecast[row, step, 0] - value)
            wanted.setdefault(step, []).append(value)
    found: dict[str, float] = {}

    def put(suffix: str, e: np.ndarray, y: np.ndarray) -> None:
        found["rmse" + suffix] = float(np.sqrt(np.mean(e**2)))
        found["mae" + suffix] = float(np.mean(np.abs(e)))
        if np.any(y != 0):
            found["mape" + suffix] = float(100 * np.mean(np.abs(e[y != 0]) / np.abs(y[y != 0])))

    put(
        "", np.concatenate([errors[s] for s in errors]), np.concatenate([wanted[s] for s in wanted])
    )
    for step in errors:
        put(f"_step_{step + 1}", np.array(errors[step]), np.array(wanted[step]))
    return found


def test_forecast_metrics_per_horizon_step_are_those_of_the_recursive_forecast():
    rng = np.random.default_rng(7)
    model = Seq2SeqModel(input_size=2, output_size=1, hidden_sizes=[5], seed=1, dtype="float64")
    sources = [rng.normal(size=(k, 2)) for k in rng.integers(3, 8, size=30)]
    targets = [rng.normal(size=(k, 1)) for k in rng.integers(1, 4, size=30)]
    targets[0] = rng.normal(size=(4, 1))  # two rows reach step 4, whose targets are all zero
    targets[1] = np.zeros((4, 1))
    targets[0][3] = 0.0
    targets[2][0] = 0.0  # a zero target is left out of MAPE only
    forecast = model.forecast(sources, 4)
    expected = _by_hand(forecast, targets)
    assert "mape_step_4" not in expected and "rmse_step_4" in expected

    scores = model.evaluate(sources, targets, batch_size=7)
    assert set(scores) == set(expected) | {"loss"}
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, rel=1e-12), name
    assert [record["step"] for record in per_step_metrics(scores)] == [1, 2, 3, 4]
    assert per_step_metrics(scores)[3]["mape"] is None
    assert per_step_metrics(scores)[1]["rmse"] == scores["rmse_step_2"]

    # Totals add up as the executors' do: two halves summed give the whole's metrics.
    data = model.prepare(sources, targets)
    halves = [model.evaluation_totals(data.take(np.arange(a, b))) for a, b in ((0, 13), (13, 30))]
    summed = model.metrics_from_totals(add_totals(*halves))
    assert summed == pytest.approx(scores, rel=1e-12)


# ----------------------------------------------------------------------- addition (tokens)
@pytest.fixture(scope="module")
def addition_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seq2seq-jobs") / "addition"
    argv = ["addition", "--rows", "300", "--max-digits", "2", "--held-out-lengths", ""]
    assert make_data.main(argv + ["--seed", "4", "--test-fraction", "0.2", "--out", str(out)]) == 0
    return out


def _session_flags(spark, request) -> list[str]:
    """``--remote URL`` on Spark Connect; the classic session runs in this process already."""
    if is_connect(spark):
        return ["--remote", request.getfixturevalue("connect_server").url]
    return []


def test_addition_trains_predicts_and_evaluates_as_the_library_does(
    any_spark, request, addition_data, tmp_path, capsys
):
    session = _session_flags(any_spark, request)
    model_dir, rounds = tmp_path / "model", tmp_path / "rounds.jsonl"
    columns = ["--features-col", "source", "--target-col", "target"]
    status = train_job.main(
        ["--data", str(addition_data / "train"), *columns, "--head", "seq2seq"]
        + ["--hidden-sizes", "12", "--embedding-dim", "6", "--attention", "luong"]
        + ["--epochs", "1", "--batch-size", "32", "--lr", "0.02", "--partitions", "2"]
        + ["--quiet", "--output", str(model_dir), "--metrics", str(rounds), *session]
    )
    assert status == 0
    summary = _json_line(capsys.readouterr().out, "summary: ")
    model = Seq2SeqModel.load(model_dir)
    assert model.config.token_source and model.config.token_target
    assert model.config.hidden_sizes == (12,) and model.config.attention == "luong"
    assert model.metadata["columns"] == {
        "features_col": "source",
        "label_col": "target",
        "length_col": None,
        "target_length_col": None,
    }
    history = [json.loads(line) for line in rounds.read_text(encoding="utf-8").splitlines()]
    assert len(history) == summary["rounds"] == 1 and history[-1]["train_loss"] > 0

    test = pq.read_table(addition_data / "test")
    sources, targets = _ids(test, "source"), _ids(test, "target")
    local = model.evaluate(sources, targets)

    # Beam search on the executors: the model file says it is a seq2seq model.
    predictions = tmp_path / "predictions"
    argv = ["--model", str(model_dir), "--data", str(addition_data / "test"), *session]
    decode = ["--beam-width", "2", "--max-length", "5", "--length-penalty", "0.5"]
    assert predict_job.main([*argv, *decode, "--output", str(predictions)]) == 0
    printed = _json_line(capsys.readouterr().out, "summary: ")
    assert printed["decoding"] == {
        "beam_width": 2,
        "max_len": 5,
        "length_penalty": 0.5,
        "horizon": None,
    }
    table = pq.read_table(predictions)
    assert table.column_names == ["source", "target", "prediction", "logProbability"]
    found = model.beam_search(_ids(table, "source"), beam_width=2, max_len=5, length_penalty=0.5)
    assert table.column("prediction").to_pylist() == [s.tolist() for s in found.sequences]
    np.testing.assert_allclose(
        table.column("logProbability").to_numpy(), found.log_probs, rtol=1e-6
    )

    report_path = tmp_path / "metrics.json"
    assert evaluate_job.main([*argv, "--output", str(report_path)]) == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report == _json_line(capsys.readouterr().out, "metrics: ")
    assert (report["task"], report["targets"], report["decoding"]) == (
        "seq2seq",
        "tokens",
        "greedy",
    )
    assert report["sequence_accuracy"] == local["sequence_accuracy"]
    assert report["token_accuracy"] == local["token_accuracy"]
    assert report["loss"] == pytest.approx(local["loss"], rel=1e-5)
    # ... which are what greedy decoding gets right, counted by hand.
    greedy = model.greedy_decode(sources, max_len=max(map(len, targets)) + 1).sequences
    exact = np.mean([np.array_equal(d, t) for d, t in zip(greedy, targets, strict=True)])
    assert report["sequence_accuracy"] == exact
    right = sum(
        int(np.sum(d[: len(t)] == t[: len(d)])) for d, t in zip(greedy, targets, strict=True)
    )
    assert report["token_accuracy"] == right / sum(map(len, targets))


# ------------------------------------------------------------------ Airline (forecasting)
@pytest.fixture(scope="module")
def airline_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seq2seq-jobs") / "airline"
    argv = ["airline", "--input-len", "12", "--horizon", "4", "--out", str(out)]
    assert make_data.main(argv) == 0
    return out


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A SQLite tracking store in this test's directory (the working directory, where MLflow
    puts artifacts); no tracking URI left set in the process afterwards."""
    if os.environ.get("CI"):
        import mlflow
    else:
        mlflow = pytest.importorskip("mlflow", reason="pip install 'sparklstm[mlflow]'")
    monkeypatch.chdir(tmp_path)
    yield mlflow, f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(None)


def test_a_forecaster_trains_predicts_and_evaluates_per_horizon_step(
    spark, airline_data, mlflow_store, tmp_path, capsys
):
    mlflow, store = mlflow_store
    model_dir = tmp_path / "model"
    status = train_job.main(
        ["--data", str(airline_data / "train"), "--validation", str(airline_data / "test")]
        + ["--head", "seq2seq", "--hidden-sizes", "6", "--attention", "none", "--epochs", "2"]
        + ["--batch-size", "16", "--lr", "0.02", "--partitions", "2", "--quiet"]
        + ["--output", str(model_dir), "--mlflow", store, "--mlflow-experiment", "seq2seq"]
    )
    assert status == 0
    summary = _json_line(capsys.readouterr().out, "summary: ")
    model = Seq2SeqModel.load(model_dir)
    assert (model.config.input_size, model.config.output_size) == (1, 1)

    # MLflow: the run's parameters, rounds and summary as today; the model as its files.
    client = mlflow.MlflowClient(store)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.head"] == "seq2seq"
    assert run.data.params["model.attention"] == "none"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == summary["rounds"]
    assert run.data.metrics["summary.validation.rmse_step_4"] == pytest.approx(
        summary["validation"]["rmse_step_4"]
    )
    logged = mlflow.artifacts.download_artifacts(summary["mlflow"]["model_files"])
    reloaded = Seq2SeqModel.load(logged)
    for name, value in model.params.items():
        np.testing.assert_array_equal(reloaded.params[name], value)

    test = pq.read_table(airline_data / "test")
    windows = np.array(test.column("features").to_pylist())  # (rows, 12, 1)
    labels = np.array(test.column("label").to_pylist())  # (rows, 4)
    forecast = model.forecast(windows, 4)
    # The model scores targets in its float type, float32.
    wanted = [row.astype(np.float32).astype(np.float64)[:, None] for row in labels]
    expected = _by_hand(forecast.astype(np.float64), wanted)

    predictions = tmp_path / "predictions"
    argv = ["--model", str(model_dir), "--data", str(airline_data / "test")]
    assert predict_job.main([*argv, "--horizon", "4", "--output", str(predictions)]) == 0
    table = pq.read_table(predictions)
    assert table.column_names == ["features", "label", "prediction"]  # no log-probability
    np.testing.assert_allclose(
        np.array(table.column("prediction").to_pylist()), forecast[:, :, 0], rtol=1e-6
    )

    report_path = tmp_path / "metrics.json"
    assert evaluate_job.main([*argv, "--output", str(report_path)]) == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["task"], report["targets"], report["horizon"]) == ("seq2seq", "values", 4)
    for name in ("rmse", "mae", "mape"):
        assert report[name] == pytest.approx(expected[name], rel=1e-5), name
        assert report[name] == pytest.approx(summary["validation"][name], rel=1e-9), name
    assert [record["step"] for record in report["per_step"]] == [1, 2, 3, 4]
    for record in report["per_step"]:
        for name in ("rmse", "mae", "mape"):
            wanted_value = expected[f"{name}_step_{record['step']}"]
            assert record[name] == pytest.approx(wanted_value, rel=1e-5), (record, name)
    # The steps are scored apart: they differ, and their mean square is the overall one.
    rmse = np.array([record["rmse"] for record in report["per_step"]])
    assert len(set(rmse.tolist())) == 4
    assert float(np.sqrt(np.mean(rmse**2))) == pytest.approx(report["rmse"], rel=1e-9)

    # A target length column cuts the targets: rows of 2 and 3 steps score steps 1-3 only.
    cut = tmp_path / "cut"
    cut.mkdir()
    steps = np.where(np.arange(test.num_rows) % 2 == 0, 2, 3).astype(np.int32)
    pq.write_table(test.append_column("steps", pa.array(steps)), cut / "part-0.parquet")
    argv = ["--model", str(model_dir), "--data", str(cut), "--target-col", "label"]
    assert evaluate_job.main([*argv, "--target-length-col", "steps"]) == 0
    report = _json_line(capsys.readouterr().out, "metrics: ")
    expected = _by_hand(
        forecast.astype(np.float64), [w[:n] for w, n in zip(wanted, steps, strict=True)]
    )
    assert [record["step"] for record in report["per_step"]] == [1, 2, 3]
    for name in ("rmse", "mae", "mape"):
        assert report[name] == pytest.approx(expected[name], rel=1e-5), name
        assert report["per_step"][2][name] == pytest.approx(expected[f"{name}_step_3"], rel=1e-5)


# ------------------------------------------------------------------------- bad combinations
def _one_line_error(monkeypatch, capsys, job, prog: str, argv: list[str]) -> str:
    """The job's stderr when started as a command with ``argv``: exactly one error line."""
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    with pytest.raises(SystemExit) as exit_:
        run_job(functools.partial(job.main, prog=prog), prog)
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0][len(f"{prog}: error: ") :]


def test_bad_combinations_are_refused_in_one_line_before_spark(
    monkeypatch, capsys, addition_data, tmp_path
):
    data = ["--data", str(addition_data / "train"), "--output", str(tmp_path / "m")]
    train = functools.partial(_one_line_error, monkeypatch, capsys, train_job, "train.py")
    assert train([*data, "--attention", "none"]) == (
        "--attention applies to --head seq2seq only; leave it out with --head last"
    )
    assert train([*data, "--head", "all", "--sampling-rate", "0.2"]).startswith(
        "--sampling-rate applies to --head seq2seq only"
    )
    assert train([*data, "--head", "seq2seq", "--dropout", "0.2"]).startswith(
        "--dropout is not an option of seq2seq models (--head seq2seq); leave it out (their "
        "model options: --source-vocab-size, --target-vocab-size, --embedding-dim, --cell,"
    )
    assert train([*data, "--target-col", "target"]) == (
        "--target-col is for seq2seq models (target sequences), not --head last; leave it out, "
        "or train with --head seq2seq"
    )
    assert train([*data, "--head", "seq2seq", "--target-col", "a", "--label-col", "b"]) == (
        "--target-col a and --label-col b both name the target sequence column; give one of them"
    )
    assert train([*data, "--head", "seq2seq", "--sampling-rate", "1"]) == (
        "--sampling-rate: sampling_rate must be in [0, 1), got 1.0"
    )
    assert train([*data, "--head", "seq2seq", "--end-token", "1"]) == (
        "start_token and end_token must differ"
    )
    assert not (tmp_path / "m").exists()

    # predict and evaluate: the model file decides which options apply.
    sequence = tmp_path / "sequence-model"
    SequenceModel(input_size=1, hidden_sizes=[3], output_size=2, seed=0).save(sequence)
    tokens = tmp_path / "token-model"
    Seq2SeqModel(source_vocab_size=9, target_vocab_size=9, hidden_sizes=[3], seed=0).save(tokens)
    values = tmp_path / "value-model"
    Seq2SeqModel(input_size=1, output_size=1, hidden_sizes=[3], seed=0).save(values)
    out = ["--data", str(addition_data / "test"), "--output", str(tmp_path / "p")]
    predict = functools.partial(_one_line_error, monkeypatch, capsys, predict_job, "predict.py")
    assert predict(["--model", str(sequence), *out, "--beam-width", "3"]) == (
        f"--beam-width is for seq2seq models; the --model {sequence} (head 'last') predicts "
        "without decoding: leave it out"
    )
    assert predict(["--model", str(tokens), *out, "--horizon", "3"]) == (
        f"--horizon does not apply: the --model {tokens} writes tokens"
    )
    assert predict(["--model", str(values), *out, "--beam-width", "2"]) == (
        f"--beam-width does not apply: the --model {values} writes real values (give --horizon)"
    )
    assert predict(["--model", str(values), *out]) == (
        f"the --model {values} forecasts real values: give --horizon (the steps to forecast)"
    )
    assert predict(["--model", str(tokens), *out, "--beam-width", "0"]) == (
        "decoding options: beam_width must be >= 1, got 0"
    )
    assert not (tmp_path / "p").exists()
    evaluate = functools.partial(_one_line_error, monkeypatch, capsys, evaluate_job, "evaluate.py")
    assert evaluate(["--model", str(sequence), *out[:2], "--target-length-col", "n"]) == (
        f"--target-length-col is for seq2seq models (target sequences), not the --model "
        f"{sequence} (head 'last'); leave it out, or train with --head seq2seq"
    )


def test_the_decoding_flags_come_from_the_decode_options():
    parser = predict_job._parser()
    actions = {action.dest: action for action in parser._actions}
    flags = []
    for option in options_of(DecodeOptions):
        action = actions[f"decode.{option.name}"]
        assert action.option_strings == [option.flag_name]
        assert action.help.startswith(option.help)
        assert f"(default: {option.default})" in action.help
        flags.append(option.flag_name)
    assert flags == ["--beam-width", "--max-length", "--length-penalty", "--horizon"]
    given = parser.parse_args(["--model", "m", "--output", "o", "--max-length", "7"])
    assert {k: v for k, v in vars(given).items() if k.startswith("decode.")} == {
        "decode.max_len": 7
    }
