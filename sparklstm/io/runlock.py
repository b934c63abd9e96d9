"""One run per directory: an exclusive lock file that names its owner.

A training run holds ``<checkpoint_dir>/.lock`` while it trains, and the training job holds
``<output>.lock`` from its start until the model is written. A second run pointed at the same
directory is refused at once with one line naming the owner (host, pid, start time), instead
of both running and the last writer winning.

The lock is an ``flock`` on the file, so the operating system releases it when its process
dies, however it dies (``kill -9`` included): a lock file left behind by a dead run is stale
by construction and the next run takes it over. The JSON inside (host, pid, start time,
purpose) is there to tell a person who holds a live lock. ``flock`` needs a local file system
or one that forwards it (NFSv4 does); the paths locked here are local paths.

Release unlinks the file while still holding the lock; acquisition checks that the file it
locked is still the one at the path (same inode), and retries if a releasing owner unlinked
it in between, so two processes can never both believe they hold the lock.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["RunLock", "DirectoryInUseError", "lock_path_for"]

logger = logging.getLogger(__name__)


class DirectoryInUseError(ValueError):
    """Another live run holds the lock of a directory this run wants."""


def lock_path_for(path: str | os.PathLike[str], inside: bool) -> Path:
    """``path/.lock`` for a directory the run owns (``inside``), else ``<path>.lock`` beside a
    file or directory that is replaced as a whole when written (a model directory)."""
    path = Path(os.fspath(path))
    return path / ".lock" if inside else path.with_name(path.name + ".lock")


class RunLock:
    """An exclusive, non-blocking lock on ``lock_path`` held by this process.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`. ``what`` names the
    guarded thing for the error message (e.g. ``"checkpoint_dir runs/a/checkpoints"``).
    """

    def __init__(self, lock_path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(os.fspath(lock_path))
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise DirectoryInUseError(self._refusal()) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the owner we waited on unlinked it on release: lock the new one
        else:  # pragma: no cover - would need 100 releases racing this loop
            raise DirectoryInUseError(f"{self.what}: could not take {self.path}; try again")
        stale = _read_owner_fd(fd)
        if stale:
            logger.info("taking over the stale lock %s (its owner %s is gone)", self.path, stale)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_this_owner(self.what)) + "\n").encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        except OSError:  # pragma: no cover - the directory went away
            pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _refusal(self) -> str:
        owner = _read_owner_path(self.path)
        who = (
            f"pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}"
            if owner
            else "another process"
        )
        return (
            f"{self.what} is in use by another run ({who}; lock file {self.path}): wait for "
            "that run to finish or use another directory"
        )


def _this_owner(what: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "purpose": what,
    }


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _parse_owner(raw: bytes) -> dict[str, Any]:
    try:
        owner = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _read_owner_fd(fd: int) -> dict[str, Any]:
    return _parse_owner(os.pread(fd, 4096, 0))


def _read_owner_path(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return _parse_owner(handle.read(4096))
    except OSError:
        return {}
