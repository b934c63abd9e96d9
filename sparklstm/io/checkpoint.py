"""Checkpoints of distributed training: one bundle per saved round, written atomically.

``<dir>/round-000012/`` holds ``arrays.npz`` (parameters, optimizer state, outer momentum, best
parameters so far) and ``manifest.json`` (round, seed, model and training configs, metrics so
far, and the run's id). :func:`sparklstm.io.model_files.save_bundle` writes to a temporary name and
renames, so a crash mid-write leaves every earlier checkpoint valid; :func:`latest_checkpoint`
skips any unreadable one and falls back to the one before.

Clean-up after a save keeps the newest ``keep`` checkpoints *of this run* counting only those
that read back (manifest of the right kind and run id, arrays archive listing every array), at
or below the round just written, which itself is never deleted. Unreadable bundles are never
deleted (they are evidence) and never counted; a resumed run first moves the unreadable
checkpoints numbered above the one it resumes from aside (``round-NNNNNN.unreadable-K``), so
they can neither collide with the rounds it is about to write nor shadow them later.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm.io import model_files as persistence

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "latest_checkpoint",
    "checkpoint_rounds",
    "set_aside_unreadable_after",
]

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^round-(\d{6,})$")


@dataclass
class Checkpoint:
    """The driver's whole training state after ``round`` completed rounds."""

    round: int
    seed: int
    model_config: dict[str, Any]
    training_config: dict[str, Any]
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray] | None = None  # policy "average": OptimizerState arrays
    states: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # policy "local"
    velocity: dict[str, np.ndarray] | None = None  # outer momentum
    best_params: dict[str, np.ndarray] | None = None
    progress: dict[str, Any] = field(default_factory=dict)  # history, best round, counters
    run_id: str | None = None  # the run that wrote it (kept by a resumed run); None: older file
    # Streams: each worker's recurrent states where its last round left them.
    carried: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def _prefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": np.asarray(value) for name, value in arrays.items()}


def _unprefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


def save_checkpoint(directory: str | Path, checkpoint: Checkpoint, keep: int = 2) -> Path:
    """Write ``checkpoint`` as ``directory/round-NNNNNN`` and delete all but the newest
    ``keep`` checkpoints (only after the new one is complete)."""
    directory = Path(directory)
    arrays = _prefixed("params", checkpoint.params)
    if checkpoint.state is not None:
        arrays.update(_prefixed("state", checkpoint.state))
    for partition, state in checkpoint.states.items():
        arrays.update(_prefixed(f"states/{int(partition)}", state))
    for partition, carried in checkpoint.carried.items():
        arrays.update(_prefixed(f"carried/{int(partition)}", carried))
    if checkpoint.velocity is not None:
        arrays.update(_prefixed("velocity", checkpoint.velocity))
    if checkpoint.best_params is not None:
        arrays.update(_prefixed("best", checkpoint.best_params))
    document = {
        "round": checkpoint.round,
        "seed": checkpoint.seed,
        "model": checkpoint.model_config,
        "training": checkpoint.training_config,
        "local_state_partitions": sorted(int(p) for p in checkpoint.states),
        "carried_partitions": sorted(int(p) for p in checkpoint.carried),
        "progress": checkpoint.progress,
        "run_id": checkpoint.run_id,
    }
    path = _round_path(directory, checkpoint.round)
    persistence.save_bundle(
        path, document, arrays, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION
    )
    _remove_older(directory, checkpoint.round, checkpoint.run_id, keep)
    return path


def _round_path(directory: Path, round_index: int) -> Path:
    return directory / f"round-{round_index:06d}"


def _remove_older(directory: Path, newest: int, run_id: str | None, keep: int) -> None:
    """Delete this run's readable checkpoints older than its newest ``keep`` (the one of round
    ``newest`` included, and never deleted)."""
    kept = 1
    for round_index in reversed(checkpoint_rounds(directory)):
        if round_index >= newest:
            continue  # the one just written, or a leftover above it: not this run's line
        path = _round_path(directory, round_index)
        if not _reads_back(path, run_id):
            logger.warning("leaving %s alone: it is unreadable or another run's", path)
            continue
        if kept < keep:
            kept += 1
        else:
            shutil.rmtree(path, ignore_errors=True)


def _reads_back(path: Path, run_id: str | None) -> bool:
    """Whether ``path`` is a checkpoint of ``run_id`` whose files read back: the manifest parses
    as a checkpoint of this run, and the arrays archive lists every array it names (the full
    digest check is left to :func:`load_checkpoint`, which a resume runs)."""
    try:
        manifest = persistence.read_manifest(path)
        if manifest.get("kind") != CHECKPOINT_KIND:
            return False
        if manifest.get("config", {}).get("run_id") != run_id:
            return False
        with zipfile.ZipFile(path / persistence.ARRAYS_NAME) as archive:
            members = set(archive.namelist())
        return all(f"{name}.npy" in members for name in manifest.get("arrays", {}))
    except (persistence.ModelFileError, OSError, zipfile.BadZipFile, AttributeError):
        return False


def set_aside_unreadable_after(directory: str | Path, round_index: int) -> list[Path]:
    """Rename the checkpoints numbered above ``round_index`` (the one a run resumes from; all
    of them unreadable, or the resume would have chosen one) to ``round-NNNNNN.unreadable-K``.
    Returns the new paths."""
    directory = Path(directory)
    moved = []
    for later in checkpoint_rounds(directory):
        if later <= round_index:
            continue
        source = _round_path(directory, later)
        suffix = 0
        while (target := source.with_name(f"{source.name}.unreadable-{suffix}")).exists():
            suffix += 1
        source.rename(target)
        logger.warning("moved the unreadable checkpoint %s aside to %s", source, target)
        moved.append(target)
    return moved


def checkpoint_rounds(directory: str | Path) -> list[int]:
    """Rounds that have a checkpoint directory (complete or not), ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    rounds = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir():
            rounds.append(int(match.group(1)))
    return sorted(rounds)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read one checkpoint bundle (never unpickles; every array checked)."""
    document, arrays = persistence.load_bundle(
        path, kind=CHECKPOINT_KIND, supported_versions=(CHECKPOINT_VERSION,)
    )
    try:
        states = {
            int(p): _unprefixed(f"states/{int(p)}", arrays)
            for p in document["local_state_partitions"]
        }
        return Checkpoint(
            round=int(document["round"]),
            seed=int(document["seed"]),
            model_config=dict(document["model"]),
            training_config=dict(document["training"]),
            params=_unprefixed("params", arrays),
            state=_unprefixed("state", arrays) or None,
            states=states,
            velocity=_unprefixed("velocity", arrays) or None,
            best_params=_unprefixed("best", arrays) or None,
            progress=dict(document.get("progress") or {}),
            run_id=document.get("run_id"),
            carried={
                int(p): _unprefixed(f"carried/{int(p)}", arrays)
                for p in document.get("carried_partitions", [])
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise persistence.ModelFileError(f"{path}: not a valid checkpoint: {exc}") from exc


def latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The newest readable checkpoint in ``directory``, or None if there is none."""
    for round_index in reversed(checkpoint_rounds(directory)):
        path = _round_path(Path(directory), round_index)
        try:
            return load_checkpoint(path)
        except persistence.ModelFileError as exc:
            logger.warning("checkpoint %s is unreadable (%s); trying the one before", path, exc)
    return None
