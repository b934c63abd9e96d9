"""What the driver does with a round's merged results, as pure functions of NumPy arrays (no
Spark): the weighted average of the parameters (with block momentum), the optimizer state by
``state_policy``, the round's row of the history, and the check that every partition answered.

With ``n_p`` the loss terms partition ``p`` trained on and ``theta_p`` its parameters::

    mean = sum_p n_p theta_p / sum_p n_p          (merged in partition order: exact sums)
    plain averaging (outer_momentum 0, outer_lr 1):   theta_{r+1} = mean
    block momentum:  d = mean - theta_r;  v = mu v + d;  theta_{r+1} = theta_r + outer_lr v
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from sparklstm.metrics import training_metrics
from sparklstm.model.config import ModelConfig
from sparklstm.spark.rounds import RoundSpec, WorkerResult, flatten, round_chunks, unflatten
from sparklstm.training.options import TrainOptions

__all__ = ["DriverState", "apply_round", "round_row", "check_every_worker_answered"]


@dataclasses.dataclass(frozen=True)
class DriverState:
    """The driver's state after a round: what a checkpoint of that round holds. ``state`` is
    the averaged optimizer state (policy ``average``), ``states`` one per partition (``local``),
    ``velocity`` the block momentum."""

    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray] | None
    states: dict[int, dict[str, np.ndarray]]
    velocity: dict[str, np.ndarray]
    # Streams: each worker's recurrent states where its last round left them.
    carried: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)


def starting_driver_state(
    params: dict[str, np.ndarray],
    names: tuple[str, ...],
    template: dict[str, np.ndarray],
    cfg: TrainOptions,
    checkpoint: Any = None,
) -> DriverState:
    """The driver's state before a run's first round: ``params`` and a fresh optimizer state
    (``template``, policy ``average``), or everything a resumed run's ``checkpoint`` holds."""
    if checkpoint is None:
        return DriverState(
            params,
            template if cfg.state_policy == "average" else None,
            {},
            {n: np.zeros(p.shape, np.float64) for n, p in params.items()},
        )
    velocity = {n: np.zeros(params[n].shape, np.float64) for n in names}
    if checkpoint.velocity is not None:
        velocity = {n: checkpoint.velocity[n].astype(np.float64) for n in names}
    return DriverState(
        {n: checkpoint.params[n] for n in names},
        checkpoint.state,
        checkpoint.states,
        velocity,
        checkpoint.carried,
    )


def apply_round(
    before: DriverState,
    result: WorkerResult,
    names: tuple[str, ...],
    state_template: dict[str, np.ndarray],
    state_names: tuple[str, ...],
    cfg: TrainOptions,
) -> DriverState:
    """The driver's state after averaging ``result`` (unchanged when no partition trained)."""
    if not result.contributors:
        return before
    params, velocity = _average(before.params, before.velocity, result, names, cfg)
    state, states = _next_state(
        before.state, before.states, result, state_template, state_names, cfg
    )
    return DriverState(params, state, states, velocity)


def check_every_worker_answered(result: WorkerResult, spec: RoundSpec, round_index: int):
    """A round whose results do not come back from every partition that had batches to train
    on must not be averaged as if it were whole (it would silently train on part of the
    data): raise, naming the memory setting that a lost result most often points to."""
    expected = sum(
        1 for partition in range(len(spec.chunk_rows)) if round_chunks(spec, round_index, partition)
    )
    if result.contributors != expected:
        raise RuntimeError(
            f"round {round_index + 1}: results of {result.contributors} of {expected} "
            "partitions came back; the driver may have run out of memory collecting them "
            "(each is about the size of the model and its optimizer state): raise "
            "spark.driver.memory (--driver-memory), or use more partitions (results are then "
            "merged on the executors first)"
        )


def _average(
    params: dict[str, np.ndarray],
    velocity: dict[str, np.ndarray],
    result: WorkerResult,
    names: tuple[str, ...],
    cfg: TrainOptions,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    mean = result.params.mean()
    if cfg.outer_momentum == 0 and cfg.outer_lr == 1:
        return unflatten(mean, params, names), velocity
    before = flatten(params, names).astype(np.float64)
    step = np.asarray(mean, dtype=np.float64) - before
    v = cfg.outer_momentum * flatten(velocity, names) + step
    new = before + cfg.outer_lr * v
    return unflatten(new, params, names), unflatten(v, velocity, names)


def _next_state(
    state: dict[str, np.ndarray] | None,
    states: dict[int, dict[str, np.ndarray]],
    result: WorkerResult,
    template: dict[str, np.ndarray],
    state_names: tuple[str, ...],
    cfg: TrainOptions,
) -> tuple[dict[str, np.ndarray] | None, dict[int, dict[str, np.ndarray]]]:
    if cfg.state_policy == "reset":
        return None, states
    if cfg.state_policy == "local":
        return None, {**states, **result.states}
    arrays = {"optim/step": np.array(round(result.state_step_sum / result.weight), np.int64)}
    if state_names:
        arrays.update(unflatten(result.state.mean(), template, state_names))
    return arrays, states


def round_row(
    round_index: int,
    rounds_per_epoch: int,
    result: WorkerResult,
    previous: dict[str, np.ndarray],
    params: dict[str, np.ndarray],
    names: tuple[str, ...],
    config: ModelConfig,
) -> dict[str, Any]:
    weight = max(result.weight, 1.0)
    row: dict[str, Any] = {
        "round": round_index + 1,
        "epoch": round_index // rounds_per_epoch + 1,
        "workers": result.contributors,
        "examples": result.examples,
        "steps": result.steps,
        "worker_peak_rss_mib": result.peak_rss_bytes / 2**20,
    }
    metrics = training_metrics(
        config.task, config.output_size, result.loss_sum, weight, result.metric_sum
    )
    row.update({f"train_{name}": value for name, value in metrics.items()})
    # Spread of the workers around their average: sqrt(sum n_p |d_p|^2 / N - |mean d|^2) with
    # d_p = theta_p - theta_r (well conditioned: deltas are small next to the parameters).
    before = flatten(previous, names).astype(np.float64)
    moved = flatten(params, names).astype(np.float64) - before
    spread_sq = result.sq_delta_sum / weight - float(moved @ moved) if result.weight else 0.0
    drift = math.sqrt(max(spread_sq, 0.0))
    row["drift"] = drift
    row["drift_relative"] = drift / max(float(np.linalg.norm(before)), 1e-300)
    row["update_norm"] = float(np.linalg.norm(moved))
    row["max_grad_norm"] = result.max_grad_norm
    return row
