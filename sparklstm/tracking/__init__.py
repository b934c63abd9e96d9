"""Experiment tracking and serving with MLflow (the optional ``mlflow`` extra:
``pip install 'sparklstm[mlflow]'``; nothing else in sparklstm needs it, and importing this
package does not import MLflow).

* :func:`tracked_run` / :class:`RunTracker`: log a training run (options as parameters, each
  round's metrics with the round as the step, the summary, the model);
* :mod:`sparklstm.tracking.flavor`: the ``sparklstm`` MLflow model flavour, scored by
  ``mlflow.pyfunc.load_model(uri).predict(df)`` and ``mlflow.pyfunc.spark_udf(spark, uri)``
  from the model's own ``.npz`` + JSON files (nothing pickled).
"""

from __future__ import annotations

from sparklstm.tracking.flavor import load_model, log_model, model_signature, save_model
from sparklstm.tracking.requirement import INSTALL_HINT, require_mlflow
from sparklstm.tracking.run import RunTracker, tracked_run
from sparklstm.tracking.scoring import SequenceScorer

__all__ = [
    "INSTALL_HINT",
    "RunTracker",
    "SequenceScorer",
    "load_model",
    "log_model",
    "model_signature",
    "require_mlflow",
    "save_model",
    "tracked_run",
]
