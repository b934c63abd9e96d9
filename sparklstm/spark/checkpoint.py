"""Checkpoints of distributed training: one bundle per saved round, written atomically.

``<dir>/round-000012/`` holds ``arrays.npz`` (parameters, optimizer state, outer momentum, best
parameters so far) and ``manifest.json`` (round, seed, model and training configs, metrics so
far). :func:`sparklstm.persistence.save_bundle` writes to a temporary name and renames, so a
crash mid-write leaves every earlier checkpoint valid; :func:`latest_checkpoint` skips any
unreadable one and falls back to the one before.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm import persistence

__all__ = ["Checkpoint", "save_checkpoint", "latest_checkpoint", "checkpoint_rounds"]

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
        "progress": checkpoint.progress,
    }
    path = directory / f"round-{checkpoint.round:06d}"
    persistence.save_bundle(
        path, document, arrays, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION
    )
    for old_round in checkpoint_rounds(directory)[:-keep]:
        shutil.rmtree(directory / f"round-{old_round:06d}", ignore_errors=True)
    return path


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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise persistence.ModelFileError(f"{path}: not a valid checkpoint: {exc}") from exc


def latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The newest readable checkpoint in ``directory``, or None if there is none."""
    for round_index in reversed(checkpoint_rounds(directory)):
        path = Path(directory) / f"round-{round_index:06d}"
        try:
            return load_checkpoint(path)
        except persistence.ModelFileError as exc:
            logger.warning("checkpoint %s is unreadable (%s); trying the one before", path, exc)
    return None
