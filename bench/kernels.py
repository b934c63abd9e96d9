"""Benchmark of the recurrent kernels: forward + BPTT against torch and the machine's GEMM speed.

    python -m bench.kernels                 # all shapes, cells, float32/float64, 1 and 2 threads
    python -m bench.kernels --threads 1 --dtypes float32 --cells lstm --json out.json
    python -m bench.kernels --shapes 8,10,4,16 --gemm-size 256 --repeats 1 --min-seconds 0

For each (shape, dtype, BLAS threads, cell) it times one forward + backward pass of one layer
(LSTM, peephole LSTM, CIFG, GRU; no input gradient, as torch skips it for inputs that need
none) and the forward pass alone, with the element-wise steps compiled (numba) and in NumPy,
and ``torch.nn.LSTM`` / ``torch.nn.GRU`` on the same shape when torch is installed. The
candidates run in turn, one call each per round, for at least ``--repeats`` rounds and
``--min-seconds``; each figure is the median of its calls, so the machine's load falls on all
of them alike. Achieved GFLOP/s are also given as a fraction of a large square GEMM measured in
the same process. Each thread count runs in its own subprocess, since OpenBLAS reads its thread
count at import; the subprocess keeps freed memory on the heap
(:func:`sparklstm.memory.keep_large_allocations_on_heap`), as training does, for torch too.
This is a benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SHAPES = [  # (batch, time, input, hidden)
    (64, 50, 32, 128),
    (256, 100, 64, 256),
]


def _best_time(fn, repeats: int, min_seconds: float = 0.3) -> float:
    fn()  # warm-up
    best = float("inf")
    spent = 0.0
    count = 0
    while count < repeats or spent < min_seconds:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        count += 1
        if count >= 50:
            break
    return best


def _gemm_gflops(np, dtype, size: int = 2048) -> float:
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype=dtype)
    seconds = _best_time(lambda: np.matmul(a, b, out=out), repeats=5)
    return 2 * size**3 / seconds / 1e9


CELLS = ("lstm", "peephole", "cifg", "gru")
# Element-wise steps: compiled (numba, the ``fast`` extra) and the NumPy reference. With more
# than one thread, "split" rows also time the compiled kernels on the batch cut into one part
# per thread, run in parallel with one BLAS thread each (what ``step_threads`` does).
STEPS = ("compiled", "numpy")
# Which torch module has the same equations (peephole and CIFG have none).
TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU"}


def _closures(cell, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, layout, d_out, fused):
    """(forward + backward, forward only) callables for one kernel and its inputs. The
    backward skips the input gradient, as torch does for inputs that need none."""
    from sparklstm.nn.gru_kernel import gru_backward, gru_forward
    from sparklstm.nn.lstm_kernel import lstm_backward, lstm_forward

    if cell == "gru":

        def forward_only():
            return gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, layout, fused=fused)

        def step():
            _, _, cache = forward_only()
            gru_backward(d_out, None, cache, need_dx=False, fused=fused)

        return step, forward_only

    def forward_only():
        return lstm_forward(
            x, w_ih, w_hh, b_ih + b_hh, peephole, h0, h0, layout,
            coupled=cell == "cifg", fused=fused,
        )  # fmt: skip

    def step():
        _, _, _, cache = forward_only()
        lstm_backward(d_out, None, None, cache, need_dx=False, fused=fused)

    return step, forward_only


def _split_closures(cell, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, layout, d_out, parts):
    """The batch cut into ``parts`` sub-batches run in parallel threads, one BLAS thread each:
    what a training step does with ``step_threads`` (:mod:`sparklstm.training.parallel`)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from sparklstm.nn.packing import PackedLayout
    from sparklstm.spark.blas import limit_blas_threads

    padded_x, padded_d = layout.unpack(x), layout.unpack(d_out)
    pieces = []
    for j in range(parts):
        index = np.arange(j, layout.batch_size, parts)
        piece = PackedLayout.from_lengths(layout.lengths[index], layout.max_len)
        pieces.append(
            _closures(
                cell,
                piece.pack(padded_x[index]),
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                peephole,
                h0[: len(index)],
                piece,
                piece.pack(padded_d[index]),
                fused=True,
            )  # fmt: skip
        )
    pool = ThreadPoolExecutor(parts)

    def run(which: int):
        def call():
            limit_blas_threads(1)
            list(pool.map(lambda functions: functions[which](), pieces))
            limit_blas_threads(parts)

        return call

    return run(0), run(1)


