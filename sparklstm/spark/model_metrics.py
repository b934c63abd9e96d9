"""Loss and metrics of a model on labelled data, computed on the executors: the validation of
the Spark trainer (on its cached validation chunks) and :func:`evaluate_distributed` (on any
labelled DataFrame). Only the summed totals reach the driver; the formulas are
:func:`sparklstm.model.factory.metrics_from_totals`."""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparklstm.model.factory import AnyConfig, AnyModel, metrics_from_totals
from sparklstm.spark.partitions import CachedChunks
from sparklstm.spark.preparation import prepare
from sparklstm.spark.rounds import RESULT_SCHEMA, add_totals, collect_results, evaluate_task
from sparklstm.spark.schema import Columns, profile_data
from sparklstm.spark.transport import ship
from sparklstm.spark.vectors import vectors_as_arrays
from sparklstm.spark.wire import encode_payload
from sparklstm.training.options import TrainOptions

__all__ = ["evaluate_distributed", "evaluate_cached", "evaluation_task", "added_totals"]


def evaluation_task(model_config: AnyConfig, parcel: Any, batch_size: int) -> Any:
    return functools.partial(
        evaluate_task,
        model_config=model_config.to_dict(),
        payload=parcel,
        batch_size=max(batch_size, 256),
    )


def added_totals(rows: list[tuple[int, bytes]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, data in rows:
        totals = add_totals(totals, json.loads(data.decode("utf-8")))
    return totals


def evaluate_cached(
    cached: CachedChunks,
    model_config: AnyConfig,
    params: Mapping[str, np.ndarray],
    batch_size: int = 512,
) -> dict[str, float]:
    """Metrics of ``params`` on cached data, computed on the executors."""
    payload = encode_payload(dict(params))
    with ship(cached.df.sparkSession, payload, f"sparklstm-{secrets.token_hex(8)}.npz") as sent:
        task = evaluation_task(model_config, sent.parcel, batch_size)
        rows = cached.chunks().mapInArrow(task, RESULT_SCHEMA).collect()
    return metrics_from_totals(model_config, added_totals(collect_results(rows)))


def evaluate_distributed(
    model: AnyModel,
    data: Any,
    *,
    features_col: str = "features",
    label_col: str = "label",
    length_col: str | None = None,
    batch_size: int = 512,
    cache_dir: str | None = None,
    target_length_col: str | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on a labelled DataFrame (for a seq2seq model: source in
    ``features_col``, target sequence in ``label_col``), computed on the executors
    (``cache_dir``: see :class:`~sparklstm.spark.config.TrainOptions`)."""
    columns = Columns(features_col, label_col, length_col, target_length_col)
    data = vectors_as_arrays(data, features_col)
    cfg = TrainOptions(batch_size=min(batch_size, 4096), chunk_rows=4096, cache_dir=cache_dir)
    cached, _ = prepare(
        data, columns, profile_data(data, columns), model.config, cfg, "error", None
    )
    try:
        return evaluate_cached(cached, model.config, model.params, batch_size)
    finally:
        cached.unpersist()
