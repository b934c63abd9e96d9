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
the one-process trainer (:func:`sparklstm.train.fit`), bit for bit; with plain SGD and
``local_steps=1`` one round equals one SGD step on the union of the workers' batches
(synchronous gradient averaging), because ``sum_p n_p (theta - lr g_p) / N = theta - lr g``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sparklstm.config import ModelConfig
from sparklstm.metrics import metrics_from_totals, training_metrics
from sparklstm.model import SequenceModel
from sparklstm.runlock import RunLock, lock_path_for
from sparklstm.spark.checkpoint import (
    Checkpoint,
    checkpoint_rounds,
    latest_checkpoint,
    save_checkpoint,
    set_aside_unreadable_after,
)
from sparklstm.spark.metrics import MetricsFile, RoundPrinter
from sparklstm.spark.partitions import CachedChunks, ChunkEncoding, cache_chunks
from sparklstm.spark.reduction import collect_round_results
from sparklstm.spark.rounds import (
    RESULT_SCHEMA,
    RoundSpec,
    WorkerResult,
    add_totals,
    collect_results,
    evaluate_task,
    flatten,
    merge_results,
    round_chunks,
    round_filter,
    train_task,
    unflatten,
)
from sparklstm.spark.schema import (
    RULE_COLUMN,
    Columns,
    DataProfile,
    model_sizes,
    profile_data,
    row_rules,
)
from sparklstm.spark.transport import ship
from sparklstm.spark.wire import decode_result, encode_payload
from sparklstm.train import batches_per_chunk, resolve_seed
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import RESUMABLE_CHANGES, TrainOptions

