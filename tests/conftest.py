"""Shared fixtures. Spark tests share one local session (started on first use) and write only
to ``tmp_path``; tests that need no Spark never start a JVM.

Three session fixtures: ``spark`` (a classic ``local[2,2]`` session in this process),
``connect_spark`` (a Spark Connect client of a ``local[2,2]`` Connect server that the test run
starts itself, on first use, as a subprocess) and ``any_spark`` (each of the two in turn: a test
that takes it runs twice, ``[classic]`` and ``[connect]``).
"""

from __future__ import annotations

import os
import sys

import pytest

from sparklstm.spark.connect_server import HOST_VARIABLES

# Host settings that would make Spark (in this process, in spark-submit and in the jobs and
# notebooks the tests start) something other than the pip-installed pyspark in local mode:
# another Spark installation or its spark-defaults.conf, extra spark-submit arguments, a Spark
# Connect server or API mode, scratch directories that override spark.local.dir.
HOST_SPARK_VARIABLES = HOST_VARIABLES


@pytest.fixture(scope="session", autouse=True)
def _spark_environment():
    """Python workers and drivers run this interpreter (not a PYSPARK_PYTHON of the host), the
    driver binds to the loopback address (a host name that does not resolve, as in many
    containers, cannot stop it), and none of HOST_SPARK_VARIABLES applies. Subprocesses that
    copy ``os.environ`` get the same settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in HOST_SPARK_VARIABLES:
            # The API mode is the per-test hooks' (below), which set it before this fixture
            # first runs; the host's value is dropped at configure time.
            if name != CONNECT_MODE_VARIABLE:
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
    with pytest.MonkeyPatch.context() as patch:
        # Set, this variable sends the builder to Spark Connect (see pytest_runtest_setup below).
        patch.delenv(CONNECT_MODE_VARIABLE, raising=False)
        session = (
            SparkSession.builder.master("local[2,2]")
            .appName("sparklstm-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.default.parallelism", "2")
            .config("spark.driver.memory", "2g")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.python.worker.reuse", "true")
            # Spark's scratch (spilled blocks, shuffle files) and warehouse: under pytest's
            # basetemp, not in java.io.tmpdir or the working directory.
            .config("spark.local.dir", str(scratch / "local"))
            .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- Spark Connect ------------------------------------------------------------------------------

# pyspark.sql.functions, SparkSession.getActiveSession, pyspark.ml, ... build Connect objects
# when this variable is set and classic ones when it is not: one process-wide switch, which
# pyspark's SparkSession.builder.remote() sets for good. pytest_runtest_setup flips it per test.
CONNECT_MODE_VARIABLE = "SPARK_CONNECT_MODE_ENABLED"
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_START_TIMEOUT = 120.0  # seconds; a cold start on a busy 2-core machine takes ~6-15 s


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory, request, _spark_environment):
    """A Spark Connect server for the whole run, started on first use
    (:class:`sparklstm.spark.connect_server.LocalConnectServer`: ``spark-submit --class
    SparkConnectServer`` of the venv's pyspark, whose ``jars/`` ship the server, as a
    subprocess), ``local[2,2]`` like the classic fixture (two cores, a failed task retried
    once), gRPC on a free loopback port. Its Python workers run this interpreter (so they import
    the editable sparklstm) with the repository root on PYTHONPATH (so functions defined in test
    modules unpickle there too, as on the classic session, whose workers start in the
    repository). Its scratch, warehouse, working directory and log (``server.log``) are under
    pytest's basetemp. A server that exits or does not listen within ``CONNECT_START_TIMEOUT``
    fails the test with its log's last lines; at the end it is terminated (then killed)."""
    from sparklstm.spark.connect_server import ConnectServerError, LocalConnectServer

    settings = {
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "2",
        "spark.driver.memory": "2g",
    }
    try:
        server = LocalConnectServer.start(
            "local[2,2]",
            settings,
            directory=tmp_path_factory.mktemp("spark-connect"),
            python_path=str(request.config.rootpath),
            timeout=CONNECT_START_TIMEOUT,
        )
    except ConnectServerError as error:
        pytest.fail(str(error), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def connect_spark(connect_server):
    """A Spark Connect client session of ``connect_server``, shared by the whole run.

    A classic session (``spark``) and this one live in the same process. pyspark's own
    ``SparkSession.builder.remote(url).getOrCreate()`` refuses that (``SESSION_ALREADY_EXIST``
    while a classic SparkContext runs) and would set ``SPARK_CONNECT_MODE_ENABLED`` for good,
    after which ``pyspark.sql.functions`` build Connect columns that classic DataFrames reject
    (and the other way round without it). So the session is made with the Connect class's own
    builder, ``pyspark.sql.connect.session.SparkSession.builder.remote(url).create()``, which
    does neither, and ``pytest_runtest_setup`` sets the variable only during the tests that use
    this fixture (directly or as ``any_spark[connect]``). A test that needs both sessions must
    flip the variable itself around the classic calls.
    """
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.builder.remote(connect_server.url).create()
    try:
        if session.range(1).count() != 1:  # the first query: the server answers
            pytest.fail(f"the Spark Connect server at {connect_server.url} answers wrongly")
    except Exception as exc:
        session.stop()
        pytest.fail(
            f"the Spark Connect server at {connect_server.url} does not answer: {exc}; end of "
            f"{connect_server.log}:\n{connect_server.tail()}",
            pytrace=False,
        )
    yield session
    session.stop()


@pytest.fixture(scope="session", params=["classic", "connect"])
def any_spark(request):
    """``spark`` and then ``connect_spark``: a test that takes this runs on both kinds of
    session (ids ``[classic]`` and ``[connect]``). Session-scoped, so module- or session-scoped
    fixtures may build on it, and pytest runs the tests of one kind together."""
    return request.getfixturevalue("spark" if request.param == "classic" else "connect_spark")


def _connect_mode(item) -> bool:
    """Whether ``item`` runs on Spark Connect: it uses ``connect_spark`` directly or as
    ``any_spark[connect]``."""
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("any_spark") if callspec is not None else None
    return kind == "connect" or (kind is None and "connect_spark" in item.fixturenames)


def pytest_configure(config):
    os.environ.pop(CONNECT_MODE_VARIABLE, None)  # the host's API mode never applies


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """``SPARK_CONNECT_MODE_ENABLED`` set for a test on Spark Connect, unset otherwise, from
    before its fixtures are set up (module-scoped ones included, which a function-scoped
    fixture would come too late for) until after they are torn down."""
    item.stash[_SAVED_MODE] = os.environ.get(CONNECT_MODE_VARIABLE)
    if _connect_mode(item):
        os.environ[CONNECT_MODE_VARIABLE] = "1"
    else:
        os.environ.pop(CONNECT_MODE_VARIABLE, None)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    saved = item.stash.get(_SAVED_MODE, None)
    if saved is None:
        os.environ.pop(CONNECT_MODE_VARIABLE, None)
    else:
        os.environ[CONNECT_MODE_VARIABLE] = saved


_SAVED_MODE = pytest.StashKey[str | None]()
