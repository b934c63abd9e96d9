"""sparklstm: LSTM and GRU networks trained with NumPy BPTT, on one machine or on Spark.

``SequenceModel`` and ``ModelConfig`` are imported lazily, so ``import sparklstm.nn`` stays
light (NumPy only).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["ModelConfig", "SequenceModel", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SequenceModel":
        from sparklstm.model import SequenceModel

        return SequenceModel
    if name == "ModelConfig":
        from sparklstm.model.config import ModelConfig

        return ModelConfig
    raise AttributeError(f"module 'sparklstm' has no attribute {name!r}")
