"""What the LSTM and GRU kernels share: the step bookkeeping (where each step's previous state
lives) and the layout of the gate weights.

All arrays here are *packed* (see :mod:`sparklstm.nn.packing`): one row per valid (step,
sequence), steps in time order, and the live sequences of step ``t`` a contiguous row block.
Initial states and gradients w.r.t. them are in *sorted* batch order (``layout.order``).
"""

from __future__ import annotations

import numpy as np

from sparklstm.nn.packing import PackedLayout

__all__ = ["StepWalker", "scaled_gate_weights"]


class StepWalker:
    """Visits the steps of one direction and finds the rows each step starts from.

    Forward direction: step ``t`` continues from step ``t-1`` (same sorted position).
    Reverse direction: step ``t`` continues from step ``t+1``; sequences whose last valid step
    is ``t`` start there from the initial state. Either way the rows a step continues from are
    contiguous, except in the reverse direction at steps where new sequences start, where the
    block is assembled in a scratch buffer.
    """

    def __init__(self, layout: PackedLayout, reverse: bool) -> None:
        self.layout = layout
        self.reverse = reverse
        self.offsets = layout.offsets
        self.sizes = layout.batch_sizes
        self.num_steps = layout.num_steps

    def steps(self) -> range:
        """Steps in processing order (forward pass)."""
        if self.reverse:
            return range(self.num_steps - 1, -1, -1)
        return range(self.num_steps)

    def steps_backward(self) -> range:
        """Steps in the order BPTT visits them (reverse of :meth:`steps`)."""
        if self.reverse:
            return range(self.num_steps)
        return range(self.num_steps - 1, -1, -1)

    def rows(self, t: int) -> tuple[int, int, int]:
        """``(start, stop, n)`` of step ``t``'s packed rows."""
        start = int(self.offsets[t])
        n = int(self.sizes[t])
        return start, start + n, n

    def _source(self, t: int) -> tuple[int, int] | None:
        """``(start, n_from_rows)`` of the rows step ``t`` continues from, or None (all initial)."""
        if not self.reverse:
            if t == 0:
                return None
            return int(self.offsets[t - 1]), int(self.sizes[t])
        if t == self.num_steps - 1:
            return None
        return int(self.offsets[t + 1]), int(self.sizes[t + 1])

    def previous(
        self, t: int, rows_buf: np.ndarray, initial: np.ndarray, scratch: np.ndarray
    ) -> np.ndarray:
        """The ``(n, H)`` state block step ``t`` starts from (a view when contiguous)."""
        n = int(self.sizes[t])
        source = self._source(t)
        if source is None:
            return initial[:n]
        start, n_from = source
        if n_from == n:
            return rows_buf[start : start + n]
        scratch[:n_from] = rows_buf[start : start + n_from]
        scratch[n_from:n] = initial[n_from:n]
        return scratch[:n]

    def carry(
        self, t: int, grad: np.ndarray, rows_grad: np.ndarray, initial_grad: np.ndarray
    ) -> None:
        """Add ``grad`` (gradient w.r.t. step ``t``'s previous state) where that state came from."""
        n = int(self.sizes[t])
        source = self._source(t)
        if source is None:
            initial_grad[:n] += grad
            return
        start, n_from = source
        rows_grad[start : start + n_from] += grad[:n_from]
        if n_from < n:
            initial_grad[n_from:n] += grad[n_from:n]

    def final_rows(self) -> np.ndarray:
        """Packed row holding each sorted sequence's final state."""
        if self.reverse:
            return np.arange(self.layout.batch_size)
        sorted_lengths = self.layout.lengths[self.layout.order]
        return self.offsets[sorted_lengths - 1] + np.arange(self.layout.batch_size)

    def previous_rows(self, rows_buf: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """All steps' previous states at once, ``(N, H)``, gathered in one call."""
        index = self.layout.previous_row_index(self.reverse)
        return np.concatenate([rows_buf, initial])[index]


def scaled_gate_weights(
    weight: np.ndarray, hidden_size: int, gate_scale: tuple[float, ...]
) -> np.ndarray:
    """``(G*H, K)`` -> ``(G, K, H)``: per-gate transposed blocks, each gate's block multiplied
    by its ``gate_scale`` (1/2 for the sigmoid gates, which the kernels evaluate as
    ``sigmoid(z) = (1 + tanh(z / 2)) / 2``)."""
    gates = len(gate_scale)
    blocks = weight.reshape(gates, hidden_size, -1).transpose(0, 2, 1)
    scale = np.asarray(gate_scale, dtype=weight.dtype).reshape(gates, 1, 1)
    return np.ascontiguousarray(blocks * scale)
