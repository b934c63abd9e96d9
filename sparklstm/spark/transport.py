"""How the driver's bytes (a round's parameters, a model to predict with) reach the tasks.

Small payloads travel inside the task function, which Spark serialises into the query plan:
no extra round trip, the same on a classic session and on Spark Connect. The plan has a size
limit (a Connect message is at most 128 MiB; a classic closure of that size is slow to ship
to every task), so a payload above :data:`INLINE_LIMIT` is written to a file under a name of
its own and added to the session with ``spark.addArtifacts(path, file=True)`` (Spark 4: the
same call on both kinds); each executor fetches it once and the tasks read it with
``SparkFiles.get``. A :class:`Parcel` says which of the two a task gets.

Files are never reused under one name (a round's parameters get ``<run>-round-<r>``), because
Spark refuses to replace a file it has distributed. Spark offers no way to withdraw one, so:
the driver's own copy is deleted once the job that needed it is over (:meth:`Shipment.close`,
or, for a lazily evaluated ``transform``, at interpreter exit); a training task deletes its
executor's copies of the run's earlier rounds; what the Spark session keeps in its own
directories (the Connect server's artifact store; the driver's userFiles) goes when the
session ends.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["INLINE_LIMIT", "Parcel", "Shipment", "ship", "receive", "forget_earlier_rounds"]

logger = logging.getLogger(__name__)

# Payloads up to this size travel in the task function; larger ones as session files.
INLINE_LIMIT = 64 * 2**20


@dataclass(frozen=True)
class Parcel:
    """What a task is given: the bytes themselves, or the name of a session file."""

    data: bytes | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.file is None):
            raise ValueError("a Parcel holds either data or a file name")


@dataclass
class Shipment:
    """A payload on its way: the :class:`Parcel` for the tasks and the driver's copy to delete
    when the job is over (nothing for an inline payload)."""

    parcel: Parcel
    local_dir: str | None = None

    def close(self) -> None:
        if self.local_dir is not None:
            shutil.rmtree(self.local_dir, ignore_errors=True)
            self.local_dir = None

    def __enter__(self) -> Shipment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def ship(spark: Any, data: bytes, name: str, *, keep_until_exit: bool = False) -> Shipment:
    """Get ``data`` to the tasks of the next jobs: inline up to :data:`INLINE_LIMIT`, else as
    the session file ``name`` (letters, digits, ``.``, ``_``, ``-``; new for every payload).
    ``keep_until_exit`` keeps the driver's copy until the interpreter exits (for lazily
    evaluated DataFrames whose jobs run later)."""
    if len(data) <= INLINE_LIMIT:
        return Shipment(Parcel(data=data))
    if not _NAME.match(name):
        raise ValueError(f"session file name {name!r}: use letters, digits, '.', '_' and '-'")
    directory = tempfile.mkdtemp(prefix="sparklstm-ship-")
    path = os.path.join(directory, name)
    with open(path, "wb") as out:
        out.write(data)
    try:
        spark.addArtifacts(path, file=True)
    except Exception:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    logger.info("payload of %.1f MiB sent as session file %s", len(data) / 2**20, name)
    shipment = Shipment(Parcel(file=name), directory)
    if keep_until_exit:
        atexit.register(shutil.rmtree, directory, True)
        shipment.local_dir = None  # not ours to delete before exit
    return shipment


def receive(parcel: Parcel) -> bytes:
    """The payload's bytes, in a task."""
    if parcel.data is not None:
        return parcel.data
    from pyspark import SparkFiles

    return Path(SparkFiles.get(parcel.file)).read_bytes()


def forget_earlier_rounds(parcel: Parcel, prefix: str, round_index: int) -> None:
    """In a task: delete this executor's copies of the session files ``<prefix><r>.npz`` of
    rounds before ``round_index - 1`` (the previous round's file may still be in use by a
    slower task of this executor; no later round can need the older ones)."""
    if parcel.file is None:
        return
    from pyspark import SparkFiles

    root = Path(SparkFiles.getRootDirectory())
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.npz$")
    for path in root.glob(prefix + "*.npz"):
        match = pattern.match(path.name)
        if match and int(match.group(1)) < round_index - 1:
            path.unlink(missing_ok=True)
