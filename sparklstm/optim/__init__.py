"""Optimizers, gradient clipping and learning-rate schedules, in NumPy.

Parameters and gradients are ``dict[str, np.ndarray]`` with the same keys. Every optimizer
updates the parameter arrays **in place** (each ``params[k]`` keeps its identity and dtype), so a
network whose layers hold views of those arrays sees the update. The update rules are those of
``torch.optim`` (``SGD``, ``RMSprop``, ``Adadelta``, ``Adam``/``AdamW``), so hyper-parameters
carry over.

All optimizer state lives in an :class:`OptimizerState`: an integer ``step`` and float arrays in
``slots``. :meth:`OptimizerState.to_arrays` flattens it into npz-ready arrays; the Spark trainer
averages those flat arrays across workers and rebuilds a state with
:meth:`OptimizerState.from_arrays`.

Optimizers and schedules are frozen dataclasses, validated on construction, with a JSON-safe
``to_config()`` and the inverse functions :func:`optimizer_from_config` and
:func:`schedule_from_config`.
"""

from __future__ import annotations

from sparklstm.optim.clipping import clip_grad_norm, clip_grad_value
from sparklstm.optim.optimizers import (
    OPTIMIZER_NAMES,
    SGD,
    Adadelta,
    Adam,
    Optimizer,
    OptimizerState,
    RMSProp,
    make_optimizer,
    optimizer_from_config,
)
from sparklstm.optim.schedules import (
    ConstantLR,
    CosineLR,
    ExponentialLR,
    Schedule,
    StepLR,
    WarmupLR,
    make_schedule,
    schedule_from_config,
)

__all__ = [
    "OptimizerState",
    "Optimizer",
    "SGD",
    "RMSProp",
    "Adadelta",
    "Adam",
    "OPTIMIZER_NAMES",
    "optimizer_from_config",
    "make_optimizer",
    "clip_grad_norm",
    "clip_grad_value",
    "Schedule",
    "ConstantLR",
    "StepLR",
    "ExponentialLR",
    "CosineLR",
    "WarmupLR",
    "schedule_from_config",
    "make_schedule",
]
