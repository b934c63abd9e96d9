"""Distributed training by parameter averaging, round after round.

::

    driver: theta_r, optimizer state ──bytes in the task──▶ every partition p: local_steps
                                       (mapInArrow)          minibatch updates ──▶ theta_p, state_p
    driver: theta_{r+1} = sum_p n_p theta_p / sum_p n_p  ◀──collect, merged in partition order──
                                                           one Arrow row per partition (bytes)

Only DataFrame operations (``mapInArrow``, ``persist``, ``collect``): the same code runs on a
classic session and on Spark Connect. Merging in partition order makes the float sums, and so
the result, independent of which task finishes first.

``n_p`` is the number of loss terms worker ``p`` trained on this round. With block momentum
(``outer_momentum`` > 0) the averaged move ``d = mean_p(theta_p) - theta_r`` drives
``v = mu v + d; theta_{r+1} = theta_r + outer_lr v``.

Two equalities hold exactly and are tested: with one partition and one round per epoch this is
the one-process trainer (:func:`sparklstm.training.fit.fit`), bit for bit; with plain SGD and
``local_steps=1`` one round equals one SGD step on the union of the workers' batches
(synchronous gradient averaging), because ``sum_p n_p (theta - lr g_p) / N = theta - lr g``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm.io.checkpoint import Checkpoint
from sparklstm.io.runlock import RunLock, lock_path_for
from sparklstm.model.factory import (
    AnyConfig,
    AnyModel,
    is_seq2seq,
    metrics_from_totals,
    model_from_config,
)
from sparklstm.optim import Schedule
from sparklstm.spark.averaging import (
    DriverState,
    apply_round,
    check_every_worker_answered,
    round_row,
    starting_driver_state,
)
from sparklstm.spark.job_progress import JobProgress
from sparklstm.spark.metrics import MetricsFile, ProgressLines, format_plan
from sparklstm.spark.model_metrics import (
    added_totals,
    evaluate_cached,
    evaluate_distributed,
    evaluation_task,
)
from sparklstm.spark.partitions import CachedChunks
from sparklstm.spark.preparation import (
    check_partition_sizes,
    describe_cache,
    model_config_for,
    model_option,
    prepare,
    worker_count,
)
from sparklstm.spark.reduction import collect_round_results
from sparklstm.spark.rounds import (
    RESULT_SCHEMA,
    RoundSpec,
    WorkerResult,
    merge_results,
    round_filter,
    train_task,
)
from sparklstm.spark.run_record import (
    RoundBook,
    RunIdentity,
    check_resumable,
    starting_checkpoint,
)
from sparklstm.spark.schema import (
    Columns,
    default_task,
    model_sizes,
    pair_sizes,
    profile_data,
)
from sparklstm.spark.transport import ship
from sparklstm.spark.vectors import vectors_as_arrays
from sparklstm.spark.wire import decode_result, encode_payload
from sparklstm.training.history import History
from sparklstm.training.options import TrainOptions
from sparklstm.training.step import batches_per_chunk, resolve_seed

__all__ = ["fit_distributed", "evaluate_distributed"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ the driver
def fit_distributed(
    data: Any,
    model: AnyModel | AnyConfig | Mapping[str, Any] | None = None,
    config: TrainOptions | Mapping[str, Any] | None = None,
    *,
    features_col: str = "features",
    label_col: str = "label",
    length_col: str | None = None,
    validation: Any = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    metrics_path: str | Path | None = None,
    progress: bool = True,
    task_hook: Callable[[int, int], None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    target_length_col: str | None = None,
) -> tuple[AnyModel, History]:
    """Train on a Spark DataFrame by rounds of parameter averaging.

    Parameters
    ----------
    data : pyspark.sql.DataFrame
        A sequence column (``array<array<float>>``, ``array<float>`` or ``array<int>``), a label
        column and optionally an integer length column.
    model : SequenceModel, ModelConfig or dict, optional
        The starting model, or its configuration; a dict may leave out ``input_size`` /
        ``vocab_size`` and ``output_size``, which the data then determines. A configuration
        without a ``seed`` is initialised from the training seed (``config.seed``), so one seed
        fixes the starting weights too.
    config : TrainOptions or dict
        Training options (see :class:`~sparklstm.spark.config.TrainOptions`).
    features_col, label_col, length_col : column names.
    validation : DataFrame, optional
        Held-out data, evaluated on the executors every ``validate_every`` rounds.
    checkpoint_dir : directory for checkpoints (every ``checkpoint_every`` rounds). The run
        holds ``checkpoint_dir/.lock`` while it trains: a second run on the same directory is
        refused with :class:`~sparklstm.io.runlock.DirectoryInUseError` (a ``ValueError``).
    resume : continue from the newest readable checkpoint in ``checkpoint_dir``; the result is
        the model an uninterrupted run would have produced. A directory with no readable
        checkpoint is an error (starting afresh is a separate, explicit choice).
    metrics_path : JSON-lines file with one object per round.
    progress : print one line per round to stderr.
    task_hook : called as ``task_hook(round, partition)`` at the start of every training task
        (instrumentation and fault-injection tests).
    on_round : called on the driver with each round's row (the same dict the metrics file
        gets, validation metrics included) once the round is recorded; e.g. an experiment
        tracker's logger (:mod:`sparklstm.tracking`).

    Returns
    -------
    (SequenceModel, History)

    Examples
    --------
    >>> model, history = fit_distributed(df, {"hidden_sizes": [64]},
    ...                                  {"epochs": 5, "local_steps": 10})  # doctest: +SKIP
    """
    cfg = TrainOptions.coerce(config)
    columns = Columns(features_col, label_col, length_col, target_length_col)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    # One run per checkpoint directory: a second run started on it is refused at once.
    lock = (
        RunLock(lock_path_for(checkpoint_dir, inside=True), f"checkpoint_dir {checkpoint_dir}")
        if checkpoint_dir is not None
        else contextlib.nullcontext()
    )
    with lock:
        return _fit(
            data,
            model,
            cfg,
            columns,
            validation,
            None if checkpoint_dir is None else Path(checkpoint_dir),
            resume,
            metrics_path,
            progress,
            task_hook,
            on_round,
        )


def _fit(
    data: Any,
    model: AnyModel | AnyConfig | Mapping[str, Any] | None,
    cfg: TrainOptions,
    columns: Columns,
    validation: Any,
    checkpoint_dir: Path | None,
    resume: bool,
    metrics_path: str | Path | None,
    progress: bool,
    task_hook: Callable[[int, int], None] | None,
    on_round: Callable[[dict[str, Any]], None] | None,
) -> tuple[AnyModel, History]:
    started_run = time.perf_counter()
    lines = ProgressLines(progress)
    checkpoint = starting_checkpoint(checkpoint_dir, resume)
    data = vectors_as_arrays(data, columns.features)
    if validation is not None:
        validation = vectors_as_arrays(validation, columns.features)
    with JobProgress(data.sparkSession, "reading the training data", lines.write):
        profile = profile_data(data, columns)
    if is_seq2seq(model):
        sizes = pair_sizes(profile, default_task(data.schema, columns.label))
    else:
        task, head = model_option(model, "task"), model_option(model, "head")
        sizes = model_sizes(profile, task, head, model)
    model_config, start_model = model_config_for(model, sizes)
    if checkpoint is not None:
        check_resumable(checkpoint, model_config, cfg)
    seed = resolve_seed(cfg.seed if cfg.seed is not None else model_config.seed)
    run_id = secrets.token_hex(8)
    if checkpoint is not None:
        seed, run_id = checkpoint.seed, checkpoint.run_id

    chunk_bytes = None if checkpoint is None else checkpoint.progress.get("max_chunk_bytes")
    if checkpoint is not None and cfg.num_partitions is None:
        # The partitions the run started with (a checkpoint from before the default followed
        # the session's parallelism kept the DataFrame's own: it has no "num_partitions").
        workers = checkpoint.progress.get("num_partitions")
    else:
        workers = worker_count(cfg.num_partitions, data.sparkSession, profile.rows, cfg.batch_size)
    started = time.perf_counter()
    with JobProgress(data.sparkSession, "checking and caching the training data", lines.write):
        cached, skipped = prepare(
            data,
            columns,
            profile,
            model_config,
            cfg,
            cfg.invalid_rows,
            workers,
            chunk_bytes,
        )
    lines.write(describe_cache("training data", cached, time.perf_counter() - started))
    if cached.num_partitions < 2:
        logger.warning(
            "training on %d partition: one worker; set num_partitions to use more",
            cached.num_partitions,
        )
    val_cached = None
    try:
        skipped_small = check_partition_sizes(cached, cfg)
        if validation is not None:
            started = time.perf_counter()
            with JobProgress(validation.sparkSession, "the validation data", lines.write):
                val_profile = profile_data(validation, columns)
                val_cached, _ = prepare(
                    validation,
                    columns,
                    val_profile,
                    model_config,
                    cfg,
                    "error",
                    None,
                    cached.max_chunk_bytes,
                )
            lines.write(
                describe_cache("validation data", val_cached, time.perf_counter() - started)
            )
        return _train(
            _Run(
                cached,
                val_cached,
                model_config,
                start_model,
                cfg,
                RunIdentity(seed, run_id),
                checkpoint,
                checkpoint_dir,
                metrics_path,
                lines,
                task_hook,
                {**skipped, **({"small partitions": skipped_small} if skipped_small else {})},
                started_run,
                workers,
                on_round,
            )
        )
    finally:
        cached.unpersist()
        if val_cached is not None:
            val_cached.unpersist()


@dataclasses.dataclass(frozen=True)
class _Run:
    """Everything a run's round loop works with, decided before the first round."""

    cached: CachedChunks
    val_cached: CachedChunks | None
    model_config: AnyConfig
    start_model: AnyModel | None
    cfg: TrainOptions
    identity: RunIdentity
    checkpoint: Checkpoint | None
    checkpoint_dir: Path | None
    metrics_path: str | Path | None
    lines: ProgressLines
    task_hook: Callable[[int, int], None] | None
    skipped: dict[str, int]
    started: float
    dealt_partitions: int | None  # the round-robin deal (None: the DataFrame's own partitions)
    on_round: Callable[[dict[str, Any]], None] | None


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How the rounds go: the worker's task description, the schedule, the round counts and
    the optimizer state's layout."""

    spec: RoundSpec
    schedule: Schedule
    names: tuple[str, ...]
    state_template: dict[str, np.ndarray]
    state_names: tuple[str, ...]
    local_steps: int
    rounds_per_epoch: int
    total_rounds: int
    active_partitions: int


