"""Per-round output of distributed training: a JSON-lines file and a progress line."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from sparklstm.training.history import History

__all__ = ["RoundHistory", "MetricsFile", "ProgressLines", "format_plan", "format_round"]

logger = logging.getLogger(__name__)


# One record of training for both trainers (kept under its old name here).
RoundHistory = History


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsFile:
    """Append-only JSON-lines file, one object per round. On resume it is rewritten from the
    checkpoint's history first, so rounds done after that checkpoint are not listed twice."""

    def __init__(self, path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({k: _json_safe(v) for k, v in row.items()}) + "\n")
        os.replace(temporary, self.path)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _json_safe(v) for k, v in row.items()}) + "\n")
            handle.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_round(row: dict[str, Any], total_rounds: int) -> str:
    """One human line for a round's row."""
    parts = [f"round {row['round']}/{total_rounds}", f"epoch {row['epoch']}"]
    parts.append(f"loss {row['train_loss']:.4f}")
    for key in ("train_accuracy", "train_rmse"):
        if key in row:
            parts.append(f"{key[6:]} {row[key]:.4f}")
    for key in ("val_loss", "val_accuracy", "val_rmse"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['sequences_per_second']:.0f} seq/s")
    parts.append(
        f"bcast {row['broadcast_seconds']:.2f}s compute {row['compute_seconds']:.2f}s "
        f"agg {row['aggregate_seconds']:.2f}s"
    )
    parts.append(f"drift {row['drift_relative']:.2e}")
    parts.append(f"ETA {_duration(row['eta_seconds'])}")
    return " | ".join(parts)


def format_plan(summary: dict[str, Any]) -> str:
    """The line a run starts with: how many workers train on how many rows, and for how long."""
    workers = summary["training_partitions"]
    line = (
        f"training {summary['rows']:,} rows on {workers} worker{'s' if workers != 1 else ''}"
        f" ({summary['partitions']} partitions): {summary['local_steps']} local steps per round,"
        f" {summary['rounds_per_epoch']} rounds per epoch, {summary['total_rounds']} rounds"
    )
    skipped = summary.get("skipped_rows") or {}
    if skipped:
        line += "; rows left out: " + ", ".join(f"{n} ({why})" for why, n in skipped.items())
    return line


class ProgressLines:
    """Progress lines of a run (the plan, the preparation, one per round) written to a stream
    (stderr), or to the log at DEBUG level when disabled."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream

    def write(self, line: str) -> None:
        if not self.enabled:
            logger.debug("%s", line)
        else:
            stream = self.stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()
