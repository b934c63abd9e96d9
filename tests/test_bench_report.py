"""The benchmark report: every section is there, its tables have the expected columns and one
row per result, each number in a cell is the one in the JSON it comes from (to the precision
shown), every figure has its command next to it and is a valid PNG, and missing sources say
which command produces them. The report is read as Markdown structure, never as exact prose.
The figures are read from their matplotlib artists: distinct series, no overlapping or cut-off
text, legends off the data. All results here are FIXTURES (made-up numbers in the formats the
benchmarks write), except the one test that runs ``bench.kernels`` on a tiny shape and the one
that draws the results stored in ``bench/`` (those of the committed PNGs)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import plots as bench_plots
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
        "steps": "compiled",
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
        row.update(
            torch_module="torch.nn.LSTM",
            torch_seconds_fwd_bwd=torch_seconds,
            torch_seconds_fwd=0.016,
            torch_gflops=24.6,
            torch_version="9.9",
        )
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


# --------------------------------------------------------------------------------- reading it
# The report is read as Markdown structure: sections (## and ###), pipe tables (header and
# rows), inline code (the commands), images; numbers are parsed from cells and compared with
# the JSON they come from, to the precision shown. No sentence is matched word for word.

DASH = "–"  # what a cell shows for a value that is missing


def _sections(text: str, level: int = 2) -> dict[str, str]:
    """``{title: body}`` of the headings of ``level`` in ``text``."""
    marker = "#" * level + " "
    found: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line.startswith(marker):
            title = line[len(marker) :].strip()
            found[title] = ""
        elif line.startswith("#" * (level - 1) + " ") and not line.startswith(marker):
            title = None  # a heading of a higher level ends the section
        elif title is not None:
            found[title] += line + "\n"
    return found


def _section(report: str, prefix: str) -> str:
    """The body of the one level-2 section whose title starts with ``prefix``."""
    (body,) = [body for title, body in _sections(report).items() if title.startswith(prefix)]
    return body


def _tables(text: str) -> list[dict]:
    """Every pipe table in ``text``: ``{"header": [...], "rows": [[...], ...]}``."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if block:
            header, separator, *rows = block
            assert all(set(cell) <= set("-: ") for cell in separator), block
            assert all(len(row) == len(header) for row in rows), block
            tables.append({"header": header, "rows": rows})
            block = []
    return tables


def _table(text: str) -> dict:
    (table,) = _tables(text)
    return table


def _prose(text: str) -> list[str]:
    """The non-empty lines of ``text`` that are not tables, images or headings."""
    return [
        line for line in text.splitlines() if line.strip() and not line.startswith(("|", "![", "#"))
    ]


def _code(text: str) -> list[str]:
    """The inline code spans of ``text``, in order."""
    return re.findall(r"`([^`]+)`", text)


def _commands(text: str) -> list[str]:
    return [span for span in _code(text) if span.startswith("python -m ")]


