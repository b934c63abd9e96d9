"""A Spark Connect server on this machine, for trying sparklstm's Connect path and for tests.

pyspark 4's ``jars/`` ship the server (``org.apache.spark.sql.connect.service.
SparkConnectServer``), so ``spark-submit --class`` of it starts one without a Spark download::

    with LocalConnectServer.start(master="local[2]") as server:
        spark = get_session(remote=server.url)

The server runs in the foreground of its own process group, on a loopback port the OS picks,
its log, scratch and warehouse in a directory of its own; :meth:`LocalConnectServer.stop`
terminates it (Spark's shutdown hooks stop its Python workers) and kills the group if it does
not exit in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalConnectServer", "ConnectServerError", "SERVER_CLASS", "HOST_VARIABLES"]

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# Variables of the host that would send the server (or its workers) elsewhere: another Spark
# installation or its settings, a remote, an API mode, extra submit arguments.
HOST_VARIABLES = (
    "SPARK_HOME",
    "SPARK_CONF_DIR",
    "SPARK_LOCAL_DIRS",
    "SPARK_REMOTE",
    "SPARK_LOCAL_REMOTE",
    "SPARK_API_MODE",
    "SPARK_CONNECT_MODE_ENABLED",
    "PYSPARK_SUBMIT_ARGS",
)


class ConnectServerError(RuntimeError):
    """The server exited or did not listen in time (the message ends with its log's tail)."""


def free_port() -> int:
    """A TCP port free on the loopback address now (chosen by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class LocalConnectServer:
    """A running local Spark Connect server: its URL, process, log and start-up seconds."""

    url: str
    port: int
    process: subprocess.Popen
    log: Path
    started_in: float

    @classmethod
    def start(
        cls,
        master: str = "local[2]",
        conf: Mapping[str, str] | None = None,
        directory: str | Path | None = None,
        python_path: str | None = None,
        timeout: float = 120.0,
    ) -> LocalConnectServer:
        """Start a server on ``master`` with ``conf`` (Spark settings) and wait until it
        listens. Its Python workers run this interpreter; ``python_path`` is prepended to
        their ``PYTHONPATH``. ``directory`` holds the log (``server.log``), scratch and
        warehouse (a new temporary directory by default)."""
        root = Path(directory) if directory is not None else Path(tempfile.mkdtemp("-connect"))
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        settings = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
            "spark.ui.enabled": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.python.worker.reuse": "true",
            "spark.local.dir": str(root / "local"),
            "spark.sql.warehouse.dir": str(root / "warehouse"),
            "spark.log.level": "WARN",
            **dict(conf or {}),
        }
        command = [
            str(Path(sys.executable).with_name("spark-submit")),
            "--class",
            SERVER_CLASS,
            "--master",
            master,
            "--name",
            "sparklstm-connect",
        ]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        env = {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES}
        env.update(
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
            SPARK_LOCAL_IP="127.0.0.1",
        )
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
        log = root / "server.log"
        started = time.monotonic()
        with open(log, "wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=env,
                start_new_session=True,
            )
        server = cls(f"sc://127.0.0.1:{port}", port, process, log, 0.0)
        while True:
            elapsed = time.monotonic() - started
            problem = None
            if process.poll() is not None:
                problem = f"exited with status {process.returncode} after {elapsed:.1f} s"
            elif elapsed > timeout:
                problem = f"did not listen on port {port} within {timeout:.0f} s"
            if problem is not None:
                server.stop()
                raise ConnectServerError(
                    f"the Spark Connect server {problem}; end of {log}:\n{server.tail()}"
                )
            if _accepts_connections(port):
                server.started_in = elapsed
                return server
            time.sleep(0.25)

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, then SIGKILL to the server's process group after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=grace)

    def __enter__(self) -> LocalConnectServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