__all__ = ["fit_distributed", "evaluate_distributed"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ preparation
@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What makes a run itself: its seed (weights, data order, dropout) and the id written into
    its checkpoints (a resumed run keeps both)."""

    seed: int
    run_id: str | None


def _model_config(
    model: SequenceModel | ModelConfig | Mapping[str, Any] | None, sizes: dict[str, int]
) -> tuple[ModelConfig, SequenceModel | None]:
    if isinstance(model, SequenceModel):
        return model.config, model
    if isinstance(model, ModelConfig):
        return model, None
    options = dict(model or {})
    if "input_size" in options or "vocab_size" in options:
        sizes = {k: v for k, v in sizes.items() if k not in ("input_size", "vocab_size")}
    for key, value in sizes.items():
        options.setdefault(key, value)
    return ModelConfig.from_dict(options), None


def _encoding(config: ModelConfig, columns: Columns, cfg: TrainOptions) -> ChunkEncoding:
    return ChunkEncoding(
        columns=columns,
        dtype=config.dtype,
        tokens=config.uses_tokens,
        per_step_labels=config.head == "all" and columns.label is not None,
        classification=config.task == "classification",
        num_features=config.input_size,
        chunk_rows=max(cfg.chunk_rows, cfg.batch_size),
        batch_size=cfg.batch_size,
    )


def _prepare(
    df: Any,
    columns: Columns,
    profile: DataProfile,
    config: ModelConfig,
    cfg: TrainOptions,
    invalid_rows: str,
    num_partitions: int | None,
    max_chunk_bytes: int | None = None,
) -> tuple[CachedChunks, dict[str, int]]:
    """The data checked, encoded and cached in one job; returns the cache and the rows left out
    per problem (``invalid_rows="skip"``; ``"error"`` raises before anything trains).

    With ``num_partitions`` the data is always spread over exactly that many partitions by a
    round-robin repartition (deterministic membership: Spark sorts each input partition before
    dealing its rows out), since a DataFrame cannot tell its partition count without running a
    job on a Connect session. With ``cfg.cache_dir`` the encoded data are kept as Parquet files
    in a new directory under it (removed by ``unpersist``). ``max_chunk_bytes`` fixes the
    chunks' byte budget (a resumed run passes its checkpoint's, so that its minibatches are the
    same on other executors)."""
    rules = row_rules(columns, profile, config)
    if num_partitions is not None:
        df = df.repartition(num_partitions)
    encoding = dataclasses.replace(
        _encoding(config, columns, cfg),
        rule_column=RULE_COLUMN,
        num_rules=len(rules.problems),
        max_chunk_bytes=max_chunk_bytes,
    )
    directory = None
    if cfg.cache_dir is not None:
        directory = f"{cfg.cache_dir.rstrip('/')}/sparklstm-chunks-{secrets.token_hex(8)}"
    cached = cache_chunks(df.withColumn(RULE_COLUMN, rules.column()), encoding, directory=directory)
    try:
        return cached, rules.settle(df, columns, cached.rejected, invalid_rows)
    except BaseException:
        cached.unpersist()
        raise


def _check_partition_sizes(cached: CachedChunks, cfg: TrainOptions) -> int:
    """Apply ``small_partitions``; returns the rows left out."""
    small = [(p, rows) for p, rows in enumerate(cached.partition_rows) if rows < cfg.batch_size]
    if not small or cfg.small_partitions == "train":
        return 0
    if cfg.small_partitions == "error":
        shown = ", ".join(f"partition {p}: {rows} rows" for p, rows in small[:5])
        raise ValueError(
            f"{len(small)} of {cached.num_partitions} partitions hold fewer rows than "
            f"batch_size={cfg.batch_size} ({shown}). Use fewer partitions (num_partitions; "
            "--partitions in the jobs), a smaller batch_size (--batch-size), or "
            "small_partitions='train' / 'skip' (--small-partitions train/skip)"
        )
    skipped = 0
    for p, rows in small:
        cached.chunk_rows[p] = []
        skipped += rows
    return skipped


# ------------------------------------------------------------------------------ the driver
def fit_distributed(
    data: Any,
    model: SequenceModel | ModelConfig | Mapping[str, Any] | None = None,
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
) -> tuple[SequenceModel, History]:
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
        refused with :class:`~sparklstm.runlock.DirectoryInUseError` (a ``ValueError``).
    resume : continue from the newest readable checkpoint in ``checkpoint_dir``; the result is
        the model an uninterrupted run would have produced. A directory with no readable
        checkpoint is an error (starting afresh is a separate, explicit choice).
    metrics_path : JSON-lines file with one object per round.
    progress : print one line per round to stderr.
    task_hook : called as ``task_hook(round, partition)`` at the start of every training task
        (instrumentation and fault-injection tests).

    Returns
    -------
    (SequenceModel, History)

    Examples
    --------
    >>> model, history = fit_distributed(df, {"hidden_sizes": [64]},
    ...                                  {"epochs": 5, "local_steps": 10})  # doctest: +SKIP
    """
    cfg = TrainOptions.coerce(config)
    columns = Columns(features_col, label_col, length_col)
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
        )


def _starting_checkpoint(checkpoint_dir: Path | None, resume: bool) -> Checkpoint | None:
    """The checkpoint a resumed run continues from; checks a fresh run's directory is empty."""
    if checkpoint_dir is None:
        return None
    rounds = checkpoint_rounds(checkpoint_dir)
    if not resume:
        if rounds:
            # A fresh run must not mix its checkpoints with an earlier run's (the newer-numbered
            # old ones would win a later resume) nor delete them: the user chooses.
            raise ValueError(
                f"checkpoint_dir {str(checkpoint_dir)!r} already holds checkpoints (rounds "
                f"{rounds}); resume that run (resume=True, --resume in the jobs) or use an "
                "empty directory"
            )
        return None
    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        found = f"only unreadable checkpoints (rounds {rounds})" if rounds else "no checkpoint"
        raise ValueError(
            f"resume: checkpoint_dir {str(checkpoint_dir)!r} holds {found}, so there is nothing "
            "to continue; to start afresh, run without resume (--resume) on an empty directory"
        )
    set_aside_unreadable_after(checkpoint_dir, checkpoint.round)
    return checkpoint


