"""Runs the benchmarks; writes ``bench/report.md`` with PNG plots (figures depend on the machine).

    python -m bench.report                   # kernels, Spark table, scaling (tens of minutes)
    python -m bench.report --quick           # tiny sizes and fewer configurations: a smoke run
    python -m bench.report --skip-kernels --scaling-rows 10000 100000
    python -m bench.report --from-results    # report and plots again from bench/results/*.json

The benchmarks run one after the other, each in its own processes (never two at once):
``bench.kernels --json``, ``bench.spark --json`` and, for the scaling series,
``bench.spark --only ...`` once per data size (the size of the Spark table is not run twice).
Raw results go to ``<out>/results/*.json``, each with the exact command that produced it; a
skipped benchmark keeps the results of an earlier run, if any. The report also reads the
results other jobs write: ``<out>/convergence.json`` (``bench.convergence``) and
``<out>/accuracy/<dataset>.json`` (``bench.accuracy``). A section whose results are missing says
which command produces them; no figure in the report is anything but a measured one.

Each source has one adapter function (``kernel_rows``, ``spark_rows``, ``scaling_rows``,
``convergence_rows``, ``accuracy_summary``) that names every field the report reads.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import plots

KERNELS_FILE = "kernels.json"
SPARK_FILE = "spark.json"
SCALING_PATTERN = "scaling_rows*.json"
MACHINE_FILE = "machine.json"
RUN_FILE = "run.json"
PLOTS = {
    "kernels": "kernels.png",
    "spark": "spark_rounds.png",
    "scaling": "scaling.png",
    "convergence": "convergence.png",
}
SPARK_CONFIGS = ("one-process", "pair", "spark1", "spark2", "spark1-steps", "spark2-steps")

FULL = {
    "kernels": [],  # bench.kernels' defaults: its two shapes, float32/float64, 1 and 2 threads
    "spark": [],  # all of bench.spark's configurations
    "spark_rows": 100_000,
    "scaling_rows": [10_000, 100_000, 1_000_000],
    "local_steps": 100,
}
QUICK = {
    "kernels": ["--shapes", "64,50,32,128", "--dtypes", "float32", "--threads", "1"],
    "spark": ["--only", "one-process", "pair", "spark1-steps", "spark2-steps"],
    "spark_rows": 2000,
    "scaling_rows": [2000, 4000],
    "local_steps": 10,
}
RUN_KERNELS = "python -m bench.report --skip-spark --skip-scaling"
RUN_SPARK = "python -m bench.report --skip-kernels --skip-scaling"
RUN_SCALING = "python -m bench.report --skip-kernels --skip-spark"
RUN_CONVERGENCE = "python -m bench.convergence"
RUN_ACCURACY = "python -m bench.accuracy"


# --------------------------------------------------------------------------------- the machine


def machine_info() -> dict:
    """The machine and software the benchmarks ran on (best effort: a missing item is None)."""
    import numpy as np

    info: dict = {
        "date": _now(),
        "cores": os.cpu_count(),
        "cpu_model": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": None,
        "blas_runtime": None,
        "pyspark": None,
        "java": None,
        "load_average": None,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu_model"] = platform.processor() or None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - description only
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas_runtime"] = [
            {key: pool.get(key) for key in ("internal_api", "version", "architecture")}
            | {"threads": pool.get("num_threads")}
            for pool in threadpool_info()
            if pool.get("user_api") == "blas"
        ]
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        pass
    try:
        from importlib.metadata import version

        info["pyspark"] = version("pyspark")
    except Exception:  # noqa: BLE001
        pass
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
        info["java"] = (java.stderr or java.stdout).strip().splitlines()[0]
    except Exception:  # noqa: BLE001
        pass
    try:
        info["load_average"] = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        pass
    return info


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------- running


def _display(command: list[str]) -> str:
    """The command as typed from the project root with the venv active."""
    return shlex.join(["python", *command[1:]] if command[0] == sys.executable else command)


def _execute(command: list[str]) -> int:
    """Runs one benchmark process to its end, its output on the console; its exit code."""
    return subprocess.run(command, check=False).returncode


def _run_json(command: list[str], path: Path, **extra: object) -> dict:
    """Runs one benchmark (output to the console) and adds the command and date to its JSON."""
    print(f"\n$ {_display(command)}", flush=True)
    started = time.perf_counter()
    date = _now()
    code = _execute(command)
    if code != 0 or not path.exists():
        raise SystemExit(f"error: {_display(command)} failed (exit code {code})")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(command=_display(command), date=date, wall_seconds=time.perf_counter() - started)
    data.update(extra)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data


def run_benchmarks(args: argparse.Namespace, results: Path) -> None:
    preset = QUICK if args.quick else FULL
    results.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m"]
    (results / MACHINE_FILE).write_text(json.dumps(machine_info(), indent=2), encoding="utf-8")
    if not args.skip_kernels:
        path = results / KERNELS_FILE
        path.unlink(missing_ok=True)
        _run_json([*py, "bench.kernels", "--json", str(path), *preset["kernels"]], path)
    spark = None
    spark_rows = args.spark_rows or preset["spark_rows"]
    local_steps = ["--local-steps", str(preset["local_steps"])]
    if not args.skip_spark:
        path = results / SPARK_FILE
        path.unlink(missing_ok=True)
        command = [*py, "bench.spark", "--json", str(path), "--rows", str(spark_rows)]
        command += [*local_steps, *preset["spark"]]
        spark = _run_json(command, path)
    if not args.skip_scaling:
        for old in results.glob(SCALING_PATTERN):
            old.unlink()
        configs = args.scaling_configs
        for rows in args.scaling_rows or preset["scaling_rows"]:
            path = results / f"scaling_rows{rows}.json"
            if spark is not None and rows == spark_rows and set(configs) <= _spark_configs(spark):
                wanted = {_config_label(name, spark["args"]) for name in configs}
                reused = {**spark, "results": {}, "reused_from": SPARK_FILE}
                reused["results"] = {k: v for k, v in spark["results"].items() if k in wanted}
                path.write_text(json.dumps(reused, indent=2), encoding="utf-8")
                print(f"\nscaling, {rows} rows: the Spark table's run (same data and options)")
                continue
            command = [*py, "bench.spark", "--json", str(path), "--rows", str(rows)]
            _run_json([*command, *local_steps, "--only", *configs], path)
    run = {"command": _display([sys.executable, "-m", "bench.report", *sys.argv[1:]])}
    run.update(date=_now(), quick=args.quick)
    (results / RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")


def _config_label(name: str, spark_args: dict) -> str:
    """bench.spark's result key of a configuration name (as in its ``--only``)."""
    if name == "one-process":
        return "one-process, 1 BLAS thread(s)"
    if name == "pair":
        return "two one-process trainers at once"
    workers = name[len("spark")]
    policy = f"{spark_args['local_steps']} steps/round" if name.endswith("-steps") else None
    return f"spark local[{workers}], {policy or '1 round/epoch'}"


