"""Options of distributed training, validated once and saved with every checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparklstm.optim import (
    ConstantLR,
    Optimizer,
    Schedule,
    WarmupLR,
    make_optimizer,
    schedule_from_config,
)
from sparklstm.validation import (
    check_choice,
    check_no_unknown_keys,
    check_positive_int,
)

__all__ = ["DistributedConfig", "STATE_POLICIES", "LR_SCALINGS", "SMALL_PARTITION_POLICIES"]

STATE_POLICIES = ("average", "reset", "local")
LR_SCALINGS = ("none", "linear", "sqrt")
SMALL_PARTITION_POLICIES = ("error", "train", "skip")
INVALID_ROW_POLICIES = ("error", "skip")

# Options that may change between a run and its resumption (they do not change the numbers of
# the rounds already done). Everything else must match the checkpoint.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "rounds",
        "checkpoint_every",
        "keep_checkpoints",
        "validate_every",
        "progress",
        "cache_dir",
    }
)


def _optional_positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def _non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


@dataclass(frozen=True)
class DistributedConfig:
    """How :func:`~sparklstm.spark.trainer.fit_distributed` trains.

    Parameters
    ----------
    epochs : passes over the data (default 10); ignored when ``rounds`` is given.
    rounds : total averaging rounds, instead of ``epochs``.
    local_steps : minibatch updates each worker makes between two averages (the averaging
        frequency). ``None`` means one round per epoch: each worker trains on its whole
        partition, then the driver averages.
    batch_size : examples per minibatch on each worker.
    num_partitions : repartition the data into this many partitions (= workers per round);
        ``None`` keeps the DataFrame's partitioning.
    optimizer, lr, optimizer_options, weight_decay : the workers' optimizer (see
        :func:`sparklstm.optim.make_optimizer`).
    schedule : learning-rate schedule config dict (e.g. ``{"name": "cosine", "lr": 0.01,
        "total_steps": 1000}``), in global steps (``round * local_steps``).
    lr_scaling : ``"none"``, ``"linear"`` or ``"sqrt"``: multiply the rate by the number of
        partitions (or its square root), the usual rule for large effective batches.
    warmup_rounds : linear warm-up of the rate over this many rounds (Goyal et al. 2017).
    state_policy : what happens to the optimizer state (momentum, Adam moments) at each
        average: ``"average"`` (weighted average, like the parameters), ``"reset"`` (every round
        starts from a fresh state) or ``"local"`` (each partition keeps its own state across
        rounds; the driver stores one state per partition).
    outer_momentum, outer_lr : block momentum on the averaged update (Chen & Huo 2016):
        ``v = outer_momentum * v + mean_delta``, ``theta += outer_lr * v``. The defaults (0, 1)
        give plain parameter averaging.
    clip_norm, clip_value : gradient clipping on every worker step.
    seed : one seed for everything random in a run: the starting weights (unless the model
        config sets its own ``seed``), the data order and dropout. ``None``: the model config's
        seed, else a random one (recorded in the history's summary, so the run can be replayed).
    shuffle, bucket : shuffle every epoch; batch similar lengths together.
    chunk_rows : rows per cached chunk on the executors (a multiple of ``batch_size`` keeps
        batches full); chunks bound the memory a round needs and spill to disk.
    cache_dir : where sessions that cannot cache DataFrames (some serverless platforms) keep
        the encoded data: a directory (path or URI) every executor can reach; each run writes
        Parquet files in a new subdirectory, reads this round's chunks back every round, and
        removes them at the end. ``None`` (default): persist them in Spark's block store
        (``MEMORY_AND_DISK``). The results are the same bits either way.
    validate_every : rounds between two validations (when validation data is given).
    early_stopping : patience, in validations, on the validation loss; ``None`` disables.
    restore_best : with early stopping, end with the best validated parameters.
    checkpoint_every : rounds between two checkpoints (with a checkpoint directory).
    keep_checkpoints : how many checkpoints to keep.
    small_partitions : a partition with fewer rows than ``batch_size``: ``"error"``,
        ``"train"`` (train it anyway) or ``"skip"`` (leave its rows out, counted in the summary).
    invalid_rows : ``"error"`` (default) or ``"skip"`` rows with nulls, NaN/Inf, wrong shapes or
        labels out of range (counted in the summary).
    """

    epochs: int = 10
    rounds: int | None = None
    local_steps: int | None = None
    batch_size: int = 32
    num_partitions: int | None = None
    optimizer: str = "adam"
    lr: float | None = None
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    schedule: Mapping[str, Any] | None = None
    lr_scaling: str = "none"
    warmup_rounds: int = 0
    state_policy: str = "average"
    outer_momentum: float = 0.0
    outer_lr: float = 1.0
    clip_norm: float | None = None
    clip_value: float | None = None
    seed: int | None = None
    shuffle: bool = True
    bucket: bool = True
    chunk_rows: int = 4096
    cache_dir: str | None = None
    validate_every: int = 1
    early_stopping: int | None = None
    restore_best: bool = True
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    small_partitions: str = "error"
    invalid_rows: str = "error"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_positive_int("epochs", self.epochs)
        for name in ("rounds", "local_steps", "num_partitions", "early_stopping"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("batch_size", "chunk_rows", "validate_every", "checkpoint_every"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("keep_checkpoints", self.keep_checkpoints)
        check_positive_int("warmup_rounds", self.warmup_rounds, minimum=0)
        if self.seed is not None:
            check_positive_int("seed", self.seed, minimum=0)
        check_choice("state_policy", self.state_policy, STATE_POLICIES)
        check_choice("lr_scaling", self.lr_scaling, LR_SCALINGS)
        check_choice("small_partitions", self.small_partitions, SMALL_PARTITION_POLICIES)
        check_choice("invalid_rows", self.invalid_rows, INVALID_ROW_POLICIES)
        if self.cache_dir is not None and (
            not isinstance(self.cache_dir, str) or not self.cache_dir.strip()
        ):
            raise ValueError(f"cache_dir must be a non-empty path or URI, got {self.cache_dir!r}")
        for name in ("shuffle", "bucket", "restore_best"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        set_(self, "lr", _optional_positive("lr", self.lr))
        set_(self, "clip_norm", _optional_positive("clip_norm", self.clip_norm))
        set_(self, "clip_value", _optional_positive("clip_value", self.clip_value))
        set_(self, "weight_decay", _non_negative_float("weight_decay", self.weight_decay))
        momentum = _non_negative_float("outer_momentum", self.outer_momentum)
        if momentum >= 1:
            raise ValueError(f"outer_momentum must be in [0, 1), got {momentum}")
        set_(self, "outer_momentum", momentum)
        outer_lr = _optional_positive("outer_lr", self.outer_lr)
        set_(self, "outer_lr", outer_lr)
        if not isinstance(self.optimizer_options, Mapping):
            raise TypeError("optimizer_options must be a dict")
        set_(self, "optimizer_options", dict(self.optimizer_options))
        if self.schedule is not None and not isinstance(self.schedule, Mapping):
            if isinstance(self.schedule, Schedule):
                set_(self, "schedule", self.schedule.to_config())
            else:
                raise TypeError("schedule must be a schedule config dict or a Schedule")
        # Build once so that a bad optimizer or schedule fails here, before any Spark work.
        self.make_optimizer()
        if self.schedule is not None:
            schedule_from_config(self.schedule)

    # ----------------------------------------------------------------- building
    def make_optimizer(self) -> Optimizer:
        kwargs = dict(self.optimizer_options)
        if self.lr is not None:
            kwargs["lr"] = self.lr
        if self.weight_decay:
            kwargs["weight_decay"] = self.weight_decay
        return make_optimizer(self.optimizer, **kwargs)

    def make_schedule(self, num_partitions: int, local_steps: int) -> Schedule:
        """The schedule in global steps, with worker-count scaling and warm-up applied."""
        base = (
            schedule_from_config(self.schedule)
            if self.schedule is not None
            else ConstantLR(self.make_optimizer().lr)
        )
        factor = {"none": 1.0, "linear": float(num_partitions), "sqrt": num_partitions**0.5}[
            self.lr_scaling
        ]
        if factor != 1.0:
            base = _scaled(base, factor)
        if self.warmup_rounds:
            base = WarmupLR(base, warmup_steps=self.warmup_rounds * local_steps)
        return base

    # ------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["optimizer_options"] = dict(self.optimizer_options)
        data["schedule"] = None if self.schedule is None else dict(self.schedule)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistributedConfig:
        check_no_unknown_keys("training config", data, (f.name for f in dataclasses.fields(cls)))
        return cls(**dict(data))

    @classmethod
    def coerce(cls, value: DistributedConfig | Mapping[str, Any] | None) -> DistributedConfig:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise TypeError(f"config must be a DistributedConfig or a dict, got {type(value).__name__}")


def _scaled(schedule: Schedule, factor: float) -> Schedule:
    """``schedule`` with every rate multiplied by ``factor`` (by scaling its rate fields)."""
    config = schedule.to_config()

    def scale(node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        for key in ("lr", "min_lr"):
            if key in node:
                node[key] = node[key] * factor
        if isinstance(node.get("base"), Mapping):
            node["base"] = scale(node["base"])
        return node

    return schedule_from_config(scale(config))