def _fit(
    data: Any,
    model: SequenceModel | ModelConfig | Mapping[str, Any] | None,
    cfg: TrainOptions,
    columns: Columns,
    validation: Any,
    checkpoint_dir: Path | None,
    resume: bool,
    metrics_path: str | Path | None,
    progress: bool,
    task_hook: Callable[[int, int], None] | None,
) -> tuple[SequenceModel, History]:
    started_run = time.perf_counter()
    checkpoint = _starting_checkpoint(checkpoint_dir, resume)
    profile = profile_data(data, columns)
    model_config, start_model = _model_config(
        model, model_sizes(profile, _option(model, "task"), _option(model, "head"), model)
    )
    if checkpoint is not None:
        _check_resumable(checkpoint, model_config, cfg)
    seed = resolve_seed(cfg.seed if cfg.seed is not None else model_config.seed)
    run_id = secrets.token_hex(8)
    if checkpoint is not None:
        seed, run_id = checkpoint.seed, checkpoint.run_id

    chunk_bytes = None if checkpoint is None else checkpoint.progress.get("max_chunk_bytes")
    cached, skipped = _prepare(
        data,
        columns,
        profile,
        model_config,
        cfg,
        cfg.invalid_rows,
        cfg.num_partitions,
        chunk_bytes,
    )
    if cfg.num_partitions is None and cached.num_partitions < 2:
        logger.warning(
            "training on the data's %d partition: one worker; set num_partitions to use more",
            cached.num_partitions,
        )
    val_cached = None
    try:
        skipped_small = _check_partition_sizes(cached, cfg)
        if validation is not None:
            val_profile = profile_data(validation, columns)
            val_cached, _ = _prepare(
                validation,
                columns,
                val_profile,
                model_config,
                cfg,
                "error",
                None,
                cached.max_chunk_bytes,
            )
        return _train(
            cached,
            val_cached,
            model_config,
            start_model,
            cfg,
            RunIdentity(seed, run_id),
            checkpoint,
            checkpoint_dir,
            metrics_path,
            progress,
            task_hook,
            skipped={**skipped, **({"small partitions": skipped_small} if skipped_small else {})},
            started_run=started_run,
        )
    finally:
        cached.unpersist()
        if val_cached is not None:
            val_cached.unpersist()


def _option(model: Any, name: str) -> str:
    defaults = {"task": "classification", "head": "last"}
    if isinstance(model, SequenceModel):
        return getattr(model.config, name)
    if isinstance(model, ModelConfig):
        return getattr(model, name)
    return (model or {}).get(name, defaults[name])


def _check_resumable(checkpoint: Checkpoint, model_config: ModelConfig, cfg: TrainOptions):
    saved_model = ModelConfig.from_dict(checkpoint.model_config)
    if saved_model != model_config:
        raise ValueError(
            "resume: the model configuration differs from the checkpoint's "
            f"({saved_model.to_dict()} vs {model_config.to_dict()})"
        )
    # Read through TrainOptions, so that an option added since the checkpoint was written
    # counts as its default.
    saved = TrainOptions.from_dict(checkpoint.training_config).to_dict()
    current = cfg.to_dict()
    changed = sorted(
        key for key in current if key not in RESUMABLE_CHANGES and saved[key] != current[key]
    )
    if changed:
        raise ValueError(
            f"resume: training options {changed} differ from the checkpoint's; only "
            f"{sorted(RESUMABLE_CHANGES)} may change"
        )