def _spark_configs(spark: dict) -> set[str]:
    return {n for n in SPARK_CONFIGS if _config_label(n, spark["args"]) in spark["results"]}


# --------------------------------------------------------------------------------- adapters


def kernel_rows(data: dict) -> list[dict]:
    """Rows of ``bench.kernels --json``: ``{"machine": str, "rows": [...]}``, each row with
    cell, steps (compiled or numpy), dtype, threads, batch, time, input, hidden,
    seconds_fwd_bwd, seconds_fwd, sequences_per_s, gflops, gemm_peak_gflops, fraction_of_gemm
    and, where torch has the module and was installed, torch_module, torch_seconds_fwd_bwd,
    torch_seconds_fwd (torch_version)."""
    rows = []
    for row in data["rows"]:
        torch_seconds = row.get("torch_seconds_fwd_bwd")
        torch_forward = row.get("torch_seconds_fwd")
        rows.append(
            {
                "cell": row["cell"],
                "steps": row.get("steps", "numpy"),  # runs before issue 18 had NumPy's only
                "shape": (row["batch"], row["time"], row["input"], row["hidden"]),
                "dtype": row["dtype"],
                "threads": row["threads"],
                "sequences_per_s": row["sequences_per_s"],
                "gflops": row["gflops"],
                "gemm_gflops": row["gemm_peak_gflops"],
                "fraction_of_gemm": row["fraction_of_gemm"],
                "torch_sequences_per_s": row["batch"] / torch_seconds if torch_seconds else None,
                # ours / torch in speed, as the README's kernel table
                "torch_ratio": torch_seconds / row["seconds_fwd_bwd"] if torch_seconds else None,
                "torch_forward_ratio": (
                    torch_forward / row["seconds_fwd"] if torch_forward else None
                ),
                "torch_module": row.get("torch_module", "torch.nn.LSTM"),
                "torch_version": row.get("torch_version"),
            }
        )
    return rows


