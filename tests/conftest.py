"""Shared fixtures. Spark tests share one local session (started on first use) and write only
to ``tmp_path``; tests that need no Spark never start a JVM."""

from __future__ import annotations

import sys

import pytest

# Host settings that would make Spark (in this process, in spark-submit and in the jobs and
# notebooks the tests start) something other than the pip-installed pyspark in local mode:
# another Spark installation or its spark-defaults.conf, extra spark-submit arguments, a Spark
# Connect server or API mode, scratch directories that override spark.local.dir.
HOST_SPARK_VARIABLES = (
    "SPARK_HOME",
    "SPARK_CONF_DIR",
    "SPARK_LOCAL_DIRS",
    "SPARK_REMOTE",
    "SPARK_LOCAL_REMOTE",
    "SPARK_API_MODE",
    "SPARK_CONNECT_MODE_ENABLED",
    "PYSPARK_SUBMIT_ARGS",
)


@pytest.fixture(scope="session", autouse=True)
def _spark_environment():
    """Python workers and drivers run this interpreter (not a PYSPARK_PYTHON of the host), the
    driver binds to the loopback address (a host name that does not resolve, as in many
    containers, cannot stop it), and none of HOST_SPARK_VARIABLES applies. Subprocesses that
    copy ``os.environ`` get the same settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in HOST_SPARK_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        patch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
        patch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        yield


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One ``local[2]`` SparkSession for the whole run (Python workers use this interpreter)."""
    from pyspark.sql import SparkSession

    scratch = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[2,2]")
        .appName("sparklstm-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        # Spark's scratch (spilled blocks, shuffle files) and warehouse: under pytest's basetemp,
        # not in java.io.tmpdir or the working directory.
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
