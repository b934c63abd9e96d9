"""Memory benchmark: train on more data than the driver's memory (issue 13; prints and records
figures, not a test).

Generates (or reuses) the adding problem's Parquet dataset of ``--gb`` units under
``--scratch`` (one unit: 120,000 sequences x 1000 steps x 2 float32 features, 0.96e9 bytes
padded, the issue's "about 1 GB"), then runs ``jobs/train.py`` under ``spark-submit --master
local[2] --driver-memory M`` for a few rounds, in its own process, and reports:

- preparation: from the Spark session's start to the first round (reading, the profiling and
  checking jobs, encoding and caching the chunks), and the Spark jobs it is made of;
- round time (the first round, and the mean of the others);
- peak resident memory (from ``/proc``, sampled every 0.2 s and from each process's VmHWM) of
  the JVM (driver and executors in local mode), the Python driver and the Python workers (the
  largest one, and the largest sum of all of them at one time), and the JVM's peak heap use
  (Spark's executor metrics);
- bytes spilled by Spark's sorts (task metrics ``Memory Bytes Spilled``/``Disk Bytes Spilled``),
  where the cached chunks live (memory / disk, their storage level; from the block updates),
  and the peak size of ``spark.local.dir``; all from Spark's event log.

The figures are printed as a table and written into ``bench/memory.md`` (a section per dataset
size and driver memory, replaced when run again) with the command line.

Usage::

    python -m bench.memory --gb 1 --driver-memory 512m
    python -m bench.memory --gb 3 --driver-memory 512m --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_GB = 120_000  # of SEQ_LEN x 2 float32 features: the "about 1 GB"
SEQ_LEN = 1000
FEATURES = 2
SAMPLE_SECONDS = 0.2
PAGE = Path("bench/memory.md")
HEADER = """# Training on more data than memory (issue 13)

