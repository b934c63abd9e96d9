"""The jobs' shared option handling: config files, merging with flags, input checks."""

from __future__ import annotations

import argparse
import json
import zipfile

import pytest

from sparklstm.cli import (
    JobArgumentParser,
    check_input_path,
    load_config_file,
    merge_sections,
    run_job,
    write_json,
)
from sparklstm.packaging import build_zip


def _parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(prog="job.py")
    parser.add_argument("--epochs", dest="training.epochs", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--hidden", dest="model.hidden_sizes", type=int, nargs="+",
                        default=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--config")
    return parser


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"training": {"epochs": 3, "lr": 0.1}, "model": {"cell": "gru"}}),
        encoding="utf-8",
    )
    config = load_config_file(path)
    assert config["data"] == {} and config["training"] == {"epochs": 3, "lr": 0.1}
    merged = merge_sections(config, _parser().parse_args(["--epochs", "7"]))
    assert merged["training"] == {"epochs": 7, "lr": 0.1}  # given flag wins, others stay
    assert merged["model"] == {"cell": "gru"}  # an absent flag does not reset the file's value
    merged = merge_sections(config, _parser().parse_args(["--hidden", "8", "4"]))
    assert merged["model"] == {"cell": "gru", "hidden_sizes": [8, 4]}
    assert merged["training"]["epochs"] == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"trainig": {}}', r"unknown section\(s\) \['trainig'\]"),
        ('{"model": 3}', "section 'model' must be an object"),
    ],
)
def test_bad_config_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_config_file(path)


def test_missing_config_and_input_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="--config: no such file"):
        load_config_file(tmp_path / "none.json")
    with pytest.raises(FileNotFoundError, match="--data: no such file or directory"):
        check_input_path("--data", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="--data"):
        check_input_path("--data", f"file://{tmp_path}/none")
    check_input_path("--data", str(tmp_path))  # exists
    check_input_path("--data", f"file://{tmp_path}")
    check_input_path("--data", "hdfs://namenode/data/train")  # remote: left to Spark
    check_input_path("--data", str(tmp_path / "part-*.parquet"))  # glob: left to Spark


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--epochs", "three"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["job.py: error: argument --epochs: invalid int value: 'three' (see --help)"]


def test_write_json_is_atomic_and_readable(tmp_path):
    target = write_json(tmp_path / "out" / "m.json", {"a": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]


def test_py_files_zip_holds_the_package_sources_only(tmp_path):
    archive = build_zip(tmp_path / "sparklstm.zip")
    names = zipfile.ZipFile(archive).namelist()
    assert "sparklstm/__init__.py" in names and "sparklstm/spark/trainer.py" in names
    assert all(name.endswith(".py") and "__pycache__" not in name for name in names)
    again = build_zip(tmp_path / "again.zip")
    assert archive.read_bytes() == again.read_bytes()  # reproducible


def test_options_are_taken_only_by_their_full_names(capsys):
    from sparklstm.jobs.train import _parser

    parser = _parser()
    assert parser.parse_args(["--epochs", "3"]).__dict__["training.epochs"] == 3
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--epoch", "3"])  # an abbreviation of --epochs
    assert exit_.value.code == 2
    assert "unrecognized arguments: --epoch 3" in capsys.readouterr().err


def test_a_job_whose_reader_goes_away_stops_quietly(tmp_path):
    """``job | head``: the job's output pipe closes early; no BrokenPipeError trace follows."""
    import subprocess
    import sys

    script = (
        "from sparklstm.cli import run_job\n"
        "def main(argv):\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "run_job(main, 'job.py')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert process.stdout.readline() == b"line 0\n"
    process.stdout.close()  # the reader goes away after one line, as `head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_a_job_stops_the_spark_session_it_started_and_only_that(spark, tmp_path):
    """run_job stops (with Spark's log off) a SparkContext that the job itself started, so
    that the job ends with its summary; a session that was running before it (a notebook's,
    this test run's) is left running."""
    import subprocess
    import sys

    with pytest.raises(SystemExit) as exit_:
        run_job(lambda argv: int(spark.range(3).count() != 3), "job.py")
    assert exit_.value.code == 0
    assert spark.range(5).count() == 5  # still running

    script = (
        "import os, sys\n"
        "os.environ['PYSPARK_PYTHON'] = sys.executable\n"
        "from pyspark import SparkContext\n"
        "from sparklstm.cli import run_job\n"
        "from sparklstm.spark.session import get_session\n"
        "def main(argv):\n"
        "    print('rows', get_session(master='local[1]').range(4).count())\n"
        "    return 0\n"
        "try:\n"
        "    run_job(main, 'job.py')\n"
        "except SystemExit as done:\n"
        "    print('stopped', SparkContext._active_spark_context is None, done.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.stdout.splitlines()[-2:] == ["rows 4", "stopped True 0"], done.stderr[-2000:]
