"""The record of a training run and its early-stopping rule, shared by both trainers.

The one-process trainer runs one round per epoch, so both write the same record: one row per
round (``history["val_loss"]`` gives a column), the best round, whether the run stopped early,
and a summary. :class:`EarlyStopping` is the one rule both apply to the monitored loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["History", "EarlyStopping"]


@dataclass
class History:
    """Per-round records of training (the one-process trainer's rounds are its epochs).

    Rows of :func:`~sparklstm.training.fit.fit` hold ``epoch``, ``loss``, ``accuracy`` or ``rmse``,
    the validation metrics as ``val_*``, ``lr`` and ``seconds``; rows of
    :func:`~sparklstm.spark.trainer.fit_distributed` hold ``round``, ``epoch``, ``train_*``,
    ``val_*`` (on validated rounds) and the round's timings. ``best_round`` is the round with
    the lowest monitored loss (``best_epoch`` the epoch it falls in); ``summary`` describes the
    run (rows, partitions, seed, ...).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_round: int | None = None
    stopped_early: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def best_epoch(self) -> int | None:
        """The epoch of :attr:`best_round` (the same number for the one-process trainer)."""
        if self.best_round is None:
            return None
        for row in self.rows:
            if row.get("round", row.get("epoch")) == self.best_round:
                return int(row.get("epoch", self.best_round))
        return self.best_round

    def __getitem__(self, key: str) -> list[Any]:
        """One column: the value of ``key`` in every row (``None`` where a row lacks it)."""
        if not self.rows:
            raise KeyError(f"{key!r}: the history has no rows")
        if not any(key in row for row in self.rows):
            raise KeyError(f"{key!r}; history has {sorted(self.rows[-1])}")
        return [row.get(key) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "best_round": self.best_round,
            "stopped_early": self.stopped_early,
            "summary": self.summary,
        }


@dataclass
class EarlyStopping:
    """Keeps the best monitored loss and counts the observations since it improved.

    ``patience`` None only tracks the best (no stopping, no copy of the parameters); otherwise
    a loss that is not lower than the best so far is a bad observation, ``patience`` bad ones in
    a row stop the run, and the parameters of the best observation are kept for
    ``restore_best``. The state (``best_loss``, ``bad``, ``best_round``) is what a checkpoint
    saves, so a resumed run goes on counting.
    """

    patience: int | None
    best_loss: float = math.inf
    bad: int = 0
    best_round: int | None = None
    best_params: dict[str, np.ndarray] | None = None

    def observe(
        self,
        loss: float,
        round_number: int,
        params: Callable[[], Mapping[str, np.ndarray]],
    ) -> bool:
        """Record the monitored ``loss`` after ``round_number``; ``params`` gives the current
        parameters (called only when they are the best so far and a patience is set).
        Returns whether the run stops here."""
        if loss < self.best_loss:
            self.best_loss, self.bad, self.best_round = float(loss), 0, round_number
            if self.patience is not None:
                self.best_params = {name: np.array(v, copy=True) for name, v in params().items()}
        else:
            self.bad += 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience

    def state(self) -> dict[str, Any]:
        """The counters a checkpoint saves (the best parameters are saved as arrays)."""
        return {
            "best_round": self.best_round,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "bad_validations": self.bad,
        }

    @classmethod
    def resumed(
        cls,
        patience: int | None,
        saved: Mapping[str, Any],
        best_params: dict[str, np.ndarray] | None,
    ) -> EarlyStopping:
        """The rule as a checkpoint's :meth:`state` (and best parameters) left it."""
        best_loss = saved.get("best_loss")
        return cls(
            patience,
            best_loss=math.inf if best_loss is None else float(best_loss),
            bad=int(saved.get("bad_validations", 0)),
            best_round=saved.get("best_round"),
            best_params=best_params,
        )