Each section below was measured by the command shown in it (`python -m bench.memory`), on
the machine it describes; none is estimated. One unit of data ("GB") is 120,000 sequences of
1000 steps x 2 float32 features (0.96e9 bytes padded, written by `jobs/make_data.py adding`).
The training job runs under `spark-submit --master local[2]`, so one JVM holds the driver and
the executors and `--driver-memory` is all the heap Spark gets. Preparation is everything
before the first round: reading, the profiling and checking jobs, encoding and caching the
chunks. Peak RSS is the resident memory of each process (VmHWM), the Python workers' the
largest worker and the largest sum over the workers alive at one time; the heap peak is
Spark's own executor metric (JVMHeapMemory). Spilled bytes are Spark's task metrics, summed;
"cached chunks" is where the persisted DataFrame of encoded chunks lived at its largest.
"""


# ------------------------------------------------------------------------------ the dataset
def dataset(scratch: Path, rows: int) -> Path:
    """The adding problem's training split of ``rows`` sequences (no test split) under
    ``scratch``, generated once and reused while its row count matches."""
    import pyarrow.parquet as pq

    out = scratch / f"adding-{rows}x{SEQ_LEN}"
    train = out / "train"
    if (train / "_SUCCESS").exists():
        files = sorted(train.glob("part-*.parquet"))
        if sum(pq.read_metadata(f).num_rows for f in files) == rows:
            return train
    command = [
        sys.executable,
        "-m",
        "jobs.make_data",
        "adding",
        "--rows",
        str(rows),
        "--seq-len",
        str(SEQ_LEN),
        "--test-fraction",
        "0",
        "--seed",
        "0",
        "--out",
        str(out),
        "--overwrite",
    ]
    print("generating:", shlex.join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return train


# ------------------------------------------------------------------------------ /proc sampling
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text(encoding="utf-8")
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (empty when it is gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return values


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Sampler(threading.Thread):
    """Peak RSS of a process tree, by kind: the JVM (the root), the Python driver and the
    Python workers (``pyspark.daemon`` and the workers it forks); and the peak size of a
    directory (spark.local.dir)."""

    def __init__(self, root: int, local_dir: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.local_dir = root, local_dir
        self.kinds: dict[int, str] = {}
        self.hwm: dict[int, int] = {}
        self.workers_sum = 0
        self.local_dir_peak = 0
        self.stop = threading.Event()

    def _kind(self, pid: int) -> str:
        if pid not in self.kinds:
            line = _cmdline(pid)
            if pid == self.root:
                kind = "jvm"
            elif "pyspark.daemon" in line or "pyspark/daemon" in line or "pyspark.worker" in line:
                kind = "worker"
            elif "python" in line:
                kind = "driver"
            else:
                kind = "other"
            self.kinds[pid] = kind
        return self.kinds[pid]

    def _local_dir_bytes(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.local_dir):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def run(self) -> None:
        tick = 0
        while not self.stop.is_set():
            tree, pending, seen = _children(), [self.root], []
            while pending:
                pid = pending.pop()
                seen.append(pid)
                pending.extend(tree.get(pid, []))
            workers = 0
            for pid in seen:
                status = _status(pid)
                if not status:
                    continue
                self.hwm[pid] = max(self.hwm.get(pid, 0), status.get("VmHWM", 0))
                if self._kind(pid) == "worker":
                    workers += status.get("VmRSS", 0)
            self.workers_sum = max(self.workers_sum, workers)
            if tick % 25 == 0:
                self.local_dir_peak = max(self.local_dir_peak, self._local_dir_bytes())
            tick += 1
            self.stop.wait(SAMPLE_SECONDS)

    def peaks(self) -> dict[str, int]:
        by_kind: dict[str, int] = {}
        for pid, peak in self.hwm.items():
            kind = self.kinds.get(pid, "other")
            by_kind[kind] = max(by_kind.get(kind, 0), peak)
        return {
            "jvm": by_kind.get("jvm", 0),
            "python_driver": by_kind.get("driver", 0),
            "python_worker": by_kind.get("worker", 0),
            "python_workers_sum": self.workers_sum,
            "local_dir": self.local_dir_peak,
        }


# ------------------------------------------------------------------------------ the event log
def _job_name(call_site: str) -> str:
    if not call_site:
        return "read the schema"
    names = {
        "schema.py": "check the data",
        "partitions.py": "encode + cache chunks",
        "trainer.py": "round",
        "reduction.py": "round",
        "rounds.py": "round",
    }
    for file, name in names.items():
        if file in call_site:
            return name
    return call_site.split(" at ")[0]


def read_event_log(path: Path) -> dict[str, Any]:
    """Spill, block storage and per-job times from one application's event log."""
    spilled_memory = spilled_disk = 0
    blocks: dict[str, tuple[int, int, str]] = {}
    cache_memory = cache_disk = 0
    levels: set[str] = set()
    heap_peak = 0
    jobs: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                spilled_memory += int(metrics.get("Memory Bytes Spilled", 0))
                spilled_disk += int(metrics.get("Disk Bytes Spilled", 0))
            elif kind == "SparkListenerBlockUpdated":
                info = event["Block Updated Info"]
                block = info["Block ID"]
                if not block.startswith("rdd_"):
                    continue
                level = info.get("Storage Level") or {}
                memory, disk = int(info.get("Memory Size", 0)), int(info.get("Disk Size", 0))
                blocks[block] = (memory, disk, "")
                cache_memory = max(cache_memory, sum(b[0] for b in blocks.values()))
                cache_disk = max(cache_disk, sum(b[1] for b in blocks.values()))
            elif kind == "SparkListenerStageSubmitted":
                for rdd in event["Stage Info"].get("RDD Info", []):
                    level = rdd.get("Storage Level") or {}
                    places = [p for p in ("Memory", "Disk") if level.get(f"Use {p}")]
                    if places:
                        form = "deserialized" if level.get("Deserialized") else "serialized"
                        levels.add(" and ".join(p.lower() for p in places) + f", {form}")
            elif kind == "SparkListenerStageExecutorMetrics":
                peaks = event.get("Executor Metrics") or {}
                heap_peak = max(heap_peak, int(peaks.get("JVMHeapMemory", 0)))
            elif kind == "SparkListenerJobStart":
                site = (event.get("Properties") or {}).get("callSite.short", "")
                jobs[event["Job ID"]] = {"name": _job_name(site), "start": event["Submission Time"]}
            elif kind == "SparkListenerJobEnd":
                job = jobs.get(event["Job ID"])
                if job is not None:
                    job["end"] = event["Completion Time"]
                    job["ok"] = event.get("Job Result", {}).get("Result") == "JobSucceeded"
    return {
        "memory_spilled": spilled_memory,
        "disk_spilled": spilled_disk,
        "cache_memory": cache_memory,
        "cache_disk": cache_disk,
        "storage_levels": sorted(levels),
        "heap_peak": heap_peak,
        "jobs": [jobs[k] for k in sorted(jobs)],
    }


