"""One direction of one coupled input-forget gate LSTM layer ("CIFG") over a packed batch.

The CIFG variant of Greff et al. (2017), "LSTM: A Search Space Odyssey": the forget gate is
not learned but tied to the input gate, ``f = 1 - i``, so a unit writes into its cell exactly as
much as it forgets of it. Three gate blocks instead of the LSTM's four (no forget-gate weights).

Notation
--------
``x_t`` input row, ``h_{t-1}``, ``c_{t-1}`` previous state, ``H`` hidden size; weights in
PyTorch's layout with the LSTM's gate order minus the forget gate, ``i, g, o``:
``W_ih (3H, I)``, ``W_hh (3H, H)``, ``b = b_ih + b_hh (3H,)``.

Equations
---------
    a   = W_ih x_t + W_hh h_{t-1} + b                     (3H,)  split a_i, a_g, a_o
    i   = σ(a_i)        f = 1 - i = σ(-a_i)                g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g  =  c_{t-1} + i ⊙ (g - c_{t-1})
    o   = σ(a_o)
    h_t = o ⊙ tanh(c_t)

BPTT (``dh``, ``dc`` include what flows back from step t+1 and from the output at t)
----
The input gate reaches ``c_t`` twice, as ``i`` and through ``f = 1 - i`` (``df/di = -1``):
``∂c_t/∂i = g + c_{t-1} · (-1) = g - c_{t-1}``. Hence

    da_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
    dc   = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t))
    di   = dc ⊙ g - dc ⊙ c_{t-1}  (the LSTM's di minus its df)
    da_i = dc ⊙ (g - c_{t-1}) ⊙ i(1-i)          da_g = dc ⊙ i ⊙ (1-g²)
    dc_{t-1} = dc ⊙ f = dc ⊙ (1 - i)
    dh_{t-1} = W_hhᵀ da          dW_hh = Σ_t da h_{t-1}ᵀ   dW_ih = Σ_t da x_tᵀ   db = Σ_t da

So a CIFG is an LSTM whose forget-gate pre-activation is ``-a_i`` (``σ(-x) = 1 - σ(x)``); its
input-gate gradient is that LSTM's ``da_i - da_f`` (checked in the tests, beside finite
differences).

Implementation
--------------
The same as :mod:`sparklstm.nn.lstm_kernel`, with three gates: gate pre-activations
gate-major, ``gates[k]`` an ``(N, H)`` matrix; all three activations through one ``tanh`` call
(the sigmoid rows of the weights pre-scaled by 1/2, ``σ(a) = (1 + tanh(a/2)) / 2``); one GEMM
per gate for the input projection of all steps and one per weight gradient over all rows; the
recurrence-free derivative factors computed for all steps before the backward loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrence import StepWalker, scaled_gate_weights

__all__ = ["CIFGCache", "cifg_forward", "cifg_backward", "CIFG_GATES"]

# Gate blocks of the weights, in order (the LSTM's i, f, g, o without f).
CIFG_GATES = ("i", "g", "o")
# Per-gate pre-scale for the single-tanh activation trick (gate order i, g, o).
_GATE_SCALE = (0.5, 1.0, 0.5)


@dataclass(frozen=True, eq=False)
class CIFGCache:
    """What :func:`cifg_backward` needs from the forward pass (never modified by backward)."""

    x: np.ndarray  # (N, I) input rows
    w_ih: np.ndarray  # (3H, I) unscaled
    w_hh: np.ndarray  # (3H, H) unscaled
    gates: np.ndarray  # (3, N, H) activated i, g, o
    cell: np.ndarray  # (N, H) c_t
    tanh_cell: np.ndarray  # (N, H) tanh(c_t)
    hidden: np.ndarray  # (N, H) h_t
    h0: np.ndarray  # (B, H) sorted order
    c0: np.ndarray  # (B, H) sorted order
    walker: StepWalker


def cifg_forward(
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray | None,
    h0: np.ndarray,
    c0: np.ndarray,
    layout: PackedLayout,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, CIFGCache]:
    """Run one CIFG direction over packed rows.

    Parameters
    ----------
    x : (N, I) packed input rows.
    w_ih, w_hh : (3H, I), (3H, H) weights, gate order i, g, o.
    bias : (3H,) combined bias ``b_ih + b_hh``, or None.
    h0, c0 : (B, H) initial state, sorted batch order.
    layout : the batch's :class:`PackedLayout`.
    reverse : process each sequence from its last valid step to its first.

    Returns
    -------
    hidden : (N, H) packed outputs ``h_t``.
    h_n, c_n : (B, H) final states, sorted batch order.
    cache : :class:`CIFGCache` for :func:`cifg_backward`.
    """
    dtype = x.dtype
    hidden_size = w_hh.shape[1]
    num_rows = x.shape[0]
    batch = layout.batch_size
    walker = StepWalker(layout, reverse)

    # Input projection of every step: one GEMM per gate, straight into the gate buffer.
    w_ih_gates = scaled_gate_weights(w_ih, hidden_size, _GATE_SCALE)  # (3, I, H)
    gates = np.empty((3, num_rows, hidden_size), dtype=dtype)
    for k in range(3):
        np.matmul(x, w_ih_gates[k], out=gates[k])
    if bias is not None:
        scale = np.asarray(_GATE_SCALE, dtype=dtype).reshape(3, 1, 1)
        gates += bias.reshape(3, 1, hidden_size) * scale
    # Recurrent weights as one (H, 3H) matrix whose output columns are gate-major.
    w_hh_gates = scaled_gate_weights(w_hh, hidden_size, _GATE_SCALE)
    w_hh_t = np.ascontiguousarray(w_hh_gates.transpose(1, 0, 2))
    w_hh_t = w_hh_t.reshape(hidden_size, 3 * hidden_size)

    cell = np.empty((num_rows, hidden_size), dtype=dtype)
    tanh_cell = np.empty((num_rows, hidden_size), dtype=dtype)
    hidden = np.empty((num_rows, hidden_size), dtype=dtype)
    recurrent = np.empty((batch, 3 * hidden_size), dtype=dtype)
    product = np.empty((batch, hidden_size), dtype=dtype)
    h_scratch = np.empty((batch, hidden_size), dtype=dtype)
    c_scratch = np.empty((batch, hidden_size), dtype=dtype)

    for t in walker.steps():
        start, stop, n = walker.rows(t)
        h_prev = walker.previous(t, hidden, h0, h_scratch)
        c_prev = walker.previous(t, cell, c0, c_scratch)
        pre = gates[:, start:stop]  # (3, n, H) view, each gate contiguous
        rec = recurrent[:n]
        np.matmul(h_prev, w_hh_t, out=rec)  # (n, 3H) = h_{t-1} W_hhᵀ, gate-major columns
        pre += rec.reshape(n, 3, hidden_size).transpose(1, 0, 2)
        np.tanh(pre, out=pre)
        sig = pre[::2]  # i and o: σ(a) = (1 + tanh(a/2)) / 2
        sig *= 0.5
        sig += 0.5
        in_gate, cand, out_gate = pre
        # c_t = c_{t-1} + i (g - c_{t-1}), i.e. (1 - i) c_{t-1} + i g
        diff = product[:n]
        np.subtract(cand, c_prev, out=diff)
        diff *= in_gate
        c_t = cell[start:stop]
        np.add(c_prev, diff, out=c_t)
        tc = tanh_cell[start:stop]
        np.tanh(c_t, out=tc)
        np.multiply(out_gate, tc, out=hidden[start:stop])

    final = walker.final_rows()
    cache = CIFGCache(x, w_ih, w_hh, gates, cell, tanh_cell, hidden, h0, c0, walker)
    return hidden, hidden[final], cell[final], cache


def cifg_backward(
    d_hidden: np.ndarray | None,
    d_h_n: np.ndarray | None,
    d_c_n: np.ndarray | None,
    cache: CIFGCache,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """BPTT through one CIFG direction.

    Parameters
    ----------
    d_hidden : (N, H) gradient w.r.t. the packed outputs, or None.
    d_h_n, d_c_n : (B, H) gradients w.r.t. the final states (sorted order), or None.
    cache : from :func:`cifg_forward`.

    Returns
    -------
    dx : (N, I) gradient w.r.t. the input rows.
    grads : ``{"w_ih", "w_hh", "bias"}`` (bias = gradient of ``b_ih`` and of ``b_hh`` alike).
    dh0, dc0 : (B, H) gradients w.r.t. the initial states, sorted order.
    """
    walker = cache.walker
    layout = walker.layout
    dtype = cache.x.dtype
    num_rows, hidden_size = cache.hidden.shape
    batch = layout.batch_size
    in_gate, cand, out_gate = cache.gates
    tanh_cell = cache.tanh_cell

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
    fac_i = (cand - c_prev_all) * in_gate * (1 - in_gate)  # da_i = dc * fac_i
    fac_g = in_gate * (1 - cand * cand)  # da_g = dc * fac_g
    forget_gate = 1 - in_gate  # dc_{t-1} = dc * f

    d_gates = np.empty((num_rows, 3 * hidden_size), dtype=dtype)  # da, gate order i, g, o
    d_prev = np.empty((batch, hidden_size), dtype=dtype)
    scratch = np.empty((batch, hidden_size), dtype=dtype)
    w_hh = cache.w_hh
    H = hidden_size

    for t in walker.steps_backward():
        start, stop, n = walker.rows(t)
        dh = d_h[start:stop]
        dc = d_c[start:stop]
        da = d_gates[start:stop]
        da_i, da_g, da_o = da[:, :H], da[:, H : 2 * H], da[:, 2 * H :]
        tmp = scratch[:n]
        np.multiply(dh, fac_o[start:stop], out=da_o)
        np.multiply(dh, fac_c[start:stop], out=tmp)
        dc += tmp
        np.multiply(dc, fac_i[start:stop], out=da_i)
        np.multiply(dc, fac_g[start:stop], out=da_g)
        # dc_{t-1} = dc (1 - i)
        dcp = d_prev[:n]
        np.multiply(dc, forget_gate[start:stop], out=dcp)
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
    dx = d_gates @ cache.w_ih if need_dx else None  # only when needed (see lstm_backward)
    return dx, grads, dh0, dc0