def _plan(run: _Run, params: dict[str, np.ndarray]) -> _Plan:
    cfg, cached = run.cfg, run.cached
    active = sum(1 for rows in cached.chunk_rows if rows)
    if active == 0:
        raise ValueError("no partition has data to train on")
    max_batches = max(
        sum(batches_per_chunk(rows, cfg.batch_size) for rows in chunk_rows)
        for chunk_rows in cached.chunk_rows
    )
    local_steps = cfg.local_steps or max_batches
    rounds_per_epoch = math.ceil(max_batches / local_steps)
    optimizer = cfg.make_optimizer()
    schedule = cfg.make_schedule(active, local_steps)
    state_template = optimizer.init_state(params).to_arrays()
    names = tuple(sorted(params))
    state_names = tuple(sorted(k for k in state_template if k != "optim/step"))
    spec = RoundSpec(
        model_config=run.model_config.to_dict(),
        optimizer_config=optimizer.to_config(),
        schedule_config=schedule.to_config(),
        param_names=names,
        state_names=state_names,
        chunk_rows=tuple(tuple(rows) for rows in cached.chunk_rows),
        batch_size=cfg.batch_size,
        seed=run.identity.seed,
        local_steps=local_steps,
        rounds_per_epoch=rounds_per_epoch,
        shuffle=cfg.shuffle,
        bucket=cfg.bucket,
        clip_norm=cfg.clip_norm,
        clip_value=cfg.clip_value,
        state_policy=cfg.state_policy,
        task_hook=run.task_hook,
        step_threads=cfg.step_threads,
    )
    return _Plan(
        spec,
        schedule,
        names,
        state_template,
        state_names,
        local_steps,
        rounds_per_epoch,
        cfg.rounds or cfg.epochs * rounds_per_epoch,
        active,
    )


