"""Distributed training and inference on Spark (imports pyspark lazily)."""

from __future__ import annotations

from typing import Any

__all__ = ["DistributedConfig", "fit_distributed", "evaluate_distributed"]


def __getattr__(name: str) -> Any:
    if name == "DistributedConfig":
        from sparklstm.spark.config import DistributedConfig

        return DistributedConfig
    if name in ("fit_distributed", "evaluate_distributed"):
        from sparklstm.spark import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'sparklstm.spark' has no attribute {name!r}")
