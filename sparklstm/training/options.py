"""Every training option, defined once.

:class:`TrainOptions` is the one definition: each field's name, type, default, allowed values
and one line of help. Everything else is derived from it: the one-process
:func:`sparklstm.training.fit.fit` takes the options of scope ``"local"`` as keywords;
:func:`sparklstm.spark.trainer.fit_distributed` takes those of scope ``"spark"`` (as a
``TrainOptions`` or a dict; ``DistributedConfig`` is the same class); the Spark ML estimators'
Params (camelCase: ``local_steps`` is ``localSteps``, ``lr`` is ``learningRate``) and the
training job's flags (``--local-steps``) are built from the fields of scope ``"spark"``.
``tests/test_options.py`` checks that all the views accept the same names, defaults and
choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparklstm.optim import (
    OPTIMIZER_NAMES,
    ConstantLR,
    Optimizer,
    Schedule,
    WarmupLR,
    make_optimizer,
    schedule_from_config,
)
from sparklstm.options import (
    Option,
    boolean,
    check_fields,
    choice,
    integer,
    mapping,
    options_of,
    real,
    text,
)
from sparklstm.validation import check_no_unknown_keys

__all__ = [
    "TrainOptions",
    "STATE_POLICIES",
    "LR_SCALINGS",
    "SMALL_PARTITION_POLICIES",
    "INVALID_ROW_POLICIES",
    "RESUMABLE_CHANGES",
    "train_options",
]

STATE_POLICIES = ("average", "reset", "local")
LR_SCALINGS = ("none", "linear", "sqrt")
SMALL_PARTITION_POLICIES = ("error", "train", "skip")
INVALID_ROW_POLICIES = ("error", "skip")

LOCAL = frozenset({"local"})
SPARK = frozenset({"spark"})
# The jobs fix the seed when none is given, so that a run is reproducible unless asked
# otherwise; Spark ML estimators default to a hash of their class name, as Spark's own do.
JOB_SEED = 0


@dataclass(frozen=True)
class TrainOptions:
    """How a model is trained (by :func:`~sparklstm.training.fit.fit` or
    :func:`~sparklstm.spark.trainer.fit_distributed`); see each field's help, or
    ``train_options()`` for the table. Validated once, when built; saved with every checkpoint.
    """

    # ---- how long
    epochs: int = integer(
        10, "passes over the data (the Spark trainer ignores it when rounds is set)", resumable=True
    )
    initial_epoch: int | None = integer(
        None,
        "None continues where the last fit on this model stopped; an int starts a new run "
        "after that many epochs, with a fresh optimizer state",
        minimum=0,
        optional=True,
        scopes=LOCAL,
    )
    rounds: int | None = integer(
        None,
        "total averaging rounds instead of epochs; None uses epochs",
        optional=True,
        scopes=SPARK,
        resumable=True,
    )
    local_steps: int | None = integer(
        None,
        "minibatch updates each worker makes between two averages; None: one round per epoch",
        optional=True,
        scopes=SPARK,
    )
    batch_size: int = integer(32, "sequences per minibatch (on each worker)")
    num_partitions: int | None = integer(
        None,
        "workers per round: the data is dealt round-robin into this many partitions; None: the "
        "session's default parallelism, at most one worker per two minibatches of rows; 0 keeps "
        "the DataFrame's own partitioning",
        minimum=0,
        optional=True,
        scopes=SPARK,
        flag="--partitions",
    )
    validation_split: float = real(
        0.0,
        "fraction of the training data held out for validation (stratified for classes), drawn "
        "from the seed; ignored when validation data are given",
        minimum=0.0,
        maximum=1.0,
        open_maximum=True,
        scopes=LOCAL,
    )
    # ---- the optimizer
    optimizer: str = choice(
        "adam",
        OPTIMIZER_NAMES,
        "the optimizer (fit also takes a sparklstm.optim.Optimizer instance)",
    )
    lr: float | None = real(
        None,
        "learning rate (> 0); None uses the optimizer's default",
        minimum=0.0,
        open_minimum=True,
        optional=True,
        param="learningRate",
    )
    optimizer_options: dict[str, Any] = mapping(
        {}, 'extra optimizer arguments, e.g. {"momentum": 0.9, "nesterov": true}'
    )
    weight_decay: float = real(0.0, "L2 penalty added to the gradients (>= 0)", minimum=0.0)
    schedule: dict[str, Any] | None = mapping(
        None,
        'learning-rate schedule config, e.g. {"name": "cosine", "lr": 0.01, '
        '"total_steps": 1000}, in global steps; None: constant',
        optional=True,
    )
    lr_scaling: str = choice(
        "none",
        LR_SCALINGS,
        "multiply the rate by the number of workers (linear) or its square root (sqrt)",
        scopes=SPARK,
    )
    warmup_rounds: int = integer(
        0, "linear learning-rate warm-up over this many rounds", minimum=0, scopes=SPARK
    )
    state_policy: str = choice(
        "average",
        STATE_POLICIES,
        "the optimizer state (momentum, Adam moments) at each average: averaged like the "
        "parameters, reset every round, or kept per partition (local)",
        scopes=SPARK,
    )
    outer_momentum: float = real(
        0.0,
        "block momentum on the averaged update, in [0, 1) (0: plain averaging)",
        minimum=0.0,
        maximum=1.0,
        open_maximum=True,
        scopes=SPARK,
    )
    outer_lr: float = real(
        1.0,
        "step size of the averaged update (1: plain averaging)",
        minimum=0.0,
        open_minimum=True,
        scopes=SPARK,
    )
    clip_norm: float | None = real(
        None,
        "clip each step's gradient to this global L2 norm; None: no clipping",
        minimum=0.0,
        open_minimum=True,
        optional=True,
    )
    clip_value: float | None = real(
        None,
        "clip each gradient entry to [-clip_value, clip_value]; None: no clipping",
        minimum=0.0,
        open_minimum=True,
        optional=True,
    )
    # ---- randomness and batching
    seed: int | None = integer(
        None,
        "one seed for the starting weights (unless the model sets its own), the data order and "
        "dropout; None: the model's seed, else a random one (recorded in the history)",
        minimum=0,
        optional=True,
        view_defaults={"flag": JOB_SEED, "param": "class name hash"},
    )
    step_threads: int | None = integer(
        None,
        "threads one minibatch step is split across, each with one BLAS thread (their "
        "gradients combined); default: 1 in one process, and on Spark the cores a task holds "
        "(spark.task.cpus)",
        optional=True,
        resumable=True,
    )
    shuffle: bool = boolean(True, "shuffle the data every epoch")
    bucket: bool = boolean(True, "batch sequences of similar lengths together (less padding)")
    chunk_rows: int = integer(
        4096,
        "rows per cached chunk on the executors (bounds a round's memory; chunks spill to disk)",
        scopes=SPARK,
    )
    cache_dir: str | None = text(
        None,
        "for sessions that cannot cache DataFrames (some serverless platforms): a directory "
        "every executor reaches, where the encoded data are kept as Parquet (removed at the "
        "end); None: Spark's block store",
        optional=True,
        scopes=SPARK,
        resumable=True,
    )
    # ---- validation and early stopping
    validate_every: int = integer(
        1, "rounds between two validations (with validation data)", scopes=SPARK, resumable=True
    )
    early_stopping: int | None = integer(
        None,
        "patience: stop after this many validations (epochs for fit) without a better "
        "validation loss; None disables",
        optional=True,
    )
    restore_best: bool = boolean(True, "with early stopping, end with the best parameters")
    # ---- checkpoints and bad data
    checkpoint_every: int = integer(
        1,
        "rounds between two checkpoints (with a checkpoint directory)",
        scopes=SPARK,
        resumable=True,
    )
    keep_checkpoints: int = integer(2, "how many checkpoints to keep", scopes=SPARK, resumable=True)
    small_partitions: str = choice(
        "error",
        SMALL_PARTITION_POLICIES,
        "a partition with fewer rows than batch_size: error, train it anyway, or skip its rows",
        scopes=SPARK,
    )
    invalid_rows: str = choice(
        "error",
        INVALID_ROW_POLICIES,
        "rows with nulls, NaN/Inf, bad lengths or labels: error, or skip and count them",
        scopes=SPARK,
    )

    def __post_init__(self) -> None:
        if isinstance(self.schedule, Schedule):
            object.__setattr__(self, "schedule", self.schedule.to_config())
        elif self.schedule is not None and not isinstance(self.schedule, Mapping):
            raise TypeError(
                "schedule must be a sparklstm.optim.Schedule or its config dict (e.g. "
                f"{{'name': 'cosine', 'lr': 0.01, 'total_steps': 100}}), got {self.schedule!r}"
            )
        check_fields(self)
        # Build once so that a bad optimizer or schedule fails here, before any work.
        self.make_optimizer()
        if self.schedule is not None:
            try:
                schedule_from_config(self.schedule)
            except ValueError as exc:
                raise ValueError(f"schedule: {exc}") from None

    # ----------------------------------------------------------------- building
    def make_optimizer(self) -> Optimizer:
        """The optimizer these options name, with ``lr``, ``weight_decay`` and the extras."""
        kwargs = dict(self.optimizer_options)
        if self.lr is not None:
            kwargs["lr"] = self.lr
        if self.weight_decay:
            kwargs["weight_decay"] = self.weight_decay
        return make_optimizer(self.optimizer, **kwargs)

    def make_schedule(self, num_partitions: int = 1, local_steps: int = 1) -> Schedule:
        """The schedule in global steps, with worker-count scaling and warm-up applied
        (the one-process trainer: the schedule as given)."""
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

    # ------------------------------------------------------------ views
    @classmethod
    def names(cls, scope: str) -> tuple[str, ...]:
        """The option names a trainer (``"local"`` or ``"spark"``) takes."""
        return tuple(option.name for option in options_of(cls, scope))

    def outside(self, scope: str) -> list[str]:
        """Options set away from their defaults that ``scope``'s trainer does not take."""
        return [
            option.name
            for option in options_of(type(self))
            if scope not in option.scopes and getattr(self, option.name) != option.default
        ]

    @classmethod
    def for_scope(cls, scope: str, value: TrainOptions | Mapping[str, Any] | None) -> TrainOptions:
        """Options for one trainer, from a ``TrainOptions``, a dict of its option names or
        ``None`` (the defaults); an option the trainer does not take is an error."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            foreign = value.outside(scope)
            if foreign:
                raise ValueError(
                    f"{', '.join(foreign)}: not an option of the "
                    f"{'Spark' if scope == 'spark' else 'one-process'} trainer"
                )
            return value
        if isinstance(value, Mapping):
            check_no_unknown_keys("training config", value, cls.names(scope))
            return cls(**dict(value))
        raise TypeError(f"config must be a TrainOptions or a dict, got {type(value).__name__}")

    # ------------------------------------------------------------ serialising
    def to_dict(self, scope: str = "spark") -> dict[str, Any]:
        """The options of ``scope`` as plain JSON values (what a checkpoint stores)."""
        data = {name: getattr(self, name) for name in self.names(scope)}
        for name in ("optimizer_options", "schedule"):
            if name in data and data[name] is not None:
                data[name] = dict(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], scope: str = "spark") -> TrainOptions:
        """Options from :meth:`to_dict`'s output (missing names take their defaults)."""
        return cls.for_scope(scope, data)

    @classmethod
    def coerce(cls, value: TrainOptions | Mapping[str, Any] | None) -> TrainOptions:
        """Options for the Spark trainer (see :meth:`for_scope`)."""
        return cls.for_scope("spark", value)


# Options that may change between a run and its resumption (they do not change the numbers of
# the rounds already done). Everything else must match the checkpoint.
RESUMABLE_CHANGES = frozenset(
    option.name for option in options_of(TrainOptions) if option.resumable
)


def train_options(scope: str | None = None) -> tuple[Option, ...]:
    """The definitions of the training options (of one trainer's ``scope`` when given)."""
    return options_of(TrainOptions, scope)


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
