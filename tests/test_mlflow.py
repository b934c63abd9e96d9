"""MLflow: a training run logged by the jobs (parameters, per-round metrics with the round as
the step, the summary, the model) and the ``sparklstm`` MLflow model flavour, scored through
``mlflow.pyfunc.load_model`` and ``mlflow.pyfunc.spark_udf`` from the model's npz + JSON files.

MLflow is not a dependency of sparklstm; it comes with the ``mlflow`` extra, which ``make test``
installs. A developer who installed without it sees these tests skipped; in CI (``CI`` set in
the environment) a missing MLflow is an error, not a silent skip. The tracking store is a
SQLite file under pytest's temporary directory (MLflow 3's file store needs an opt-in).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparklstm import SequenceModel
from sparklstm.cli import run_job
from sparklstm.data.arrow import batch_to_numpy, numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.jobs import make_data
from sparklstm.jobs import train as train_job
from sparklstm.jobs import train_local as train_local_job
from sparklstm.spark.trainer import fit_distributed
from sparklstm.tracking import SequenceScorer, save_model, tracked_run
from sparklstm.tracking.values import PARAM_VALUE_LIMIT, finite_metrics, flat_params
from sparklstm.training.options import TrainOptions

if os.environ.get("CI"):
    import mlflow
else:
    mlflow = pytest.importorskip("mlflow", reason="pip install 'sparklstm[mlflow]'")

ROOT = Path(__file__).resolve().parents[1]
MISSING = "--mlflow needs the mlflow extra: pip install 'sparklstm[mlflow]'"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite tracking store for the module (creating its tables takes a second or two);
    each test logs to an experiment of its own, whose artifacts stay under pytest's tmp."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        # The store (built once per URI and kept) puts the artifacts of an experiment created
        # without a location in ./mlruns of the directory it was built in: here, not the
        # repository.
        patch.chdir(root)
        client = mlflow.MlflowClient(uri)
    return {"uri": uri, "root": root, "client": client}


@pytest.fixture(autouse=True)
def _process_tracking_uri(tmp_path, monkeypatch):
    """Each test runs in its own directory (where MLflow's default ./mlruns would be) and ends
    with no tracking URI set in the process (tracked_run sets the one it is given for the rest
    of the process, as ``mlflow.set_tracking_uri`` does)."""
    monkeypatch.chdir(tmp_path)
    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture
def experiment(store, request):
    """An experiment named after the test, its artifacts in the store's directory."""
    name = request.node.name
    artifacts = store["root"] / "artifacts" / name
    store["client"].create_experiment(name, artifact_location=artifacts.as_uri())
    return name


@pytest.fixture(scope="module")
def job_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlflow-data") / "data"
    status = make_data.main(
        ["sines", "--rows", "160", "--seq-len", "10", "--min-len", "4", "--seed", "2"]
        + ["--test-fraction", "0.25", "--out", str(out)]
    )
    assert status == 0
    return out


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _features_frame(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The Parquet data at ``path`` as pandas (the pyfunc's input) and as padded arrays."""
    table = pq.read_table(path)
    inputs, lengths, _ = batch_to_numpy(table, "features", "label")
    return table.to_pandas(), inputs, lengths


# ------------------------------------------------------------------ the training job's run
@pytest.mark.slow
def test_train_job_logs_params_rounds_summary_and_model(
    spark, store, experiment, job_data, tmp_path, capsys
):
    model_dir, rounds_file = tmp_path / "model", tmp_path / "rounds.jsonl"
    status = train_job.main(
        ["--data", str(job_data / "train"), "--validation", str(job_data / "test")]
        + ["--hidden-sizes", "6", "--rounds", "2", "--local-steps", "2", "--batch-size", "16"]
        + ["--partitions", "2", "--lr", "0.02", "--quiet", "--output", str(model_dir)]
        + ["--metrics", str(rounds_file), "--summary", str(tmp_path / "summary.json")]
        + ["--mlflow", store["uri"], "--mlflow-experiment", experiment]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1].removeprefix("summary: "))
    client, run_id = store["client"], summary["mlflow"]["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == experiment

    # Parameters: the trained model's configuration and every training option, flattened.
    model = SequenceModel.load(model_dir)
    params = run.data.params
    assert params["model.hidden_sizes"] == "[6]" and params["model.input_size"] == "1"
    assert params["model.output_size"] == str(model.config.output_size)
    assert params["training.lr"] == "0.02" and params["training.rounds"] == "2"
    assert params["data.path"] == str(job_data / "train")
    options = TrainOptions.coerce({"lr": 0.02}).to_dict()
    assert {f"training.{name}" for name in options} <= set(params)

    # Metrics: each round's row, the round as the step, the values the run recorded.
    rows = [json.loads(line) for line in rounds_file.read_text(encoding="utf-8").splitlines()]
    assert [row["round"] for row in rows] == [1, 2]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch"):
        assert _history(client, run_id, key) == [(row["round"], row[key]) for row in rows], key
    assert "round" not in run.data.metrics  # it is the step

    # The summary: the whole document as an artifact, its numbers as metrics.
    logged_file = Path(client.download_artifacts(run_id, "summary.json"))
    logged = json.loads(logged_file.read_text(encoding="utf-8"))
    assert logged == {key: value for key, value in summary.items() if key != "mlflow"}
    assert run.data.metrics["summary.validation.accuracy"] == summary["validation"]["accuracy"]
    assert run.data.metrics["summary.rounds"] == 2

    # The model: an MLflow model of the run, scoring as the saved model predicts.
    frame, inputs, lengths = _features_frame(job_data / "test")
    expected = model.predict(inputs, lengths)
    for uri in (summary["mlflow"]["model_uri"], f"runs:/{run_id}/model"):
        scored = mlflow.pyfunc.load_model(uri).predict(frame)
        np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected)
        np.testing.assert_array_equal(
            np.stack(scored["probability"]), model.predict_proba(inputs, lengths)
        )


def test_a_failed_job_ends_its_mlflow_run_failed(spark, store, experiment, job_data, tmp_path):
    # The run starts before Spark does; the job's error (a missing column) ends it FAILED.
    with pytest.raises(ValueError, match="'nope'"):
        train_job.main(
            ["--data", str(job_data / "train"), "--features-col", "nope", "--quiet"]
            + ["--output", str(tmp_path / "m"), "--mlflow", store["uri"]]
            + ["--mlflow-experiment", experiment]
        )
    client = store["client"]
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]


def test_train_local_logs_each_epoch_with_the_epoch_as_step(store, experiment, tmp_path, capsys):
    status = train_local_job.main(
        ["--train-size", "48", "--test-size", "24", "--seq-len", "8", "--min-len", "4"]
        + ["--epochs", "2", "--hidden-sizes", "4", "--no-progress"]
        + ["--output", str(tmp_path / "model"), "--mlflow", store["uri"]]
        + ["--mlflow-experiment", experiment]
    )
    assert status == 0
    final = capsys.readouterr().out.splitlines()[-1]
    summary = json.loads(final.removeprefix("final: "))
    client, run_id = store["client"], summary["mlflow"]["run_id"]
    run = client.get_run(run_id)
    assert [step for step, _ in _history(client, run_id, "val_loss")] == [1, 2]
    assert [step for step, _ in _history(client, run_id, "loss")] == [1, 2]
    assert run.data.params["training.epochs"] == "2"
    assert run.data.params["model.hidden_sizes"] == "[4]"
    assert run.data.metrics["summary.test.loss"] == summary["test"]["loss"]
    assert mlflow.pyfunc.load_model(summary["mlflow"]["model_uri"]).metadata.flavors["sparklstm"]


def test_a_bare_mlflow_flag_logs_where_the_environment_says(store, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    status = train_local_job.main(
        ["--train-size", "32", "--test-size", "16", "--seq-len", "6", "--min-len", "3"]
        + ["--epochs", "1", "--hidden-sizes", "3", "--no-progress", "--output", "model"]
        + ["--mlflow", "--mlflow-experiment", "made-by-the-job"]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1].removeprefix("final: "))
    made = store["client"].get_experiment_by_name("made-by-the-job")
    run = store["client"].get_run(summary["mlflow"]["run_id"])
    assert run.info.experiment_id == made.experiment_id
    assert run.data.params["training.epochs"] == "1"


# ------------------------------------------------------------------- the library's tracker
@pytest.mark.slow
def test_an_active_run_gets_the_rounds_and_the_model_and_stays_open(spark, store, experiment):
    # The README's notebook example: fit_distributed inside the user's own MLflow run.
    mlflow.set_tracking_uri(store["uri"])
    x, y, lengths = noisy_sines(64, 8, 3, np.random.default_rng(5), min_len=3)
    train_df = spark.createDataFrame(numpy_to_arrow(x, y, lengths))
    options = {"epochs": 2, "local_steps": 2, "batch_size": 8, "num_partitions": 2, "seed": 1}
    experiment_id = store["client"].get_experiment_by_name(experiment).experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as active:
        with tracked_run() as tracker:
            tracker.log_params({"training": options})
            model, history = fit_distributed(
                train_df, {"hidden_sizes": [4]}, options, on_round=tracker.log_round, progress=False
            )
            tracker.log_params({"model": model.config.to_dict()})
            info = tracker.log_model(model)
        assert tracker.run_id == active.info.run_id
        assert mlflow.active_run().info.run_id == active.info.run_id  # still the user's
        with pytest.raises(ValueError, match="is active in experiment"):
            with tracked_run(experiment="another"):
                pass
    client, run_id = store["client"], active.info.run_id
    assert client.get_run(run_id).info.status == "FINISHED"  # ended by the user's block
    for key in ("train_loss", "epoch"):
        assert _history(client, run_id, key) == [(row["round"], row[key]) for row in history.rows]
    assert client.get_run(run_id).data.params["training.local_steps"] == "2"
    cells = [row[:n].tolist() for row, n in zip(x, lengths, strict=True)]
    frame = pd.DataFrame({"features": cells})
    scored = mlflow.pyfunc.load_model(info.model_uri).predict(frame)
    np.testing.assert_array_equal(scored["prediction"], model.predict(x, lengths))


def test_params_are_flat_strings_within_mlflow_limits():
    params = flat_params(
        {
            "model": {"hidden_sizes": (8, 4), "class_weights": None, "dtype": "float32"},
            "training": {"lr": np.float32(0.5), "shuffle": True, "optimizer_options": {}},
            "long": "x" * (PARAM_VALUE_LIMIT + 10),
        }
    )
    assert params["model.hidden_sizes"] == "[8, 4]"
    assert params["model.class_weights"] == "null" and params["model.dtype"] == "float32"
    assert params["training.lr"] == "0.5" and params["training.shuffle"] == "true"
    assert params["training.optimizer_options"] == "{}"
    assert len(params["long"]) == PARAM_VALUE_LIMIT and params["long"].endswith("...")


def test_only_finite_numbers_of_a_row_become_metrics():
    row = {"round": 4, "loss": 0.5, "val_loss": float("nan"), "stopped": True, "name": "x"}
    row |= {"sizes": [1, 2], "eta_seconds": np.float64(2.0), "missing": None}
    assert finite_metrics(row, leave_out=("round",)) == {"loss": 0.5, "eta_seconds": 2.0}


# ------------------------------------------------------------------------- the model flavour
def _model_and_rows(kind: str) -> tuple[SequenceModel, pd.DataFrame, np.ndarray, np.ndarray]:
    """A model of ``kind``, and six sequences of varied lengths: as a DataFrame (list cells,
    as a user builds one) and as padded inputs with their lengths."""
    rng = np.random.default_rng(3)
    lengths = np.array([7, 3, 5, 1, 7, 2])
    if kind == "tokens, per step":
        model = SequenceModel(vocab_size=9, hidden_sizes=[5], output_size=3, head="all", seed=0)
        inputs = rng.integers(0, 9, size=(6, 7))
    elif kind == "univariate regression":
        model = SequenceModel(input_size=1, hidden_sizes=[5], task="regression", seed=0)
        inputs = rng.normal(size=(6, 7, 1)).astype(np.float32)
    elif kind == "multi-output regression, per step":
        model = SequenceModel(
            input_size=2, hidden_sizes=[5], output_size=2, task="regression", head="all", seed=0
        )
        inputs = rng.normal(size=(6, 7, 2)).astype(np.float32)
    else:
        model = SequenceModel(input_size=3, hidden_sizes=[5], output_size=4, seed=0)
        inputs = rng.normal(size=(6, 7, 3)).astype(np.float32)
    cells = []
    for row, length in zip(inputs, lengths, strict=True):
        steps = row[:length]
        cells.append(steps[:, 0].tolist() if kind == "univariate regression" else steps.tolist())
    return model, pd.DataFrame({"features": cells}), inputs, lengths


KINDS = [
    "multivariate classification",
    "univariate regression",
    "tokens, per step",
    "multi-output regression, per step",
]


@pytest.mark.parametrize("kind", KINDS)
def test_pyfunc_predicts_what_the_model_predicts(kind, tmp_path):
    model, frame, inputs, lengths = _model_and_rows(kind)
    univariate = kind == "univariate regression"  # a number per step, not a list of one
    save_model(model, tmp_path / "mlflow-model", sequence_type="univariate" if univariate else None)
    scored = mlflow.pyfunc.load_model(str(tmp_path / "mlflow-model")).predict(frame)
    assert list(scored.index) == list(frame.index)
    expected = model.predict(inputs, lengths)
    per_step = model.config.head == "all"
    for i, length in enumerate(lengths):
        want = expected[i, :length] if per_step else expected[i]
        np.testing.assert_array_equal(scored["prediction"][i], want)
    if model.config.task == "classification":
        probabilities = model.predict_proba(inputs, lengths)
        assert scored.columns.tolist() == ["prediction", "probability"]
        for i, length in enumerate(lengths):
            want = probabilities[i, :length] if per_step else probabilities[i]
            np.testing.assert_array_equal(scored["probability"][i], want)
    else:
        assert scored.columns.tolist() == ["prediction"]


def test_a_length_column_cuts_padded_sequences(tmp_path):
    model, _, inputs, lengths = _model_and_rows("multivariate classification")
    save_model(model, tmp_path / "mlflow-model", length_col="steps")
    padded = pd.DataFrame({"features": [row.tolist() for row in inputs], "steps": lengths})
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "mlflow-model"))
    scored = loaded.predict(padded)
    np.testing.assert_array_equal(scored["prediction"], model.predict(inputs, lengths))
    whole = loaded.predict(padded[["features"]])  # the column is optional
    np.testing.assert_array_equal(whole["prediction"], model.predict(inputs))
    assert loaded.metadata.get_input_schema().input_names() == ["features", "steps"]


