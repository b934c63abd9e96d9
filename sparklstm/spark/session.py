"""The SparkSession that sparklstm's jobs run in: a classic session or a Spark Connect client.

Under ``spark-submit`` the master, deploy mode and resources come from the command line and
``spark-defaults.conf``; :func:`get_session` leaves them alone. Started as a plain Python
program (``python -m jobs.train``, a notebook, a test), it runs Spark in local mode on all cores
unless told otherwise, with Python workers on the same interpreter as the driver (so a
virtualenv's packages reach the workers without further set-up).

Given a Spark Connect URL (``remote="sc://host:15002"``, ``--remote`` in the jobs, or the
``SPARK_REMOTE`` environment variable), it returns a Spark Connect client session instead
(``pip install 'sparklstm[connect]'`` for the client's gRPC packages). The server owns the
master, the executors and every static setting; the client can only change runtime SQL
settings of its own session. :func:`is_connect` tells the two kinds apart.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_MASTER",
    "default_parallelism",
    "get_session",
    "is_connect",
    "under_spark_submit",
]

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"

# Settings every sparklstm session gets unless the caller or spark-submit set them: Arrow on,
# Python workers reused across tasks (each round is a job; restarting workers costs ~0.7 s),
# no console progress bar (the trainer prints one line per round instead).
_DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
    "spark.ui.showConsoleProgress": "false",
    # Memory (issue 13: 1 GB of sequences trains in a 512 MiB driver). Arrow batches sent to
    # the Python workers stay small (64 MiB by default: with wide rows that is tens of MiB of
    # JVM buffers and worker memory per task).
    "spark.sql.execution.arrow.maxBytesPerBatch": str(16 * 2**20),
    # Persisting a partition, the block store checks its unroll memory after every cached
    # batch (by default after 16: 16 batches of a few MiB each, held outside Spark's memory
    # accounting, per task), and the Java serializer writing the cached batches forgets each
    # one once written (by default it keeps the last 100 alive for back-references).
    "spark.storage.unrollMemoryCheckPeriod": "1",
    "spark.serializer.objectStreamReset": "1",
    # The unrolled bytes are held in pieces of this size (1 MiB by default: with its array
    # header just over 1 MiB, which G1 gives two 1 MiB regions of their own in a heap below
    # 2 GiB; 256 KiB pieces are ordinary objects).
    "spark.storage.unrollMemoryThreshold": str(256 * 2**10),
    # A sort that spilled merges its spill files through readers that each keep two 1 MiB
    # read-ahead buffers on the heap; without read-ahead, one buffer, off the heap.
    "spark.unsafe.sorter.spill.read.ahead.enabled": "false",
}
# In local mode the executor is the driver: a task that runs out of heap would make Spark
# exit the whole JVM (status 52) before the job can report it. With a depth of 0 the task
# fails, the JVM lives on, and the job says in one line which memory setting to raise.
_LOCAL_DEFAULTS = {"spark.executor.killOnFatalError.depth": "0"}


def under_spark_submit() -> bool:
    """Whether this Python process was started by ``spark-submit`` (which passes the port of
    the JVM it already launched)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect client session (``False`` for a classic session).

    On Spark Connect there is no ``sparkContext``, no RDD API, no broadcast variable and no
    ``_jvm``: code that needs them must check this first (or, better, use DataFrame operations
    only, which serve both kinds). An isinstance check on the session object, so it answers
    correctly when a classic session and a Connect session live in one process (as in the
    tests); it never imports the Connect client (whose gRPC packages may be missing): a Connect
    session cannot exist unless its module was imported.

    >>> is_connect(spark)  # doctest: +SKIP
    False
    """
    module = sys.modules.get("pyspark.sql.connect.session")
    connect_session = getattr(module, "SparkSession", None)
    return connect_session is not None and isinstance(spark, connect_session)


def default_parallelism(spark: Any) -> int:
    """The session's default parallelism: the task slots of the cluster unless
    ``spark.default.parallelism`` says otherwise (the partition count of ``spark.range``).

    A classic session asks its SparkContext; a Spark Connect session has none, so it counts
    the partitions of a small ``spark.range`` (one cheap job), which Spark sizes by
    ``spark.sql.leafNodeDefaultParallelism``, itself the default parallelism unless set.
    """
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    from pyspark.sql import functions as F

    # Every partition of a range of 2**16 rows holds rows while there are at most 2**16.
    partitions = spark.range(1 << 16).select(F.spark_partition_id().alias("partition"))
    last = partitions.agg(F.max("partition")).first()[0]
    return int(last) + 1


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith(("local[", "local-cluster["))


def _submitted_settings() -> dict[str, str]:
    """Settings spark-submit was given (``--master``, ``--conf``, ``spark-defaults.conf``): the
    JVM it launched holds them as system properties, which a loading SparkConf reads."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; starts nothing new
    return dict(SparkConf(loadDefaults=True).getAll())


# Spark Connect's answers when a setting cannot be changed from a client session: a static or
# core setting (spark.python.worker.reuse, spark.ui.*, spark.executor.*, spark.log.level, ...)
# or a static SQL setting (spark.sql.warehouse.dir, ...). The server's own settings decide those.
_NOT_SETTABLE = ("CANNOT_MODIFY_CONFIG", "CANNOT_MODIFY_STATIC_CONFIG")