def _torch_closures(torch, cell, dtype_name, batch, steps, inputs, hidden):
    """torch's (forward + backward, forward only under no_grad) on the same shape."""
    tdtype = getattr(torch, dtype_name)
    module = getattr(torch.nn, TORCH_MODULES[cell])(inputs, hidden, batch_first=True).to(tdtype)
    x = torch.randn(batch, steps, inputs, dtype=tdtype)
    d_out = torch.randn(batch, steps, hidden, dtype=tdtype)

    def step():
        module.zero_grad()
        out, _ = module(x)
        out.backward(d_out)

    def forward_only():
        with torch.no_grad():
            module(x)

    return step, forward_only


def _alternated_medians(
    functions: dict, min_rounds: int, min_seconds: float, settle: int = 0
) -> dict:
    """Median seconds of each callable, timed in turn so that a change in the machine's load
    falls on all of them alike. Each round calls every callable ``settle + 1`` times and keeps
    the last call: with several threads, the previous candidate's pool (OpenBLAS's, torch's
    OpenMP) still spins for a moment after its last call and would slow the next one's first
    call (measured: torch's 2-thread step ran 2.5x slower right after ours)."""
    for fn in functions.values():
        fn()  # warm-up (and numba's compilation or cache load)
    times: dict = {name: [] for name in functions}
    started = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - started < min_seconds:
        for name, fn in functions.items():
            for _ in range(settle):
                fn()
            begin = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - begin)
        rounds += 1
        if rounds >= 200:
            break
    return {name: statistics.median(values) for name, values in times.items()}


def _flops(num_rows: int, gates: int, inputs: int, hidden: int) -> int:
    """GEMM FLOPs of one forward + backward without the input gradient: forward
    ``2 N G H (I + H)``; backward ``dW_ih`` ``2 N G H I``, ``dW_hh`` and ``dh_{t-1}``
    ``2 N G H H`` each."""
    return 2 * num_rows * gates * hidden * (2 * inputs + 3 * hidden)


def _measure(args) -> list[dict]:
    """The worker: for each (dtype, shape, cell), the median seconds of every candidate of
    ``args.candidates`` (compiled, numpy, split, torch) it can run, timed in turn."""
    import numpy as np

    from sparklstm.memory import keep_large_allocations_on_heap
    from sparklstm.nn.fused import fused_available
    from sparklstm.nn.packing import PackedLayout

    # As every training entry point does; torch runs in this process too and gains alike.
    keep_large_allocations_on_heap()
    torch = None
    if "torch" in args.candidates:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None

    entries = []
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name)
        peak = _gemm_gflops(np, dtype, args.gemm_size)
        for batch, steps, inputs, hidden in args.shapes:
            layout = PackedLayout.from_lengths(np.full(batch, steps), steps)
            for cell in args.cells:
                rng = np.random.default_rng(0)
                gates = 3 if cell in ("gru", "cifg") else 4

                def draw(*shape, scale=0.1, rng=rng, dtype=dtype):
                    return (rng.standard_normal(shape) * scale).astype(dtype)

                x = draw(layout.num_rows, inputs, scale=1.0)
                w_ih, w_hh = draw(gates * hidden, inputs), draw(gates * hidden, hidden)
                b_ih, b_hh = draw(gates * hidden), draw(gates * hidden)
                peephole = draw(3, hidden) if cell == "peephole" else None
                h0 = np.zeros((batch, hidden), dtype=dtype)
                d_out = draw(layout.num_rows, hidden, scale=1.0)
                inputs_of = (cell, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, layout, d_out)
                functions = {}
                for path in ("compiled", "numpy"):
                    if path in args.candidates and (path == "numpy" or fused_available()):
                        step, forward_only = _closures(*inputs_of, fused=path == "compiled")
                        functions[(path, "fwd_bwd")] = step
                        functions[(path, "fwd")] = forward_only
                runs_split = "split" in args.candidates and args.threads > 1
                if runs_split and fused_available() and batch >= args.threads:
                    split = _split_closures(*inputs_of, args.threads)
                    functions[("split", "fwd_bwd")], functions[("split", "fwd")] = split
                if torch is not None and cell in TORCH_MODULES:
                    step, forward_only = _torch_closures(
                        torch, cell, dtype_name, batch, steps, inputs, hidden
                    )
                    functions[("torch", "fwd_bwd")] = step
                    functions[("torch", "fwd")] = forward_only
                seconds = _alternated_medians(functions, args.repeats, args.min_seconds)
                entries.append(
                    {
                        "cell": cell,
                        "dtype": dtype_name,
                        "shape": [batch, steps, inputs, hidden],
                        "peak": peak,
                        "seconds": {f"{c}/{kind}": value for (c, kind), value in seconds.items()},
                        "torch_version": None if torch is None else torch.__version__,
                    }
                )
    return entries


