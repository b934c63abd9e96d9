"""The jobs with long streams, run in-process: make_data writes a table of steps (delayed copy,
KJV cut into streams), train.py --stream-col trains on it by truncated BPTT with carried state,
evaluate.py scores it with carried state on the executors -- its figures those of the model's
own ``evaluate_streams`` on the same streams read back with pyarrow; a run killed after a
round resumes to the uninterrupted run's parameters; bad flags are refused in one line before
Spark starts."""

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
from sparklstm.cli import run_job, stream_columns
from sparklstm.datasets.streams import BLOCK_STEPS, delayed_copy_stream, kjv_streams
from sparklstm.jobs import evaluate as evaluate_job
from sparklstm.jobs import make_data
from sparklstm.jobs import predict as predict_job
from sparklstm.jobs import train as train_job
from sparklstm.spark.session import is_connect
from sparklstm.spark.streams import StreamColumns


def _json_line(text: str, prefix: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, text
    return json.loads(lines[-1][len(prefix) :])


def _streams(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """The table of steps at ``path`` as streams (inputs, targets, ids), by stream id, in
    position order."""
    table = pq.read_table(path).sort_by([("stream", "ascending"), ("position", "ascending")])
    stream = table.column("stream").to_numpy()
    ids, starts = np.unique(stream, return_index=True)
    cuts = [*starts[1:], len(stream)]
    features = table.column("features").to_numpy().astype(np.int64)
    labels = table.column("label").to_numpy().astype(np.int64)
    positions = table.column("position").to_numpy()
    for a, b in zip(starts, cuts, strict=True):
        assert np.array_equal(positions[a:b], np.arange(b - a))
    inputs = [features[a:b] for a, b in zip(starts, cuts, strict=True)]
    targets = [labels[a:b] for a, b in zip(starts, cuts, strict=True)]
    return inputs, targets, ids.tolist()


# ------------------------------------------------------------------------------ make_data
def test_delayed_copy_streams_are_written_block_by_block(tmp_path, capsys):
    out = tmp_path / "copy"
    length = BLOCK_STEPS + 500  # the delay crosses a block cut
    argv = ["delayed-copy", "--streams", "2", "--test-streams", "1", "--stream-length"]
    assert (
        make_data.main([*argv, str(length), "--delay", "5", "--seed", "3", "--out", str(out)]) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"train: {2 * length} rows -> {out / 'train'} (2 files)",  # 100,000 steps a file
        f"test: {length} rows -> {out / 'test'} (1 files)",
    ]
    schema = pq.read_schema(next((out / "train").glob("*.parquet")))
    assert [(f.name, str(f.type)) for f in schema] == [
        ("stream", "int64"),
        ("position", "int64"),
        ("features", "int32"),
        ("label", "int32"),
    ]
    inputs, targets, ids = _streams(out / "train")
    test_inputs, _, test_ids = _streams(out / "test")
    assert ids == [0, 1] and test_ids == [2]
    for stream, (x, y) in enumerate(zip(inputs, targets, strict=True)):
        assert np.array_equal(y[5:], x[:-5]) and not y[:5].any()
        assert set(np.unique(x)) == {0, 1, 2, 3}
        drawn = delayed_copy_stream(3, stream, length, 5, 4)
        assert np.array_equal(drawn[0], x) and np.array_equal(drawn[1], y)
    # The first block is the same whatever the length (block b draws from [seed, stream, b]).
    assert np.array_equal(delayed_copy_stream(3, 0, 100, 5, 4)[0], inputs[0][:100])
    assert not np.array_equal(test_inputs[0][:200], inputs[0][:200])


def test_kjv_text_is_cut_into_contiguous_streams():
    text = np.arange(103)  # 102 steps: streams of 26, 26, 25, 25 steps (array_split's sizes)
    splits = kjv_streams(text, np.arange(500, 520), 4)
    assert [len(s) - 1 for s in splits.train] == [26, 26, 25, 25]
    # Each stream's last id is the next one's first: every step t -> t + 1 is there once.
    joined = np.concatenate([s[:-1] for s in splits.train] + [splits.train[-1][-1:]])
    assert np.array_equal(joined, text)
    assert len(splits.test) == 1 and np.array_equal(splits.test[0], np.arange(500, 520))
    held = kjv_streams(text, np.arange(500, 520), 2, validation=True)
    assert np.array_equal(held.test[0], text[92:])  # the training text's last 1/10
    assert np.array_equal(np.concatenate([held.train[0][:-1], held.train[1]]), text[:92])
    with pytest.raises(ValueError, match="--streams 200: the training text has 102 steps"):
        kjv_streams(text, np.arange(3), 200)


# ------------------------------------------------------------------- train -> evaluate
@pytest.fixture(scope="module")
def copy_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream-jobs") / "copy"
    argv = ["delayed-copy", "--streams", "6", "--test-streams", "2", "--stream-length", "300"]
    assert make_data.main([*argv, "--delay", "2", "--seed", "1", "--out", str(out)]) == 0
    return out


TRAIN_FLAGS = (
    ["--stream-col", "stream", "--hidden-sizes", "16", "--embedding-dim", "4"]
    + ["--forward-length", "10", "--backward-length", "12", "--batch-size", "3"]
    + ["--partitions", "2", "--local-steps", "30", "--lr", "0.03", "--clip-norm", "5"]
)


def _session_flags(spark, request) -> list[str]:
    if is_connect(spark):
        return ["--remote", request.getfixturevalue("connect_server").url]
    return []


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


def test_a_stream_model_trains_and_evaluates_as_the_library_does(
    spark, copy_data, mlflow_store, tmp_path, capsys, monkeypatch
):
    mlflow, store = mlflow_store
    model_dir, rounds = tmp_path / "model", tmp_path / "rounds.jsonl"
    status = train_job.main(
        ["--data", str(copy_data / "train"), "--validation", str(copy_data / "test")]
        + [*TRAIN_FLAGS, "--epochs", "6", "--quiet", "--output", str(model_dir)]
        + ["--metrics", str(rounds), "--summary", str(tmp_path / "summary.json")]
        + ["--mlflow", store, "--mlflow-experiment", "streams"]
    )
    assert status == 0
    summary = _json_line(capsys.readouterr().out, "summary: ")
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary == written
    model = SequenceModel.load(model_dir)
    config = model.config
    assert (config.head, config.vocab_size, config.output_size) == ("all", 4, 4)
    assert config.hidden_sizes == (16,) and config.task == "classification"
    assert model.metadata["columns"] == {
        "features_col": "features",
        "label_col": "label",
        "length_col": None,
        "stream_col": "stream",
        "position_col": "position",
    }
    assert model.metadata["streams"] == {
        "forward_length": 10,
        "backward_length": 12,
        "state_at_round_start": "carry",
    }
    # 3 streams of 300 steps a worker, one group: 30 chunk updates an epoch, one round.
    assert (summary["workers"], summary["rounds_per_epoch"], summary["rounds"]) == (2, 1, 6)
    history = [json.loads(line) for line in rounds.read_text(encoding="utf-8").splitlines()]
    assert len(history) == 6 and history[-1]["epoch"] == 6
    assert history[-1]["train_loss"] < history[0]["train_loss"]

    # MLflow: the options given, the rounds, the summary and the model's files.
    client = mlflow.MlflowClient(store)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["streams.backward_length"] == "12"
    assert run.data.params["data.stream_col"] == "stream"
    assert run.data.params["model.head"] == "all"
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.value for m in sorted(losses, key=lambda m: m.step)] == [
        row["train_loss"] for row in history
    ]
    assert run.data.metrics["summary.validation.accuracy"] == summary["validation"]["accuracy"]
    logged = SequenceModel.load(
        mlflow.artifacts.download_artifacts(summary["mlflow"]["model_files"])
    )
    for name, value in model.params.items():
        np.testing.assert_array_equal(logged.params[name], value, err_msg=name)

    test_inputs, test_targets, _ = _streams(copy_data / "test")
    local = model.evaluate_streams(test_inputs, test_targets, chunk_length=10)
    # The copy two steps back crosses the chunk cuts: only a carried state gets it right.
    assert local["accuracy"] > 0.9, local
    assert summary["validation"]["accuracy"] == local["accuracy"]
    assert summary["validation"]["loss"] == pytest.approx(local["loss"], rel=1e-5)
    assert history[-1]["val_accuracy"] == local["accuracy"]

    report_path = tmp_path / "metrics.json"
    argv = ["--model", str(model_dir), "--data", str(copy_data / "test")]
    assert evaluate_job.main([*argv, "--chunk-length", "7", "--output", str(report_path)]) == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report == _json_line(capsys.readouterr().out, "metrics: ")
    assert (report["task"], report["streams"], report["steps"]) == ("classification", 2, 600)
    assert report["accuracy"] == local["accuracy"]
    assert report["loss"] == pytest.approx(local["loss"], rel=1e-5)
    assert report["bits_per_step"] == pytest.approx(local["loss"] / np.log(2), rel=1e-5)
    # ... which is the mean cross-entropy of one pass over each whole stream, by hand.
    nats = []
    for x, y in zip(test_inputs, test_targets, strict=True):
        probabilities = model.predict_proba(x[None, :])[0].astype(np.float64)  # (steps, 4)
        nats.append(-np.log(probabilities[np.arange(len(y)), y]))
    assert report["loss"] == pytest.approx(float(np.mean(np.concatenate(nats))), rel=1e-4)

    # predict.py writes predictions of whole sequences: a table of steps is refused.
    predictions = tmp_path / "predictions"
    assert _one_line_error(
        monkeypatch, capsys, predict_job, "predict.py", [*argv, "--output", str(predictions)]
    ) == (
        f"--data {copy_data / 'test'} is a table of steps (stream column 'stream', as the "
        f"--model {model_dir} was trained on): predict.py writes predictions of whole sequences, "
        "not of long streams; score them with evaluate.py"
    )
    assert not predictions.exists()


class _Killed(Exception):
    """The job dies after a round (its checkpoint written)."""


def test_a_killed_stream_run_resumes_to_the_uninterrupted_run(
    spark, copy_data, tmp_path, capsys, monkeypatch
):
    from sparklstm.spark import run_record

    data = ["--data", str(copy_data / "train"), *TRAIN_FLAGS, "--epochs", "1", "--quiet"]
    data[data.index("--local-steps") + 1] = "7"  # rounds stop mid-stream: 30 updates in 5
    assert train_job.main([*data, "--output", str(tmp_path / "whole")]) == 0
    whole = _json_line(capsys.readouterr().out, "summary: ")

    close = run_record.RoundBook.close

    def close_then_die(self, row, *args, **kwargs):
        stop = close(self, row, *args, **kwargs)
        if row["round"] == 3:
            raise _Killed
        return stop

    checkpoints = ["--checkpoint-dir", str(tmp_path / "ckpt"), "--output", str(tmp_path / "m")]
    with monkeypatch.context() as patch:
        patch.setattr(run_record.RoundBook, "close", close_then_die)
        with pytest.raises(_Killed):
            train_job.main([*data, *checkpoints])
    assert not (tmp_path / "m").exists()
    assert train_job.main([*data, *checkpoints, "--resume"]) == 0
    resumed = _json_line(capsys.readouterr().out, "summary: ")
    assert resumed["rounds"] == whole["rounds"] == 5
    assert resumed["train"] == whole["train"]
    a, b = SequenceModel.load(tmp_path / "whole"), SequenceModel.load(tmp_path / "m")
    for name, value in a.params.items():
        np.testing.assert_array_equal(b.params[name], value, err_msg=name)


def test_streams_are_scored_on_spark_connect(connect_spark, request, copy_data, tmp_path, capsys):
    """evaluate.py --remote: a per-step model's figures on a table of steps (the stream
    columns given as flags, the model trained elsewhere) are evaluate_streams'."""
    session = _session_flags(connect_spark, request)
    model = SequenceModel(vocab_size=4, embedding_dim=3, hidden_sizes=[5], output_size=4,
                          head="all", cell="gru", seed=3)  # fmt: skip
    model.save(tmp_path / "model")
    test = ["--model", str(tmp_path / "model"), "--data", str(copy_data / "test"), *session]
    assert evaluate_job.main([*test, "--stream-col", "stream", "--chunk-length", "9"]) == 0
    report = _json_line(capsys.readouterr().out, "metrics: ")
    inputs, targets, _ = _streams(copy_data / "test")
    local = model.evaluate_streams(inputs, targets)
    assert (report["streams"], report["steps"]) == (2, 600)
    assert report["accuracy"] == local["accuracy"]
    assert report["loss"] == pytest.approx(local["loss"], rel=1e-5)


def test_float_streams_are_scored_by_rmse_and_mae(spark, tmp_path, capsys):
    """A regression model on a table of steps with array features and array targets (other
    column names, positions starting anywhere, rows in no order): evaluate.py's RMSE and MAE
    are evaluate_streams'; a table the model cannot read is refused in one line."""
    rng = np.random.default_rng(4)
    lengths, starts = [37, 12, 25], [5, 0, 1000]
    inputs = [rng.normal(size=(n, 2)) for n in lengths]
    targets = [np.stack([x[:, 0] - x[:, 1], 0.5 * x[:, 1]], axis=1) for x in inputs]
    rows = [
        {"sid": f"s{k}", "t": first + i, "x": x[i].tolist(), "y": y[i].tolist()}
        for k, (x, y, first) in enumerate(zip(inputs, targets, starts, strict=True))
        for i in range(len(x))
    ]
    order = rng.permutation(len(rows))
    table = pa.Table.from_pylist([rows[i] for i in order])
    (tmp_path / "steps").mkdir()
    pq.write_table(table, tmp_path / "steps" / "part-0.parquet")
    model = SequenceModel(input_size=2, hidden_sizes=[6], output_size=2, head="all",
                          task="regression", seed=5)  # fmt: skip
    model.save(tmp_path / "model")
    argv = ["--model", str(tmp_path / "model"), "--data", str(tmp_path / "steps")]
    columns = ["--stream-col", "sid", "--position-col", "t", "--features-col", "x"]
    assert evaluate_job.main([*argv, *columns, "--label-col", "y", "--chunk-length", "8"]) == 0
    report = _json_line(capsys.readouterr().out, "metrics: ")
    local = model.evaluate_streams(inputs, targets)
    assert (report["task"], report["streams"], report["steps"]) == ("regression", 3, 74)
    for name in ("loss", "rmse", "mae"):
        assert report[name] == pytest.approx(local[name], rel=1e-5), name
    assert "accuracy" not in report and "bits_per_step" not in report

    narrow = tmp_path / "narrow"
    SequenceModel(input_size=3, hidden_sizes=[2], output_size=2, head="all",
                  task="regression", seed=0).save(narrow)  # fmt: skip
    argv = ["--model", str(narrow), "--data", str(tmp_path / "steps"), *columns]
    with pytest.raises(ValueError, match=r"^features column 'x': 2 number\(s\) a step; the mod"):
        evaluate_job.main([*argv, "--label-col", "y"])


# ------------------------------------------------------------------------------ bad flags
def _one_line_error(monkeypatch, capsys, job, prog: str, argv: list[str]) -> str:
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    with pytest.raises(SystemExit) as exit_:
        run_job(functools.partial(job.main, prog=prog), prog)
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0][len(f"{prog}: error: ") :]