def spark_rows(data: dict) -> dict:
    """``bench.spark --json``: ``{"args": {...}, "results": {name: {...}}}``. One-process
    results carry sequences_per_second; the pair also ceiling; Spark ones sequences_per_second,
    sequences_per_second_with_prepare, prepare_seconds, rounds, round_seconds,
    broadcast_seconds, compute_seconds, aggregate_seconds, overhead."""
    rows = []
    for name, result in data["results"].items():
        match = re.match(r"spark local\[(\d+)\], (.*)", name)
        rows.append(
            {
                "name": name,
                "kind": "spark" if match else ("pair" if "ceiling" in result else "one-process"),
                "workers": int(match.group(1)) if match else None,
                "policy": match.group(2) if match else None,
                "sequences_per_s": result["sequences_per_second"],
                "with_prepare": result.get("sequences_per_second_with_prepare"),
                "prepare_seconds": result.get("prepare_seconds"),
                "rounds": result.get("rounds"),
                "round_seconds": result.get("round_seconds"),
                "broadcast_seconds": result.get("broadcast_seconds"),
                "compute_seconds": result.get("compute_seconds"),
                "aggregate_seconds": result.get("aggregate_seconds"),
                "overhead": result.get("overhead"),
                "ceiling": result.get("ceiling"),
            }
        )
    args = data.get("args", {})
    return {
        "rows": rows,
        "data_rows": args.get("rows"),
        "seq_len": args.get("seq_len"),
        "hidden": args.get("hidden"),
        "batch_size": args.get("batch_size"),
        "local_steps": args.get("local_steps"),
    }


def scaling_rows(files: list[dict]) -> list[dict]:
    """The scaling series: one ``bench.spark --json`` output per data size (Spark rows only),
    ordered by size."""
    rows = []
    for data in files:
        table = spark_rows(data)
        rows += [
            r | {"data_rows": table["data_rows"]} for r in table["rows"] if r["kind"] == "spark"
        ]
    return sorted(rows, key=lambda r: (r["data_rows"], r["policy"], r["workers"]))


def convergence_rows(data: dict) -> dict:
    """``bench/convergence.json`` of ``bench.convergence``. Fields read: threshold (the accuracy
    whose time is measured), command, config.dataset.name, and runs: a list of {"label",
    "trainer" ("local" or "spark"), "local_steps" (steps between averagings), "workers",
    "final_test_accuracy", "training_seconds", "seconds_to_threshold" (null if never
    reached), "curve": [{"seconds", "test_accuracy"}, ...]}."""
    runs = []
    for run in data.get("runs", []):
        spark = run.get("trainer") == "spark"
        runs.append(
            {
                "label": run.get("label") or ("spark" if spark else "one process"),
                "k": run.get("local_steps") if spark else None,
                "workers": run.get("workers") if spark else None,
                "accuracy": run.get("final_test_accuracy"),
                "seconds": run.get("training_seconds"),
                "seconds_to_target": run.get("seconds_to_threshold"),
                "curve": [
                    (point["seconds"], point["test_accuracy"]) for point in run.get("curve", [])
                ],
            }
        )
    dataset = (data.get("config") or {}).get("dataset") or {}
    return {
        "dataset": dataset.get("name") or data.get("config_file"),
        "target": data.get("threshold"),
        "command": data.get("command"),
        "runs": runs,
    }


LOWER_IS_BETTER = ("rmse", "mae", "mape", "loss", "bits", "bpc", "perplexity", "error")
# Scores that bench.accuracy records next to the main metric, shown per seed when present.
EXTRA_SCORES = (
    "mape",
    "seasonal_naive_mape",
    "fixed_origin_mape",
    "fixed_origin_seasonal_naive_mape",
    "test_loss",
    "training_seconds",
)


