"""Logging a training run to MLflow: its options as parameters, each round's (or epoch's)
numbers as metrics with the round as the step, the final summary and the trained model.

::

    with tracked_run() as tracker:            # the active MLflow run, or a new one
        tracker.log_params({"training": training_options})
        model, history = fit_distributed(df, model_options, training_options,
                                         on_round=tracker.log_round)
        tracker.log_params({"model": model.config.to_dict()})
        tracker.log_model(model)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sparklstm.tracking.requirement import require_mlflow
from sparklstm.tracking.values import finite_metrics, flat_params, numeric_leaves

__all__ = ["RunTracker", "tracked_run"]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


class RunTracker:
    """Logs to the MLflow run ``run_id`` (through ``client``, by default an ``MlflowClient``
    of the current tracking URI)."""

    def __init__(self, run_id: str, client: Any = None) -> None:
        mlflow = require_mlflow()
        self.run_id = run_id
        self.client = mlflow.MlflowClient() if client is None else client

    def log_params(self, sections: Mapping[str, Any]) -> dict[str, str]:
        """Log nested options as flat parameters (``{"training": {"lr": 0.01}}`` as
        ``training.lr``; see :func:`~sparklstm.tracking.values.flat_params`); returns them.
        MLflow keeps a parameter's first value: logging it again with another is an error."""
        from mlflow.entities import Param

        params = flat_params(sections)
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])
        return params

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        """Log ``values`` (finite numbers) as metrics at ``step``."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(v), stamp, int(step)) for key, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_round(self, row: Mapping[str, Any]) -> None:
        """Log one history row: its finite numbers (``train_loss``, ``val_loss``,
        ``val_accuracy``, ``lr``, timings, ...) as metrics at step ``row["round"]`` (the
        distributed trainer's rows), or ``row["epoch"]`` (the one-process trainer's). This is
        the ``on_round`` callback of :func:`~sparklstm.spark.trainer.fit_distributed`."""
        step_key = "round" if "round" in row else "epoch"
        if step_key not in row:
            raise ValueError(f"a history row needs a 'round' or 'epoch' entry, got {sorted(row)}")
        self.log_metrics(finite_metrics(row, leave_out=(step_key,)), int(row[step_key]))

    def log_history(self, history: Any) -> None:
        """Log every row of a finished run's :class:`~sparklstm.training.history.History` (the
        one-process trainer, which has no per-epoch callback, logs this way after training)."""
        for row in history.rows:
            self.log_round(row)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """Log a run's final summary: the whole document as the artifact ``summary.json`` and
        its finite numbers as metrics ``summary.KEY`` (nested keys dotted:
        ``summary.validation.loss``)."""
        self.client.log_dict(self.run_id, dict(summary), SUMMARY_FILE)
        self.log_metrics(numeric_leaves(summary, "summary"), step=0)

    def log_model(self, model: Any, name: str = "model", **kwargs: Any) -> Any:
        """Log the trained model as the MLflow model ``name`` of this run (see
        :func:`~sparklstm.tracking.flavor.log_model`); returns MLflow's ``ModelInfo``."""
        from sparklstm.tracking.flavor import log_model

        return log_model(model, name, run_id=self.run_id, **kwargs)


@contextlib.contextmanager
def tracked_run(
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
) -> Iterator[RunTracker]:
    """A :class:`RunTracker` of the active MLflow run (a notebook's ``with
    mlflow.start_run():``), or of a new run that ends with the block (status ``FINISHED``, or
    ``FAILED`` when the block raises).

    A new run is started at ``tracking_uri`` (set for the rest of the process, as
    ``mlflow.set_tracking_uri`` does, so ``runs:/`` URIs resolve there afterwards; default:
    ``$MLFLOW_TRACKING_URI`` or MLflow's own default) in ``experiment`` (created when missing;
    default: ``$MLFLOW_EXPERIMENT_NAME`` or MLflow's default experiment). With an active run,
    a ``tracking_uri`` or ``experiment`` other than the run's is an error.
    """
    mlflow = require_mlflow()
    active = mlflow.active_run()
    if active is not None:
        _check_same_place(mlflow, active, tracking_uri, experiment)
        logger.info("logging to the active MLflow run %s", active.info.run_id)
        yield RunTracker(active.info.run_id)
        return
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    experiment_id = None
    if experiment is not None:
        found = mlflow.MlflowClient().get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id if found else mlflow.MlflowClient().create_experiment(experiment)
        )
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        logger.info(
            "logging to MLflow run %s (experiment %s) at %s",
            run.info.run_id,
            run.info.experiment_id,
            mlflow.get_tracking_uri(),
        )
        yield RunTracker(run.info.run_id)


def _check_same_place(
    mlflow: Any, active: Any, tracking_uri: str | None, experiment: str | None
) -> None:
    run_id = active.info.run_id
    if tracking_uri is not None and tracking_uri != mlflow.get_tracking_uri():
        raise ValueError(
            f"MLflow run {run_id} is active at {mlflow.get_tracking_uri()}, not at "
            f"{tracking_uri}; leave the tracking URI out to log to that run, or end it first"
        )
    if experiment is not None:
        name = mlflow.MlflowClient().get_experiment(active.info.experiment_id).name
        if name != experiment:
            raise ValueError(
                f"MLflow run {run_id} is active in experiment {name!r}, not {experiment!r}; "
                "leave the experiment out to log to that run, or end it first"
            )
