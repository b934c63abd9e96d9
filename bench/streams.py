"""Long streams with carried state (issue 17, part 1): one process, no Spark.

    python -m bench.streams kjv [--hidden 256] [--epochs 3] [--streams 64] [--length 100]
        [--seed 0] [--max-chars N] [--out PATH]
    python -m bench.streams memory [--steps 10000 1000000] [--hidden 64] [--length 100]
        [--out PATH]
    python -m bench.streams spark [--hidden 256] [--streams 64] [--workers 2] [--rounds 10]
        [--local-steps 10] [--length 100] [--out PATH]

``kjv``: character-level language modelling of the King James Bible's training text (the first
90%, :func:`sparklstm.datasets.kjv.load_kjv`) two ways, with the same model, optimizer and the
same characters per epoch, so the same arithmetic per epoch:

- ``windows`` (what the accuracy table's KJV row does): consecutive windows of ``length``
  characters, each from a zero state, shuffled into minibatches of ``streams`` windows
  (:meth:`SequenceModel.fit`);
- ``carried``: the text cut into ``streams`` contiguous streams read side by side, chunk by
  chunk of ``length`` characters with the state carried across chunks, truncated BPTT with
  forward and backward length ``length`` (:meth:`SequenceModel.fit_streams`).

Both are scored in bits per character on the held-out last 10%: in windows of ``length`` from
a zero state (:func:`sparklstm.datasets.kjv.bits_per_char`, the table's protocol) and read as
one stream with carried state (:meth:`SequenceModel.evaluate_streams`). Each way trains in a
process of its own, whose peak resident memory (``ru_maxrss``: the interpreter, NumPy, the
text and the training) is reported.

``memory``: one stream of ``steps`` random token ids in a ``numpy.memmap`` file (int32), trained
one epoch by truncated BPTT in one process and scored with carried state in another; the peak
resident memory of each, for every ``steps``. Memory bounded by the chunk length means the
peaks do not grow with ``steps`` (beyond the pages of the mapped file that the kernel keeps
resident while it is read: 4 bytes a step).

``spark``: the KJV training text as a table of steps (stream, position, char id, next char id),
``streams`` contiguous streams, trained on Spark (``local[WORKERS]``) with
:func:`sparklstm.spark.streams.fit_streams_distributed` for ``rounds`` rounds of
``local_steps`` chunk updates per worker; reported: each round's loss and the peak resident
memory of the workers' Python processes (``worker_peak_rss_mib``: the interpreter, NumPy, the
model and the blocks a round reads), to set beside the one-process figures.

All print one line per run and write a JSON document (``bench/results/streams_<cmd>.json``
unless ``--out``) with the settings, the figures, the seconds and the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import machine_info
from sparklstm.cli import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_child(argv: list[str]) -> dict[str, Any]:
    """Run ``python -m bench.streams ARGV`` in a fresh process and return the JSON document
    it prints last (so each measured peak is that work's alone)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.streams", *argv],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def char_model(vocab_size: int, hidden: int, seed: int):
    from sparklstm import SequenceModel

    return SequenceModel(
        vocab_size=vocab_size,
        embedding_dim=32,
        hidden_sizes=[hidden],
        head="all",
        task="classification",
        output_size=vocab_size,
        seed=seed,
    )


def contiguous_streams(ids: np.ndarray, count: int) -> tuple[list, list]:
    """``ids`` cut into ``count`` contiguous streams (views, no copy) and their next-char
    targets."""
    usable = len(ids) - 1
    bounds = np.linspace(0, usable, count + 1).astype(np.int64)
    inputs = [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    targets = [ids[a + 1 : b + 1] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return inputs, targets


def kjv_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "hidden": args.hidden,
        "epochs": args.epochs,
        "streams_or_batch": args.streams,
        "length": args.length,
        "lr": args.lr,
        "seed": args.seed,
        "max_chars": args.max_chars,
        "test_chars": args.test_chars,
    }


def kjv_child(args: argparse.Namespace) -> dict[str, Any]:
    """Train one way (``args.way``) and score it; runs in a process of its own."""
    from sparklstm.data.text import next_token_windows
    from sparklstm.datasets.kjv import bits_per_char, load_kjv

    corpus = load_kjv()
    train = corpus.train_ids.astype(np.int64)
    if args.max_chars:
        train = train[: args.max_chars]
    test = corpus.test_ids.astype(np.int64)
    if args.test_chars:
        test = test[: args.test_chars]
    per_update = args.streams * args.length
    updates_per_epoch = (len(train) - 1) // per_update
    options = dict(
        epochs=args.epochs,
        batch_size=args.streams,
        lr=args.lr,
        schedule={
            "name": "cosine",
            "lr": args.lr,
            "total_steps": updates_per_epoch * args.epochs,
        },
        clip_norm=5.0,
        seed=args.seed,
        progress=False,
    )
    model = char_model(len(corpus.vocab), args.hidden, args.seed)
    started = time.perf_counter()
    if args.way == "windows":
        x, y = next_token_windows(train, args.length)
        rows = updates_per_epoch * args.streams
        history = model.fit(x[:rows], y[:rows], bucket=False, **options)
    else:
        # The same characters per epoch as the windows, as contiguous streams.
        inputs, targets = contiguous_streams(
            train[: per_update * updates_per_epoch + 1], args.streams
        )
        history = model.fit_streams(
            inputs, targets, forward_length=args.length, shuffle=False, **options
        )
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    zero_state = bits_per_char(model, test, seq_len=args.length, batch_size=256)
    carried = model.evaluate_streams([test[:-1]], [test[1:]], chunk_length=1000)["bits_per_step"]
    return {
        "way": args.way,
        "test_bits_per_char_zero_state_windows": round(float(zero_state), 4),
        "test_bits_per_char_carried_state": round(float(carried), 4),
        "train_loss_last_epoch_nats": round(float(history.rows[-1]["loss"]), 4),
        "training_seconds": round(seconds, 1),
        "training_peak_rss_bytes": peak,
        "train_chars_per_epoch": per_update * updates_per_epoch,
        "updates_per_epoch": updates_per_epoch,
        "test_chars": int(len(test)),
    }


def run_kjv(args: argparse.Namespace) -> dict[str, Any]:
    flags = [
        "--hidden", str(args.hidden), "--epochs", str(args.epochs), "--streams",
        str(args.streams), "--length", str(args.length), "--lr", str(args.lr), "--seed",
        str(args.seed),
    ]  # fmt: skip
    if args.max_chars:
        flags += ["--max-chars", str(args.max_chars)]
    if args.test_chars:
        flags += ["--test-chars", str(args.test_chars)]
    results = {}
    for way in ("windows", "carried"):
        row = in_child(["kjv-one", *flags, "--way", way])
        results[way] = row
        print(
            f"{way:8s} test bits/char: {row['test_bits_per_char_zero_state_windows']:.4f} in "
            f"zero-state windows of {args.length}, {row['test_bits_per_char_carried_state']:.4f} "
            f"read with carried state; training {row['training_seconds']:.0f} s, peak RSS "
            f"{row['training_peak_rss_bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
    return {"settings": kjv_settings(args), "results": results}


def memory_child(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or score) one stream of ``args.steps`` ids read from a memory-mapped file."""
    stream = np.memmap(args.file, dtype=np.int32, mode="r")
    model = char_model(16, args.hidden, 0)
    started = time.perf_counter()
    if args.phase == "training":
        model.fit_streams(
            [stream[:-1]], [stream[1:]], forward_length=args.length, epochs=1, batch_size=1,
            lr=1e-3, seed=0, progress=False,
        )  # fmt: skip
        figure = None
    else:
        scores = model.evaluate_streams([stream[:-1]], [stream[1:]], chunk_length=args.length)
        figure = round(float(scores["bits_per_step"]), 4)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_bytes": peak_rss_bytes(),
        "bits_per_step": figure,
    }


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparklstm-streams-") as scratch:
        for steps in args.steps:
            path = Path(scratch) / f"stream_{steps}.int32"
            ids = np.memmap(path, dtype=np.int32, mode="w+", shape=(steps + 1,))
            rng = np.random.default_rng(0)
            for start in range(0, steps + 1, 1 << 20):
                stop = min(steps + 1, start + (1 << 20))
                ids[start:stop] = rng.integers(0, 16, size=stop - start)
            ids.flush()
            del ids
            flags = [
                "--file",
                str(path),
                "--hidden",
                str(args.hidden),
                "--length",
                str(args.length),
            ]
            training = in_child(["memory-one", *flags, "--phase", "training"])
            scoring = in_child(["memory-one", *flags, "--phase", "scoring"])
            row = {
                "steps": steps,
                "training_peak_rss_bytes": training["peak_rss_bytes"],
                "training_seconds": training["seconds"],
                "scoring_peak_rss_bytes": scoring["peak_rss_bytes"],
                "scoring_seconds": scoring["seconds"],
                "bits_per_step_untrained": scoring["bits_per_step"],
                "stream_bytes_on_disk": int(path.stat().st_size),
            }
            rows.append(row)
            print(
                f"{steps:>9,} steps: training peak RSS "
                f"{row['training_peak_rss_bytes'] / 2**20:.1f} MiB "
                f"({row['training_seconds']:.0f} s), scoring peak RSS "
                f"{row['scoring_peak_rss_bytes'] / 2**20:.1f} MiB ({row['scoring_seconds']:.0f} s);"
                f" the stream file is {row['stream_bytes_on_disk'] / 2**20:.1f} MiB",
                flush=True,
            )
    return {"settings": {"hidden": args.hidden, "length": args.length}, "results": rows}


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    from sparklstm.datasets.kjv import load_kjv
    from sparklstm.spark.session import get_session
    from sparklstm.spark.streams import fit_streams_distributed

    corpus = load_kjv()
    train = corpus.train_ids.astype(np.int64)
    inputs, targets = contiguous_streams(train, args.streams)
    import pyarrow as pa

    table = pa.table(
        {
            "stream": np.concatenate([np.full(len(x), k) for k, x in enumerate(inputs)]),
            "position": np.concatenate([np.arange(len(x)) for x in inputs]),
            "features": np.concatenate(inputs),
            "label": np.concatenate(targets),
        }
    )
    spark = get_session(app_name="bench-streams", master=f"local[{args.workers}]")
    df = spark.createDataFrame(table)
    started = time.perf_counter()
    model, history = fit_streams_distributed(
        df,
        dict(vocab_size=len(corpus.vocab), embedding_dim=32, hidden_sizes=[args.hidden],
             head="all", output_size=len(corpus.vocab), seed=0),
        {"rounds": args.rounds, "local_steps": args.local_steps, "batch_size":
         args.streams // args.workers, "num_partitions": args.workers, "lr": 0.004,
         "clip_norm": 5.0, "seed": 0},
        forward_length=args.length,
        progress=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    rows = [
        {k: row[k] for k in ("round", "train_loss", "seconds", "worker_peak_rss_mib")}
        for row in history.rows
    ]
    peak = max(row["worker_peak_rss_mib"] for row in rows)
    print(
        f"{args.workers} workers x {args.streams // args.workers} streams, {args.rounds} rounds of "
        f"{args.local_steps} chunk updates: loss {rows[0]['train_loss']:.3f} -> "
        f"{rows[-1]['train_loss']:.3f}, worker peak RSS {peak:.0f} MiB, {seconds:.0f} s",
        flush=True,
    )
    return {
        "settings": {
            "hidden": args.hidden,
            "streams": args.streams,
            "workers": args.workers,
            "rounds": args.rounds,
            "local_steps": args.local_steps,
            "length": args.length,
            "steps_in_table": int(table.num_rows),
        },
        "results": {"rounds": rows, "worker_peak_rss_mib": peak, "seconds": round(seconds, 1)},
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    kjv = commands.add_parser("kjv", help="carried state vs independent windows on the KJV text")
    kjv.add_argument("--hidden", type=int, default=256)
    kjv.add_argument("--epochs", type=int, default=3)
    kjv.add_argument("--streams", type=int, default=64)
    kjv.add_argument("--length", type=int, default=100)
    kjv.add_argument("--lr", type=float, default=0.004)
    kjv.add_argument("--seed", type=int, default=0)
    kjv.add_argument("--max-chars", type=int, default=None)
    kjv.add_argument("--test-chars", type=int, default=None, help="score only the first N")
    kjv.add_argument("--out", type=Path, default=None)
    memory = commands.add_parser("memory", help="peak memory against the stream's length")
    memory.add_argument("--steps", type=int, nargs="+", default=[10_000, 1_000_000])
    memory.add_argument("--hidden", type=int, default=64)
    memory.add_argument("--length", type=int, default=100)
    memory.add_argument("--out", type=Path, default=None)
    on_spark = commands.add_parser("spark", help="peak memory per worker, on Spark")
    on_spark.add_argument("--hidden", type=int, default=256)
    on_spark.add_argument("--streams", type=int, default=64)
    on_spark.add_argument("--workers", type=int, default=2)
    on_spark.add_argument("--rounds", type=int, default=10)
    on_spark.add_argument("--local-steps", type=int, default=10)
    on_spark.add_argument("--length", type=int, default=100)
    on_spark.add_argument("--out", type=Path, default=None)
    # The measured work of one process (run by the commands above, one process per figure).
    kjv_one = commands.add_parser("kjv-one", parents=[], help=argparse.SUPPRESS)
    for action in kjv._actions[1:]:
        if action.dest != "out":
            kjv_one._add_action(action)
    kjv_one.add_argument("--way", choices=("windows", "carried"), required=True)
    memory_one = commands.add_parser("memory-one", help=argparse.SUPPRESS)
    memory_one.add_argument("--file", required=True)
    memory_one.add_argument("--hidden", type=int, default=64)
    memory_one.add_argument("--length", type=int, default=100)
    memory_one.add_argument("--phase", choices=("training", "scoring"), required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command in ("kjv-one", "memory-one"):
        row = kjv_child(args) if args.command == "kjv-one" else memory_child(args)
        print(json.dumps(row))
        return 0
    started = time.perf_counter()
    runs = {"kjv": run_kjv, "memory": run_memory, "spark": run_spark}
    document = runs[args.command](args)
    document["command"] = "python -m bench.streams " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    document["seconds"] = round(time.perf_counter() - started, 1)
    document["machine"] = machine_info()
    out = args.out or RESULTS / f"streams_{args.command}.json"
    write_json(out, document)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
