"""What the LSTM and GRU kernels share: the step bookkeeping (where each step's previous state
lives) and the layout of the gate weights.

All arrays here are *packed* (see :mod:`sparklstm.nn.packing`): one row per valid (step,
sequence), steps in time order, and the live sequences of step ``t`` a contiguous row block.
Initial states and gradients w.r.t. them are in *sorted* batch order (``layout.order``).
"""

from __future__ import annotations

import numpy as np

from sparklstm.nn.packing import PackedLayout

__all__ = ["StepWalker", "scaled_gate_weights", "take_final", "weight_gradients"]


class StepWalker:
    """Visits the steps of one direction and finds the rows each step starts from.

    Forward direction: step ``t`` continues from step ``t-1`` (same sorted position).
    Reverse direction: step ``t`` continues from step ``t+1``; sequences whose last valid step
    is ``t`` start there from the initial state. Either way a step's first ``continued(t)``
    rows continue from the same positions of another step's rows (a contiguous block) and the
    rest start from the initial state.

    BPTT visits the steps in the opposite order, so the step a step continues from is always
    the next one it visits: the gradient w.r.t. a step's previous state is carried in one
    ``(B, H)`` buffer, its first ``continued(t)`` rows to the next step visited and the rest to
    the initial state's gradient (:meth:`to_initial`). The rows of the next step that nothing
    carries into are those where a sequence's final state lives (forward direction), which is
    where the gradient w.r.t. the final state enters (see the kernels' backward functions).
    """

    def __init__(self, layout: PackedLayout, reverse: bool) -> None:
        self.layout = layout
        self.reverse = reverse
        self.num_steps = layout.num_steps
        offsets = [int(v) for v in layout.offsets]
        sizes = [int(v) for v in layout.batch_sizes]
        self._rows = [(offsets[t], offsets[t] + sizes[t], sizes[t]) for t in range(self.num_steps)]
        # (first row, number of rows) of the rows each step continues from; n = 0: none.
        self._source: list[tuple[int, int]] = []
        for t in range(self.num_steps):
            if not reverse:
                source = (0, 0) if t == 0 else (offsets[t - 1], sizes[t])
            else:
                last = t == self.num_steps - 1
                source = (0, 0) if last else (offsets[t + 1], sizes[t + 1])
            self._source.append(source)

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
        return self._rows[t]

    def continued(self, t: int) -> int:
        """How many of step ``t``'s rows continue from another step (the rest start from the
        initial state)."""
        return self._source[t][1]

    def previous(
        self, t: int, rows_buf: np.ndarray, initial: np.ndarray, scratch: np.ndarray
    ) -> np.ndarray:
        """The ``(n, H)`` state block step ``t`` starts from (a view when contiguous)."""
        n = self._rows[t][2]
        start, n_from = self._source[t]
        if n_from == 0:
            return initial[:n]
        if n_from == n:
            return rows_buf[start : start + n]
        scratch[:n_from] = rows_buf[start : start + n_from]
        scratch[n_from:n] = initial[n_from:n]
        return scratch[:n]

    def to_initial(self, t: int, carried: np.ndarray, initial_grad: np.ndarray) -> None:
        """Move the gradient w.r.t. step ``t``'s previous state of the rows that start from the
        initial state (``carried[continued(t):n]``) into ``initial_grad``."""
        n = self._rows[t][2]
        n_from = self._source[t][1]
        if n_from < n:
            initial_grad[n_from:n] += carried[n_from:n]

    def final_rows(self) -> np.ndarray:
        """Packed row holding each sorted sequence's final state."""
        if self.reverse:
            return np.arange(self.layout.batch_size)
        sorted_lengths = self.layout.lengths[self.layout.order]
        return self.layout.offsets[sorted_lengths - 1] + np.arange(self.layout.batch_size)

    def previous_rows(
        self, rows_buf: np.ndarray, initial: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """All steps' previous states at once, ``(N, H)`` (into ``out`` if given): one block
        copy per step."""
        if out is None:
            out = np.empty_like(rows_buf)
        for t in range(self.num_steps):
            start, stop, n = self._rows[t]
            source, n_from = self._source[t]
            out[start : start + n_from] = rows_buf[source : source + n_from]
            out[start + n_from : stop] = initial[n_from:n]
        return out


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


def weight_gradients(
    d_pre: np.ndarray, x: np.ndarray, walker: StepWalker, hidden: np.ndarray, h0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dW_ih = Σ_t da x_tᵀ`` and ``dW_hh = Σ_t da h_{t-1}ᵀ`` as one GEMM over all rows:
    ``d_preᵀ [x | h_prev]`` with the previous states gathered next to the inputs (one GEMM
    with ``I + H`` columns runs about 10% faster than two, and the thin ``I``-column one was the
    slowest of the pass). ``d_pre`` (N, GH) holds the pre-activation gradients."""
    inputs = x.shape[1]
    joined = np.empty((x.shape[0], inputs + hidden.shape[1]), dtype=x.dtype)
    joined[:, :inputs] = x
    walker.previous_rows(hidden, h0, out=joined[:, inputs:])
    grad = d_pre.T @ joined
    return np.ascontiguousarray(grad[:, :inputs]), np.ascontiguousarray(grad[:, inputs:])


def take_final(carried: np.ndarray, d_final: np.ndarray | None, first: int, stop: int) -> None:
    """Start rows ``first:stop`` of a carried BPTT gradient (rows nothing carries into: where a
    sequence's final state lives) at the final-state gradient, or at 0 without one."""
    if d_final is None:
        carried[first:stop] = 0
    else:
        carried[first:stop] = d_final[first:stop]
