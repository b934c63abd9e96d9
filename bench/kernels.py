"""Benchmark of the recurrent kernels: forward + BPTT against the machine's own GEMM speed.

    python -m bench.kernels                 # all shapes, float32/float64, 1 and 2 threads
    python -m bench.kernels --threads 1 --dtypes float32 --json out.json
    python -m bench.kernels --shapes 8,10,4,16 --gemm-size 256 --repeats 1   # a smoke run

For each (shape, dtype, BLAS threads) it prints sequences/s and achieved GFLOP/s of one
forward + backward pass of a one-layer LSTM (and GRU), and that as a fraction of the GEMM
GFLOP/s measured in the same process (a large square matmul, best of several). Each thread
count runs in its own subprocess, since OpenBLAS reads its thread count at import. If torch
happens to be installed, ``torch.nn.LSTM`` is timed on the same shapes in the same process.
This is a benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def _closures(cell, x, w_ih, w_hh, bias, h0, layout, d_out):
    """(forward + backward, forward only) callables for one kernel and its inputs."""
    from sparklstm.nn.gru_kernel import gru_backward, gru_forward
    from sparklstm.nn.lstm_kernel import lstm_backward, lstm_forward

    if cell == "lstm":

        def step():
            _, _, _, cache = lstm_forward(x, w_ih, w_hh, bias, None, h0, h0, layout)
            lstm_backward(d_out, None, None, cache)

        def forward_only():
            lstm_forward(x, w_ih, w_hh, bias, None, h0, h0, layout)

    else:

        def step():
            _, _, cache = gru_forward(x, w_ih, w_hh, bias, bias, h0, layout)
            gru_backward(d_out, None, cache)

        def forward_only():
            gru_forward(x, w_ih, w_hh, bias, bias, h0, layout)

    return step, forward_only


def _worker(args) -> list[dict]:
    import numpy as np

    from sparklstm.nn.packing import PackedLayout

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    rows = []
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name)
        peak = _gemm_gflops(np, dtype, args.gemm_size)
        for batch, steps, inputs, hidden in args.shapes:
            rng = np.random.default_rng(0)
            layout = PackedLayout.from_lengths(np.full(batch, steps), steps)
            x = rng.standard_normal((layout.num_rows, inputs)).astype(dtype)
            h0 = np.zeros((batch, hidden), dtype=dtype)
            for cell, gates in (("lstm", 4), ("gru", 3)):
                w_ih = (rng.standard_normal((gates * hidden, inputs)) * 0.1).astype(dtype)
                w_hh = (rng.standard_normal((gates * hidden, hidden)) * 0.1).astype(dtype)
                bias = np.zeros(gates * hidden, dtype=dtype)
                d_out = rng.standard_normal((layout.num_rows, hidden)).astype(dtype)
                step, forward_only = _closures(cell, x, w_ih, w_hh, bias, h0, layout, d_out)
                seconds = _best_time(step, repeats=args.repeats)
                fwd_seconds = _best_time(forward_only, repeats=args.repeats)
                # Forward GEMMs: 2 N G H (I + H); backward does twice that (dW and dX/dh).
                flops = 3 * 2 * layout.num_rows * gates * hidden * (inputs + hidden)
                gflops = flops / seconds / 1e9
                row = {
                    "cell": cell,
                    "dtype": dtype_name,
                    "threads": args.threads,
                    "batch": batch,
                    "time": steps,
                    "input": inputs,
                    "hidden": hidden,
                    "seconds_fwd_bwd": seconds,
                    "seconds_fwd": fwd_seconds,
                    "sequences_per_s": batch / seconds,
                    "gflops": gflops,
                    "gemm_peak_gflops": peak,
                    "fraction_of_gemm": gflops / peak,
                }
                if torch is not None and cell == "lstm":
                    row.update(
                        _torch_row(torch, dtype_name, batch, steps, inputs, hidden, args, flops)
                    )
                rows.append(row)
    return rows


def _torch_row(torch, dtype_name, batch, steps, inputs, hidden, args, flops) -> dict:
    tdtype = getattr(torch, dtype_name)
    lstm = torch.nn.LSTM(inputs, hidden, batch_first=True).to(tdtype)
    x = torch.randn(batch, steps, inputs, dtype=tdtype)
    d_out = torch.randn(batch, steps, hidden, dtype=tdtype)

    def step():
        lstm.zero_grad()
        out, _ = lstm(x)
        out.backward(d_out)

    seconds = _best_time(step, repeats=args.repeats)
    return {
        "torch_seconds_fwd_bwd": seconds,
        "torch_gflops": flops / seconds / 1e9,
        "torch_version": torch.__version__,
    }


def _print_table(rows: list[dict], out=sys.stdout) -> None:
    header = (
        f"{'cell':5} {'dtype':8} {'thr':>3} {'B':>4} {'T':>4} {'I':>4} {'H':>4} "
        f"{'seq/s':>9} {'GFLOP/s':>8} {'GEMM':>7} {'% GEMM':>7} {'fwd ms':>7} {'f+b ms':>7}"
    )
    if any("torch_seconds_fwd_bwd" in r for r in rows):
        header += f" {'torch ms':>8} {'ours/torch':>10}"
    print(header, file=out)
    for r in rows:
        line = (
            f"{r['cell']:5} {r['dtype']:8} {r['threads']:>3} {r['batch']:>4} {r['time']:>4} "
            f"{r['input']:>4} {r['hidden']:>4} {r['sequences_per_s']:>9.0f} {r['gflops']:>8.1f} "
            f"{r['gemm_peak_gflops']:>7.1f} {100 * r['fraction_of_gemm']:>6.1f}% "
            f"{1e3 * r['seconds_fwd']:>7.1f} {1e3 * r['seconds_fwd_bwd']:>7.1f}"
        )
        if "torch_seconds_fwd_bwd" in r:
            speed = r["torch_seconds_fwd_bwd"] / r["seconds_fwd_bwd"]
            line += f" {1e3 * r['torch_seconds_fwd_bwd']:>8.1f} {speed:>9.2f}x"
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
    parser.add_argument("--repeats", type=int, default=5)
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
        cmd += ["--gemm-size", str(args.gemm_size), "--shapes"]
        cmd += [",".join(map(str, shape)) for shape in args.shapes]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        rows.extend(json.loads(result.stdout))
    print(f"machine: {_machine()}")
    print(
        "forward + BPTT of one LSTM/GRU layer (all steps valid); % GEMM = achieved / measured GEMM"
    )
    _print_table(rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": _machine(), "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
