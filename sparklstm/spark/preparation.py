"""Before the first round: the model configuration the data implies, and the data checked,
encoded and cached in one Spark job (:func:`prepare`), with the small-partition policy applied.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from sparklstm.model import SequenceModel
from sparklstm.model.config import ModelConfig
from sparklstm.model.factory import AnyConfig, AnyModel, config_from_dict, is_seq2seq
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.spark.partitions import CachedChunks, ChunkEncoding, cache_chunks
from sparklstm.spark.schema import RULE_COLUMN, Columns, DataProfile, row_rules
from sparklstm.spark.session import default_parallelism
from sparklstm.training.options import TrainOptions

__all__ = [
    "model_config_for",
    "model_option",
    "prepare",
    "check_partition_sizes",
    "describe_cache",
    "worker_count",
]

logger = logging.getLogger(__name__)


_SOURCE_SIZES = ("input_size", "vocab_size", "source_vocab_size")
_TARGET_SIZES = ("output_size", "target_vocab_size")


def model_config_for(
    model: AnyModel | AnyConfig | Mapping[str, Any] | None, sizes: dict[str, int]
) -> tuple[AnyConfig, AnyModel | None]:
    """The configuration to train (a starting model's own, or ``model``'s options completed
    with the ``sizes`` the data implies where they leave a side open) and the starting model."""
    if isinstance(model, (SequenceModel, Seq2SeqModel)):
        return model.config, model
    if isinstance(model, (ModelConfig, Seq2SeqConfig)):
        return model, None
    options = dict(model or {})
    for given in (_SOURCE_SIZES, _TARGET_SIZES if is_seq2seq(options) else ()):
        if any(options.get(name) is not None for name in given):
            sizes = {k: v for k, v in sizes.items() if k not in given}
    for key, value in sizes.items():
        options.setdefault(key, value)
    return config_from_dict(options), None


def _encoding(config: AnyConfig, columns: Columns, cfg: TrainOptions) -> ChunkEncoding:
    pairs = isinstance(config, Seq2SeqConfig)
    return ChunkEncoding(
        columns=columns,
        dtype=config.dtype,
        tokens=config.token_source if pairs else config.uses_tokens,
        per_step_labels=config.head == "all" and columns.label is not None,
        classification=config.task == "classification",
        num_features=config.input_size,
        chunk_rows=max(cfg.chunk_rows, cfg.batch_size),
        batch_size=cfg.batch_size,
        pairs=pairs,
        target_tokens=pairs and config.token_target,
    )


def prepare(
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


def worker_count(num_partitions: int | None, spark: Any, rows: int, batch_size: int) -> int | None:
    """The partitions to deal the training rows into (``None``: keep the DataFrame's own).

    ``num_partitions`` ``None`` (the default) means one worker per task slot of the session
    (:func:`~sparklstm.spark.session.default_parallelism`), but at most one per two minibatches
    of rows: a round-robin deal leaves partitions a few rows apart, and a worker needs at least
    a minibatch. ``0`` keeps the DataFrame's partitioning; any other number is used as given.
    """
    if num_partitions == 0:
        return None
    if num_partitions is not None:
        return num_partitions
    slots = default_parallelism(spark)
    workers = max(1, min(slots, rows // (2 * batch_size)))
    logger.debug(
        "num_partitions: %d workers (%d task slots, %d rows, batch_size %d)",
        workers,
        slots,
        rows,
        batch_size,
    )
    return workers


def check_partition_sizes(cached: CachedChunks, cfg: TrainOptions) -> int:
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


def model_option(model: Any, name: str) -> str:
    """``task`` or ``head`` of a starting model, a config, or a dict of model options."""
    defaults = {"task": "classification", "head": "last"}
    if isinstance(model, (SequenceModel, Seq2SeqModel)):
        return getattr(model.config, name)
    if isinstance(model, (ModelConfig, Seq2SeqConfig)):
        return getattr(model, name)
    return (model or {}).get(name, defaults[name])


def _binary_size(count: int) -> str:
    """``"512 B"``, ``"9.4 KiB"``, ``"11.2 MiB"``, ``"3.0 GiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def describe_cache(what: str, cached: CachedChunks, seconds: float) -> str:
    """The line that ends a preparation: rows kept, partitions and their sizes, bytes cached."""
    sizes = cached.partition_rows
    where = "Parquet files" if cached.directory is not None else "memory and disk"
    spread = f"{min(sizes):,}" if min(sizes) == max(sizes) else f"{min(sizes):,}-{max(sizes):,}"
    line = (
        f"{what}: {cached.rows:,} rows checked and cached in {cached.num_partitions} "
        f"partition{'s' if cached.num_partitions != 1 else ''} of {spread} rows "
        f"({_binary_size(cached.encoded_bytes)}, {where}), {seconds:.1f} s"
    )
    left_out = sum(cached.rejected)
    return line + (f"; {left_out:,} rows left out" if left_out else "")