def _connect_session(remote: str, settings: Mapping[str, str], given: set[str]) -> SparkSession:
    """A Spark Connect client session for ``remote``, with the runtime ``settings`` it accepts;
    the others are skipped (with a warning for those the caller gave, the keys in ``given``)."""
    from pyspark.errors import PySparkException

    if remote.startswith("sc://"):
        try:
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        except ImportError as exc:
            raise ImportError(
                f"Spark Connect ({remote}) needs the client's gRPC packages: "
                f"pip install 'sparklstm[connect]' ({exc})"
            ) from exc
        # pyspark's own builder (SparkSession.builder.remote) marks the process as a Connect
        # client with this variable, which makes pyspark.sql.functions build Connect columns;
        # it refuses to start while a classic SparkContext runs in the process, the Connect
        # class's builder does not.
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        session = ConnectSession.builder.remote(remote).getOrCreate()
    else:
        # "local", "local[4]": pyspark starts a Connect server inside this process.
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(remote).getOrCreate()
    for key, value in settings.items():
        try:
            session.conf.set(key, value)
        except PySparkException as exc:
            condition = exc.getCondition()
            if condition not in _NOT_SETTABLE:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else condition
                raise ValueError(f"conf {key}={value!r}: {first}") from None
            log = logger.warning if key in given else logger.debug
            log("Spark Connect: %s cannot be set from a client session; skipped", key)
    logger.info("Spark %s, Spark Connect at %s", session.version, remote)
    return session


def get_session(
    app_name: str = "sparklstm",
    master: str | None = None,
    conf: Mapping[str, Any] | None = None,
    log_level: str | None = "WARN",
    remote: str | None = None,
) -> SparkSession:
    """Get or create the SparkSession: a classic one, or a Spark Connect client session.

    Parameters
    ----------
    app_name : application name shown in the Spark UI and the cluster manager (classic only:
        a Connect server has its own).
    master : Spark master URL. ``None`` keeps the one spark-submit was given (spark-submit's own
        default is ``local[*]``), or uses ``local[*]`` when not under spark-submit.
    conf : extra Spark settings (``{"spark.executor.memory": "4g"}``); they win over the
        defaults above but not over settings of an already running session. The defaults
        never override a setting given to spark-submit. On Spark Connect only runtime SQL
        settings apply (``spark.sql.*`` that are not static), set on this client's session
        after it is created; the others are skipped with a warning (the server decides them).
    log_level : the SparkContext's log level (``None`` leaves it). A new context also gets it
        as ``spark.log.level`` (unless given to spark-submit or in ``conf``), so that
        spark-submit jobs do not print Spark's start-up INFO lines. Ignored on Spark Connect.
    remote : Spark Connect URL, e.g. ``"sc://localhost:15002"`` (or ``"local"`` for a server
        inside this process). ``None`` uses ``$SPARK_REMOTE`` when set, else a classic
        session. Exclusive with ``master``.

    Returns
    -------
    pyspark.sql.SparkSession
        a ``pyspark.sql.connect.session.SparkSession`` on Spark Connect (see
        :func:`is_connect`).

    Notes
    -----
    A Connect session makes the process a Connect client: as with pyspark's own
    ``SparkSession.builder.remote``, ``SPARK_CONNECT_MODE_ENABLED`` is set, and from then on
    ``pyspark.sql.functions`` build Connect columns, which a classic session in the same
    process cannot use.

    Examples
    --------
    >>> spark = get_session(master="local[2]")  # doctest: +SKIP
    >>> spark = get_session(remote="sc://localhost:15002")  # doctest: +SKIP
    >>> is_connect(spark)  # doctest: +SKIP
    True
    """
    if master is not None and not isinstance(master, str):
        raise TypeError(f"master must be a str such as 'local[2]', got {master!r}")
    if remote is not None and not isinstance(remote, str):
        raise TypeError(f"remote must be a str such as 'sc://localhost:15002', got {remote!r}")
    if remote is not None and master is not None:
        raise ValueError(
            f"master={master!r} and remote={remote!r}: give one (classic or Spark Connect)"
        )
    if remote is None and os.environ.get("SPARK_REMOTE"):
        remote = os.environ["SPARK_REMOTE"]
        if master is not None:
            raise ValueError(
                f"master={master!r} with SPARK_REMOTE={remote!r} set: unset SPARK_REMOTE for "
                "a classic session, or leave the master out for Spark Connect"
            )
    if remote is not None:
        given = {str(k) for k in conf or {}}
        # Of the defaults only the runtime SQL ones: Connect refuses the others (and its server
        # logs a stack trace for each refusal).
        defaults = {k: v for k, v in _DEFAULTS.items() if k.startswith("spark.sql.")}
        settings = {**defaults, **{str(k): str(v) for k, v in (conf or {}).items()}}
        return _connect_session(remote, settings, given)

    from pyspark.sql import SparkSession

    submitted = under_spark_submit()
    if master is None and not submitted:
        master = DEFAULT_MASTER
    if master is not None and _is_local(master) and not submitted:
        # Local Python workers are started with $PYSPARK_PYTHON (default: "python3" on PATH),
        # which need not be the interpreter that has sparklstm installed.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    already_set = _submitted_settings() if submitted else {}
    running = master if master is not None else already_set.get("spark.master", DEFAULT_MASTER)
    in_driver = running == "local" or running.startswith("local[")  # not local-cluster
    defaults = {**_DEFAULTS, **(_LOCAL_DEFAULTS if in_driver else {})}
    defaults = {k: v for k, v in defaults.items() if k not in already_set}
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
