"""The SparkSession that sparklstm's jobs run in.

Under ``spark-submit`` the master, deploy mode and resources come from the command line and
``spark-defaults.conf``; :func:`get_session` leaves them alone. Started as a plain Python
program (``python -m jobs.train``, a notebook, a test), it runs Spark in local mode on all cores
unless told otherwise, with Python workers on the same interpreter as the driver (so a
virtualenv's packages reach the workers without further set-up).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_MASTER", "get_session", "under_spark_submit"]

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"

# Settings every sparklstm session gets unless the caller or spark-submit set them: Arrow on,
# Python workers reused across tasks (each round is a job; restarting workers costs ~0.7 s),
# no console progress bar (the trainer prints one line per round instead).
_DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
    "spark.ui.showConsoleProgress": "false",
}


def under_spark_submit() -> bool:
    """Whether this Python process was started by ``spark-submit`` (which passes the port of
    the JVM it already launched)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith(("local[", "local-cluster["))


def _submitted_settings() -> set[str]:
    """Keys spark-submit was given (``--conf``, ``spark-defaults.conf``): the JVM it launched
    holds them as system properties, which a loading SparkConf reads."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; starts nothing new
    return {key for key, _ in SparkConf(loadDefaults=True).getAll()}


def get_session(
    app_name: str = "sparklstm",
    master: str | None = None,
    conf: Mapping[str, Any] | None = None,
    log_level: str | None = "WARN",
) -> SparkSession:
    """Get or create the SparkSession.

    Parameters
    ----------
    app_name : application name shown in the Spark UI and the cluster manager.
    master : Spark master URL. ``None`` keeps the one spark-submit was given (spark-submit's own
        default is ``local[*]``), or uses ``local[*]`` when not under spark-submit.
    conf : extra Spark settings (``{"spark.executor.memory": "4g"}``); they win over the
        defaults above but not over settings of an already running session. The defaults
        never override a setting given to spark-submit.
    log_level : the SparkContext's log level (``None`` leaves it). A new context also gets it
        as ``spark.log.level`` (unless given to spark-submit or in ``conf``), so that
        spark-submit jobs do not print Spark's start-up INFO lines.

    Returns
    -------
    pyspark.sql.SparkSession
    """
    from pyspark.sql import SparkSession

    submitted = under_spark_submit()
    if master is None and not submitted:
        master = DEFAULT_MASTER
    if master is not None and not isinstance(master, str):
        raise TypeError(f"master must be a str such as 'local[2]', got {master!r}")
    if master is not None and _is_local(master) and not submitted:
        # Local Python workers are started with $PYSPARK_PYTHON (default: "python3" on PATH),
        # which need not be the interpreter that has sparklstm installed.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    already_set = _submitted_settings() if submitted else set()
    defaults = {k: v for k, v in _DEFAULTS.items() if k not in already_set}
    settings = {**defaults, **{str(k): str(v) for k, v in (conf or {}).items()}}
    if log_level is not None and "spark.log.level" not in already_set:
        settings.setdefault("spark.log.level", log_level)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if log_level is not None:
        session.sparkContext.setLogLevel(log_level)
    logger.info(
        "Spark %s, master %s, default parallelism %d",
        session.version,
        session.sparkContext.master,
        session.sparkContext.defaultParallelism,
    )
    return session
