"""Progress of a long Spark action while it runs, on a classic session and on Spark Connect.

The preparation job (validate, encode and cache every row) can take minutes on a large table
and shows nothing of its own: Spark's console progress bar is off in sparklstm's sessions, and
a Spark Connect client has none. :class:`JobProgress` reports the tasks done so far every few
seconds while the action inside its ``with`` block runs:

- classic session: a daemon thread polls the SparkContext's status tracker (the active stages'
  task counts; every active stage of the application counts, so another job running in the
  same session at the same time is counted too);
- Spark Connect: a progress handler registered on the client session receives the server's
  progress reports of the action's stages (sent every ``spark.connect.progress.reportInterval``,
  2 s by default).

Nothing is written for an action that ends within the first interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sparklstm.spark.session import is_connect

__all__ = ["JobProgress", "format_tasks"]


def format_tasks(what: str, completed: int, total: int, seconds: float) -> str:
    """``"validating and caching the training data: 3/8 tasks done, 12 s"``."""
    return f"{what}: {completed}/{total} tasks done, {seconds:.0f} s"


class JobProgress:
    """Report the task progress of the Spark actions run inside ``with JobProgress(...)``.

    Parameters
    ----------
    spark : the session the actions run on (classic or Spark Connect).
    what : what the actions do, the start of every line.
    write : where lines go (e.g. a progress stream's ``write``).
    every : seconds between two lines; the first comes after this long.
    """

    def __init__(
        self, spark: Any, what: str, write: Callable[[str], None], every: float = 10.0
    ) -> None:
        self.spark, self.what, self.write, self.every = spark, what, write, every
        self._connect = is_connect(spark)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._last_line = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> JobProgress:
        self._started = self._last_line = time.monotonic()
        if self._connect:
            self.spark.registerProgressHandler(self._on_connect_progress)
        else:
            tracker = self.spark.sparkContext.statusTracker()
            self._thread = threading.Thread(
                target=self._poll, args=(tracker,), name="sparklstm-job-progress", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._connect:
            self.spark.removeProgressHandler(self._on_connect_progress)
        elif self._thread is not None:
            self._thread.join()

    # ----------------------------------------------------------------------- reporting
    def _report(self, completed: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if self._stop.is_set() or total == 0 or now - self._last_line < self.every:
                return
            self._last_line = now
        self.write(format_tasks(self.what, completed, total, now - self._started))

    def _poll(self, tracker: Any) -> None:
        # Polled a few times per interval, so a line comes soon after it is due.
        while not self._stop.wait(min(self.every / 4, 1.0)):
            completed = total = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    completed += info.numCompletedTasks
                    total += info.numTasks
            self._report(completed, total)

    def _on_connect_progress(
        self,
        stages: Iterable[Any] | None = None,
        inflight_tasks: int = 0,
        operation_id: str | None = None,
        done: bool = False,
    ) -> None:
        if done or not stages:
            return
        stages = list(stages)
        self._report(
            sum(stage.num_completed_tasks for stage in stages),
            sum(stage.num_tasks for stage in stages),
        )