def accuracy_summary(data: dict, name: str) -> dict:
    """``bench/accuracy/<config>.json`` of ``bench.accuracy``. Fields read: dataset (else the
    file name), metric, higher_is_better, runs: [{"seed", <metric>, and any of
    EXTRA_SCORES}], mean, target: {"value", "max_training_seconds"}, target_met,
    references: {name: value}, command, config.notes."""
    metric = data.get("metric", "accuracy")
    runs = data.get("runs", [])
    seeds = [(run.get("seed", i), run.get(metric)) for i, run in enumerate(runs)]
    extras = [key for key in EXTRA_SCORES if key != metric and any(key in run for run in runs)]
    values = [value for _, value in seeds if value is not None]
    mean = data.get("mean", sum(values) / len(values) if values else None)
    higher = data.get("higher_is_better", not any(w in metric.lower() for w in LOWER_IS_BETTER))
    target = data.get("target") or {}
    if not isinstance(target, dict):
        target = {"value": target}
    met = data.get("target_met")
    if met is None and target.get("value") is not None and mean is not None:
        met = mean >= target["value"] if higher else mean <= target["value"]
    references = data.get("references", {})
    return {
        "dataset": data.get("dataset", name),
        "metric": metric,
        "higher_is_better": higher,
        "seeds": seeds,
        "extras": {key: [run.get(key) for run in runs] for key in extras},
        "mean": mean,
        "target": target.get("value"),
        "max_training_seconds": target.get("max_training_seconds"),
        "met": met,
        "published": [{"name": key, "value": value} for key, value in references.items()],
        "command": data.get("command"),
        "complete": data.get("complete", True),
        "notes": (data.get("config") or {}).get("notes"),
    }


# --------------------------------------------------------------------------------- formatting


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def _command_line(data: dict, prefix: str = "Command: ") -> str:
    command = data.get("command")
    line = f"{prefix}`{command}`" if command else f"{prefix}not recorded in the results file"
    if data.get("date"):
        line += f" (run {data['date']}"
        if data.get("wall_seconds") is not None:
            line += f", {data['wall_seconds']:.0f} s"
        line += ")"
    return line + "."


def _missing(what: str, command: str) -> list[str]:
    return [f"Not measured yet: no {what}. Run `{command}` to produce it.", ""]


def _load(path: Path) -> dict | None:
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------- sections


def machine_section(machine: dict | None, run: dict | None) -> list[str]:
    lines = ["## Machine", ""]
    if machine is None:
        return lines + _missing(f"`results/{MACHINE_FILE}`", "python -m bench.report")
    blas = machine.get("blas_runtime") or []
    runtime = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
        f"{b.get('threads')} threads)"
        for b in blas
    )
    load = machine.get("load_average")
    rows = [
        ["CPU", machine.get("cpu_model") or "–"],
        ["cores", machine.get("cores") or "–"],
        ["BLAS (NumPy build)", machine.get("numpy_blas") or "–"],
        ["BLAS (loaded, threadpoolctl)", runtime or "–"],
        ["NumPy", machine.get("numpy") or "–"],
        ["Python", machine.get("python") or "–"],
        ["Spark (pyspark)", machine.get("pyspark") or "–"],
        ["Java", machine.get("java") or "–"],
        ["OS", machine.get("platform") or "–"],
        ["load average (1, 5, 15 min) at start", ", ".join(map(str, load)) if load else "–"],
        ["date (UTC)", machine.get("date") or "–"],
    ]
    lines += _table(["", ""], rows)
    cores = machine.get("cores")
    if load and cores and load[0] > cores / 2:
        lines += [
            f"> The machine was busy when this run started (load {load[0]} on {cores} cores): "
            "its figures are lower and noisier than a quiet machine's, and ratios between "
            "runs (ceiling, local[2] / local[1]) can be far off.",
            "",
        ]
    if run:
        lines += [f"Report run: `{run.get('command')}` (finished {run.get('date')}).", ""]
    return lines


