"""Distributed training and inference on Spark (imports pyspark lazily)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "DistributedConfig",
    "fit_distributed",
    "evaluate_distributed",
    "predict_dataframe",
    "LSTMClassifier",
    "LSTMRegressor",
    "LSTMClassificationModel",
    "LSTMRegressionModel",
]

_ML_NAMES = ("LSTMClassifier", "LSTMRegressor", "LSTMClassificationModel", "LSTMRegressionModel")


def __getattr__(name: str) -> Any:
    if name == "DistributedConfig":
        from sparklstm.spark.config import DistributedConfig

        return DistributedConfig
    if name in ("fit_distributed", "evaluate_distributed"):
        from sparklstm.spark import trainer

        return getattr(trainer, name)
    if name == "predict_dataframe":
        from sparklstm.spark.inference import predict_dataframe

        return predict_dataframe
    if name in _ML_NAMES:
        from sparklstm.spark import ml

        return getattr(ml, name)
    raise AttributeError(f"module 'sparklstm.spark' has no attribute {name!r}")
