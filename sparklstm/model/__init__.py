"""The model: its configuration (:mod:`.config`), the stack of layers and the head
(:mod:`.network`) and :class:`SequenceModel` (:mod:`.sequence_model`), which trains, predicts,
and saves itself."""

from __future__ import annotations

from sparklstm.model.config import CELLS, HEADS, TASKS, ModelConfig
from sparklstm.model.sequence_model import FORMAT_VERSION, SequenceModel, compute_loss

__all__ = [
    "CELLS",
    "HEADS",
    "TASKS",
    "FORMAT_VERSION",
    "ModelConfig",
    "SequenceModel",
    "compute_loss",
]
