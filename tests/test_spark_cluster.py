"""Training in ``local-cluster`` mode: executors are separate JVMs with their own Python
workers, started from the pip-installed pyspark, as on a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_driver(script: str, workdir: Path) -> dict:
    """Run ``tests/SCRIPT`` (a local-cluster driver program) and return its JSON report."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_converges_on_separate_executor_processes(tmp_path):
    report = run_driver("cluster_training_job.py", tmp_path)
    assert len(report["executors"]) >= 2
    assert report["driver_pid"] not in report["executors"]
    assert all(fact["zip_shipped"] and fact["zip_on_path"] for fact in report["facts"])
    assert set(report["workers_per_round"]) == {2}
    assert report["val_accuracy"] > 0.9
    assert report["local_accuracy"] == pytest.approx(report["val_accuracy"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the executor via /proc")
def test_an_executor_killed_mid_round_gives_the_clean_run_bit_for_bit(tmp_path):
    # Spark reruns the lost task (and recomputes the lost cached partition) elsewhere; a round is
    # a pure function of (parameters, state, round, partition rows, seed), so nothing changes.
    report = run_driver("cluster_executor_loss_job.py", tmp_path)
    killed = report["killed"]
    assert killed is not None, "the hook never ran: no executor was killed"
    # The executor really died (its pid is gone), and training still used both partitions.
    assert not Path(f"/proc/{killed['executor']}").exists()
    assert report["workers_per_round"] == [2, 2, 2, 2]
    assert report["faulty"] == report["clean"]


# ----------------------------------------------------------- the README's cluster recipe
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``make dist`` into a temporary directory: the wheel and the --py-files zip, built from
    a copy of the sources (pip builds a wheel in the source tree, leaving build/ there)."""
    import shutil

    out = tmp_path_factory.mktemp("dist")
    sources = tmp_path_factory.mktemp("sources") / "sparklstm"
    shutil.copytree(
        ROOT,
        sources,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "runs", "__pycache__", "*.egg-info", ".*_cache"
        ),
    )
    done = subprocess.run(
        # -o: the test runs inside the venv make built; never rebuild it from here.
        ["make", "-C", str(sources), "-o", ".venv/.installed-stamp", "dist"]
        + [f"DIST={out}", f"PY={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


def _installed_commands(dist: Path, target: Path) -> dict[str, str]:
    """The wheel installed (without its dependencies, which this interpreter has) into
    ``target``; returns the environment that runs its commands in preference to the checkout."""
    (wheel,) = dist.glob("sparklstm-*.whl")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        + ["--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        **os.environ,
        "PYTHONPATH": str(target),
        "PATH": f"{target / 'bin'}:{os.environ['PATH']}",
    }


def test_make_dist_builds_the_zip_and_a_wheel_whose_commands_run_anywhere(dist, tmp_path):
    import zipfile

    with zipfile.ZipFile(dist / "sparklstm.zip") as archive:
        names = set(archive.namelist())
    assert {
        "sparklstm/__init__.py",
        "sparklstm/spark/trainer.py",
        "sparklstm/jobs/train.py",
    } <= names
    env = _installed_commands(dist, tmp_path / "site")
    work = tmp_path / "elsewhere"  # not the checkout: nothing may come from it
    work.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import sparklstm.jobs.train as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=True,
    )
    assert where.stdout.strip().startswith(str(tmp_path / "site"))
    for command in ("sparklstm-train", "sparklstm-predict", "sparklstm-evaluate"):
        shown = subprocess.run(
            [str(tmp_path / "site" / "bin" / command), "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert shown.stdout.startswith(f"usage: {command} ")
    made = subprocess.run(
        [str(tmp_path / "site" / "bin" / "sparklstm-make-data"), "sines", "--rows", "300"]
        + ["--seq-len", "16", "--test-fraction", "0.2", "--seed", "1", "--out", "data"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert sorted(p.name for p in (work / "data").iterdir() if p.is_dir()) == ["test", "train"]


def _wait_for_line(log: Path, pattern: str, process: subprocess.Popen, seconds: float = 120):
    """The first match of ``pattern`` in ``log``, waiting for the process to write it."""
    import re
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(pattern, text)
        if found:
            return found
        assert process.poll() is None, f"{log.name}: the process ended\n{text[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{log.name}: no {pattern!r} after {seconds} s\n{text[-3000:]}")


@pytest.fixture(scope="module")
def standalone_master(tmp_path_factory):
    """A standalone Spark master and one worker (2 cores, 2 GiB) on this machine, started from
    the pip-installed pyspark on ports the system picks; yields the master's URL."""
    import pyspark

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("standalone")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",  # no fixed REST port
    }
    started = []

    def start(name: str, *arguments: str) -> tuple[subprocess.Popen, Path]:
        log = logs / f"{name}.log"
        process = subprocess.Popen(
            [str(home / "bin" / "spark-class"), f"org.apache.spark.deploy.{name}", *arguments],
            stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
            stderr=subprocess.STDOUT,
            env=env,
            cwd=logs,
        )
        started.append(process)
        return process, log

    try:
        master, master_log = start(
            "master.Master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"
        )
        url = _wait_for_line(master_log, r"Starting Spark master at (spark://\S+)", master)[1]
        worker, worker_log = start(
            "worker.Worker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            "0",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--work-dir",
            str(logs / "work"),
            url,
        )
        _wait_for_line(worker_log, r"Successfully registered with master", worker)
        yield url
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _python_without_sparklstm(directory: Path) -> Path:
    """A Python for the executors that has sparklstm's dependencies (this interpreter's
    site-packages, read as a plain path) but not sparklstm: the editable install's import hook
    lives in a .pth file, which Python only runs in its own site directories."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True)
    python = directory / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "sparklstm-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
def test_the_readme_cluster_recipe_trains_on_a_standalone_cluster(
    standalone_master, dist, tmp_path
):
    python = _python_without_sparklstm(tmp_path / "executor-env")
    lacking = subprocess.run(
        [str(python), "-c", "import sparklstm"], capture_output=True, text=True, cwd=tmp_path
    )
    assert "No module named 'sparklstm'" in lacking.stderr
    subprocess.run([str(python), "-c", "import numpy, pyarrow, pandas, pyspark"], check=True)

    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "jobs.make_data", "sines", "--rows", "1600", "--seq-len", "24"]
        + ["--min-len", "12", "--test-fraction", "0.25", "--seed", "0", "--out", str(data)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    # The README's recipe: the executors' Python (PYSPARK_PYTHON), the package as --py-files,
    # one core per executor so that two executors fit on the small worker.
    env = {**os.environ, "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": sys.executable}
    submit = Path(sys.executable).parent / "spark-submit"
    done = subprocess.run(
        [str(submit), "--master", standalone_master, "--py-files", str(dist / "sparklstm.zip")]
        + ["--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=768m"]
        + [str(ROOT / "jobs" / "train.py"), "--data", str(data / "train")]
        + ["--validation", str(data / "test"), "--hidden-sizes", "16", "--epochs", "3"]
        + ["--local-steps", "10", "--batch-size", "32", "--lr", "0.03", "--seed", "0"]
        + ["--output", str(tmp_path / "model")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1].removeprefix("summary: "))
    assert summary["partitions"] == 2  # one worker per executor core
    # spark-submit passes the Python program's stderr on through its own stdout.
    printed = (done.stdout + done.stderr).splitlines()
    assert [line for line in printed if line.startswith("training 1,200 rows on ")] == [
        "training 1,200 rows on 2 workers (2 partitions): 10 local steps per round, "
        "2 rounds per epoch, 6 rounds"
    ]
    assert summary["validation"]["accuracy"] > 0.85
    # A successful job ends quietly: no Java stack trace anywhere in what it printed, and
    # its last words are the summary.
    frames = [line for line in printed if line.lstrip().startswith("at ")]
    assert frames == [], "\n".join(frames[:20])
    assert done.stdout.strip().splitlines()[-1].startswith("summary: ")
    assert not done.stderr.strip() or "ERROR" not in done.stderr, done.stderr[-3000:]
