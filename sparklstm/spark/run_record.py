"""The record a distributed run keeps, and its decisions about checkpoints (no Spark here).

:class:`RoundBook` closes each round: its row in the history (with the validation metrics when
validated), the early-stopping rule, the metrics file, the progress line and the checkpoint
when due. :func:`starting_checkpoint` and :func:`check_resumable` decide whether and from
where a run resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparklstm.io.checkpoint import (
    Checkpoint,
    checkpoint_rounds,
    latest_checkpoint,
    save_checkpoint,
    set_aside_unreadable_after,
)
from sparklstm.model.factory import AnyConfig, config_from_dict
from sparklstm.spark.averaging import DriverState
from sparklstm.spark.metrics import MetricsFile, ProgressLines, format_round
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import RESUMABLE_CHANGES, TrainOptions

__all__ = ["RunIdentity", "RoundBook", "starting_checkpoint", "check_resumable"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What makes a run itself: its seed (weights, data order, dropout) and the id written into
    its checkpoints (a resumed run keeps both)."""

    seed: int
    run_id: str | None


def starting_checkpoint(checkpoint_dir: Path | None, resume: bool) -> Checkpoint | None:
    """The checkpoint a resumed run continues from; checks a fresh run's directory is empty."""
    if checkpoint_dir is None:
        return None
    rounds = checkpoint_rounds(checkpoint_dir)
    if not resume:
        if rounds:
            # A fresh run must not mix its checkpoints with an earlier run's (the newer-numbered
            # old ones would win a later resume) nor delete them: the user chooses.
            raise ValueError(
                f"checkpoint_dir {str(checkpoint_dir)!r} already holds checkpoints (rounds "
                f"{rounds}); resume that run (resume=True, --resume in the jobs) or use an "
                "empty directory"
            )
        return None
    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        found = f"only unreadable checkpoints (rounds {rounds})" if rounds else "no checkpoint"
        raise ValueError(
            f"resume: checkpoint_dir {str(checkpoint_dir)!r} holds {found}, so there is nothing "
            "to continue; to start afresh, run without resume (--resume) on an empty directory"
        )
    set_aside_unreadable_after(checkpoint_dir, checkpoint.round)
    return checkpoint


def check_resumable(checkpoint: Checkpoint, model_config: AnyConfig, cfg: TrainOptions):
    saved_model = config_from_dict(checkpoint.model_config)
    if saved_model != model_config:
        raise ValueError(
            "resume: the model configuration differs from the checkpoint's "
            f"({saved_model.to_dict()} vs {model_config.to_dict()})"
        )
    # Read through TrainOptions, so that an option added since the checkpoint was written
    # counts as its default.
    saved = TrainOptions.from_dict(checkpoint.training_config).to_dict()
    current = cfg.to_dict()
    changed = sorted(
        key for key in current if key not in RESUMABLE_CHANGES and saved[key] != current[key]
    )
    if changed:
        raise ValueError(
            f"resume: training options {changed} differ from the checkpoint's; only "
            f"{sorted(RESUMABLE_CHANGES)} may change"
        )


class RoundBook:
    """The record a run keeps of its rounds: the history rows, the best validation and the
    early-stopping count, the metrics file, the progress lines and the checkpoints."""

    def __init__(
        self,
        history: History,
        cfg: TrainOptions,
        run: RunIdentity,
        model_config: AnyConfig,
        checkpoint: Checkpoint | None,
        checkpoint_dir: Path | None,
        metrics: MetricsFile | None,
        lines: ProgressLines,
        total_rounds: int,
        on_round: Callable[[dict[str, Any]], None] | None,
        data_layout: dict[str, Any],
    ) -> None:
        self.history, self.cfg, self.run, self.model_config = history, cfg, run, model_config
        self.checkpoint_dir, self.metrics, self.lines = checkpoint_dir, metrics, lines
        self.total_rounds, self.data_layout = total_rounds, data_layout
        self.on_round = on_round
        self.first_round = 0 if checkpoint is None else checkpoint.round
        if checkpoint is None:
            self.stopping = EarlyStopping(cfg.early_stopping)
        else:
            self.stopping = EarlyStopping.resumed(
                cfg.early_stopping, checkpoint.progress, checkpoint.best_params
            )
        history.best_round = self.stopping.best_round
        self.started = time.perf_counter()

    def close(
        self, row: dict[str, Any], validation: dict[str, float] | None, after: DriverState
    ) -> bool:
        """Record round ``row["round"]`` (with its validation metrics, if validated) and
        checkpoint it when due; returns whether early stopping ends the run here."""
        cfg, history = self.cfg, self.history
        done_rounds = row["round"]
        stop = False
        if validation is not None:
            row.update({f"val_{key}": value for key, value in validation.items()})
            stop = self.stopping.observe(validation["loss"], done_rounds, lambda: after.params)
            history.best_round = self.stopping.best_round
        elapsed = time.perf_counter() - self.started
        row["eta_seconds"] = (
            elapsed / (done_rounds - self.first_round) * (self.total_rounds - done_rounds)
        )
        history.rows.append(row)
        if self.metrics is not None:
            self.metrics.append(row)
        self.lines.write(format_round(row, self.total_rounds))
        if self.on_round is not None:
            self.on_round(row)
        last = done_rounds == self.total_rounds
        if self.checkpoint_dir is not None and (
            done_rounds % cfg.checkpoint_every == 0 or last or stop
        ):
            self._save(done_rounds, after)
        if stop:
            history.stopped_early = True
            logger.info("early stopping after round %d (best %s)", done_rounds, history.best_round)
        return stop

    def _save(self, done_rounds: int, after: DriverState) -> None:
        assert self.checkpoint_dir is not None
        save_checkpoint(
            self.checkpoint_dir,
            Checkpoint(
                round=done_rounds,
                seed=self.run.seed,
                run_id=self.run.run_id,
                model_config=self.model_config.to_dict(),
                training_config=self.cfg.to_dict(),
                params=after.params,
                state=after.state,
                states=after.states,
                velocity=after.velocity if self.cfg.outer_momentum else None,
                carried=after.carried,
                best_params=self.stopping.best_params,
                progress={
                    "rows": self.history.rows,
                    **self.stopping.state(),
                    **self.data_layout,  # how the data was cut, for a resumed run
                },
            ),
            keep=self.cfg.keep_checkpoints,
        )
