"""Train a sequence model in one process on a generated dataset, then save and reload it.

    python -m jobs.train_local                       # the README's demo (noisy sine classes)
    python -m jobs.train_local --task adding --epochs 20 --cell gru

This is the one-process trainer's job; the Spark trainer's job is ``jobs/train.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np

from sparklstm import SequenceModel
from sparklstm.data.synthetic import adding_problem, noisy_sines

TASKS = ("sines", "adding")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=TASKS, default="sines", help="generated dataset")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seq-len", type=int, default=60, help="longest sequence")
    parser.add_argument("--min-len", type=int, default=20, help="shortest sequence")
    parser.add_argument("--cell", choices=("lstm", "peephole", "gru"), default="lstm")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64], help="hidden size per layer")
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip-norm", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/demo-model", help="where to save the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _data(args, rng):
    n = args.train_size + args.test_size
    if args.task == "sines":
        x, y, lengths = noisy_sines(n, args.seq_len, 4, rng, min_len=args.min_len)
        options = dict(task="classification", output_size=4)
    else:
        x, y, lengths = adding_problem(n, args.seq_len, rng, min_len=args.min_len)
        options = dict(task="regression", output_size=1)
    split = args.train_size
    train = (x[:split], y[:split], lengths[:split])
    test = (x[split:], y[split:], lengths[split:])
    return train, test, options, x.shape[2]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    rng = np.random.default_rng(args.seed)
    try:
        train, test, options, input_size = _data(args, rng)
        model = SequenceModel(
            input_size=input_size,
            cell=args.cell,
            hidden_sizes=args.hidden,
            bidirectional=args.bidirectional,
            seed=args.seed,
            **options,
        )
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"task={args.task}  train={len(train[0])}  test={len(test[0])}  {model!r}")
    started = time.perf_counter()
    history = model.fit(
        *train,
        validation=test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        clip_norm=args.clip_norm,
        seed=args.seed,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - started
    metrics = model.evaluate(*test)
    path = model.save(args.output)
    reloaded = SequenceModel.load(path)
    same = np.array_equal(reloaded.predict(test[0], test[2]), model.predict(test[0], test[2]))
    summary = {
        "task": args.task,
        "epochs": len(history),
        "train_seconds": round(seconds, 2),
        "sequences_per_second": round(args.train_size * len(history) / seconds, 1),
        "test": {k: round(v, 4) for k, v in metrics.items()},
        "model": str(path),
        "reload_identical_predictions": bool(same),
    }
    print("final: " + json.dumps(summary))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