def kernels_section(data: dict | None, out: Path) -> list[str]:
    lines = ["## Recurrent kernels: forward + BPTT of one layer", ""]
    if data is None:
        return lines + _missing(f"`results/{KERNELS_FILE}`", RUN_KERNELS)
    rows = kernel_rows(data)
    versions = sorted({r["torch_version"] for r in rows if r["torch_version"]})
    modules = sorted({r["torch_module"] for r in rows if r["torch_ratio"] is not None})
    torch = bool(modules)
    lines += [
        _command_line(data),
        "",
        "Sequences/s of one forward + backward pass (all steps valid, no input gradient); "
        "steps = the element-wise part compiled (numba, the `fast` extra) or in NumPy; % of "
        "GEMM = achieved GFLOP/s over the square GEMM measured in the same process."
        + (
            f" ours / torch = torch's time over ours for {', '.join(f'`{m}`' for m in modules)} "
            f"{', '.join(versions)} on the same shape (above 1 means faster), timed in turn "
            "with ours (medians); forward = the same for the forward pass alone (torch under "
            "no_grad)."
            if torch
            else " torch was not installed: no torch comparison."
        ),
        "",
    ]
    header = ["cell", "steps", "B, T, I, H", "dtype", "threads", "sequences/s", "GFLOP/s"]
    header += ["GEMM GFLOP/s", "% of GEMM"]
    if torch:
        header += ["torch sequences/s", "ours / torch", "forward ours / torch"]
    table = []
    for r in rows:
        line = [r["cell"], r["steps"], ", ".join(map(str, r["shape"])), r["dtype"]]
        line += [r["threads"], _rate(r["sequences_per_s"]), f"{r['gflops']:.1f}"]
        line += [f"{r['gemm_gflops']:.1f}", _pct(r["fraction_of_gemm"])]
        if torch:
            line += [_rate(r["torch_sequences_per_s"]), _x(r["torch_ratio"])]
            line += [_x(r["torch_forward_ratio"])]
        table.append(line)
    lines += _table(header, table)
    plots.save(plots.kernels_figure(rows), out / PLOTS["kernels"])
    return lines + [f"![kernel sequences/s]({PLOTS['kernels']})", ""]


def spark_section(data: dict | None, out: Path) -> list[str]:
    lines = ["## Spark against one process", ""]
    if data is None:
        return lines + _missing(f"`results/{SPARK_FILE}`", RUN_SPARK)
    table = spark_rows(data)
    lines += [_command_line(data), "", f"Data: {table['data_rows']:,} {_data_sentence(table)}", ""]
    lines += _table(*_spark_table(table["rows"]))
    lines += _spark_ratios(table["rows"])
    if any(r["kind"] == "spark" for r in table["rows"]):
        plots.save(plots.spark_rounds_figure(table["rows"]), out / PLOTS["spark"])
        lines += [f"![Spark round time split]({PLOTS['spark']})", ""]
    return lines


def _data_sentence(table: dict) -> str:
    seq_len = table["seq_len"]
    return (
        f"generated sequences (noisy sines, lengths "
        f"{seq_len // 2}-{seq_len}), LSTM hidden {table['hidden']}, batch {table['batch_size']}, "
        "float32, one epoch, 1 BLAS thread per process. Sequences/s counts round time only; "
        "'with preparation' adds validation and the Arrow -> NumPy caching. Overhead = share of "
        "round time not spent computing (broadcast + aggregate + scheduling)."
    )


def _spark_table(rows: list[dict], with_size: bool = False) -> tuple[list[str], list[list]]:
    header = ["configuration", "sequences/s", "with preparation", "preparation s", "rounds"]
    header += ["s/round", "broadcast s", "compute s", "aggregate + scheduling s", "overhead"]
    if with_size:
        header = ["sequences", *header]
    table = []
    for r in rows:
        line = [r["name"], _rate(r["sequences_per_s"]), _rate(r["with_prepare"])]
        line += [_s(r["prepare_seconds"]), "–" if r["rounds"] is None else r["rounds"]]
        line += [_s(r["round_seconds"]), _s(r["broadcast_seconds"]), _s(r["compute_seconds"])]
        line += [_s(r["aggregate_seconds"]), _pct(r["overhead"])]
        table.append([f"{r['data_rows']:,}", *line] if with_size else line)
    return header, table


