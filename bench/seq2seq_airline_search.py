"""The search behind the Airline seq2seq forecaster's settings (issue 16), on validation only.

    python -m bench.seq2seq_airline_search [--stage 1|2|...] [--jobs 2] [--seeds 0 1 2 3 4]

Every candidate is a set of ``python -m bench.seq2seq airline`` flags, run with
``--validation``: trained on 1949-1954 of ``bench/configs/airline_validation.json`` (the test
years 1958-60 dropped) and scored by one recursive 36-month forecast of 1955-57 from Dec 1954
(``fixed_origin_mape``), over several seeds. The test years are never read. Each candidate's
harness output goes to ``runs/seq2seq_airline_search/<name>.json``; the table of all of them
(flags, per-seed and mean validation MAPE, the ensemble of the seeds' forecasts) to
``bench/accuracy/seq2seq_airline_search.json``, sorted by the mean.

The stages are one-factor-at-a-time changes from the harness's settings (stage 1), then
combinations of the stage-1 changes that helped (later stages, written after reading the
earlier ones: the table says which stage each candidate came from).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("bench.seq2seq_airline_search")

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "seq2seq_airline_search"
TABLE = ROOT / "bench" / "accuracy" / "seq2seq_airline_search.json"

#: name -> (stage, harness flags); "base" is the harness's settings (recursive decoder, one
#: month per step, LSTM 64, 24 months in, 200 epochs, lr 0.003, batch 8).
CANDIDATES: dict[str, tuple[int, list[str]]] = {
    "base": (1, []),
    "direct12": (1, ["--values-per-step", "12"]),
    "step6": (1, ["--values-per-step", "6"]),
    "step4": (1, ["--values-per-step", "4"]),
    "step3": (1, ["--values-per-step", "3"]),
    "hidden128": (1, ["--hidden", "128"]),
    "hidden32": (1, ["--hidden", "32"]),
    "input12": (1, ["--input-len", "12"]),
    "input36": (1, ["--input-len", "36"]),
    "epochs100": (1, ["--epochs", "100"]),
    "epochs400": (1, ["--epochs", "400"]),
    "lr001": (1, ["--lr", "0.001"]),
    "sampling25": (1, ["--sampling-rate", "0.25"]),
    "level_mean": (1, ["--level", "input-mean"]),
    "log_levels_mean": (1, ["--seasonal-difference", "0", "--level", "input-mean"]),
    "bidirectional": (1, ["--bidirectional", "1"]),
    "gru": (1, ["--cell", "gru"]),
    # Stage 2: stage 1's two clear gains were 12 months in (input12) and fewer decoder steps of
    # more months each (direct12, step3/4/6); their combinations, and the settings around them.
    "in12_direct12": (2, ["--input-len", "12", "--values-per-step", "12"]),
    "in12_step6": (2, ["--input-len", "12", "--values-per-step", "6"]),
    "in12_step3": (2, ["--input-len", "12", "--values-per-step", "3"]),
    "in12_hidden128": (2, ["--input-len", "12", "--hidden", "128"]),
    "in12_hidden32": (2, ["--input-len", "12", "--hidden", "32"]),
    "in12_direct12_hidden128": (
        2,
        ["--input-len", "12", "--values-per-step", "12", "--hidden", "128"],
    ),
    "in12_epochs100": (2, ["--input-len", "12", "--epochs", "100"]),
    "in12_epochs400": (2, ["--input-len", "12", "--epochs", "400"]),
    "in12_bidirectional": (2, ["--input-len", "12", "--bidirectional", "1"]),
    "input18": (2, ["--input-len", "18"]),
    "in18_direct12": (2, ["--input-len", "18", "--values-per-step", "12"]),
}


def _run_candidate(name: str, flags: list[str], attention: str, seeds: list[int]) -> Path:
    out = RUNS / f"{name}_{attention}.json"
    if out.exists() and json.loads(out.read_text()).get("config", {}).get("seeds") == seeds:
        done = json.loads(out.read_text())
        if len(done.get("runs", [])) == len(seeds):
            return out
    argv = [sys.executable, "-m", "bench.seq2seq", "airline", "--validation"]
    argv += ["--attention", attention, "--seeds", *map(str, seeds), *flags, "--out", str(out)]
    log = RUNS / f"{name}_{attention}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["MKL_NUM_THREADS"] = "1"
    with open(log, "w") as handle:
        subprocess.run(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)
    return out


def _row(name: str, stage: int, flags: list[str], attention: str, path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    runs = document["runs"]
    fixed = [run["fixed_origin_mape"] for run in runs]
    rolling = [run["mape"] for run in runs]
    ensemble = document["ensemble"][attention]
    return {
        "name": f"{name}_{attention}",
        "stage": stage,
        "flags": [*flags, "--attention", attention],
        "seeds": [run["seed"] for run in runs],
        "fixed_origin_mape_mean": float(np.mean(fixed)),
        "fixed_origin_mape_std": float(np.std(fixed)),
        "fixed_origin_mape_per_seed": [round(v, 3) for v in fixed],
        "mape_mean": float(np.mean(rolling)),
        "ensemble_fixed_origin_mape": ensemble["fixed_origin_mape"],
        "training_seconds_mean": float(np.mean([run["training_seconds"] for run in runs])),
        "command": document["command"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seq2seq_airline_search")
    parser.add_argument("--stage", type=int, nargs="+", default=[1])
    parser.add_argument("--only", nargs="+", help="candidate names (default: the stages')")
    parser.add_argument("--attention", nargs="+", default=["luong", "none"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    RUNS.mkdir(parents=True, exist_ok=True)
    chosen = [
        (name, stage, flags, attention)
        for name, (stage, flags) in CANDIDATES.items()
        if (args.only and name in args.only) or (not args.only and stage in args.stage)
        for attention in args.attention
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            pool.submit(_run_candidate, name, flags, attention, list(args.seeds)): (
                name,
                stage,
                flags,
                attention,
            )
            for name, stage, flags, attention in chosen
        }
        for future, (name, stage, flags, attention) in futures.items():
            path = future.result()
            row = _row(name, stage, flags, attention, path)
            logger.info(
                "%-28s validation fixed-origin MAPE %.2f +- %.2f %s ensemble %.2f",
                row["name"],
                row["fixed_origin_mape_mean"],
                row["fixed_origin_mape_std"],
                row["fixed_origin_mape_per_seed"],
                row["ensemble_fixed_origin_mape"],
            )
    # The table holds every candidate run so far (all stages), best validation mean first.
    rows = [
        _row(name, stage, flags, attention, RUNS / f"{name}_{attention}.json")
        for name, (stage, flags) in CANDIDATES.items()
        for attention in ("luong", "none")
        if (RUNS / f"{name}_{attention}.json").exists()
    ]
    rows.sort(key=lambda row: row["fixed_origin_mape_mean"])
    table = {
        "what": "validation search of the Airline seq2seq forecaster",
        "command": "python -m bench.seq2seq_airline_search --stage 1 2",
        "split": "validation: train 1949-1954, one 36-month forecast of 1955-1957 from Dec 1954",
        "references_on_this_split": {
            "one-step LSTM (bench/accuracy/airline_validation.json, seeds 0-2)": 9.86,
            "seasonal naive": 26.03,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "candidates": rows,
    }
    TABLE.write_text(json.dumps(table, indent=2) + "\n")
    logger.info("wrote %s", TABLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
