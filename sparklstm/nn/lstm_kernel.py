"""One direction of one LSTM layer over a packed batch: the plain LSTM, with peepholes, or with
a coupled input-forget gate ("CIFG").

Notation
--------
``x_t`` input row, ``h_{t-1}``, ``c_{t-1}`` previous state, ``H`` hidden size; weights in
PyTorch's layout and gate order ``i, f, g, o``: ``W_ih (4H, I)``, ``W_hh (4H, H)``,
``b = b_ih + b_hh (4H,)``, peephole diagonals ``p_i, p_f, p_o (H,)``. The CIFG has three gate
blocks ``i, g, o`` (``(3H, I)``, ``(3H, H)``, ``(3H,)``) and no peepholes.

Equations (Hochreiter & Schmidhuber 1997 with forget gate; peepholes: Gers & Schmidhuber 2000)
---------
    a   = W_ih x_t + W_hh h_{t-1} + b                     (4H,)  split a_i, a_f, a_g, a_o
    i   = σ(a_i + p_i ⊙ c_{t-1})        f = σ(a_f + p_f ⊙ c_{t-1})        g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o   = σ(a_o + p_o ⊙ c_t)
    h_t = o ⊙ tanh(c_t)

CIFG (Greff et al. 2017, "LSTM: A Search Space Odyssey"): the forget gate is tied to the input
gate, ``f = 1 - i`` (``= σ(-a_i)``), so a unit writes into its cell exactly as much as it
forgets of it: ``c_t = c_{t-1} + i ⊙ (g - c_{t-1})``.

BPTT (``dh``, ``dc`` include what flows back from step t+1 and from the output at t)
----
    da_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
    dc   = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t)) + p_o ⊙ da_o
    da_i = dc ⊙ g ⊙ i(1-i)      da_f = dc ⊙ c_{t-1} ⊙ f(1-f)      da_g = dc ⊙ i ⊙ (1-g²)
    dc_{t-1} = dc ⊙ f + p_i ⊙ da_i + p_f ⊙ da_f
    dh_{t-1} = W_hhᵀ da          dW_hh = Σ_t da h_{t-1}ᵀ   dW_ih = Σ_t da x_tᵀ   db = Σ_t da

In the CIFG the input gate reaches ``c_t`` twice, as ``i`` and through ``f = 1 - i``:
``∂c_t/∂i = g - c_{t-1}``, so ``da_i = dc ⊙ (g - c_{t-1}) ⊙ i(1-i)`` (the LSTM's
``da_i - da_f`` at ``a_f = -a_i``) and ``dc_{t-1} = dc ⊙ (1 - i)``.

(The reference design had ``dc`` wrong — ``o(1-g²)g dh`` — and swapped ``dh_{t-1}`` with
``dc_{t-1}``; these are the correct forms, checked by finite differences in the tests.)

Implementation
--------------
Gate pre-activations live gate-major, ``gates[k]`` an ``(N, H)`` matrix, so every elementwise
operation of a step works on contiguous blocks. The sigmoid rows of the weights are pre-scaled
by 1/2 and ``σ(a) = (1 + tanh(a/2)) / 2``, so all activations go through ``tanh`` (NumPy's is
faster than its exp on this hardware, and one call beats four). The input projection of all
steps is one GEMM per gate; all weight gradients are one GEMM each over all rows. The
element-wise part of a step runs either as one compiled loop (:mod:`sparklstm.nn.numba_steps`,
when numba is installed; see :mod:`sparklstm.nn.fused`) or as the NumPy reference below, which
computes the recurrence-free derivative factors for all steps before the backward loop. BPTT
carries ``dh_{t-1}`` and ``dc_{t-1}`` in ``(B, H)`` buffers (see
:class:`~sparklstm.nn.recurrence.StepWalker`), so the output gradient is read, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.nn.fused import fused_steps
from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrence import (
    StepWalker,
    scaled_gate_weights,
    take_final,
    weight_gradients,
)

__all__ = ["CIFG_GATES", "LSTMCache", "lstm_backward", "lstm_forward"]

# Gate blocks of the CIFG's weights, in order (the LSTM's i, f, g, o without f).
CIFG_GATES = ("i", "g", "o")

# Per-gate pre-scale for the single-tanh activation trick: gate order i, f, g, o (LSTM) and
# i, g, o (CIFG).
_GATE_SCALE = {False: (0.5, 0.5, 1.0, 0.5), True: (0.5, 1.0, 0.5)}


@dataclass(frozen=True, eq=False)
class LSTMCache:
    """What :func:`lstm_backward` needs from the forward pass (never modified by backward)."""

    x: np.ndarray  # (N, I) input rows
    w_ih: np.ndarray  # (GH, I) unscaled
    w_hh: np.ndarray  # (GH, H) unscaled
    peephole: np.ndarray | None  # (3, H) rows p_i, p_f, p_o, unscaled
    coupled: bool  # CIFG: gates i, g, o and f = 1 - i
    gates: np.ndarray  # (G, N, H) activated gates i, f, g, o (CIFG: i, g, o)
    cell: np.ndarray  # (N, H) c_t
    tanh_cell: np.ndarray  # (N, H) tanh(c_t)
    hidden: np.ndarray  # (N, H) h_t
    h0: np.ndarray  # (B, H) sorted order
    c0: np.ndarray  # (B, H) sorted order
    walker: StepWalker


def lstm_forward(
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray | None,
    peephole: np.ndarray | None,
    h0: np.ndarray,
    c0: np.ndarray,
    layout: PackedLayout,
    reverse: bool = False,
    coupled: bool = False,
    fused: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LSTMCache]:
    """Run one LSTM direction over packed rows.

    Parameters
    ----------
    x : (N, I) packed input rows.
    w_ih, w_hh : (4H, I), (4H, H) weights, gate order i, f, g, o (CIFG: (3H, ...), i, g, o).
    bias : (4H,) (CIFG: (3H,)) combined bias ``b_ih + b_hh``, or None.
    peephole : (3, H) diagonal peephole weights ``p_i, p_f, p_o``, or None (always for CIFG).
    h0, c0 : (B, H) initial state, sorted batch order.
    layout : the batch's :class:`PackedLayout`.
    reverse : process each sequence from its last valid step to its first.
    coupled : the CIFG cell (``f = 1 - i``).
    fused : compiled element-wise steps (see :mod:`sparklstm.nn.fused`).

    Returns
    -------
    hidden : (N, H) packed outputs ``h_t``.
    h_n, c_n : (B, H) final states, sorted batch order.
    cache : :class:`LSTMCache` for :func:`lstm_backward`.
    """
    if coupled and peephole is not None:
        raise ValueError("peephole: the coupled-gate (CIFG) cell has no peepholes; pass None")
    dtype = x.dtype
    hidden_size = w_hh.shape[1]
    num_rows = x.shape[0]
    batch = layout.batch_size
    walker = StepWalker(layout, reverse)
    gate_scale = _GATE_SCALE[coupled]
    num_gates = len(gate_scale)
    steps = fused_steps(dtype, fused)

    # Input projection of every step: one GEMM per gate, straight into the gate buffer.
    w_ih_gates = scaled_gate_weights(w_ih, hidden_size, gate_scale)  # (G, I, H)
    gates = np.empty((num_gates, num_rows, hidden_size), dtype=dtype)
    for k in range(num_gates):
        np.matmul(x, w_ih_gates[k], out=gates[k])
    scaled_bias = None
    if bias is not None:
        scale = np.asarray(gate_scale, dtype=dtype).reshape(num_gates, 1)
        scaled_bias = (bias.reshape(num_gates, hidden_size) * scale).astype(dtype, copy=False)
        if steps is None:  # the compiled steps add it as they read the gates
            gates += scaled_bias[:, None, :]
    # Recurrent weights as one (H, GH) matrix whose output columns are gate-major.
    w_hh_gates = scaled_gate_weights(w_hh, hidden_size, gate_scale)
    w_hh_t = np.ascontiguousarray(w_hh_gates.transpose(1, 0, 2))
    w_hh_t = w_hh_t.reshape(hidden_size, num_gates * hidden_size)

    cell = np.empty((num_rows, hidden_size), dtype=dtype)
    tanh_cell = np.empty((num_rows, hidden_size), dtype=dtype)
    hidden = np.empty((num_rows, hidden_size), dtype=dtype)
    recurrent = np.empty((batch, num_gates * hidden_size), dtype=dtype)
    h_scratch = np.empty((batch, hidden_size), dtype=dtype)
    c_scratch = np.empty((batch, hidden_size), dtype=dtype)
    if steps is not None:
        half = dtype.type(0.5)
        fused_step = steps.lstm_forward_step(coupled, peephole is not None)
        peep = h_scratch if peephole is None else peephole.astype(dtype, copy=False)
        if scaled_bias is None:
            scaled_bias = np.zeros((num_gates, hidden_size), dtype=dtype)
    else:
        numpy_step = _NumpyForwardStep(peephole, coupled, batch, hidden_size, dtype)

    for t in walker.steps():
        start, stop, n = walker.rows(t)
        h_prev = walker.previous(t, hidden, h0, h_scratch)
        c_prev = walker.previous(t, cell, c0, c_scratch)
        rec = recurrent[:n]
        np.matmul(h_prev, w_hh_t, out=rec)  # (n, GH) = h_{t-1} W_hhᵀ, gate-major columns
        if steps is not None:
            fused_step(
                gates, start, n, rec, scaled_bias, c_prev, peep, cell, tanh_cell, hidden, half
            )
        else:
            numpy_step(gates[:, start:stop], rec, c_prev, cell[start:stop],
                       tanh_cell[start:stop], hidden[start:stop])  # fmt: skip

    final = walker.final_rows()
    cache = LSTMCache(
        x, w_ih, w_hh, peephole, coupled, gates, cell, tanh_cell, hidden, h0, c0, walker
    )
    return hidden, hidden[final], cell[final], cache


class _NumpyForwardStep:
    """The reference element-wise part of a forward step (scratch buffers kept across steps)."""

    def __init__(self, peephole, coupled, batch, hidden_size, dtype):
        self.coupled = coupled
        self.peephole = peephole is not None
        if self.peephole:
            self.peep_if = (peephole[:2] * 0.5).reshape(2, 1, hidden_size).astype(dtype)
            self.peep_o = (peephole[2] * 0.5).astype(dtype)
            self.peep_term = np.empty((2, batch, hidden_size), dtype=dtype)
        self.product = np.empty((batch, hidden_size), dtype=dtype)

    def __call__(self, pre, rec, c_prev, c_t, tc, h_t):
        """``pre`` (G, n, H): the step's input projections in, activated gates out."""
        num_gates, n, hidden_size = pre.shape
        product = self.product[:n]
        pre += rec.reshape(n, num_gates, hidden_size).transpose(1, 0, 2)
        if self.coupled:
            np.tanh(pre, out=pre)
            in_gate, cand, out_gate = pre
            in_gate *= 0.5  # σ(a) = (1 + tanh(a/2)) / 2; o below
            in_gate += 0.5
            # c_t = c_{t-1} + i (g - c_{t-1}), i.e. (1 - i) c_{t-1} + i g
            np.subtract(cand, c_prev, out=product)
            product *= in_gate
            np.add(c_prev, product, out=c_t)
        else:
            if self.peephole:
                np.multiply(c_prev, self.peep_if, out=self.peep_term[:, :n])
                pre[:2] += self.peep_term[:, :n]
                np.tanh(pre[:3], out=pre[:3])
            else:
                np.tanh(pre, out=pre)
            sig_if = pre[:2]
            sig_if *= 0.5
            sig_if += 0.5
            in_gate, forget_gate, cand, out_gate = pre
            np.multiply(forget_gate, c_prev, out=c_t)
            np.multiply(in_gate, cand, out=product)
            c_t += product
            if self.peephole:
                np.multiply(c_t, self.peep_o, out=product)
                out_gate += product
                np.tanh(out_gate, out=out_gate)
        out_gate *= 0.5
        out_gate += 0.5
        np.tanh(c_t, out=tc)
        np.multiply(out_gate, tc, out=h_t)