def _spark_ratios(rows: list[dict]) -> list[str]:
    one = next((r for r in rows if r["name"] == "one-process, 1 BLAS thread(s)"), None)
    pair = next((r for r in rows if r["kind"] == "pair"), None)
    ceiling = pair["ceiling"] if pair else None
    lines = []
    if ceiling is not None:
        lines.append(
            f"- This machine's 2-process ceiling (two one-process trainers at once / one): "
            f"{_x(ceiling)}."
        )
    for policy in dict.fromkeys(r["policy"] for r in rows if r["kind"] == "spark"):
        spark = {r["workers"]: r for r in rows if r["policy"] == policy}
        if 1 in spark and 2 in spark:
            ratio = spark[2]["sequences_per_s"] / spark[1]["sequences_per_s"]
            line = f"- local[2] / local[1], {policy}: {_x(ratio)}"
            if ceiling:
                line += f" ({100 * ratio / ceiling:.0f}% of the ceiling)"
            lines.append(line + ".")
        if 1 in spark and one is not None:
            ratio = spark[1]["sequences_per_s"] / one["sequences_per_s"]
            lines.append(f"- local[1] / one process, {policy}: {_x(ratio)}.")
    return lines + [""] if lines else []


def scaling_section(files: list[dict], out: Path) -> list[str]:
    lines = ["## Scaling with the data size", ""]
    if not files:
        return lines + _missing(f"`results/{SCALING_PATTERN}`", RUN_SCALING)
    lines += ["Commands:", ""]
    for data in sorted(files, key=lambda d: d["args"]["rows"]):
        reused = " (the Spark table's run)" if data.get("reused_from") else ""
        line = _command_line(data, prefix=f"{data['args']['rows']:,} sequences{reused}: ")
        lines.append(f"- {line}")
    lines += ["", f"Data: {_data_sentence(spark_rows(files[0]))}", ""]
    rows = scaling_rows(files)
    lines += _table(*_spark_table(rows, with_size=True))
    ratios = []
    for size in dict.fromkeys(r["data_rows"] for r in rows):
        for policy in dict.fromkeys(r["policy"] for r in rows if r["data_rows"] == size):
            same = {
                r["workers"]: r for r in rows if (r["data_rows"], r["policy"]) == (size, policy)
            }
            if 1 in same and 2 in same:
                ratio = same[2]["sequences_per_s"] / same[1]["sequences_per_s"]
                ratios.append(f"- {size:,} sequences, {policy}: local[2] / local[1] {_x(ratio)}.")
    lines += [*ratios, ""] if ratios else []
    plots.save(plots.scaling_figure(rows), out / PLOTS["scaling"])
    return lines + [f"![sequences/s against data size]({PLOTS['scaling']})", ""]


def convergence_section(data: dict | None, out: Path) -> list[str]:
    lines = ["## Convergence against the averaging frequency", ""]
    if data is None:
        return lines + _missing("`convergence.json`", RUN_CONVERGENCE)
    conv = convergence_rows(data)
    lines += [_command_line(data), ""]
    target = conv["target"]
    lines += [
        f"Dataset: {conv['dataset'] or '–'}. k = local minibatch steps between two averagings. "
        f"Time to accuracy = seconds until the test accuracy first reached "
        f"{_num(target) if target is not None else 'the target'} (– if it never did).",
        "",
    ]
    header = ["run", "k", "workers", "final accuracy", "seconds", "seconds to accuracy"]
    table = [
        [r["label"], "–" if r["k"] is None else r["k"], r["workers"] or "–", _num(r["accuracy"])]
        + [_s(r["seconds"]), _s(r["seconds_to_target"])]
        for r in conv["runs"]
    ]
    lines += _table(header, table)
    if conv["runs"]:
        plots.save(plots.convergence_figure(conv), out / PLOTS["convergence"])
        lines += [f"![accuracy and time to accuracy against k]({PLOTS['convergence']})", ""]
    return lines