def _train(run: _Run) -> tuple[AnyModel, History]:
    """The round loop: ship the parameters, run the round's job (which also validates the
    previous round's parameters when due), average, record; then the last validation and the
    final model."""
    cfg, model_config = run.cfg, run.model_config
    model = run.start_model
    if model is None:
        model = _initial_model(model_config, run.identity.seed)
    params = {name: value.copy() for name, value in model.params.items()}
    plan = _plan(run, params)
    driver = starting_driver_state(params, plan.names, plan.state_template, run.cfg, run.checkpoint)
    history = History()
    first_round = 0
    if run.checkpoint is not None:
        history.rows = list(run.checkpoint.progress.get("rows", []))
        first_round = run.checkpoint.round
        logger.info("resuming after round %d of %d", first_round, plan.total_rounds)
    book = RoundBook(
        history,
        cfg,
        run.identity,
        model_config,
        run.checkpoint,
        run.checkpoint_dir,
        MetricsFile(run.metrics_path, history.rows) if run.metrics_path else None,
        run.lines,
        plan.total_rounds,
        run.on_round,
        {"max_chunk_bytes": run.cached.max_chunk_bytes, "num_partitions": run.dealt_partitions},
    )
    history.summary = {
        "rows": run.cached.rows,
        "partitions": run.cached.num_partitions,
        "training_partitions": plan.active_partitions,
        "local_steps": plan.local_steps,
        "rounds_per_epoch": plan.rounds_per_epoch,
        "total_rounds": plan.total_rounds,
        "seed": run.identity.seed,
        "skipped_rows": run.skipped,
    }
    logger.info("training: %s", history.summary)
    run.lines.write(format_plan(history.summary))
    file_prefix = f"sparklstm-{secrets.token_hex(6)}-round-"  # for payloads sent as files
    # A round whose parameters are to be validated waits for the next round's job: that job
    # receives exactly those parameters, so its tasks validate them beside the training tasks
    # (one Spark job instead of two). Only the last round's validation is a job of its own.
    waiting: dict[str, Any] | None = None  # the round's row, awaiting its validation
    for round_index in range(first_round, plan.total_rounds):
        started = time.perf_counter()
        result, validated, timing = _round_job(run, plan, driver, round_index, file_prefix, waiting)
        if waiting is not None:
            stop = book.close(waiting, validated, driver)
            waiting = None
            if stop:  # this job's training is not used: the run ends where it stopped
                break
        check_every_worker_answered(result, plan.spec, round_index)
        previous, driver = (
            driver,
            apply_round(driver, result, plan.names, plan.state_template, plan.state_names, cfg),
        )
        row = round_row(
            round_index,
            plan.rounds_per_epoch,
            result,
            previous.params,
            driver.params,
            plan.names,
            model_config,
        )
        wall = time.perf_counter() - started
        row.update(
            lr=plan.schedule.lr_at(round_index * plan.local_steps),
            seconds=wall,
            broadcast_seconds=timing["broadcast"],
            compute_seconds=result.compute_max,
            aggregate_seconds=max(0.0, wall - timing["broadcast"] - result.compute_max),
            sequences_per_second=result.examples / wall if wall > 0 else 0.0,
            chunks_read=result.chunks_read,
            results_collected=timing["results"],
        )
        done = round_index + 1
        if run.val_cached is not None and (
            done % cfg.validate_every == 0 or done == plan.total_rounds
        ):
            waiting = row
        elif book.close(row, None, driver):
            break
    if waiting is not None:  # the last round's validation: a job of its own
        assert run.val_cached is not None
        metrics_ = evaluate_cached(run.val_cached, model_config, driver.params, cfg.batch_size)
        book.close(waiting, metrics_, driver)
    params = driver.params
    if cfg.restore_best and book.stopping.best_params is not None:
        params = book.stopping.best_params
    final = model_from_config(model_config)
    final.load_state_dict(params)
    history.summary["seconds"] = time.perf_counter() - run.started
    history.summary["rounds_done"] = len(history.rows)
    return final, history


