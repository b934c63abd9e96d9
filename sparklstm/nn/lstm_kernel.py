"""One direction of one LSTM layer (optionally with peepholes) over a packed batch.

Notation
--------
``x_t`` input row, ``h_{t-1}``, ``c_{t-1}`` previous state, ``H`` hidden size; weights in
PyTorch's layout and gate order ``i, f, g, o``: ``W_ih (4H, I)``, ``W_hh (4H, H)``,
``b = b_ih + b_hh (4H,)``, peephole diagonals ``p_i, p_f, p_o (H,)``.

Equations (Hochreiter & Schmidhuber 1997 with forget gate; peepholes: Gers & Schmidhuber 2000)
---------
    a   = W_ih x_t + W_hh h_{t-1} + b                     (4H,)  split a_i, a_f, a_g, a_o
    i   = σ(a_i + p_i ⊙ c_{t-1})        f = σ(a_f + p_f ⊙ c_{t-1})        g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o   = σ(a_o + p_o ⊙ c_t)
    h_t = o ⊙ tanh(c_t)

BPTT (``dh``, ``dc`` include what flows back from step t+1 and from the output at t)
----
    da_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
    dc   = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t)) + p_o ⊙ da_o
    da_i = dc ⊙ g ⊙ i(1-i)      da_f = dc ⊙ c_{t-1} ⊙ f(1-f)      da_g = dc ⊙ i ⊙ (1-g²)
    dc_{t-1} = dc ⊙ f + p_i ⊙ da_i + p_f ⊙ da_f
    dh_{t-1} = W_hhᵀ da          dW_hh = Σ_t da h_{t-1}ᵀ   dW_ih = Σ_t da x_tᵀ   db = Σ_t da

(The reference design had ``dc`` wrong — ``o(1-g²)g dh`` — and swapped ``dh_{t-1}`` with
``dc_{t-1}``; these are the correct forms, checked by finite differences in the tests.)

Implementation
--------------
Gate pre-activations live gate-major, ``gates[k]`` an ``(N, H)`` matrix, so every elementwise
operation of a step works on contiguous blocks. All four activations go through one ``tanh``
call: the sigmoid rows of the weights are pre-scaled by 1/2 and ``σ(a) = (1 + tanh(a/2)) / 2``
(NumPy's tanh is faster than its exp on this hardware, and one call beats four). The input
projection of all steps is one GEMM per gate; all weight gradients are one GEMM each over all
rows; the derivative factors that do not depend on the recurrence are computed for all steps at
once before the backward loop, which is left with a handful of operations per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrence import StepWalker, scaled_gate_weights

__all__ = ["LSTMCache", "lstm_forward", "lstm_backward"]

# Per-gate pre-scale for the single-tanh activation trick (gate order i, f, g, o).
_GATE_SCALE = (0.5, 0.5, 1.0, 0.5)


@dataclass(frozen=True, eq=False)
class LSTMCache:
    """What :func:`lstm_backward` needs from the forward pass (never modified by backward)."""

    x: np.ndarray  # (N, I) input rows
    w_ih: np.ndarray  # (4H, I) unscaled
    w_hh: np.ndarray  # (4H, H) unscaled
    peephole: np.ndarray | None  # (3, H) rows p_i, p_f, p_o, unscaled
    gates: np.ndarray  # (4, N, H) activated i, f, g, o
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LSTMCache]:
    """Run one LSTM direction over packed rows.

    Parameters
    ----------
    x : (N, I) packed input rows.
    w_ih, w_hh : (4H, I), (4H, H) weights, gate order i, f, g, o.
    bias : (4H,) combined bias ``b_ih + b_hh``, or None.
    peephole : (3, H) diagonal peephole weights ``p_i, p_f, p_o``, or None.
    h0, c0 : (B, H) initial state, sorted batch order.
    layout : the batch's :class:`PackedLayout`.
    reverse : process each sequence from its last valid step to its first.

    Returns
    -------
    hidden : (N, H) packed outputs ``h_t``.
    h_n, c_n : (B, H) final states, sorted batch order.
    cache : :class:`LSTMCache` for :func:`lstm_backward`.
    """
    dtype = x.dtype
    hidden_size = w_hh.shape[1]
    num_rows = x.shape[0]
    batch = layout.batch_size
    walker = StepWalker(layout, reverse)

    # Input projection of every step: one GEMM per gate, straight into the gate buffer.
    w_ih_gates = scaled_gate_weights(w_ih, hidden_size, _GATE_SCALE)  # (4, I, H)
    gates = np.empty((4, num_rows, hidden_size), dtype=dtype)
    for k in range(4):
        np.matmul(x, w_ih_gates[k], out=gates[k])
    if bias is not None:
        scale = np.asarray(_GATE_SCALE, dtype=dtype).reshape(4, 1, 1)
        gates += bias.reshape(4, 1, hidden_size) * scale
    # Recurrent weights as one (H, 4H) matrix whose output columns are gate-major.
    w_hh_gates = scaled_gate_weights(w_hh, hidden_size, _GATE_SCALE)
    w_hh_t = np.ascontiguousarray(w_hh_gates.transpose(1, 0, 2))
    w_hh_t = w_hh_t.reshape(hidden_size, 4 * hidden_size)
    if peephole is not None:
        peep_if = (peephole[:2] * 0.5).reshape(2, 1, hidden_size).astype(dtype, copy=False)
        peep_o = (peephole[2] * 0.5).astype(dtype, copy=False)

    cell = np.empty((num_rows, hidden_size), dtype=dtype)
    tanh_cell = np.empty((num_rows, hidden_size), dtype=dtype)
    hidden = np.empty((num_rows, hidden_size), dtype=dtype)
    recurrent = np.empty((batch, 4 * hidden_size), dtype=dtype)
    product = np.empty((batch, hidden_size), dtype=dtype)
    peep_term = np.empty((2, batch, hidden_size), dtype=dtype) if peephole is not None else None
    h_scratch = np.empty((batch, hidden_size), dtype=dtype)
    c_scratch = np.empty((batch, hidden_size), dtype=dtype)

    for t in walker.steps():
        start, stop, n = walker.rows(t)
        h_prev = walker.previous(t, hidden, h0, h_scratch)
        c_prev = walker.previous(t, cell, c0, c_scratch)
        pre = gates[:, start:stop]  # (4, n, H) view, each gate contiguous
        rec = recurrent[:n]
        np.matmul(h_prev, w_hh_t, out=rec)  # (n, 4H) = h_{t-1} W_hhᵀ, gate-major columns
        pre += rec.reshape(n, 4, hidden_size).transpose(1, 0, 2)
        if peephole is None:
            np.tanh(pre, out=pre)
        else:
            np.multiply(c_prev, peep_if, out=peep_term[:, :n])
            pre[:2] += peep_term[:, :n]
            np.tanh(pre[:3], out=pre[:3])
        sig_if = pre[:2]
        sig_if *= 0.5
        sig_if += 0.5
        in_gate, forget_gate, cand, out_gate = pre
        c_t = cell[start:stop]
        np.multiply(forget_gate, c_prev, out=c_t)
        np.multiply(in_gate, cand, out=product[:n])
        c_t += product[:n]
        if peephole is not None:
            np.multiply(c_t, peep_o, out=product[:n])
            out_gate += product[:n]
            np.tanh(out_gate, out=out_gate)
        out_gate *= 0.5
        out_gate += 0.5
        tc = tanh_cell[start:stop]
        np.tanh(c_t, out=tc)
        np.multiply(out_gate, tc, out=hidden[start:stop])

    final = walker.final_rows()
    cache = LSTMCache(x, w_ih, w_hh, peephole, gates, cell, tanh_cell, hidden, h0, c0, walker)
    return hidden, hidden[final], cell[final], cache


def lstm_backward(
    d_hidden: np.ndarray | None,
    d_h_n: np.ndarray | None,
    d_c_n: np.ndarray | None,
    cache: LSTMCache,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """BPTT through one LSTM direction.

    Parameters
    ----------
    d_hidden : (N, H) gradient w.r.t. the packed outputs, or None.
    d_h_n, d_c_n : (B, H) gradients w.r.t. the final states (sorted order), or None.
    cache : from :func:`lstm_forward`.

    Returns
    -------
    dx : (N, I) gradient w.r.t. the input rows.
    grads : ``{"w_ih", "w_hh", "bias", "peephole"?}`` (bias = gradient of ``b_ih`` and of
        ``b_hh`` alike).
    dh0, dc0 : (B, H) gradients w.r.t. the initial states, sorted order.
    """
    walker = cache.walker
    layout = walker.layout
    dtype = cache.x.dtype
    num_rows, hidden_size = cache.hidden.shape
    batch = layout.batch_size
    in_gate, forget_gate, cand, out_gate = cache.gates
    tanh_cell = cache.tanh_cell
    peephole = cache.peephole

    # Gradient accumulators for h_t and c_t (outputs + what later steps send back).
    d_h = np.zeros((num_rows, hidden_size), dtype=dtype) if d_hidden is None else d_hidden.copy()
    d_c = np.zeros((num_rows, hidden_size), dtype=dtype)
    final = walker.final_rows()
    if d_h_n is not None:
        d_h[final] += d_h_n
    if d_c_n is not None:
        d_c[final] += d_c_n
    dh0 = np.zeros((batch, hidden_size), dtype=dtype)
    dc0 = np.zeros((batch, hidden_size), dtype=dtype)

    # Derivative factors that do not depend on the recurrence, for all steps at once.
    c_prev_all = walker.previous_rows(cache.cell, cache.c0)
    fac_o = tanh_cell * out_gate * (1 - out_gate)  # da_o = dh * fac_o
    fac_c = out_gate * (1 - tanh_cell * tanh_cell)  # dc += dh * fac_c
    fac_i = cand * in_gate * (1 - in_gate)  # da_i = dc * fac_i
    fac_f = c_prev_all * forget_gate * (1 - forget_gate)  # da_f = dc * fac_f
    fac_g = in_gate * (1 - cand * cand)  # da_g = dc * fac_g

    d_gates = np.empty((num_rows, 4 * hidden_size), dtype=dtype)  # da, torch gate order
    d_prev = np.empty((batch, hidden_size), dtype=dtype)
    scratch = np.empty((batch, hidden_size), dtype=dtype)
    w_hh = cache.w_hh
    H = hidden_size

    for t in walker.steps_backward():
        start, stop, n = walker.rows(t)
        dh = d_h[start:stop]
        dc = d_c[start:stop]
        da = d_gates[start:stop]
        da_i, da_f, da_g, da_o = da[:, :H], da[:, H : 2 * H], da[:, 2 * H : 3 * H], da[:, 3 * H :]
        tmp = scratch[:n]
        np.multiply(dh, fac_o[start:stop], out=da_o)
        np.multiply(dh, fac_c[start:stop], out=tmp)
        dc += tmp
        if peephole is not None:
            np.multiply(da_o, peephole[2], out=tmp)
            dc += tmp
        np.multiply(dc, fac_i[start:stop], out=da_i)
        np.multiply(dc, fac_f[start:stop], out=da_f)
        np.multiply(dc, fac_g[start:stop], out=da_g)
        # dc_{t-1} = dc f (+ peephole terms)
        dcp = d_prev[:n]
        np.multiply(dc, forget_gate[start:stop], out=dcp)
        if peephole is not None:
            np.multiply(da_i, peephole[0], out=tmp)
            dcp += tmp
            np.multiply(da_f, peephole[1], out=tmp)
            dcp += tmp
        walker.carry(t, dcp, d_c, dc0)
        # dh_{t-1} = W_hhᵀ da
        np.matmul(da, w_hh, out=d_prev[:n])
        walker.carry(t, d_prev[:n], d_h, dh0)

    h_prev_all = walker.previous_rows(cache.hidden, cache.h0)
    grads = {
        "w_ih": d_gates.T @ cache.x,
        "w_hh": d_gates.T @ h_prev_all,
        "bias": d_gates.sum(axis=0),
    }
    if peephole is not None:
        grads["peephole"] = np.stack(
            [
                np.einsum("nh,nh->h", d_gates[:, :H], c_prev_all),
                np.einsum("nh,nh->h", d_gates[:, H : 2 * H], c_prev_all),
                np.einsum("nh,nh->h", d_gates[:, 3 * H :], cache.cell),
            ]
        )
    # The input gradient (a GEMM as large as dW_ih) only when someone needs it: not for a
    # network's first layer reading float inputs.
    dx = d_gates @ cache.w_ih if need_dx else None
    return dx, grads, dh0, dc0