# ------------------------------------------------------------------------------ one run
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_time(line: str) -> float | None:
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
    if not match:
        return None
    stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    return stamp.timestamp() + int(match.group(2)) / 1000


def run(args: argparse.Namespace, data: Path, label: str) -> dict[str, Any]:
    run_dir = args.scratch / f"run-{label}"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    events, local = run_dir / "events", run_dir / "local"
    events.mkdir(parents=True)
    local.mkdir()
    settings = {
        "spark.ui.port": str(_free_port()),
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(events),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
        "spark.eventLog.logBlockUpdates.enabled": "true",
        "spark.eventLog.logStageExecutorMetrics": "true",
        "spark.executor.metrics.pollingInterval": "1s",
        "spark.local.dir": str(local),
    }
    submit = [
        str(Path(sys.executable).with_name("spark-submit")),
        "--master",
        args.master,
        "--driver-memory",
        args.driver_memory,
    ]
    for key, value in settings.items():
        submit += ["--conf", f"{key}={value}"]
    train = [
        "jobs/train.py",
        "--data",
        str(data),
        "--output",
        str(run_dir / "model"),
        "--rounds",
        str(args.rounds),
        "--local-steps",
        str(args.local_steps),
        "--batch-size",
        str(args.batch_size),
        "--hidden-sizes",
        str(args.hidden),
        "--metrics",
        str(run_dir / "metrics.jsonl"),
    ]
    if args.partitions:
        train += ["--partitions", str(args.partitions)]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    shown = shlex.join(["spark-submit", *submit[1:5], *train])
    print("running:", shown, "(and --conf settings for the event log)", flush=True)
    started = time.time()
    with open(run_dir / "stderr.log", "wb") as log:
        process = subprocess.Popen(
            submit + train, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        sampler = Sampler(process.pid, local)
        sampler.start()
        try:
            status = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            status = process.wait()
        sampler.stop.set()
        sampler.join()
    wall = time.time() - started
    text = (run_dir / "stderr.log").read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    session = next((_log_time(t) for t in lines if "sparklstm.spark.session:" in t), None)
    marker = "sparklstm.spark.trainer: training:"
    training = next((_log_time(t) for t in lines if marker in t), None)
    rounds = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        rounds = [json.loads(t) for t in metrics.read_text(encoding="utf-8").splitlines() if t]
    logs = [f for f in events.rglob("*") if f.is_file() and not f.name.startswith(".")]
    logs = [f for f in logs if not f.name.startswith("appstatus")]
    event_log = read_event_log(max(logs, key=lambda f: f.stat().st_size)) if logs else {}
    errors = [t for t in lines if t.startswith("train.py: error:")]
    return {
        "label": label,
        "rows": args.gb_rows,
        "driver_memory": args.driver_memory,
        "partitions": args.partitions,
        "status": status,
        "error": errors[-1] if errors else ("" if status == 0 else lines[-1] if lines else ""),
        "stderr_lines": len(lines),
        "wall_seconds": wall,
        "preparation_seconds": (training - session) if session and training else None,
        "rounds": [r["seconds"] for r in rounds],
        "rss": sampler.peaks(),
        "events": event_log,
        "command": shown,
    }


# ------------------------------------------------------------------------------ reporting
def _mib(value: float | None) -> str:
    return "-" if not value else f"{value / 2**20:,.0f} MiB"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def table(result: dict[str, Any]) -> list[tuple[str, str]]:
    events, rss, rounds = result["events"], result["rss"], result["rounds"]
    later = rounds[1:] or rounds
    ok = result["status"] == 0
    rows = [
        ("exit status", f"{result['status']}" + ("" if ok else f" ({result['error']})")),
        ("preparation (session start to first round)", _seconds(result["preparation_seconds"])),
        ("first round", _seconds(rounds[0] if rounds else None)),
        ("later rounds (mean)", _seconds(sum(later) / len(later) if later else None)),
        ("peak RSS: JVM (driver + executors)", _mib(rss["jvm"])),
        ("peak JVM heap in use, garbage included (Spark's metric)", _mib(events.get("heap_peak"))),
        ("peak RSS: Python driver", _mib(rss["python_driver"])),
        ("peak RSS: largest Python worker", _mib(rss["python_worker"])),
        ("peak RSS: all Python workers at once", _mib(rss["python_workers_sum"])),
        ("spilled by sorts (memory size)", _mib(events.get("memory_spilled"))),
        ("spilled by sorts (disk size)", _mib(events.get("disk_spilled"))),
        ("cached chunks in memory (peak)", _mib(events.get("cache_memory"))),
        ("cached chunks on disk (peak)", _mib(events.get("cache_disk"))),
        ("cached chunks' storage level", "; ".join(events.get("storage_levels", [])) or "-"),
        ("peak size of spark.local.dir", _mib(rss["local_dir"])),
        ("job wall time", _seconds(result["wall_seconds"])),
    ]
    return rows


def job_lines(result: dict[str, Any]) -> list[str]:
    """Preparation's Spark jobs, merged by kind, in order: ``name (n jobs): seconds``, and
    ``failed`` for a kind one of whose jobs failed."""
    merged: list[list[Any]] = []
    for job in result["events"].get("jobs", []):
        if job["name"] == "round" or "end" not in job:
            continue
        seconds = (job["end"] - job["start"]) / 1000
        if merged and merged[-1][0] == job["name"]:
            merged[-1][1] += seconds
            merged[-1][2] += 1
            merged[-1][3] = merged[-1][3] and job.get("ok", True)
        else:
            merged.append([job["name"], seconds, 1, job.get("ok", True)])
    return [
        f"{name} ({count} job{'s' * (count > 1)}{'' if ok else ', the last failed'}): {s:,.1f} s"
        for name, s, count, ok in merged
    ]


def markdown(result: dict[str, Any], invocation: str) -> str:
    gb = result["rows"] / ROWS_PER_GB
    lines = [
        f"## {gb:g} GB ({result['rows']:,} sequences) with --driver-memory "
        f"{result['driver_memory']}"
        + (f", --partitions {result['partitions']}" if result.get("partitions") else ""),
        "",
        f"Command: `{invocation}`",
        "",
        f"It ran: `{result['command']}` (with `--conf` settings for Spark's event log, UI port "
        "and `spark.local.dir` under the scratch directory).",
        "",
        f"Machine: {os.cpu_count()} cores, {_memory_total()} RAM, load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}.",
        "",
        "|  |  |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value} |" for name, value in table(result)]
    jobs = job_lines(result)
    if jobs:
        lines += ["", "Preparation's Spark jobs: " + "; ".join(jobs) + "."]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def _memory_total() -> str:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    return "?"


def write_page(page: Path, section: str) -> None:
    """Put ``section`` into ``page`` in place of the section with the same heading, or last."""
    text = page.read_text(encoding="utf-8") if page.exists() else HEADER
    head, *sections = re.split(r"(?m)^(?=## )", text)
    heading = section.splitlines()[0]
    for i, old in enumerate(sections):
        if old.splitlines()[0] == heading:
            sections[i] = section
            break
    else:
        sections.append(section)
    body = "\n".join(part.rstrip("\n") + "\n" for part in [head, *sections])
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--gb", type=float, default=1.0, help="data size in units of 120,000")
    parser.add_argument("--driver-memory", default="512m")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=16, help="LSTM hidden size")
    parser.add_argument(
        "--partitions", type=int, help="training partitions (default: the job's, 2 on local[2])"
    )
    parser.add_argument(
        "--scratch", type=Path, default=Path("/tmp/sparklstm-bench-memory"), help="data and runs"
    )
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds for the job")
    parser.add_argument("--page", type=Path, default=ROOT / PAGE, help="markdown page to update")
    parser.add_argument("--note", default="", help="a paragraph for the page's section")
    args = parser.parse_args(argv)
    args.gb_rows = max(1, round(args.gb * ROWS_PER_GB))
    args.scratch.mkdir(parents=True, exist_ok=True)
    data = dataset(args.scratch, args.gb_rows)
    label = f"{args.gb:g}gb-{args.driver_memory}" + (
        f"-{args.partitions}p" if args.partitions else ""
    )
    result = run(args, data, label)
    result["note"] = args.note
    (args.scratch / f"result-{label}.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    width = max(len(name) for name, _ in table(result))
    for name, value in table(result):
        print(f"{name:<{width}}  {value}")
    for line in job_lines(result):
        print("  " + line)
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is on the page already
        del given[given.index("--note") : given.index("--note") + 2]
    given = [a for a in given if not a.startswith("--note=")]
    invocation = shlex.join(["python", "-m", "bench.memory", *given])
    write_page(args.page, markdown(result, invocation))
    print(f"written: {args.page}")
    return 0 if result["status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
