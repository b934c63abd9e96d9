"""Time to accuracy against a typical torch training loop, on a small real-shaped task.

    python -m bench.race [--threads 1 2] [--epochs 12] [--threshold 0.85] [--json out.json]

The workload is :mod:`bench.engine`'s (2,400 MFCC-like training sequences of 13 features, 6 to
88 steps, 10 classes; 600 held out): LSTM(64) and a linear head, Adam (lr 0.005), batch 32,
cross-entropy on the last valid step. Trained two ways, each in its own process:

* ``sparklstm``: :meth:`sparklstm.SequenceModel.fit`, one epoch per call (calls continue the
  same run), with ``step_threads`` = the thread count (the minibatch split across threads).
* ``torch``: the loop a torch user writes: ``nn.LSTM`` + ``nn.Linear``, a shuffled order per
  epoch, zero-padded batches through ``pack_padded_sequence``, ``torch.optim.Adam``;
  ``torch.set_num_threads`` = the thread count.

After every epoch each model is scored on the held-out split (not timed). The generator's
noise (3.0) keeps held-out accuracy near 0.9 for both, so the default threshold is 0.85 (98%
is never reached here). Reported per run:
training seconds per epoch (median), the training seconds until held-out accuracy first reaches
``--threshold`` (and the epoch), and the final accuracy; then torch's time over ours. The
models differ (initialisation, batching), so the accuracies differ too: the race is to the
same accuracy, not through the same steps. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.engine import BATCH, CLASSES, FEATURES, HIDDEN, LR, workload

ROWS, HELD_OUT, SEED = 2400, 600, 0


def _sparklstm(threads: int, epochs: int) -> list[dict[str, float]]:
    from sparklstm import SequenceModel

    x, y, lengths = workload(ROWS, SEED)
    x_test, y_test, lengths_test = workload(HELD_OUT, SEED, split=1)
    model = SequenceModel(input_size=FEATURES, hidden_sizes=[HIDDEN], output_size=CLASSES, seed=0)
    curve = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.fit(
            x, y, lengths, epochs=1, batch_size=BATCH, lr=LR, seed=0,
            step_threads=threads, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        accuracy = float((model.predict(x_test, lengths_test) == y_test).mean())
        curve.append({"seconds": seconds, "accuracy": accuracy})
    return curve


def _torch(threads: int, epochs: int) -> list[dict[str, float]]:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y, lengths = workload(ROWS, SEED)
    x_test, y_test, lengths_test = workload(HELD_OUT, SEED, split=1)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, CLASSES)

        def forward(self, inputs, input_lengths):
            packed = pack_padded_sequence(inputs, input_lengths, batch_first=True,
                                          enforce_sorted=False)  # fmt: skip
            _, (h_n, _) = self.lstm(packed)
            return self.head(h_n[-1])

    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    order_rng = torch.Generator().manual_seed(0)
    curve = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(ROWS, generator=order_rng)
        for begin in range(0, ROWS, BATCH):
            index = order[begin : begin + BATCH]
            batch_lengths = torch.from_numpy(lengths[index.numpy()])
            longest = int(batch_lengths.max())
            optimizer.zero_grad()
            logits = model(inputs[index, :longest], batch_lengths)
            loss = loss_fn(logits, targets[index])
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(x_test), torch.from_numpy(lengths_test))
        accuracy = float((logits.argmax(dim=1).numpy() == y_test).mean())
        curve.append({"seconds": seconds, "accuracy": accuracy})
    return curve


def _summary(curve: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    elapsed = 0.0
    reached = None
    for epoch, point in enumerate(curve, start=1):
        elapsed += point["seconds"]
        if reached is None and point["accuracy"] >= threshold:
            reached = {"epoch": epoch, "seconds": elapsed}
    return {
        "seconds_per_epoch": statistics.median(p["seconds"] for p in curve),
        "time_to_threshold": None if reached is None else reached["seconds"],
        "epoch_at_threshold": None if reached is None else reached["epoch"],
        "final_accuracy": curve[-1]["accuracy"],
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threshold", type=float, default=0.85)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", choices=["sparklstm", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run = _sparklstm if args.worker == "sparklstm" else _torch
        json.dump(run(args.threads[0], args.epochs), sys.stdout)
        return 0

    results: dict[str, Any] = {"threshold": args.threshold, "epochs": args.epochs, "runs": []}
    for threads in args.threads:
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        row: dict[str, Any] = {"threads": threads}
        for name in ("sparklstm", "torch"):
            command = [sys.executable, "-m", "bench.race", "--worker", name]
            command += ["--threads", str(threads), "--epochs", str(args.epochs)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            row[name] = _summary(json.loads(done.stdout), args.threshold)
        results["runs"].append(row)

    print(
        f"{'threads':>7} {'framework':>10} {'s/epoch':>8} {'to ' + str(args.threshold):>9} "
        f"{'epoch':>5} {'final acc':>9}"
    )
    for row in results["runs"]:
        for name in ("sparklstm", "torch"):
            r = row[name]
            to = "-" if r["time_to_threshold"] is None else f"{r['time_to_threshold']:.1f}"
            epoch = "-" if r["epoch_at_threshold"] is None else str(r["epoch_at_threshold"])
            print(
                f"{row['threads']:>7} {name:>10} {r['seconds_per_epoch']:>8.2f} {to:>9} "
                f"{epoch:>5} {r['final_accuracy']:>9.4f}"
            )
        ours, theirs = row["sparklstm"], row["torch"]
        speed = theirs["seconds_per_epoch"] / ours["seconds_per_epoch"]
        line = f"  {row['threads']} thread(s): torch's time per epoch / ours = {speed:.2f}x"
        if ours["time_to_threshold"] and theirs["time_to_threshold"]:
            race = theirs["time_to_threshold"] / ours["time_to_threshold"]
            line += f"; torch's time to {args.threshold} / ours = {race:.2f}x"
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