def _train(
    cached: CachedChunks,
    val_cached: CachedChunks | None,
    model_config: ModelConfig,
    start_model: SequenceModel | None,
    cfg: TrainOptions,
    run: RunIdentity,
    checkpoint: Checkpoint | None,
    checkpoint_dir: Path | None,
    metrics_path: str | Path | None,
    progress: bool,
    task_hook: Callable[[int, int], None] | None,
    skipped: dict[str, int],
    started_run: float,
) -> tuple[SequenceModel, History]:
    seed = run.seed
    model = start_model if start_model is not None else _initial_model(model_config, seed)
    params = {name: value.copy() for name, value in model.params.items()}
    names = tuple(sorted(params))
    partitions = cached.num_partitions
    active = sum(1 for rows in cached.chunk_rows if rows)
    if active == 0:
        raise ValueError("no partition has data to train on")
    max_batches = max(
        sum(batches_per_chunk(rows, cfg.batch_size) for rows in chunk_rows)
        for chunk_rows in cached.chunk_rows
    )
    local_steps = cfg.local_steps or max_batches
    rounds_per_epoch = math.ceil(max_batches / local_steps)
    total_rounds = cfg.rounds or cfg.epochs * rounds_per_epoch
    optimizer = cfg.make_optimizer()
    schedule = cfg.make_schedule(active, local_steps)
    state_template = optimizer.init_state(params).to_arrays()
    state_names = tuple(sorted(k for k in state_template if k != "optim/step"))
    state = state_template if cfg.state_policy == "average" else None
    states: dict[int, dict[str, np.ndarray]] = {}
    velocity = {n: np.zeros(p.shape, np.float64) for n, p in params.items()}
    history = History()
    first_round = 0
    if checkpoint is not None:
        params = {n: checkpoint.params[n] for n in names}
        state, states = checkpoint.state, checkpoint.states
        if checkpoint.velocity is not None:
            velocity = {n: checkpoint.velocity[n].astype(np.float64) for n in names}
        history.rows = list(checkpoint.progress.get("rows", []))
        first_round = checkpoint.round
        logger.info("resuming after round %d of %d", first_round, total_rounds)
    spec = RoundSpec(
        model_config=model_config.to_dict(),
        optimizer_config=optimizer.to_config(),
        schedule_config=schedule.to_config(),
        param_names=names,
        state_names=state_names,
        chunk_rows=tuple(tuple(rows) for rows in cached.chunk_rows),
        batch_size=cfg.batch_size,
        seed=seed,
        local_steps=local_steps,
        rounds_per_epoch=rounds_per_epoch,
        shuffle=cfg.shuffle,
        bucket=cfg.bucket,
        clip_norm=cfg.clip_norm,
        clip_value=cfg.clip_value,
        state_policy=cfg.state_policy,
        task_hook=task_hook,
    )
    book = _RoundBook(
        history,
        cfg,
        run,
        model_config,
        checkpoint,
        checkpoint_dir,
        MetricsFile(metrics_path, history.rows) if metrics_path else None,
        RoundPrinter(progress, total_rounds),
        total_rounds,
        cached.max_chunk_bytes,
    )
    history.summary = {
        "rows": cached.rows,
        "partitions": partitions,
        "training_partitions": active,
        "local_steps": local_steps,
        "rounds_per_epoch": rounds_per_epoch,
        "total_rounds": total_rounds,
        "seed": seed,
        "skipped_rows": skipped,
    }
    logger.info("training: %s", history.summary)
    session = cached.df.sparkSession
    file_prefix = f"sparklstm-{secrets.token_hex(6)}-round-"  # for payloads sent as files
    # A round whose parameters are to be validated waits for the next round's job: that job
    # receives exactly those parameters, so its tasks validate them beside the training tasks
    # (one Spark job instead of two). Only the last round's validation is a job of its own.
    waiting: dict[str, Any] | None = None  # the round's row, awaiting its validation
    round_index = first_round
    while round_index < total_rounds:
        started = time.perf_counter()
        # Parameters -> bytes -> in the task function, or a session file when large.
        payload = encode_payload(params, state, states)
        payload_bytes = len(payload)  # about the size of one partition's result
        shipment = ship(session, payload, f"{file_prefix}{round_index}.npz")
        broadcast_seconds = time.perf_counter() - started
        task = functools.partial(
            train_task,
            spec=spec,
            round_index=round_index,
            payload=shipment.parcel,
            file_prefix=file_prefix,
        )
        chunks = cached.chunks(round_filter(spec, round_index))
        alongside = None
        if waiting is not None:
            assert val_cached is not None
            alongside = val_cached.chunks().mapInArrow(
                _evaluation_task(model_config, shipment.parcel, cfg.batch_size), RESULT_SCHEMA
            )
        with shipment:
            rows, validation_rows = collect_round_results(
                chunks.mapInArrow(task, RESULT_SCHEMA),
                partitions,
                payload_bytes,
                alongside=alongside,
            )
        if waiting is not None:
            metrics_ = metrics_from_totals(model_config, _added_totals(validation_rows))
            stop = book.close(waiting, metrics_, _Snapshot(params, state, states, velocity))
            waiting = None
            if stop:  # this job's training is not used: the run ends where it stopped
                break
        result = functools.reduce(
            merge_results, (decode_result(data) for _, data in rows), WorkerResult()
        )
        _check_every_worker_answered(result, spec, round_index)
        wall = time.perf_counter() - started
        previous = params
        if result.contributors:
            params, velocity = _average(params, velocity, result, names, cfg)
            state, states = _next_state(state, states, result, state_template, state_names, cfg)
        row = _round_row(
            round_index, rounds_per_epoch, result, previous, params, names, model_config
        )
        row.update(
            lr=schedule.lr_at(round_index * local_steps),
            seconds=wall,
            broadcast_seconds=broadcast_seconds,
            compute_seconds=result.compute_max,
            aggregate_seconds=max(0.0, wall - broadcast_seconds - result.compute_max),
            sequences_per_second=result.examples / wall if wall > 0 else 0.0,
            chunks_read=result.chunks_read,
            results_collected=len(rows),
        )
        round_index += 1
        last = round_index == total_rounds
        if val_cached is not None and (round_index % cfg.validate_every == 0 or last):
            waiting = row
        elif book.close(row, None, _Snapshot(params, state, states, velocity)):
            break
    if waiting is not None:  # the last round's validation: a job of its own
        assert val_cached is not None
        metrics_ = evaluate_cached(val_cached, model_config, params, cfg.batch_size)
        book.close(waiting, metrics_, _Snapshot(params, state, states, velocity))
    if cfg.restore_best and book.stopping.best_params is not None:
        params = book.stopping.best_params
    final = SequenceModel.from_config(model_config)
    final.load_state_dict(params)
    history.summary["seconds"] = time.perf_counter() - started_run
    history.summary["rounds_done"] = len(history.rows)
    return final, history


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """The driver's state after a round: what a checkpoint of that round holds."""

    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray] | None
    states: dict[int, dict[str, np.ndarray]]
    velocity: dict[str, np.ndarray]


