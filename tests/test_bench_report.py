"""The benchmark report: tables hold exactly the measured values, plots are valid PNGs, missing
sources say how to produce them. All results here are FIXTURES (made-up numbers in the formats
the benchmarks write), except the one test that runs ``bench.kernels`` on a tiny shape."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import report as bench_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FIXTURE_MACHINE = {
    "date": "2000-01-01T00:00:00Z",
    "cores": 2,
    "cpu_model": "FIXTURE CPU 9000",
    "platform": "Linux-fixture",
    "python": "3.11.0",
    "numpy": "2.3.5",
    "numpy_blas": "scipy-openblas 0.3.30",
    "blas_runtime": [
        {"internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell", "threads": 2}
    ],
    "pyspark": "4.0.0",
    "java": 'openjdk version "17.0.2"',
    "load_average": [0.5, 0.25, 0.125],
}


def _kernel_row(cell, threads, torch_seconds=None):
    row = {
        "cell": cell,
        "dtype": "float32",
        "threads": threads,
        "batch": 64,
        "time": 50,
        "input": 32,
        "hidden": 128,
        "seconds_fwd_bwd": 0.02,
        "seconds_fwd": 0.008,
        "sequences_per_s": 3200.0,
        "gflops": 12.3,
        "gemm_peak_gflops": 50.0,
        "fraction_of_gemm": 0.66,
    }
    if torch_seconds:
        row.update(torch_seconds_fwd_bwd=torch_seconds, torch_gflops=24.6, torch_version="9.9")
    return row


FIXTURE_KERNELS = {
    "machine": "fixture",
    "rows": [_kernel_row("lstm", 1, torch_seconds=0.01), _kernel_row("gru", 2)],
    "command": "python -m bench.kernels --json bench/results/kernels.json",
    "date": "2000-01-01T00:01:00Z",
    "wall_seconds": 61.0,
}


def _spark_result(seq_s, rounds, round_s, compute_s, overhead):
    return {
        "seconds": 50.0,
        "prepare_seconds": 10.0,
        "rounds": rounds,
        "round_seconds": round_s,
        "broadcast_seconds": 0.01,
        "compute_seconds": compute_s,
        "aggregate_seconds": 0.49,
        "overhead": overhead,
        "sequences_per_second": seq_s,
        "sequences_per_second_with_prepare": 2000.0,
        "train_loss": 0.5,
    }


def _spark_fixture(rows, results, **extra):
    args = {"rows": rows, "seq_len": 50, "hidden": 64, "batch_size": 64, "local_steps": 100}
    return {
        "args": args,
        "results": results,
        "command": f"python -m bench.spark --rows {rows}",
        **extra,
    }


FIXTURE_SPARK = _spark_fixture(
    100_000,
    {
        "one-process, 1 BLAS thread(s)": {"seconds": 33.3, "sequences_per_second": 3000.0},
        "two one-process trainers at once": {
            "seconds": 20.0,
            "sequences_per_second": 5000.0,
            "ceiling": 5000.0 / 3000.0,
        },
        "spark local[1], 1 round/epoch": _spark_result(2500.0, 1, 40.0, 39.5, 0.0123),
        "spark local[2], 1 round/epoch": _spark_result(4000.0, 1, 25.0, 24.5, 0.0196),
        "spark local[1], 100 steps/round": _spark_result(2200.0, 16, 2.9, 2.4, 0.1724),
        "spark local[2], 100 steps/round": _spark_result(3300.0, 8, 3.8, 3.3, 0.1316),
    },
)

FIXTURE_SCALING = [
    _spark_fixture(
        rows,
        {
            "spark local[1], 100 steps/round": _spark_result(speed, 16, 2.9, 2.4, 0.1724),
            "spark local[2], 100 steps/round": _spark_result(2 * speed, 8, 3.8, 3.3, 0.1316),
        },
    )
    for rows, speed in ((10_000, 1100.0), (1_000_000, 2100.0))
]

FIXTURE_CONVERGENCE = {  # as bench.convergence writes it (fields the report does not read left out)
    "config_file": "bench/configs/japanese_vowels.json",
    "config": {"dataset": {"task": "ucr", "name": "JapaneseVowels"}},
    "threshold": 0.9,
    "command": "python -m bench.convergence --fixture",
    "runs": [
        {
            "label": "one process",
            "trainer": "local",
            "rounds": "-",
            "final_test_accuracy": 0.9622,
            "training_seconds": 30.0,
            "seconds_to_threshold": 12.5,
            "curve": [{"epoch": 1, "seconds": 12.5, "test_accuracy": 0.95}],
        },
        {
            "label": "k = 1",
            "trainer": "spark",
            "local_steps": 1,
            "workers": 2,
            "final_test_accuracy": 0.9541,
            "training_seconds": 80.0,
            "seconds_to_threshold": 41.25,
            "curve": [
                {"round": 1, "seconds": 0.0, "test_accuracy": 0.1},
                {"round": 2, "seconds": 40.0, "test_accuracy": 0.88},
                {"round": 3, "seconds": 80.0, "test_accuracy": 0.9541},
            ],
        },
        {
            "label": "k = 50",
            "trainer": "spark",
            "local_steps": 50,
            "workers": 2,
            "final_test_accuracy": 0.8711,
            "training_seconds": 20.0,
            "seconds_to_threshold": None,
            "curve": [],
        },
    ],
}

FIXTURE_ACCURACY = {  # as bench.accuracy writes them (fields the report does not read left out)
    "JapaneseVowels": {
        "dataset": "JapaneseVowels",
        "metric": "accuracy",
        "higher_is_better": True,
        "runs": [
            {"seed": 0, "accuracy": 0.973, "test_loss": 0.1, "training_seconds": 10.0},
            {"seed": 1, "accuracy": 0.9811, "test_loss": 0.2, "training_seconds": 12.0},
        ],
        "mean": 0.9771,
        "target": {"value": 0.95},
        "target_met": True,
        "references": {"DTW-1NN": 0.9514},
        "command": "python -m bench.accuracy JapaneseVowels --fixture",
    },
    "airline": {
        "dataset": "airline",
        "metric": "fixed_origin_mape",
        "higher_is_better": False,
        "runs": [
            {"seed": 0, "mape": 20.0, "fixed_origin_mape": 30.0},
            {"seed": 1, "mape": 21.0, "fixed_origin_mape": 31.0},
        ],
        "target": {"value": 35.0, "max_training_seconds": 100},
        "references": {"seasonal naive": 45.5},
        "config": {"notes": "Scored two ways."},
        "complete": False,
    },
}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _all_fixtures(out: Path) -> None:
    results = out / "results"
    _write(results / "machine.json", FIXTURE_MACHINE)
    _write(results / "run.json", {"command": "python -m bench.report", "date": "x"})
    _write(results / "kernels.json", FIXTURE_KERNELS)
    _write(results / "spark.json", FIXTURE_SPARK)
    for data in FIXTURE_SCALING:
        _write(results / f"scaling_rows{data['args']['rows']}.json", data)
    _write(out / "convergence.json", FIXTURE_CONVERGENCE)
    for name, data in FIXTURE_ACCURACY.items():
        _write(out / "accuracy" / f"{name}.json", data)


def _section(report: str, title: str) -> str:
    return report.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_tables_hold_exactly_the_fixture_values(tmp_path):
    _all_fixtures(tmp_path)
    report = bench_report.write_report(tmp_path).read_text(encoding="utf-8")

    machine = _section(report, "Machine")
    assert "| CPU | FIXTURE CPU 9000 |" in machine
    assert "| cores | 2 |" in machine
    assert "| BLAS (loaded, threadpoolctl) | openblas 0.3.30 (Haswell, 2 threads) |" in machine
    assert "| Spark (pyspark) | 4.0.0 |" in machine
    assert "| load average (1, 5, 15 min) at start | 0.5, 0.25, 0.125 |" in machine
    assert "busy" not in machine

    kernels = _section(report, "Recurrent kernels")
    assert "Command: `python -m bench.kernels --json bench/results/kernels.json`" in kernels
    assert "(run 2000-01-01T00:01:00Z, 61 s)" in kernels
    assert "`torch.nn.LSTM` 9.9" in kernels
    # torch: 0.01 s for 64 sequences = 6,400 seq/s; ours/torch = 0.01 / 0.02
    assert (
        "| lstm | 64, 50, 32, 128 | float32 | 1 | 3,200 | 12.3 | 50.0 | 66.0% | 6,400 | 0.50x |"
        in (kernels)
    )
    assert (
        "| gru | 64, 50, 32, 128 | float32 | 2 | 3,200 | 12.3 | 50.0 | 66.0% | – | – |" in kernels
    )

    spark = _section(report, "Spark against one process")
    assert "Data: 100,000 generated sequences (noisy sines, lengths 25-50), LSTM hidden 64" in spark
    assert "| one-process, 1 BLAS thread(s) | 3,000 | – | – | – | – | – | – | – | – |" in spark
    assert "| two one-process trainers at once | 5,000 | – |" in spark
    assert (
        "| spark local[1], 1 round/epoch | 2,500 | 2,000 | 10.000 | 1 | 40.000 | 0.010 | "
        "39.500 | 0.490 | 1.2% |"
    ) in spark
    assert (
        "| spark local[2], 100 steps/round | 3,300 | 2,000 | 10.000 | 8 | 3.800 | 0.010 | "
        "3.300 | 0.490 | 13.2% |"
    ) in spark
    assert "2-process ceiling (two one-process trainers at once / one): 1.67x." in spark
    assert "- local[2] / local[1], 1 round/epoch: 1.60x (96% of the ceiling)." in spark
    assert "- local[2] / local[1], 100 steps/round: 1.50x (90% of the ceiling)." in spark
    assert "- local[1] / one process, 1 round/epoch: 0.83x." in spark

    scaling = _section(report, "Scaling with the data size")
    assert "- 10,000 sequences: `python -m bench.spark --rows 10000`." in scaling
    assert "- 1,000,000 sequences, 100 steps/round: local[2] / local[1] 2.00x." in scaling
    assert "| 10,000 | spark local[1], 100 steps/round | 1,100 | 2,000 |" in scaling
    assert "| 1,000,000 | spark local[2], 100 steps/round | 4,200 | 2,000 |" in scaling
    assert scaling.index("| 10,000 |") < scaling.index("| 1,000,000 |")

    convergence = _section(report, "Convergence against the averaging frequency")
    assert "Command: `python -m bench.convergence --fixture`." in convergence
    assert "first reached 0.9000" in convergence
    assert "| one process | – | – | 0.9622 | 30.000 | 12.500 |" in convergence
    assert "| k = 1 | 1 | 2 | 0.9541 | 80.000 | 41.250 |" in convergence
    assert "| k = 50 | 50 | 2 | 0.8711 | 20.000 | – |" in convergence

    accuracy = _section(report, "Accuracy on public datasets")
    assert "| JapaneseVowels | accuracy | 2 | 0.9771 | 0.9500 | met |" in accuracy
    assert "| airline | fixed_origin_mape | 2 | 30.50 | 35.00 | met |" in accuracy
    vowels = accuracy.split("### JapaneseVowels", 1)[1]
    assert "Command: `python -m bench.accuracy JapaneseVowels --fixture`." in vowels
    assert "| seed | accuracy | test_loss | training_seconds |" in vowels
    assert (
        "| 0 | 0.9730 | 0.1000 | 10.00 |" in vowels and "| 1 | 0.9811 | 0.2000 | 12.00 |" in vowels
    )
    assert "| mean | 0.9771 |" in vowels
    assert "| target (higher is better) | 0.9500 |" in vowels
    assert "| target | met |" in vowels
    assert "| published: DTW-1NN | 0.9514 |" in vowels
    airline = accuracy.split("### airline", 1)[1].split("### ", 1)[0]
    assert "Command: not recorded in the results file." in airline
    assert "| seed | fixed_origin_mape | mape |" in airline  # the metric first, once
    assert "| 0 | 30.00 | 20.00 |" in airline and "| mean | 30.50 |" in airline
    assert "did not finish every seed" in airline
    assert "Note (from the config): Scored two ways." in airline
    assert "| training seconds per seed at most | 100.00 |" in airline
    assert "| target (lower is better) | 35.00 |" in airline
    assert "| target | met |" in airline  # fixed-origin MAPE 30.5 <= 35
    assert "| published: seasonal naive | 45.50 |" in airline

    for name in bench_report.PLOTS.values():
        assert f"]({name})" in report
        _assert_png(tmp_path / name)


def test_busy_machine_is_flagged(tmp_path):
    _write(tmp_path / "results" / "machine.json", FIXTURE_MACHINE | {"load_average": [3.5, 3, 2]})
    report = bench_report.write_report(tmp_path).read_text(encoding="utf-8")
    assert "busy when this run started (load 3.5 on 2 cores)" in _section(report, "Machine")


def test_missing_sources_say_which_command_produces_them(tmp_path):
    stale = tmp_path / bench_report.PLOTS["kernels"]
    stale.write_bytes(b"old plot")
    report = bench_report.write_report(tmp_path).read_text(encoding="utf-8")
    assert "Run `python -m bench.report` to produce it." in _section(report, "Machine")
    for title, command in (
        ("Recurrent kernels", "python -m bench.report --skip-spark --skip-scaling"),
        ("Spark against one process", "python -m bench.report --skip-kernels --skip-scaling"),
        ("Scaling with the data size", "python -m bench.report --skip-kernels --skip-spark"),
        ("Convergence against", "python -m bench.convergence"),
        ("Accuracy on public datasets", "python -m bench.accuracy"),
    ):
        section = _section(report, title)
        assert f"Run `{command}` to produce it." in section
        assert "|" not in section  # no table, no number
    assert not list(tmp_path.glob("*.png"))  # and no plot, not even an old one


def test_quick_run_commands_reuse_and_stale_files(tmp_path, monkeypatch):
    """run_benchmarks with the benchmarks replaced by a fake that writes FIXTURE JSON."""
    commands = []

    def fake_execute(command):
        commands.append(command)
        path = Path(command[command.index("--json") + 1])
        if command[2] == "bench.kernels":
            _write(path, {"machine": "fixture", "rows": FIXTURE_KERNELS["rows"]})
        else:
            rows = int(command[command.index("--rows") + 1])
            results = {
                key: value
                for key, value in FIXTURE_SPARK["results"].items()
                if "steps/round" in key or "--only" not in command or "pair" in command
            }
            _write(path, _spark_fixture(rows, results))
        return 0

    monkeypatch.setattr(bench_report, "_execute", fake_execute)
    results = tmp_path / "results"
    _write(results / "scaling_rows999.json", FIXTURE_SCALING[0])  # from an earlier run
    bench_report.main(["--out", str(tmp_path), "--quick"])

    shown = [bench_report._display(c) for c in commands]

    def quoted(name):  # as shlex.join shows a path (tmp_path may hold spaces)
        return shlex.quote(str(results / name))

    assert shown == [
        f"python -m bench.kernels --json {quoted('kernels.json')} --shapes 64,50,32,128 "
        "--dtypes float32 --threads 1",
        f"python -m bench.spark --json {quoted('spark.json')} --rows 2000 --local-steps 10 "
        "--only one-process pair spark1-steps spark2-steps",
        f"python -m bench.spark --json {quoted('scaling_rows4000.json')} --rows 4000 "
        "--local-steps 10 --only spark1-steps spark2-steps",
    ]
    assert sorted(p.name for p in results.glob("scaling_rows*.json")) == [
        "scaling_rows2000.json",
        "scaling_rows4000.json",
    ]
    reused = json.loads((results / "scaling_rows2000.json").read_text(encoding="utf-8"))
    assert reused["reused_from"] == "spark.json"
    assert sorted(reused["results"]) == [
        "spark local[1], 100 steps/round",
        "spark local[2], 100 steps/round",
    ]
    spark = json.loads((results / "spark.json").read_text(encoding="utf-8"))
    assert spark["command"] == shown[1]
    machine = json.loads((results / "machine.json").read_text(encoding="utf-8"))
    assert machine["cores"] == os.cpu_count() and machine["numpy"] == np.__version__
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "**Quick run**" in report
    assert "- 2,000 sequences (the Spark table's run): `python -m bench.spark" in report

    commands.clear()  # --from-results runs nothing and writes the same report
    bench_report.main(["--out", str(tmp_path), "--from-results"])
    assert commands == []
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == report


@pytest.mark.slow
def test_adapter_reads_real_bench_kernels_json(tmp_path):
    path = tmp_path / "kernels.json"
    command = [sys.executable, "-m", "bench.kernels", "--json", str(path), "--threads", "1"]
    command += ["--dtypes", "float64", "--shapes", "4,5,3,8", "--gemm-size", "64"]
    subprocess.run([*command, "--repeats", "1"], check=True, capture_output=True, timeout=120)
    rows = bench_report.kernel_rows(json.loads(path.read_text(encoding="utf-8")))
    assert [(r["cell"], r["shape"], r["dtype"], r["threads"]) for r in rows] == [
        ("lstm", (4, 5, 3, 8), "float64", 1),
        ("gru", (4, 5, 3, 8), "float64", 1),
    ]
    assert all(r["sequences_per_s"] > 0 and 0 < r["fraction_of_gemm"] for r in rows)
    out = tmp_path / "bench"
    (out / "results").mkdir(parents=True)
    (out / "results" / "kernels.json").write_bytes(path.read_bytes())
    report = bench_report.write_report(out).read_text(encoding="utf-8")
    assert f"| lstm | 4, 5, 3, 8 | float64 | 1 | {rows[0]['sequences_per_s']:,.0f} |" in report
    _assert_png(out / "kernels.png")
