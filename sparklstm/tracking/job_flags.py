"""The training jobs' MLflow options: ``--mlflow [TRACKING_URI]`` and ``--mlflow-experiment
NAME``, checked before any work (MLflow missing is one line naming the extra to install)."""

from __future__ import annotations

import contextlib
from typing import Any

from sparklstm.tracking.requirement import require_mlflow
from sparklstm.tracking.run import tracked_run

__all__ = ["add_mlflow_flags", "check_mlflow_flags", "job_tracking"]


def add_mlflow_flags(
    parser: Any, uri_dest: str = "mlflow", experiment_dest: str = "mlflow_experiment", **kw: Any
) -> None:
    """Add ``--mlflow [TRACKING_URI]`` (dest ``uri_dest``: the URI, ``True`` when given bare)
    and ``--mlflow-experiment NAME`` to ``parser`` (an argument group is fine); ``kw`` go to
    both (e.g. ``default=argparse.SUPPRESS``)."""
    group = parser.add_argument_group("tracking (needs pip install 'sparklstm[mlflow]')")
    group.add_argument(
        "--mlflow",
        dest=uri_dest,
        nargs="?",
        const=True,
        metavar="TRACKING_URI",
        help="log the run to MLflow (options, per-round metrics, summary, model) at "
        "TRACKING_URI (e.g. sqlite:///mlflow.db, http://host:5000); given bare, at "
        "$MLFLOW_TRACKING_URI or MLflow's default",
        **kw,
    )
    group.add_argument(
        "--mlflow-experiment",
        dest=experiment_dest,
        metavar="NAME",
        help="the MLflow experiment of the run (created when missing; default: "
        "$MLFLOW_EXPERIMENT_NAME or MLflow's default experiment)",
        **kw,
    )


def check_mlflow_flags(uri: Any, experiment: Any) -> None:
    """One-line ``ValueError`` for unusable values (``uri``: None/False for no tracking, True
    for the environment's, or a URI string) or for MLflow not installed."""
    if uri is None or uri is False:
        if experiment is not None:
            raise ValueError("--mlflow-experiment needs --mlflow (where to log the run)")
        return
    if uri is not True and (not isinstance(uri, str) or not uri.strip()):
        raise ValueError(
            f"--mlflow takes a tracking URI (e.g. sqlite:///mlflow.db) or nothing, got {uri!r}"
        )
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise ValueError(f"--mlflow-experiment must be a non-empty name, got {experiment!r}")
    try:
        require_mlflow("--mlflow")
    except ImportError as exc:
        raise ValueError(str(exc)) from None


def job_tracking(uri: Any, experiment: str | None) -> contextlib.AbstractContextManager[Any]:
    """The job's MLflow run (:func:`~sparklstm.tracking.run.tracked_run`) as a context giving
    its :class:`RunTracker`, or a context giving ``None`` without ``--mlflow``."""
    if uri is None or uri is False:
        return contextlib.nullcontext(None)
    return tracked_run(tracking_uri=None if uri is True else uri, experiment=experiment)