def _images(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


NUMBER = r"\d[\d,]*(?:\.\d+)?"


def _shown(cell: str) -> tuple[float, float] | None:
    """``(value, half of the last digit shown)`` of a number as the report prints it
    (``3,200``, ``66.0%``, ``0.50x``, ``10.000``); None for the dash of a missing value."""
    cell = str(cell).strip()
    if cell == DASH:
        return None
    scale = 0.01 if cell.endswith("%") else 1.0
    digits = cell.rstrip("%x")
    assert re.fullmatch(NUMBER, digits), f"not a number: {cell!r}"
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return float(digits.replace(",", "")) * scale, 0.5 * 10.0**-decimals * scale


def _shows(cell: str, expected: float | None) -> bool:
    """Whether ``cell`` shows ``expected`` (to the precision it prints), or the dash for None."""
    shown = _shown(cell)
    if expected is None or shown is None:
        return expected is None and shown is None
    value, half_digit = shown
    return abs(value - expected) <= half_digit * (1 + 1e-9)


def _assert_row(row: list[str], expected: list) -> None:
    """Each cell is the expected number (to its precision), or the expected text."""
    assert len(row) == len(expected), (row, expected)
    for cell, want in zip(row, expected, strict=True):
        if isinstance(want, str):
            assert cell == want, (row, expected)
        else:
            assert _shows(cell, want), (cell, want, row)


def _numbers(line: str) -> list[float]:
    """The numbers written in a line of text (``1.67x`` is 1.67, ``96%`` is 96)."""
    return [float(n.replace(",", "")) for n in re.findall(NUMBER, line)]


def _line_with(text: str, *words: str) -> str:
    """The one prose line of ``text`` that holds all of ``words`` (labels from the data)."""
    (line,) = [line for line in _prose(text) if all(word in line for word in words)]
    return line


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def _assert_figures_have_commands(report: str, out: Path) -> list[str]:
    """Every image of every section is a PNG in ``out`` and has a command in its section (or,
    for the accuracy pages, in each dataset's part); returns the images."""
    images = []
    for title, body in _sections(report).items():
        for image in _images(body):
            assert _commands(body), f"section {title!r} shows {image} without a command"
            _assert_png(out / image)
            images.append(image)
    return images


# --------------------------------------------------------------------------------- the tests
def _report(tmp_path: Path) -> str:
    _all_fixtures(tmp_path)
    return bench_report.write_report(tmp_path).read_text(encoding="utf-8")


def test_report_has_every_section_each_figure_with_its_command(tmp_path):
    report = _report(tmp_path)
    titles = list(_sections(report))
    expected = [
        "Machine",
        "Recurrent kernels",
        "Spark against one process",
        "Scaling with the data size",
        "Convergence against",
        "Accuracy on public datasets",
    ]
    assert len(titles) == len(expected)
    for title, prefix in zip(titles, expected, strict=True):
        assert title.startswith(prefix)
    images = _assert_figures_have_commands(report, tmp_path)
    assert sorted(images) == sorted(bench_report.PLOTS.values())  # each plot once
    preamble = report.split("\n## ", 1)[0]
    assert "python -m bench.report --from-results" in _code(preamble)
    assert not [line for line in preamble.splitlines() if line.startswith(">")]  # not quick
    # Every measured section names the command (or file) its figures come from.
    for title in expected[1:]:
        assert _commands(_section(report, title)), title


def test_machine_table_holds_the_recorded_machine(tmp_path):
    machine = _section(_report(tmp_path), "Machine")
    table = _table(machine)
    assert len(table["header"]) == 2 and len(table["rows"]) >= 10
    values = [value for _, value in table["rows"]]
    for recorded in ("FIXTURE CPU 9000", "2", "4.0.0", "2.3.5", "3.11.0", "Linux-fixture"):
        assert recorded in values
    (blas,) = [v for v in values if "Haswell" in v]
    assert blas.startswith("openblas 0.3.30") and _numbers(blas)[-1] == 2  # threads
    assert [0.5, 0.25, 0.125] in [_numbers(v) for v in values]  # load average
    assert "python -m bench.report" in _code(machine)  # the report run's command
    assert not [line for line in machine.splitlines() if line.startswith(">")]  # not busy


def test_busy_machine_is_flagged(tmp_path):
    _write(tmp_path / "results" / "machine.json", FIXTURE_MACHINE | {"load_average": [3.5, 3, 2]})
    report = bench_report.write_report(tmp_path).read_text(encoding="utf-8")
    (note,) = [line for line in _section(report, "Machine").splitlines() if line.startswith(">")]
    assert _numbers(note)[:2] == [3.5, 2]  # the load and the cores


def test_kernel_table_holds_the_kernel_results(tmp_path):
    kernels = _section(_report(tmp_path), "Recurrent kernels")
    assert _commands(kernels) == [FIXTURE_KERNELS["command"]]
    line = _line_with(kernels, FIXTURE_KERNELS["command"])
    assert FIXTURE_KERNELS["date"] in line and 61 in _numbers(line)  # when, and wall seconds
    assert "9.9" in _line_with(kernels, "torch.nn.LSTM")  # the torch version compared
    table = _table(kernels)
    assert table["header"] == [
        "cell",
        "steps",
        "B, T, I, H",
        "dtype",
        "threads",
        "sequences/s",
        "GFLOP/s",
        "GEMM GFLOP/s",
        "% of GEMM",
        "torch sequences/s",
        "ours / torch",
        "forward ours / torch",
    ]
    assert len(table["rows"]) == len(FIXTURE_KERNELS["rows"])
    for row, data in zip(table["rows"], FIXTURE_KERNELS["rows"], strict=True):
        torch = data.get("torch_seconds_fwd_bwd")
        shape = ", ".join(str(data[k]) for k in ("batch", "time", "input", "hidden"))
        _assert_row(
            row,
            [data["cell"], data["steps"], shape, data["dtype"], data["threads"]]
            + [data["sequences_per_s"], data["gflops"], data["gemm_peak_gflops"]]
            + [data["fraction_of_gemm"]]
            # torch: batch / its seconds; ours / torch in speed = torch's time / ours
            + [data["batch"] / torch if torch else None]
            + [torch / data["seconds_fwd_bwd"] if torch else None]
            + [data["torch_seconds_fwd"] / data["seconds_fwd"] if torch else None],
        )
    assert table["rows"][0][-3:] == ["6,400", "0.50x", "2.00x"]


SPARK_HEADER = [
    "configuration",
    "sequences/s",
    "with preparation",
    "preparation s",
    "rounds",
    "s/round",
    "broadcast s",
    "compute s",
    "aggregate + scheduling s",
    "overhead",
]


def _spark_row(name: str, result: dict) -> list:
    keys = ["sequences_per_second_with_prepare", "prepare_seconds", "rounds", "round_seconds"]
    keys += ["broadcast_seconds", "compute_seconds", "aggregate_seconds", "overhead"]
    return [name, result["sequences_per_second"], *(result.get(key) for key in keys)]


def test_spark_table_and_ratios_hold_the_spark_results(tmp_path):
    spark = _section(_report(tmp_path), "Spark against one process")
    assert _commands(spark) == [FIXTURE_SPARK["command"]]
    args = FIXTURE_SPARK["args"]
    data = _line_with(spark, f"{args['rows']:,}")  # the data the figures are for
    described = Counter(_numbers(data))  # rows, lengths, hidden size, batch size
    wanted = Counter([args["rows"], args["seq_len"] // 2, args["seq_len"]])
    assert wanted + Counter([args["hidden"], args["batch_size"]]) <= described
    table = _table(spark)
    assert table["header"] == SPARK_HEADER
    results = FIXTURE_SPARK["results"]
    assert [row[0] for row in table["rows"]] == list(results)
    for row, (name, result) in zip(table["rows"], results.items(), strict=True):
        _assert_row(row, _spark_row(name, result))

    # The ratios, each on a line naming what it compares: the 2-process ceiling (the pair's
    # line), local[2] / local[1] per policy with its share of the ceiling in percent, and
    # local[1] / one process per policy.
    speed = {name: result["sequences_per_second"] for name, result in results.items()}
    one = speed["one-process, 1 BLAS thread(s)"]
    ceiling = results["two one-process trainers at once"]["ceiling"]
    assert (
        abs(_numbers(_line_with(spark, "two one-process trainers at once"))[-1] - ceiling) < 0.005
    )
    for policy in ("1 round/epoch", "100 steps/round"):
        pair = speed[f"spark local[2], {policy}"] / speed[f"spark local[1], {policy}"]
        ratio, share = _numbers(_line_with(spark, "local[2] / local[1]", policy))[-2:]
        assert abs(ratio - pair) <= 0.005 and abs(share - 100 * pair / ceiling) <= 0.5
        (line,) = [line for line in _prose(spark) if policy in line and "local[2]" not in line]
        alone = speed[f"spark local[1], {policy}"] / one
        assert "local[1]" in line and abs(_numbers(line)[-1] - alone) <= 0.005


def test_scaling_table_holds_each_size_in_order(tmp_path):
    scaling = _section(_report(tmp_path), "Scaling with the data size")
    assert _commands(scaling) == [data["command"] for data in FIXTURE_SCALING]  # size order
    table = _table(scaling)
    assert table["header"] == ["sequences", *SPARK_HEADER]
    expected = [
        [data["args"]["rows"], *_spark_row(name, result)]
        for data in FIXTURE_SCALING
        for name, result in data["results"].items()
    ]
    assert len(table["rows"]) == len(expected) == 4
    for row, want in zip(table["rows"], expected, strict=True):
        _assert_row(row, want)
    for data in FIXTURE_SCALING:  # local[2] / local[1] at each size
        speed = {name: r["sequences_per_second"] for name, r in data["results"].items()}
        policy = "100 steps/round"
        ratio = speed[f"spark local[2], {policy}"] / speed[f"spark local[1], {policy}"]
        line = _line_with(scaling, f"{data['args']['rows']:,}", "local[2] / local[1]", policy)
        assert abs(_numbers(line)[-1] - ratio) <= 0.005


def test_convergence_table_holds_each_run(tmp_path):
    convergence = _section(_report(tmp_path), "Convergence against")
    assert _commands(convergence) == [FIXTURE_CONVERGENCE["command"]]
    threshold = FIXTURE_CONVERGENCE["threshold"]
    assert threshold in _numbers(" ".join(_prose(convergence)))  # the accuracy timed
    assert FIXTURE_CONVERGENCE["config"]["dataset"]["name"] in convergence
    table = _table(convergence)
    assert table["header"] == [
        "run",
        "k",
        "workers",
        "final accuracy",
        "seconds",
        "seconds to accuracy",
    ]
    runs = FIXTURE_CONVERGENCE["runs"]
    assert len(table["rows"]) == len(runs)
    for row, run in zip(table["rows"], runs, strict=True):
        spark = run["trainer"] == "spark"
        _assert_row(
            row,
            [run["label"], run["local_steps"] if spark else None]
            + [run["workers"] if spark else None, run["final_test_accuracy"]]
            + [run["training_seconds"], run["seconds_to_threshold"]],
        )


def _accuracy_parts(report: str) -> dict[str, str]:
    return _sections(_section(report, "Accuracy on public datasets"), level=3)


def test_accuracy_overview_and_each_dataset(tmp_path):
    report = _report(tmp_path)
    accuracy = _section(report, "Accuracy on public datasets")
    overview = _tables(accuracy.split("\n### ", 1)[0])
    assert len(overview) == 1
    header = ["dataset", "metric", "seeds", "mean", "target", "target met"]
    assert overview[0]["header"] == header
    vowels, airline = FIXTURE_ACCURACY["JapaneseVowels"], FIXTURE_ACCURACY["airline"]
    # airline records no mean: the report takes the mean of its metric over the seeds (30.5).
    airline_mean = np.mean([run["fixed_origin_mape"] for run in airline["runs"]])
    expected = {
        "JapaneseVowels": ["JapaneseVowels", "accuracy", 2, vowels["mean"], 0.95, "met"],
        "airline": ["airline", "fixed_origin_mape", 2, airline_mean, 35.0, "met"],
    }
    assert len(overview[0]["rows"]) == len(expected)
    for row in overview[0]["rows"]:
        _assert_row(row, expected[row[0]])

    parts = _accuracy_parts(report)
    assert sorted(parts) == sorted(expected)
    for name, data in FIXTURE_ACCURACY.items():
        part = parts[name]
        assert _commands(part) == ([data["command"]] if "command" in data else [])
        if "command" not in data:  # the place of the command says it is not recorded
            assert [line for line in _prose(part) if line.startswith("Command:")]
        seeds, summary = _tables(part)
        metric = data["metric"]
        extras = [k for k in bench_report.EXTRA_SCORES if k != metric and k in data["runs"][0]]
        assert seeds["header"] == ["seed", metric, *extras]  # the metric first, once
        assert len(seeds["rows"]) == len(data["runs"])
        for row, run in zip(seeds["rows"], data["runs"], strict=True):
            _assert_row(row, [run["seed"], run[metric], *(run[k] for k in extras)])

        assert summary["header"] == ["", metric]
        labels = [label for label, _ in summary["rows"]]
        values = {label: value for label, value in summary["rows"]}
        mean = data.get("mean", airline_mean)
        assert _shows(summary["rows"][0][1], mean)
        target_labels = [label for label in labels if "better" in label]
        assert len(target_labels) == 1  # the target, with its direction
        assert ("higher" if data["higher_is_better"] else "lower") in target_labels[0]
        assert _shows(values[target_labels[0]], data["target"]["value"])
        assert "met" in values.values()
        limit = data["target"].get("max_training_seconds")
        shown_numbers = [v for v in values.values() if v not in ("met", "not met", DASH)]
        assert len(shown_numbers) == 2 + len(data["references"]) + (limit is not None)
        if limit is not None:
            assert any(_shows(v, limit) for v in shown_numbers)
        for reference, value in data["references"].items():
            (label,) = [label for label in labels if reference in label]
            assert _shows(values[label], value)
        notes = (data.get("config") or {}).get("notes")
        if notes:
            assert notes in part


def test_an_unfinished_accuracy_run_says_so(tmp_path):
    """The same results, finished and unfinished: the unfinished part has one more line."""
    lines = {}
    for complete in (True, False):
        out = tmp_path / str(complete)
        _all_fixtures(out)
        _write(
            out / "accuracy" / "airline.json", FIXTURE_ACCURACY["airline"] | {"complete": complete}
        )
        report = bench_report.write_report(out).read_text(encoding="utf-8")
        lines[complete] = _prose(_accuracy_parts(report)["airline"])
    assert len(lines[False]) == len(lines[True]) + 1
    assert set(lines[True]) < set(lines[False])


def test_missing_sources_say_which_command_produces_them(tmp_path):
    stale = tmp_path / bench_report.PLOTS["kernels"]
    stale.write_bytes(b"old plot")
    report = bench_report.write_report(tmp_path).read_text(encoding="utf-8")
    assert _commands(_section(report, "Machine")) == ["python -m bench.report"]
    assert not _tables(_section(report, "Machine"))
    for title, command in (
        ("Recurrent kernels", "python -m bench.report --skip-spark --skip-scaling"),
        ("Spark against one process", "python -m bench.report --skip-kernels --skip-scaling"),
        ("Scaling with the data size", "python -m bench.report --skip-kernels --skip-spark"),
        ("Convergence against", "python -m bench.convergence"),
        ("Accuracy on public datasets", "python -m bench.accuracy"),
    ):
        section = _section(report, title)
        assert _commands(section) == [command]
        assert not _tables(section) and not _images(section)  # no table, no figure
        assert not re.search(r"\d", section.replace(command, ""))  # and no number
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
    preamble = report.split("\n## ", 1)[0]  # a quick run is flagged before any figure
    assert any("--quick" in _code(line) for line in preamble.splitlines() if line.startswith(">"))
    # The scaling series lists the Spark table's run for 2,000 rows (reused, not run again).
    assert _commands(_section(report, "Scaling with the data size")) == shown[1:]
    _assert_figures_have_commands(report, tmp_path)

    commands.clear()  # --from-results runs nothing and writes the same report
    bench_report.main(["--out", str(tmp_path), "--from-results"])
    assert commands == []
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == report


@pytest.mark.slow
def test_adapter_reads_real_bench_kernels_json(tmp_path):
    path = tmp_path / "kernels.json"
    command = [sys.executable, "-m", "bench.kernels", "--json", str(path), "--threads", "1"]
    command += ["--dtypes", "float64", "--shapes", "4,5,3,8", "--gemm-size", "64"]
    command += ["--cells", "lstm", "gru", "--repeats", "1", "--min-seconds", "0"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    rows = bench_report.kernel_rows(json.loads(path.read_text(encoding="utf-8")))
    assert [(r["cell"], r["steps"], r["shape"], r["dtype"], r["threads"]) for r in rows] == [
        (cell, steps, (4, 5, 3, 8), "float64", 1)
        for cell in ("lstm", "gru")
        for steps in ("compiled", "numpy")
    ]
    assert all(r["sequences_per_s"] > 0 and 0 < r["fraction_of_gemm"] for r in rows)
    out = tmp_path / "bench"
    (out / "results").mkdir(parents=True)
    (out / "results" / "kernels.json").write_bytes(path.read_bytes())
    report = bench_report.write_report(out).read_text(encoding="utf-8")
    table = _table(_section(report, "Recurrent kernels"))
    assert len(table["rows"]) == len(rows)
    for row, r in zip(table["rows"], rows, strict=True):
        _assert_row(
            row[:6], [r["cell"], r["steps"], "4, 5, 3, 8", "float64", 1, r["sequences_per_s"]]
        )
    assert _images(report) == [bench_report.PLOTS["kernels"]]
    _assert_png(out / "kernels.png")


# --------------------------------------------------------------------------------- the figures
# Read from the matplotlib artists of each figure: every series has its own (colour, line
# style, marker), no two texts overlap, every text lies inside the saved image, and legends sit
# outside the axes.


def _style(line) -> tuple:
    from matplotlib.colors import to_rgba

    return to_rgba(line.get_color()), line.get_linestyle(), line.get_marker()


def _series(ax) -> list:
    """The labelled lines of an axes (the series; reference lines carry no label)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def _all_axes(fig) -> list:
    return [ax for ax in fig.get_axes() if ax.get_visible()]


def _legends(fig) -> list:
    figures = [fig, *fig.subfigs]
    return [legend for f in figures for legend in f.legends] + [
        ax.get_legend() for ax in _all_axes(fig) if ax.get_legend() is not None
    ]


def _texts(fig) -> list:
    """Every visible, non-empty text of the figure as drawn: titles, axis and tick labels (of
    the ticks in view), annotations and legend entries."""
    texts = [fig._suptitle] + [sub._suptitle for sub in fig.subfigs]
    for ax in _all_axes(fig):
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts.append(axis.label)
            texts += [
                tick.label1
                for tick in axis.get_major_ticks()
                if low - 1e-9 * abs(high - low) <= tick.get_loc() <= high + 1e-9 * abs(high - low)
            ]
    for legend in _legends(fig):
        texts += [legend.get_title(), *legend.get_texts()]
    return [t for t in texts if t is not None and t.get_visible() and t.get_text().strip()]


def _assert_readable(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer).shrunk(0.98, 0.9)) for t in _texts(fig)]
    assert len(boxes) > 5
    for text, box in boxes:
        assert (
            box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1
        ) and box.y1 <= page.y1 + 1, f"{text!r} is cut off the image: {box} outside {page}"
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1 :]:
            assert not box.overlaps(other_box), f"{text!r} overlaps {other!r}"
    for legend in _legends(fig):
        frame = legend.get_window_extent(renderer)
        for ax in _all_axes(fig):
            assert not frame.overlaps(ax.bbox), "a legend covers an axes"


def _assert_distinct_series(fig, minimum: int) -> None:
    """Within each axes every series has its own (colour, line style, marker); a label keeps
    one style across the figure, and two labels never share one."""
    style_of: dict[str, tuple] = {}
    counted = 0
    for ax in _all_axes(fig):
        series = _series(ax)
        counted = max(counted, len(series))
        styles = [_style(line) for line in series]
        assert len(set(styles)) == len(styles), [line.get_label() for line in series]
        for line, style in zip(series, styles, strict=True):
            assert style_of.setdefault(line.get_label(), style) == style, line.get_label()
    assert len(set(style_of.values())) == len(style_of)
    assert counted >= minimum


def _figures_from(out: Path) -> dict:
    """Every figure of the report, drawn from the results in ``out`` as the report reads them."""
    results = out / "results"
    load = bench_report._load
    scaling = [json.loads(p.read_text()) for p in results.glob(bench_report.SCALING_PATTERN)]
    return {
        "kernels": bench_plots.kernels_figure(
            bench_report.kernel_rows(load(results / "kernels.json"))
        ),
        "spark": bench_plots.spark_rounds_figure(
            bench_report.spark_rows(load(results / "spark.json"))["rows"]
        ),
        "scaling": bench_plots.scaling_figure(bench_report.scaling_rows(scaling)),
        "convergence": bench_plots.convergence_figure(
            bench_report.convergence_rows(load(out / "convergence.json"))
        ),
    }


@pytest.fixture
def close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_series_styles_differ_in_colour_line_style_and_marker():
    from matplotlib.colors import to_rgba

    styles = bench_plots.series_styles(bench_plots.MAX_SERIES)
    triples = {(to_rgba(s["color"]), s["linestyle"], s["marker"]) for s in styles}
    assert len(triples) == len(styles) == 180
    for before, after in zip(styles, styles[1:], strict=False):  # neighbours differ in all three
        assert all(before[key] != after[key] for key in ("color", "linestyle", "marker"))
    with pytest.raises(ValueError, match="count must be in 0..180"):
        bench_plots.series_styles(181)


def _convergence_run(label, workers, k, seconds_to_target, start):
    curve = [
        {"seconds": start * (i + 1), "test_accuracy": min(0.99, 0.3 + 0.07 * i)} for i in range(12)
    ]
    return {
        "label": label,
        "trainer": "spark" if workers else "local",
        "local_steps": k,
        "workers": workers,
        "final_test_accuracy": curve[-1]["test_accuracy"],
        "training_seconds": curve[-1]["seconds"],
        "seconds_to_threshold": seconds_to_target,
        "curve": curve,
    }


def test_convergence_figure_gives_each_of_many_runs_its_own_style(close_figures):
    # One process and 11 averaging policies on 2 and 4 workers: 23 runs, 12 curves per panel
    # (more than the 10 colours), as bench.convergence labels them.
    policies = [f"avg every {k} step{'s' if k > 1 else ''}" for k in range(1, 11)] + [
        "avg every epoch"
    ]
    runs = [_convergence_run("one process", None, None, 0.3, 0.05)]
    for workers in (2, 4):
        runs += [
            _convergence_run(f"spark {workers} workers, {policy}", workers, i + 1, None, 0.1 + i)
            for i, policy in enumerate(policies)
        ]
    conv = bench_report.convergence_rows(
        {"config": {"dataset": {"name": "Synthetic"}}, "threshold": 0.9, "runs": runs}
    )
    fig = bench_plots.convergence_figure(conv)
    curves = [ax for ax in _all_axes(fig) if ax.get_title().startswith("Spark")]
    assert [ax.get_title() for ax in curves] == ["Spark, 2 workers", "Spark, 4 workers"]
    for ax in curves:
        assert [line.get_label() for line in _series(ax)] == ["one process", *policies]
        assert ax.get_xscale() == "log"
    _assert_distinct_series(fig, minimum=12)
    (legend,) = _legends(fig)
    assert [t.get_text() for t in legend.get_texts()] == ["one process", *policies, "target 0.9"]
    _assert_readable(fig)
    # The top panels list every run once, in order.
    labels = [t.get_text() for t in _all_axes(fig)[0].get_yticklabels()]
    assert labels == [run["label"] for run in runs]


def test_scaling_figure_pairs_each_configuration_with_its_preparation_line(close_figures):
    fig = bench_plots.scaling_figure(bench_report.scaling_rows(FIXTURE_SCALING))
    (ax,) = _all_axes(fig)
    names = ["spark local[1], 100 steps/round", "spark local[2], 100 steps/round"]
    labels = [
        f"{n}: {kind}" for n in names for kind in ("training rounds", "with data preparation")
    ]
    assert [line.get_label() for line in _series(ax)] == labels
    _assert_distinct_series(fig, minimum=4)
    rounds, prepared = _series(ax)[:2]  # one configuration: same colour, solid against dashed
    assert rounds.get_color() == prepared.get_color()
    assert (rounds.get_linestyle(), prepared.get_linestyle()) == ("-", "--")
    assert list(rounds.get_ydata()) == [1100.0, 2100.0]


@pytest.mark.parametrize("source", ["fixtures", "stored"])
def test_every_figure_is_readable(source, tmp_path, close_figures):
    """The figures of the fixtures and of the results stored in bench/ (those of the committed
    PNGs): no overlapping or cut-off text, no legend over the data, distinct series."""
    if source == "fixtures":
        _all_fixtures(tmp_path)
        out = tmp_path
    else:
        out = Path(bench_report.__file__).parent
    figures = _figures_from(out)
    for name, fig in figures.items():
        try:
            _assert_readable(fig)
            _assert_distinct_series(fig, minimum=0)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error