def test_bad_input_is_one_line_naming_the_column():
    model, frame, _, _ = _model_and_rows("multivariate classification")
    scorer = SequenceScorer(model)  # what the MLflow model's predict calls, after MLflow's checks
    with pytest.raises(ValueError, match="features column 'features' not found"):
        scorer.predict(frame.rename(columns={"features": "x"}))
    narrow = pd.DataFrame({"features": [[[0.0, 1.0]] * 3]})
    with pytest.raises(ValueError, match="column 'features' has 2 features per step; expected 3"):
        scorer.predict(narrow)


def test_the_mlflow_model_holds_no_pickle(tmp_path):
    model, _, _, _ = _model_and_rows("multivariate classification")
    path = tmp_path / "mlflow-model"
    save_model(model, path)
    files = [p for p in path.rglob("*") if p.is_file()]
    assert {p.relative_to(path).as_posix() for p in files} >= {
        "MLmodel",
        "data/model/manifest.json",
        "data/model/arrays.npz",
    }
    for file in files:
        assert file.suffix not in (".pkl", ".pickle"), file
        assert not file.read_bytes().startswith(b"\x80"), f"{file} is a pickle"
    mlmodel = (path / "MLmodel").read_text(encoding="utf-8")
    assert "pickle" not in mlmodel and "python_model" not in mlmodel
    flavors = mlflow.models.Model.load(str(path)).flavors
    assert flavors["python_function"]["loader_module"] == "sparklstm.tracking.flavor"
    assert flavors["sparklstm"]["data"] == "data/model"
    with np.load(path / "data/model/arrays.npz", allow_pickle=False) as arrays:
        assert sorted(arrays.files) == sorted(model.params)


