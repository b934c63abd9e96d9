"""What an operator relies on: one seed fixes the model, checkpoints never eat themselves, a
resume resumes, and a run's directories are its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.io.checkpoint import (
    Checkpoint,
    checkpoint_rounds,
    latest_checkpoint,
    save_checkpoint,
)
from sparklstm.io.runlock import DirectoryInUseError, RunLock, lock_path_for
from sparklstm.jobs import make_data
from sparklstm.jobs import train as train_job
from sparklstm.model.config import ModelConfig
from sparklstm.spark.trainer import _initial_model, fit_distributed
from tests.test_spark_trainer import training_order

MODEL = {"input_size": 1, "hidden_sizes": [6], "output_size": 3}  # no seed of its own
OPTIONS = {"rounds": 3, "local_steps": 2, "batch_size": 16, "lr": 0.02}


def frame(spark, rows=96, seed=0, partitions=2):
    x, y, lengths = noisy_sines(rows, 10, 3, np.random.default_rng(seed), min_len=4)
    return spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(partitions)


def params_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------- 1. the seed fixes it
def test_one_training_seed_fixes_the_starting_weights_of_a_seedless_model_config(spark):
    df = frame(spark)
    first, history = fit_distributed(df, MODEL, {**OPTIONS, "seed": 7}, progress=False)
    again, _ = fit_distributed(df, MODEL, {**OPTIONS, "seed": 7}, progress=False)
    other, _ = fit_distributed(df, MODEL, {**OPTIONS, "seed": 8}, progress=False)
    assert history.summary["seed"] == 7
    assert params_equal(first.params, again.params)
    assert not params_equal(first.params, other.params)


def test_the_run_seed_initialises_as_the_one_process_trainer_does(spark):
    # fit_distributed(config without seed, seed=s) on one partition, one round per epoch, is
    # SequenceModel(config, seed=s).fit(seed=s): same starting weights, same training.
    x, y, lengths = noisy_sines(80, 10, 3, np.random.default_rng(4), min_len=4)
    df, order = training_order(spark, x, y, lengths)
    options = {"epochs": 2, "batch_size": 16, "lr": 0.02, "seed": 9}
    distributed, _ = fit_distributed(df, MODEL, {**options, "num_partitions": 0}, progress=False)
    local = SequenceModel(**MODEL, seed=9)
    local.fit(x[order], y[order], lengths[order], progress=False, **options)
    assert params_equal(distributed.params, local.params)


def test_a_model_config_seed_of_its_own_keeps_fixing_the_weights():
    own = ModelConfig(input_size=1, hidden_sizes=(6,), output_size=3, seed=5)
    assert params_equal(_initial_model(own, 7).params, SequenceModel(config=own).params)
    seedless = ModelConfig(input_size=1, hidden_sizes=(6,), output_size=3)
    assert params_equal(_initial_model(seedless, 7).params, SequenceModel(**MODEL, seed=7).params)
    assert not params_equal(_initial_model(seedless, 7).params, _initial_model(own, 7).params)


@pytest.fixture(scope="module")
def job_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "data"
    status = make_data.main(
        ["sines", "--rows", "240", "--seq-len", "12", "--min-len", "5", "--seed", "1"]
        + ["--test-fraction", "0.25", "--out", str(out)]
    )
    assert status == 0
    return out


def run_train(data: Path, *args: str) -> int:
    argv = ["--data", str(data / "train"), "--hidden-sizes", "6", "--rounds", "3"]
    argv += ["--local-steps", "2", "--batch-size", "16", "--partitions", "2", "--quiet", *args]
    return train_job.main(argv)


def test_the_job_with_one_seed_writes_the_same_model_files(spark, job_data, tmp_path, capsys):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_train(job_data, "--seed", seed, "--output", str(tmp_path / name)) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1].removeprefix("summary: "))
    assert summary["seed"] == 4
    a, b, c = (tmp_path / n for n in "abc")
    assert (a / "arrays.npz").read_bytes() == (b / "arrays.npz").read_bytes()
    manifests = [json.loads((p / "manifest.json").read_text(encoding="utf-8")) for p in (a, b)]
    for manifest in manifests:
        manifest.pop("created")  # the only field that records when, not what
    assert manifests[0] == manifests[1]
    assert (a / "arrays.npz").read_bytes() != (c / "arrays.npz").read_bytes()


def test_the_job_is_reproducible_without_a_seed_flag(spark, job_data, tmp_path):
    assert run_train(job_data, "--output", str(tmp_path / "a")) == 0
    assert run_train(job_data, "--output", str(tmp_path / "b")) == 0
    assert (tmp_path / "a/arrays.npz").read_bytes() == (tmp_path / "b/arrays.npz").read_bytes()


# ------------------------------------------------------------------------- 3. checkpoints
def _checkpoint(round_index: int, run_id: str | None = "run-a") -> Checkpoint:
    params = {"w": np.full((2, 2), float(round_index))}
    return Checkpoint(round_index, 0, {}, {}, params, run_id=run_id)


def test_cleanup_never_deletes_the_checkpoint_it_has_just_written(tmp_path):
    directory = tmp_path / "ckpt"
    for round_index in (1, 2):
        save_checkpoint(directory, _checkpoint(round_index), keep=1)
    assert checkpoint_rounds(directory) == [2]
    # Leftovers numbered above: unreadable ones (a torn write) and another run's.
    (directory / "round-000009").mkdir()
    (directory / "round-000009" / "arrays.npz").write_bytes(b"PK\x03\x04 torn")
    save_checkpoint(directory, _checkpoint(8, run_id="run-b"), keep=5)
    save_checkpoint(directory, _checkpoint(3), keep=1)
    assert checkpoint_rounds(directory) == [3, 8, 9]
    assert latest_checkpoint(directory).round == 8  # round 9 is unreadable
    assert np.array_equal(_load(directory, 3).params["w"], np.full((2, 2), 3.0))
    save_checkpoint(directory, _checkpoint(4), keep=2)
    assert checkpoint_rounds(directory) == [3, 4, 8, 9]
    save_checkpoint(directory, _checkpoint(5), keep=2)
    assert checkpoint_rounds(directory) == [4, 5, 8, 9]  # only this run's readable ones count


def _load(directory: Path, round_index: int) -> Checkpoint:
    from sparklstm.io.checkpoint import load_checkpoint

    return load_checkpoint(directory / f"round-{round_index:06d}")


def test_resume_with_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="nothing to continue") as info:
        fit_distributed(None, MODEL, OPTIONS, checkpoint_dir=empty, resume=True)
    assert "no checkpoint" in str(info.value) and "\n" not in str(info.value)
    torn = tmp_path / "torn"
    (torn / "round-000002").mkdir(parents=True)
    (torn / "round-000002" / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match=r"only unreadable checkpoints \(rounds \[2\]\)"):
        fit_distributed(None, MODEL, OPTIONS, checkpoint_dir=torn, resume=True)
    assert checkpoint_rounds(torn) == [2]  # left as it was


def test_the_job_refuses_resume_without_a_checkpoint_in_one_line(job_data, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--data", str(job_data / "train")]
        + ["--output", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "c"), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: resume:") and "nothing to continue" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "m").exists()


def test_resume_over_an_unreadable_newer_checkpoint_with_keep_one(spark, tmp_path):
    df = frame(spark, seed=2)
    options = {**OPTIONS, "rounds": 4, "seed": 2, "keep_checkpoints": 1}
    full, _ = fit_distributed(df, MODEL, options, progress=False)
    directory = tmp_path / "ckpt"
    fit_distributed(df, MODEL, {**options, "rounds": 2}, checkpoint_dir=directory, progress=False)
    torn = directory / "round-000004"
    torn.mkdir()
    (torn / "arrays.npz").write_bytes(b"PK\x03\x04 torn")
    resumed, _ = fit_distributed(
        df, MODEL, options, checkpoint_dir=directory, resume=True, progress=False
    )
    assert params_equal(resumed.params, full.params)
    assert checkpoint_rounds(directory) == [4]
    assert latest_checkpoint(directory).round == 4  # its own round 4, readable
    assert (directory / "round-000004.unreadable-0" / "arrays.npz").exists()  # kept aside


# ---------------------------------------------------------------------------- 3. run locks
HOLDER = """
import sys, time
from sparklstm.io.runlock import RunLock
lock = RunLock(sys.argv[1], "test").acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_locked_directory_is_refused_and_a_dead_owner_releases_it(tmp_path):
    lock_file = lock_path_for(tmp_path / "ckpt", inside=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryInUseError) as info:
            RunLock(lock_file, "checkpoint_dir X").acquire()
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "checkpoint_dir X is in use" in message
        assert "\n" not in message
        with pytest.raises(DirectoryInUseError):  # the trainer takes the same lock
            fit_distributed(None, MODEL, OPTIONS, checkpoint_dir=tmp_path / "ckpt")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_file.exists()  # the dead owner's file is left behind: stale, not held
    with RunLock(lock_file, "again") as lock:
        assert lock.held and json.loads(lock_file.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert not lock_file.exists()


def test_a_lock_is_exclusive_within_one_process_too(tmp_path):
    path = tmp_path / "out.lock"
    with RunLock(path, "--output out"):
        with pytest.raises(DirectoryInUseError, match="--output out is in use"):
            RunLock(path, "--output out").acquire()
    with RunLock(path, "--output out"):
        pass


def test_a_second_job_on_the_same_directories_is_refused(spark, job_data, tmp_path, capsys):
    output = tmp_path / "model"
    with RunLock(lock_path_for(output, inside=False), "another run"):
        with pytest.raises(DirectoryInUseError, match="is in use by another run"):
            run_train(job_data, "--output", str(output))
    assert not output.exists()
    checkpoints = tmp_path / "ckpt"
    with RunLock(lock_path_for(checkpoints, inside=True), "another run"):
        with pytest.raises(DirectoryInUseError):
            run_train(job_data, "--output", str(output), "--checkpoint-dir", str(checkpoints))
    assert not output.exists()


def test_the_job_never_overwrites_an_existing_model_unless_asked(spark, job_data, tmp_path):
    output = tmp_path / "model"
    assert run_train(job_data, "--output", str(output), "--seed", "1") == 0
    before = (output / "arrays.npz").read_bytes()
    with pytest.raises(ValueError, match="already holds a model.*--overwrite"):
        run_train(job_data, "--output", str(output), "--seed", "2")
    assert (output / "arrays.npz").read_bytes() == before
    time.sleep(0.01)
    assert run_train(job_data, "--output", str(output), "--seed", "2", "--overwrite") == 0
    assert (output / "arrays.npz").read_bytes() != before
    assert not list(tmp_path.glob(".model*"))  # no temporary left beside it