def accuracy_section(files: dict[str, dict]) -> list[str]:
    lines = ["## Accuracy on public datasets", ""]
    if not files:
        return lines + _missing("`accuracy/<dataset>.json`", RUN_ACCURACY)
    summaries = [(accuracy_summary(data, name), data) for name, data in sorted(files.items())]
    overview = [
        [acc["dataset"], acc["metric"], len(acc["seeds"]), _num(acc["mean"]), _num(acc["target"])]
        + [{True: "met", False: "not met", None: "–"}[acc["met"]]]
        for acc, _ in summaries
    ]
    lines += _table(["dataset", "metric", "seeds", "mean", "target", "target met"], overview)
    for acc, data in summaries:
        better = "higher" if acc["higher_is_better"] else "lower"
        lines += [f"### {acc['dataset']}", "", _command_line(data), ""]
        if acc["notes"]:
            lines += [f"Note (from the config): {acc['notes']}", ""]
        header = ["seed", acc["metric"], *acc["extras"]]
        rows = [
            [seed, _num(value), *(_num(values[i]) for values in acc["extras"].values())]
            for i, (seed, value) in enumerate(acc["seeds"])
        ]
        lines += _table(header, rows)
        if not acc["complete"]:
            lines += ["The run did not finish every seed of its config.", ""]
        met = {True: "met", False: "not met", None: "–"}[acc["met"]]
        summary = [
            ["mean", _num(acc["mean"])],
            [f"target ({better} is better)", _num(acc["target"])],
            *(
                [["training seconds per seed at most", _num(acc["max_training_seconds"])]]
                if acc["max_training_seconds"] is not None
                else []
            ),
            ["target", met],
        ]
        for ref in acc["published"]:
            label = f"published: {ref.get('name', '?')}"
            source = ref.get("source") or ref.get("url")
            summary.append([label + (f" ({source})" if source else ""), _num(ref.get("value"))])
        lines += _table(["", acc["metric"]], summary)
    return lines


# --------------------------------------------------------------------------------- the report


def write_report(out: Path) -> Path:
    """``<out>/report.md`` and its plots from ``<out>/results/*.json`` and the other jobs' files."""
    results = out / "results"
    for plot in PLOTS.values():  # a plot of a section that is missing now must not linger
        (out / plot).unlink(missing_ok=True)
    run = _load(results / RUN_FILE)
    scaling = [json.loads(p.read_text(encoding="utf-8")) for p in results.glob(SCALING_PATTERN)]
    accuracy = {
        Path(p).stem: json.loads(Path(p).read_text(encoding="utf-8"))
        for p in sorted(glob.glob(str(out / "accuracy" / "*.json")))
    }
    lines = ["# sparklstm benchmark report", ""]
    lines += [
        "Every figure below was measured by the command shown next to it, on the machine "
        "described here; none is estimated or copied. Figures depend on the machine and its "
        "load. Regenerate this page from the raw results with "
        "`python -m bench.report --from-results`.",
        "",
    ]
    if run and run.get("quick"):
        lines += [
            "> **Quick run** (`--quick`): tiny sizes and fewer configurations, to check that "
            "every step works. These figures are not representative of the library's speed.",
            "",
        ]
    lines += machine_section(_load(results / MACHINE_FILE), run)
    lines += kernels_section(_load(results / KERNELS_FILE), out)
    lines += spark_section(_load(results / SPARK_FILE), out)
    lines += scaling_section(scaling, out)
    lines += convergence_section(_load(out / "convergence.json"), out)
    lines += accuracy_section(accuracy)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench", help="report folder (default: bench)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and fewer configurations (minutes on a quiet machine)",
    )
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-spark", action="store_true", help="no Spark-against-one table")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument(
        "--spark-rows", type=int, help="sequences of the Spark table (default 100000; quick 2000)"
    )
    parser.add_argument(
        "--scaling-rows",
        type=int,
        nargs="+",
        metavar="N",
        help="data sizes of the scaling series (default 10000 100000 1000000; quick 2000 4000)",
    )
    parser.add_argument(
        "--scaling-configs",
        nargs="+",
        choices=[c for c in SPARK_CONFIGS if c.startswith("spark")],
        default=["spark1-steps", "spark2-steps"],
        metavar="CONFIG",
        help="bench.spark configurations of the scaling series (default: local[1] and local[2] "
        "with k steps per round)",
    )
    parser.add_argument(
        "--from-results",
        action="store_true",
        help="run nothing: the report and plots again from <out>/results/*.json",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.from_results and not (args.skip_kernels and args.skip_spark and args.skip_scaling):
        run_benchmarks(args, out / "results")
    out.mkdir(parents=True, exist_ok=True)
    path = write_report(out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