def _round_job(
    run: _Run,
    plan: _Plan,
    driver: DriverState,
    round_index: int,
    file_prefix: str,
    waiting: dict[str, Any] | None,
) -> tuple[WorkerResult, dict[str, float] | None, dict[str, float]]:
    """One Spark job: every partition trains its local steps from ``driver``'s state (sent
    as bytes in the task function, or as a session file when large); with a round ``waiting``
    for validation, the validation data are evaluated on the same parameters alongside.
    Returns the merged result, the validation metrics (or None) and the timings."""
    started = time.perf_counter()
    payload = encode_payload(driver.params, driver.state, driver.states)
    payload_bytes = len(payload)  # about the size of one partition's result
    shipment = ship(run.cached.df.sparkSession, payload, f"{file_prefix}{round_index}.npz")
    broadcast_seconds = time.perf_counter() - started
    task = functools.partial(
        train_task,
        spec=plan.spec,
        round_index=round_index,
        payload=shipment.parcel,
        file_prefix=file_prefix,
    )
    chunks = run.cached.chunks(round_filter(plan.spec, round_index))
    alongside = None
    if waiting is not None:
        assert run.val_cached is not None
        alongside = run.val_cached.chunks().mapInArrow(
            evaluation_task(run.model_config, shipment.parcel, run.cfg.batch_size), RESULT_SCHEMA
        )
    with shipment:
        rows, validation_rows = collect_round_results(
            chunks.mapInArrow(task, RESULT_SCHEMA),
            run.cached.num_partitions,
            payload_bytes,
            alongside=alongside,
        )
    validated = None
    if waiting is not None:
        validated = metrics_from_totals(run.model_config, added_totals(validation_rows))
    result = functools.reduce(
        merge_results, (decode_result(data) for _, data in rows), WorkerResult()
    )
    return result, validated, {"broadcast": broadcast_seconds, "results": len(rows)}


def _initial_model(model_config: AnyConfig, seed: int) -> AnyModel:
    """The starting model: initialised from the model config's own seed when it has one, else
    from the run's seed, so that one seed fixes the weights as well as the data order and
    dropout (the one-process trainer's ``SequenceModel(seed=s).fit(seed=s)`` is the same)."""
    if model_config.seed is None:
        return model_from_config(dataclasses.replace(model_config, seed=seed))
    return model_from_config(model_config)