def lstm_backward(
    d_hidden: np.ndarray | None,
    d_h_n: np.ndarray | None,
    d_c_n: np.ndarray | None,
    cache: LSTMCache,
    need_dx: bool = True,
    fused: bool | None = None,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """BPTT through one LSTM direction.

    Parameters
    ----------
    d_hidden : (N, H) gradient w.r.t. the packed outputs, or None.
    d_h_n, d_c_n : (B, H) gradients w.r.t. the final states (sorted order), or None.
    cache : from :func:`lstm_forward`.
    need_dx : compute the gradient w.r.t. the input rows (not needed for a network's first
        layer reading float inputs: a GEMM as large as dW_ih saved).
    fused : compiled element-wise steps (see :mod:`sparklstm.nn.fused`).

    Returns
    -------
    dx : (N, I) gradient w.r.t. the input rows, or None.
    grads : ``{"w_ih", "w_hh", "bias", "peephole"?}`` (bias = gradient of ``b_ih`` and of
        ``b_hh`` alike).
    dh0, dc0 : (B, H) gradients w.r.t. the initial states, sorted order.
    """
    walker = cache.walker
    dtype = cache.x.dtype
    num_rows, hidden_size = cache.hidden.shape
    batch = walker.layout.batch_size
    peephole = cache.peephole
    coupled = cache.coupled
    num_gates = cache.gates.shape[0]
    steps = fused_steps(dtype, fused)

    # dh_{t-1} and dc_{t-1} carried to the next step BPTT visits (rows it continues into);
    # rows nothing carries into hold a sequence's final state and take d_h_n, d_c_n.
    carried_h = np.empty((batch, hidden_size), dtype=dtype)
    carried_c = np.empty((batch, hidden_size), dtype=dtype)
    dh0 = np.zeros((batch, hidden_size), dtype=dtype)
    dc0 = np.zeros((batch, hidden_size), dtype=dtype)
    d_gates = np.empty((num_rows, num_gates * hidden_size), dtype=dtype)  # weights' gate order
    c_scratch = np.empty((batch, hidden_size), dtype=dtype)
    w_hh = cache.w_hh
    if steps is not None:
        half = dtype.type(0.5)
        fused_step = steps.lstm_backward_step(coupled, peephole is not None, d_hidden is not None)
        peep = c_scratch if peephole is None else peephole.astype(dtype, copy=False)
        output_grad = c_scratch if d_hidden is None else d_hidden  # not read without one
    # Every step's previous cell state: the NumPy factors and the peephole gradients use it.
    c_prev_all = None
    if steps is None or peephole is not None:
        c_prev_all = walker.previous_rows(cache.cell, cache.c0)
    if steps is None:
        numpy_step = _NumpyBackwardStep(cache, walker, c_prev_all)

    carried = 0
    for t in walker.steps_backward():
        start, stop, n = walker.rows(t)
        if carried < n:  # rows where a sequence's final state lives
            take_final(carried_h, d_h_n, carried, n)
            take_final(carried_c, d_c_n, carried, n)
        da = d_gates[start:stop]
        if steps is not None:
            c_prev = walker.previous(t, cache.cell, cache.c0, c_scratch)
            fused_step(
                cache.gates, start, n, output_grad, carried_h, carried_c, c_prev,
                cache.tanh_cell, peep, d_gates, half,
            )  # fmt: skip
        else:
            dh = carried_h[:n]
            if d_hidden is not None:
                dh += d_hidden[start:stop]
            numpy_step(start, stop, dh, carried_c[:n], da)
        walker.to_initial(t, carried_c, dc0)
        np.matmul(da, w_hh, out=carried_h[:n])  # dh_{t-1} = W_hhᵀ da
        walker.to_initial(t, carried_h, dh0)
        carried = walker.continued(t)

    w_ih_grad, w_hh_grad = weight_gradients(d_gates, cache.x, walker, cache.hidden, cache.h0)
    grads = {"w_ih": w_ih_grad, "w_hh": w_hh_grad, "bias": d_gates.sum(axis=0)}
    if peephole is not None:
        H = hidden_size
        grads["peephole"] = np.stack(
            [
                np.einsum("nh,nh->h", d_gates[:, :H], c_prev_all),
                np.einsum("nh,nh->h", d_gates[:, H : 2 * H], c_prev_all),
                np.einsum("nh,nh->h", d_gates[:, 3 * H :], cache.cell),
            ]
        )
    dx = d_gates @ cache.w_ih if need_dx else None
    return dx, grads, dh0, dc0


class _NumpyBackwardStep:
    """The reference element-wise part of a BPTT step, with the derivative factors that do not
    depend on the recurrence computed for all steps at once."""

    def __init__(self, cache: LSTMCache, walker: StepWalker, c_prev_all: np.ndarray):
        gates, tanh_cell = cache.gates, cache.tanh_cell
        self.coupled = cache.coupled
        self.peephole = cache.peephole
        out_gate = gates[-1]
        if self.coupled:
            in_gate, cand = gates[0], gates[1]
            self.forget_gate = 1 - in_gate  # dc_{t-1} = dc * f
            fac_i = (cand - c_prev_all) * in_gate * (1 - in_gate)
            self.fac_dc = (fac_i, in_gate * (1 - cand * cand))  # da_i, da_g = dc * fac
        else:
            in_gate, forget_gate, cand = gates[0], gates[1], gates[2]
            self.forget_gate = forget_gate
            self.fac_dc = (
                cand * in_gate * (1 - in_gate),  # da_i = dc * fac_i
                c_prev_all * forget_gate * (1 - forget_gate),  # da_f = dc * fac_f
                in_gate * (1 - cand * cand),  # da_g = dc * fac_g
            )
        self.fac_o = tanh_cell * out_gate * (1 - out_gate)  # da_o = dh * fac_o
        self.fac_c = out_gate * (1 - tanh_cell * tanh_cell)  # dc += dh * fac_c
        self.scratch = np.empty((walker.layout.batch_size, tanh_cell.shape[1]), tanh_cell.dtype)

    def __call__(self, start, stop, dh, dc, da):
        """``dh``, ``dc`` (n, H): the step's accumulated gradients; ``dc`` receives
        ``dc_{t-1}``; ``da`` (n, GH) receives the gate gradients."""
        n, hidden_size = dh.shape
        H = hidden_size
        blocks = [da[:, k * H : (k + 1) * H] for k in range(len(self.fac_dc) + 1)]
        tmp = self.scratch[:n]
        np.multiply(dh, self.fac_o[start:stop], out=blocks[-1])  # da_o
        np.multiply(dh, self.fac_c[start:stop], out=tmp)
        dc += tmp
        if self.peephole is not None:
            np.multiply(blocks[-1], self.peephole[2], out=tmp)
            dc += tmp
        for block, factor in zip(blocks[:-1], self.fac_dc, strict=True):
            np.multiply(dc, factor[start:stop], out=block)
        # dc_{t-1} = dc f (+ peephole terms), in place of dc
        dc *= self.forget_gate[start:stop]
        if self.peephole is not None:
            np.multiply(blocks[0], self.peephole[0], out=tmp)
            dc += tmp
            np.multiply(blocks[1], self.peephole[1], out=tmp)
            dc += tmp
