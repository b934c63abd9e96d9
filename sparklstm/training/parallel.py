"""One minibatch step on several cores: the batch split into parts computed in parallel threads.

NumPy's element-wise calls run on one thread and BLAS cannot split the small recurrent GEMMs of
a step well (at B64 H128 a second OpenBLAS thread gives nothing). So a step that holds ``k``
cores splits its minibatch into ``k`` parts, runs the forward and backward pass of each in its
own thread with one BLAS thread each (NumPy's GEMMs and the compiled steps release the GIL),
and combines them: with ``n_j`` loss terms (examples, or valid steps) in part ``j`` and ``N`` in
all, the batch's mean loss is ``Σ_j (n_j / N) loss_j`` and its gradient ``Σ_j (n_j / N) g_j``,
the gradient of the whole batch up to rounding (tested in ``tests/test_parallel_step.py``).

Parts take every ``k``-th sequence of the (length-bucketed) batch, so they carry about the same
work. A part must be big enough to pay for its thread: with ``b`` sequences per part and ``H``
the largest hidden size, the step is split only when ``b H² >= 2**18`` (:data:`MIN_PART_WORK`).
Measured on 2 cores, one LSTM layer, forward + backward, time of one thread over two split
threads: B64 H64 1.03x and B32 H64 1.16x (small parts: NumPy holds the GIL in small calls, and
a whole training step took 40% longer split), B128 H64 1.41x, B32 H128 1.48x, B64 H128 1.64x,
B256 H256 1.83x.

Each part draws its dropout masks from its own generator, seeded from the step's in part
order: a run is reproducible for a given number of parts, and differs in its last bits (and in
its dropout masks) from a run with another number, as it does already with another BLAS thread
count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sparklstm.data.pair_data import PairData
from sparklstm.data.sequence_data import SequenceData

__all__ = ["MIN_PART_WORK", "StepSplitter"]

# Least (sequences per part) x (largest hidden size)² for which a step is split.
MIN_PART_WORK = 2**18


class StepSplitter:
    """``splitter(model, batch, rng)`` -> ``(mean loss, gradients, loss terms, metric sum)``,
    as ``model.step_gradients``, over ``parts`` threads. A context manager: it holds the
    thread pool and limits BLAS to one thread while open (restoring it on exit)."""

    def __init__(self, parts: int) -> None:
        self.parts = max(1, int(parts))
        self._pool: ThreadPoolExecutor | None = None
        self._blas_before: int | None = None

    def __enter__(self) -> StepSplitter:
        if self.parts > 1:
            from sparklstm.spark.blas import blas_threads, limit_blas_threads

            self._blas_before = blas_threads()
            limit_blas_threads(1)
            self._pool = ThreadPoolExecutor(self.parts, thread_name_prefix="sparklstm-step")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            if self._blas_before is not None:
                from sparklstm.spark.blas import limit_blas_threads

                limit_blas_threads(self._blas_before)

    def __call__(self, model: Any, batch: Any, rng: np.random.Generator):
        splittable = isinstance(batch, (SequenceData, PairData))
        if self._pool is None or not splittable:
            return model.step_gradients(batch, rng)
        hidden = max(model.config.hidden_sizes)
        if len(batch) // self.parts * hidden * hidden < MIN_PART_WORK:
            return model.step_gradients(batch, rng)
        seeds = rng.integers(0, 2**63, size=self.parts)
        pieces = [batch.take(np.arange(j, len(batch), self.parts)) for j in range(self.parts)]
        results = list(
            self._pool.map(
                lambda piece, seed: model.step_gradients(piece, np.random.default_rng(seed)),
                pieces,
                seeds,
            )
        )
        return _combine(results)


def _combine(results: list[tuple[float, dict[str, np.ndarray], int, float]]):
    """The whole batch's (mean loss, gradients, terms, metric) from its parts'."""
    total = sum(count for _, _, count, _ in results)
    loss = sum(part_loss * count for part_loss, _, count, _ in results) / total
    grads: dict[str, np.ndarray] = {}
    for _, part_grads, count, _ in results:
        weight = count / total
        for name, value in part_grads.items():
            if name in grads:
                grads[name] += value * value.dtype.type(weight)
            else:
                grads[name] = value * value.dtype.type(weight)
    metric = sum(part_metric for _, _, _, part_metric in results)
    return loss, grads, total, metric