def _rows(entries: list[dict], threads: int) -> list[dict]:
    """Table rows (one per cell, shape, dtype and our candidate) from measured entries."""
    rows = []
    for entry in entries:
        batch, steps, inputs, hidden = entry["shape"]
        gates = 3 if entry["cell"] in ("gru", "cifg") else 4
        flops = _flops(batch * steps, gates, inputs, hidden)
        seconds = entry["seconds"]
        for path in ("compiled", "numpy", "split"):
            if f"{path}/fwd_bwd" not in seconds:
                continue
            took = seconds[f"{path}/fwd_bwd"]
            row = {
                "cell": entry["cell"],
                "steps": path,
                "dtype": entry["dtype"],
                "threads": threads,
                "batch": batch,
                "time": steps,
                "input": inputs,
                "hidden": hidden,
                "seconds_fwd_bwd": took,
                "seconds_fwd": seconds[f"{path}/fwd"],
                "sequences_per_s": batch / took,
                "gflops": flops / took / 1e9,
                "gemm_peak_gflops": entry["peak"],
                "fraction_of_gemm": flops / took / 1e9 / entry["peak"],
            }
            if "torch/fwd_bwd" in seconds:
                row.update(
                    torch_module=f"torch.nn.{TORCH_MODULES[entry['cell']]}",
                    torch_seconds_fwd_bwd=seconds["torch/fwd_bwd"],
                    torch_seconds_fwd=seconds["torch/fwd"],
                    torch_gflops=flops / seconds["torch/fwd_bwd"] / 1e9,
                    torch_version=entry["torch_version"],
                )
            rows.append(row)
    return rows


def _print_table(rows: list[dict], out=sys.stdout) -> None:
    header = (
        f"{'cell':8} {'steps':8} {'dtype':8} {'thr':>3} {'B':>4} {'T':>4} {'I':>4} {'H':>4} "
        f"{'seq/s':>9} {'GFLOP/s':>8} {'GEMM':>7} {'% GEMM':>7} {'fwd ms':>7} {'f+b ms':>7}"
    )
    if any("torch_seconds_fwd_bwd" in r for r in rows):
        header += f" {'torch ms':>8} {'time/torch':>10} {'fwd time/torch':>14}"
    print(header, file=out)
    for r in rows:
        line = (
            f"{r['cell']:8} {r['steps']:8} {r['dtype']:8} {r['threads']:>3} {r['batch']:>4} "
            f"{r['time']:>4} {r['input']:>4} {r['hidden']:>4} {r['sequences_per_s']:>9.0f} "
            f"{r['gflops']:>8.1f} {r['gemm_peak_gflops']:>7.1f} "
            f"{100 * r['fraction_of_gemm']:>6.1f}% "
            f"{1e3 * r['seconds_fwd']:>7.1f} {1e3 * r['seconds_fwd_bwd']:>7.1f}"
        )
        if "torch_seconds_fwd_bwd" in r:
            ratio = r["seconds_fwd_bwd"] / r["torch_seconds_fwd_bwd"]
            forward = r["seconds_fwd"] / r["torch_seconds_fwd"]
            line += f" {1e3 * r['torch_seconds_fwd_bwd']:>8.1f} {ratio:>9.2f}x {forward:>13.2f}x"
        print(line, file=out)


