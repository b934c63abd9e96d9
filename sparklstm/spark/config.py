"""The Spark trainer's options: :class:`~sparklstm.training.options.TrainOptions`, the one
definition of every training option (``DistributedConfig`` is kept as its name here)."""

from __future__ import annotations

from sparklstm.training.options import (
    INVALID_ROW_POLICIES,
    LR_SCALINGS,
    RESUMABLE_CHANGES,
    SMALL_PARTITION_POLICIES,
    STATE_POLICIES,
    TrainOptions,
)

DistributedConfig = TrainOptions

__all__ = [
    "DistributedConfig",
    "INVALID_ROW_POLICIES",
    "LR_SCALINGS",
    "RESUMABLE_CHANGES",
    "SMALL_PARTITION_POLICIES",
    "STATE_POLICIES",
]