class _RoundBook:
    """The record a run keeps of its rounds: the history rows, the best validation and the
    early-stopping count, the metrics file, the progress lines and the checkpoints."""

    def __init__(
        self,
        history: History,
        cfg: TrainOptions,
        run: RunIdentity,
        model_config: ModelConfig,
        checkpoint: Checkpoint | None,
        checkpoint_dir: Path | None,
        metrics: MetricsFile | None,
        printer: RoundPrinter,
        total_rounds: int,
        max_chunk_bytes: int | None,
    ) -> None:
        self.history, self.cfg, self.run, self.model_config = history, cfg, run, model_config
        self.checkpoint_dir, self.metrics, self.printer = checkpoint_dir, metrics, printer
        self.total_rounds, self.max_chunk_bytes = total_rounds, max_chunk_bytes
        self.first_round = 0 if checkpoint is None else checkpoint.round
        if checkpoint is None:
            self.stopping = EarlyStopping(cfg.early_stopping)
        else:
            self.stopping = EarlyStopping.resumed(
                cfg.early_stopping, checkpoint.progress, checkpoint.best_params
            )
        history.best_round = self.stopping.best_round
        self.started = time.perf_counter()

    def close(
        self, row: dict[str, Any], validation: dict[str, float] | None, after: _Snapshot
    ) -> bool:
        """Record round ``row["round"]`` (with its validation metrics, if validated) and
        checkpoint it when due; returns whether early stopping ends the run here."""
        cfg, history = self.cfg, self.history
        done_rounds = row["round"]
        stop = False
        if validation is not None:
            row.update({f"val_{key}": value for key, value in validation.items()})
            stop = self.stopping.observe(validation["loss"], done_rounds, lambda: after.params)
            history.best_round = self.stopping.best_round
        elapsed = time.perf_counter() - self.started
        row["eta_seconds"] = (
            elapsed / (done_rounds - self.first_round) * (self.total_rounds - done_rounds)
        )
        history.rows.append(row)
        if self.metrics is not None:
            self.metrics.append(row)
        self.printer(row)
        last = done_rounds == self.total_rounds
        if self.checkpoint_dir is not None and (
            done_rounds % cfg.checkpoint_every == 0 or last or stop
        ):
            self._save(done_rounds, after)
        if stop:
            history.stopped_early = True
            logger.info("early stopping after round %d (best %s)", done_rounds, history.best_round)
        return stop

    def _save(self, done_rounds: int, after: _Snapshot) -> None:
        assert self.checkpoint_dir is not None
        save_checkpoint(
            self.checkpoint_dir,
            Checkpoint(
                round=done_rounds,
                seed=self.run.seed,
                run_id=self.run.run_id,
                model_config=self.model_config.to_dict(),
                training_config=self.cfg.to_dict(),
                params=after.params,
                state=after.state,
                states=after.states,
                velocity=after.velocity if self.cfg.outer_momentum else None,
                best_params=self.stopping.best_params,
                progress={
                    "rows": self.history.rows,
                    **self.stopping.state(),
                    "max_chunk_bytes": self.max_chunk_bytes,
                },
            ),
            keep=self.cfg.keep_checkpoints,
        )