@pytest.mark.slow
def test_spark_udf_scores_like_the_model(spark, tmp_path):
    model, frame, inputs, lengths = _model_and_rows("multivariate classification")
    save_model(model, tmp_path / "mlflow-model")
    uri = str(tmp_path / "mlflow-model")
    df = spark.createDataFrame(frame.assign(id=range(len(frame)))).repartition(2)
    # A double prediction (the class index), as Spark ML's classifiers write it.
    as_double = mlflow.pyfunc.spark_udf(spark, uri, result_type="double")
    rows = df.select("id", as_double("features").alias("prediction")).toPandas()
    rows = rows.sort_values("id")
    expected = model.predict(inputs, lengths)
    np.testing.assert_array_equal(rows["prediction"].to_numpy(), expected.astype(np.float64))
    # The signature's own result type: a struct of the class and its probabilities.
    as_struct = mlflow.pyfunc.spark_udf(spark, uri)
    rows = df.select("id", as_struct("features").alias("out")).toPandas().sort_values("id")
    np.testing.assert_array_equal([out["prediction"] for out in rows["out"]], expected)
    # Another process (the Python worker) computes these: a different batch of rows through
    # float32 BLAS may round differently in the last place.
    np.testing.assert_allclose(
        np.stack([out["probability"] for out in rows["out"]]),
        model.predict_proba(inputs, lengths),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------- without MLflow
def test_without_mlflow_the_jobs_fail_up_front_in_one_line(monkeypatch, job_data, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(train_job, "get_session", no_spark)
    argv = ["train.py", "--data", str(job_data / "train"), "--output", str(tmp_path / "m")]
    monkeypatch.setattr(sys, "argv", [*argv, "--mlflow"])
    with pytest.raises(SystemExit) as exit_:
        run_job(train_job.main, "train.py")
    assert exit_.value.code == 1
    assert capsys.readouterr().err.splitlines() == [f"train.py: error: {MISSING}"]

    status = train_local_job.main(["--mlflow", "sqlite:///x.db", "--output", str(tmp_path / "l")])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {MISSING}"]
    assert not (tmp_path / "l").exists()


def test_experiment_without_mlflow_flag_is_refused(job_data, tmp_path):
    with pytest.raises(ValueError, match="--mlflow-experiment needs --mlflow"):
        train_job.main(
            ["--data", str(job_data / "train"), "--output", str(tmp_path / "m")]
            + ["--mlflow-experiment", "x"]
        )


def test_importing_sparklstm_and_the_jobs_does_not_import_mlflow():
    code = (
        "import sys, sparklstm, sparklstm.tracking, sparklstm.jobs.train, "
        "sparklstm.jobs.train_local; "
        "sys.exit('mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