def test_bad_stream_flags_are_refused_in_one_line_before_spark(
    monkeypatch, capsys, copy_data, tmp_path
):
    monkeypatch.setattr(
        "sparklstm.jobs.train.get_session", lambda *a, **k: pytest.fail("Spark started")
    )
    monkeypatch.setattr(
        "sparklstm.jobs.evaluate.get_session", lambda *a, **k: pytest.fail("Spark started")
    )
    data = ["--data", str(copy_data / "train"), "--output", str(tmp_path / "m")]
    streams = [*data, "--stream-col", "stream"]
    train = functools.partial(_one_line_error, monkeypatch, capsys, train_job, "train.py")
    where = "long streams (--stream-col)"
    assert train([*streams, "--bucket"]) == f"--bucket does not apply to {where}; leave it out"
    assert train([*streams, "--chunk-rows", "10"]) == (
        f"--chunk-rows does not apply to {where}; leave it out"
    )
    assert train([*streams, "--validation-fraction", "0.2"]) == (
        f"--validation-fraction does not apply to {where}; give a held-out table of steps "
        "with --validation"
    )
    assert train([*streams, "--length-col", "n"]) == (
        f"--length-col does not apply to {where}; leave it out"
    )
    assert train([*streams, "--head", "last"]) == (
        f"--head last: {where} need --head all (one output per step, read chunk by chunk); "
        "leave --head out"
    )
    assert train([*streams, "--bidirectional"]) == (
        f"--bidirectional: {where} are read chunk by chunk and cannot see their future; "
        "leave it out"
    )
    assert train([*streams, "--format", "csv"]) == (
        f"--format csv: {where} are read from Parquet; write the table of steps as Parquet"
    )
    assert train([*streams, "--forward-length", "0"]) == (
        "--forward-length: forward_length must be >= 1, got 0"
    )
    assert train([*data, "--forward-length", "5"]) == (
        "--forward-length applies to long streams only; give --stream-col (a table of steps) "
        "or leave it out"
    )
    assert train([*data, "--state-at-round-start", "reset"]).startswith(
        "--state-at-round-start applies to long streams only"
    )
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"training": {"epoch": 2}}), encoding="utf-8")
    assert train([*streams, "--config", str(typo)]).startswith(
        "training config: unknown option(s) 'epoch'; valid options are "
    )
    assert train([*data, "--position-col", "t"]) == (
        "--position-col applies to long streams; give --stream-col too (the stream id column), "
        "or leave it out"
    )
    assert train([*streams, "--attention", "none"]) == (
        "--attention applies to --head seq2seq only; leave it out with --head all"
    )
    assert not (tmp_path / "m").exists()

    # A config file's training section holds the stream options too; they reach the run.
    config = tmp_path / "streams.json"
    config.write_text(
        json.dumps(
            {
                "data": {"stream_col": "s", "position_col": "t"},
                "training": {"forward_length": 7, "state_at_round_start": "reset", "epochs": 2},
            }
        ),
        encoding="utf-8",
    )
    _, options = train_job._options([*data, "--config", str(config), "--backward-length", "9"])
    assert options["streams"] == {
        "forward_length": 7,
        "backward_length": 9,
        "state_at_round_start": "reset",
    }
    assert options["training"] == {"epochs": 2, "seed": 0}
    assert options["model"] == {"head": "all"}
    assert stream_columns(options["data"]) == StreamColumns("s", "t", "features", "label")

    sequence = tmp_path / "sequence-model"
    SequenceModel(vocab_size=4, hidden_sizes=[3], output_size=4, seed=0).save(sequence)
    per_step = tmp_path / "per-step-model"
    SequenceModel(vocab_size=4, hidden_sizes=[3], output_size=4, head="all", seed=0).save(per_step)
    evaluate = functools.partial(_one_line_error, monkeypatch, capsys, evaluate_job, "evaluate.py")
    test = ["--data", str(copy_data / "test"), "--stream-col", "stream"]
    assert evaluate(["--model", str(sequence), *test]) == (
        f"the --model {sequence} (head 'last') cannot score long streams (--stream-col): that "
        "needs a one-direction model with head 'all'"
    )
    assert evaluate(["--model", str(per_step), *test, "--chunk-length", "0"]) == (
        "--chunk-length 0: must be >= 1"
    )
    assert evaluate(["--model", str(per_step), *test, "--length-col", "n"]) == (
        "--length-col does not apply to long streams (--stream-col); leave it out"
    )
    assert evaluate(["--model", str(per_step), *test, "--cache-dir", str(tmp_path)]) == (
        "--cache-dir does not apply to long streams (--stream-col); leave it out"
    )