def _machine() -> str:
    import numpy as np

    blas = "unknown BLAS"
    try:
        config = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:  # noqa: BLE001 - best effort description only
        pass
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, NumPy {np.__version__}, {blas}"


def _shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected B,T,I,H (4 positive ints), got {text!r}")
    return shape


def _worker_command(args, threads: int, candidates, dtypes, shapes, cells) -> list[str]:
    command = [sys.executable, "-m", "bench.kernels", "--worker", "--threads", str(threads)]
    command += ["--dtypes", *dtypes, "--repeats", str(args.repeats)]
    command += ["--cells", *cells, "--candidates", *candidates]
    command += ["--min-seconds", str(args.min_seconds), "--gemm-size", str(args.gemm_size)]
    return command + ["--shapes", *(",".join(map(str, shape)) for shape in shapes)]


def _run_worker(command: list[str], threads: int) -> list[dict]:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def _run_threads(args, threads: int) -> list[dict]:
    """Entries for one thread count. One thread: every candidate alternated in one process.
    Several: each candidate in a process of its own, the processes alternated
    ``--process-rounds`` times (medians of their medians): in one process the other
    candidates' thread pools (OpenBLAS's, torch's OpenMP) keep spinning after their calls and
    slowed torch's 2-thread step 2.5x and a split step 2x."""
    candidates = [*args.steps, "torch"]
    if threads == 1:
        command = _worker_command(args, 1, candidates, args.dtypes, args.shapes, args.cells)
        return _run_worker(command, 1)
    candidates.insert(len(args.steps), "split")
    entries = []
    for dtype in args.dtypes:
        for shape in args.shapes:
            for cell in [c for c in args.cells if c in args.multithread_cells]:
                runs = [
                    _run_worker(
                        _worker_command(args, threads, [candidate], [dtype], [shape], [cell]),
                        threads,
                    )[0]
                    for _ in range(args.process_rounds)
                    for candidate in candidates
                ]
                samples: dict[str, list[float]] = {}
                for run in runs:
                    for key, value in run["seconds"].items():
                        samples.setdefault(key, []).append(value)
                versions = [run["torch_version"] for run in runs if run["torch_version"]]
                entries.append(
                    {
                        **runs[0],
                        "seconds": {k: statistics.median(v) for k, v in samples.items()},
                        "torch_version": versions[0] if versions else None,
                    }
                )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument(
        "--steps", nargs="+", choices=STEPS, default=list(STEPS),
        help="element-wise steps to time: compiled (needs numba) and/or numpy",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="least number of alternated rounds")
    parser.add_argument(
        "--min-seconds", type=float, default=3.0,
        help="least time spent on the alternated rounds of one configuration",
    )  # fmt: skip
    parser.add_argument(
        "--shapes",
        type=_shape,
        nargs="+",
        default=SHAPES,
        metavar="B,T,I,H",
        help="shapes (batch, time, input, hidden) to time; default: "
        + " ".join(",".join(map(str, shape)) for shape in SHAPES),
    )
    parser.add_argument(
        "--gemm-size", type=int, default=2048, help="size of the square GEMM taken as peak"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--multithread-cells", nargs="+", choices=CELLS, default=["lstm", "gru"],
        help="cells (of --cells) timed with more than one thread (a process per candidate)",
    )  # fmt: skip
    parser.add_argument(
        "--process-rounds", type=int, default=2,
        help="with several threads: rounds of one process per candidate, alternated",
    )  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--candidates", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        args.threads = args.threads[0]
        json.dump(_measure(args), sys.stdout)
        return 0

    rows: list[dict] = []
    for threads in args.threads:
        try:
            entries = _run_threads(args, threads)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        rows.extend(_rows(entries, threads))
    print(f"machine: {_machine()}")
    print(
        "forward + BPTT of one layer (all steps valid, no input gradient); medians of runs "
        "alternated with torch's; % GEMM = achieved / measured GEMM; time/torch below 1 = faster"
    )
    _print_table(rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": _machine(), "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