def _check_every_worker_answered(result: WorkerResult, spec: RoundSpec, round_index: int):
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


def _initial_model(model_config: ModelConfig, seed: int) -> SequenceModel:
    """The starting model: initialised from the model config's own seed when it has one, else
    from the run's seed, so that one seed fixes the weights as well as the data order and
    dropout (the one-process trainer's ``SequenceModel(seed=s).fit(seed=s)`` is the same)."""
    if model_config.seed is None:
        return SequenceModel.from_config(dataclasses.replace(model_config, seed=seed))
    return SequenceModel.from_config(model_config)


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


def _round_row(
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


# ------------------------------------------------------------------------------ evaluation
def _evaluation_task(model_config: ModelConfig, parcel: Any, batch_size: int) -> Any:
    return functools.partial(
        evaluate_task,
        model_config=model_config.to_dict(),
        payload=parcel,
        batch_size=max(batch_size, 256),
    )


def _added_totals(rows: list[tuple[int, bytes]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, data in rows:
        totals = add_totals(totals, json.loads(data.decode("utf-8")))
    return totals


def evaluate_cached(
    cached: CachedChunks,
    model_config: ModelConfig,
    params: Mapping[str, np.ndarray],
    batch_size: int = 512,
) -> dict[str, float]:
    """Metrics of ``params`` on cached data, computed on the executors."""
    payload = encode_payload(dict(params))
    with ship(cached.df.sparkSession, payload, f"sparklstm-{secrets.token_hex(8)}.npz") as sent:
        task = _evaluation_task(model_config, sent.parcel, batch_size)
        rows = cached.chunks().mapInArrow(task, RESULT_SCHEMA).collect()
    return metrics_from_totals(model_config, _added_totals(collect_results(rows)))


def evaluate_distributed(
    model: SequenceModel,
    data: Any,
    *,
    features_col: str = "features",
    label_col: str = "label",
    length_col: str | None = None,
    batch_size: int = 512,
    cache_dir: str | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on a labelled DataFrame, computed on the executors
    (``cache_dir``: see :class:`~sparklstm.spark.config.TrainOptions`)."""
    columns = Columns(features_col, label_col, length_col)
    cfg = TrainOptions(batch_size=min(batch_size, 4096), chunk_rows=4096, cache_dir=cache_dir)
    cached, _ = _prepare(
        data, columns, profile_data(data, columns), model.config, cfg, "error", None
    )
    try:
        return evaluate_cached(cached, model.config, model.params, batch_size)
    finally:
        cached.unpersist()
