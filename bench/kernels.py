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


def _alternated_medians(functions: dict, min_rounds: int, min_seconds: float) -> dict:
    """Median seconds of each callable, timed in turn (one call each per round) so that a
    change in the machine's load falls on all of them alike."""
    for fn in functions.values():
        fn()  # warm-up (and numba's compilation or cache load)
    times: dict = {name: [] for name in functions}
    started = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - started < min_seconds:
        for name, fn in functions.items():
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


def _worker(args) -> list[dict]:
    import numpy as np

    from sparklstm.memory import keep_large_allocations_on_heap
    from sparklstm.nn.fused import fused_available
    from sparklstm.nn.packing import PackedLayout

    # As every training entry point does; torch runs in this process too and gains alike.
    keep_large_allocations_on_heap()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    paths = [path for path in args.steps if path == "numpy" or fused_available()]

    rows = []
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
                functions = {}
                for path in paths:
                    step, forward_only = _closures(
                        cell, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, layout, d_out,
                        fused=path == "compiled",
                    )  # fmt: skip
                    functions[(path, "fwd_bwd")] = step
                    functions[(path, "fwd")] = forward_only
                if args.threads > 1 and "compiled" in paths and batch >= args.threads:
                    split = _split_closures(
                        cell, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, layout, d_out, args.threads
                    )
                    functions[("split", "fwd_bwd")], functions[("split", "fwd")] = split
                if torch is not None and cell in TORCH_MODULES:
                    step, forward_only = _torch_closures(
                        torch, cell, dtype_name, batch, steps, inputs, hidden
                    )
                    functions[("torch", "fwd_bwd")] = step
                    functions[("torch", "fwd")] = forward_only
                seconds = _alternated_medians(functions, args.repeats, args.min_seconds)
                flops = _flops(layout.num_rows, gates, inputs, hidden)
                for path in [*paths, *(["split"] if ("split", "fwd") in seconds else [])]:
                    took = seconds[(path, "fwd_bwd")]
                    row = {
                        "cell": cell,
                        "steps": path,
                        "dtype": dtype_name,
                        "threads": args.threads,
                        "batch": batch,
                        "time": steps,
                        "input": inputs,
                        "hidden": hidden,
                        "seconds_fwd_bwd": took,
                        "seconds_fwd": seconds[(path, "fwd")],
                        "sequences_per_s": batch / took,
                        "gflops": flops / took / 1e9,
                        "gemm_peak_gflops": peak,
                        "fraction_of_gemm": flops / took / 1e9 / peak,
                    }
                    if ("torch", "fwd_bwd") in seconds:
                        row.update(
                            torch_module=f"torch.nn.{TORCH_MODULES[cell]}",
                            torch_seconds_fwd_bwd=seconds[("torch", "fwd_bwd")],
                            torch_seconds_fwd=seconds[("torch", "fwd")],
                            torch_gflops=flops / seconds[("torch", "fwd_bwd")] / 1e9,
                            torch_version=torch.__version__,
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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        args.threads = args.threads[0]
        json.dump(_worker(args), sys.stdout)
        return 0

    rows: list[dict] = []
    for threads in args.threads:
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        cmd = [sys.executable, "-m", "bench.kernels", "--worker", "--threads", str(threads)]
        cmd += ["--dtypes", *args.dtypes, "--repeats", str(args.repeats)]
        cmd += ["--cells", *args.cells, "--steps", *args.steps]
        cmd += ["--min-seconds", str(args.min_seconds)]
        cmd += ["--gemm-size", str(args.gemm_size), "--shapes"]
        cmd += [",".join(map(str, shape)) for shape in args.shapes]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        rows.extend(json.loads(result.stdout))
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
