"""One direction of one GRU layer over a packed batch (the ``torch.nn.GRU`` equations).

Notation
--------
Weights in PyTorch's layout and gate order ``r, z, n``: ``W_ih (3H, I)``, ``W_hh (3H, H)``,
``b_ih, b_hh (3H,)``.

Equations (Cho et al. 2014, in PyTorch's form with the reset gate applied after ``W_hn``)
---------
    r   = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z   = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    m   = W_hn h_{t-1} + b_hn
    n   = tanh(W_in x_t + b_in + r ⊙ m)
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

BPTT (``dh`` includes what flows back from step t+1 and from the output at t)
----
    da_n = dh ⊙ (1 - z) ⊙ (1 - n²)               (input-side n pre-activation)
    da_z = dh ⊙ (h_{t-1} - n) ⊙ z(1-z)
    da_r = da_n ⊙ m ⊙ r(1-r)
    dm   = da_n ⊙ r                               (recurrent-side n pre-activation)
    dh_{t-1} = dh ⊙ z + W_hhᵀ [da_r; da_z; dm]
    dW_ih = Σ [da_r; da_z; da_n] x_tᵀ     dW_hh = Σ [da_r; da_z; dm] h_{t-1}ᵀ

The layout tricks are those of :mod:`sparklstm.nn.lstm_kernel`: gate-major contiguous gate
blocks, one ``tanh`` for both sigmoid gates (pre-scaled by 1/2), GEMMs over all rows, the
element-wise part of a step compiled (:mod:`sparklstm.nn.numba_steps`) or in NumPy, and
``dh_{t-1}`` carried in a ``(B, H)`` buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.nn.fused import fused_steps
from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrence import StepWalker, scaled_gate_weights, take_final

__all__ = ["GRUCache", "gru_forward", "gru_backward"]

_GATE_SCALE = (0.5, 0.5, 1.0)


@dataclass(frozen=True, eq=False)
class GRUCache:
    """What :func:`gru_backward` needs from the forward pass (never modified by backward)."""

    x: np.ndarray  # (N, I)
    w_ih: np.ndarray  # (3H, I)
    w_hh: np.ndarray  # (3H, H)
    gates: np.ndarray  # (3, N, H) activated r, z, n
    recurrent_n: np.ndarray  # (N, H) m = W_hn h_{t-1} + b_hn
    hidden: np.ndarray  # (N, H)
    h0: np.ndarray  # (B, H) sorted order
    walker: StepWalker


def gru_forward(
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
    h0: np.ndarray,
    layout: PackedLayout,
    reverse: bool = False,
    fused: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, GRUCache]:
    """Run one GRU direction over packed rows.

    Parameters
    ----------
    x : (N, I) packed input rows.
    w_ih, w_hh : (3H, I), (3H, H), gate order r, z, n.
    b_ih, b_hh : (3H,) biases or None.
    h0 : (B, H) initial state, sorted batch order.
    layout, reverse : as in :func:`sparklstm.nn.lstm_kernel.lstm_forward`.

    Returns
    -------
    hidden : (N, H) packed outputs; h_n : (B, H) final state (sorted); cache.
    """
    dtype = x.dtype
    H = w_hh.shape[1]
    num_rows = x.shape[0]
    batch = layout.batch_size
    walker = StepWalker(layout, reverse)

    w_ih_gates = scaled_gate_weights(w_ih, H, _GATE_SCALE)
    gates = np.empty((3, num_rows, H), dtype=dtype)
    for k in range(3):
        np.matmul(x, w_ih_gates[k], out=gates[k])
    # r and z: both biases are plain additive terms, folded in here once for all steps.
    if b_ih is not None:
        bias_in = b_ih.reshape(3, 1, H).copy()
        if b_hh is not None:
            bias_in[:2] += b_hh.reshape(3, 1, H)[:2]
        bias_in[:2] *= 0.5
        gates += bias_in
    b_hn = None if b_hh is None else b_hh[2 * H :]
    w_hh_t = np.ascontiguousarray(scaled_gate_weights(w_hh, H, _GATE_SCALE).transpose(1, 0, 2))
    w_hh_t = w_hh_t.reshape(H, 3 * H)

    recurrent_n = np.empty((num_rows, H), dtype=dtype)
    hidden = np.empty((num_rows, H), dtype=dtype)
    recurrent = np.empty((batch, 3 * H), dtype=dtype)
    product = np.empty((batch, H), dtype=dtype)
    h_scratch = np.empty((batch, H), dtype=dtype)
    steps = fused_steps(dtype, fused)
    if steps is not None:
        half = dtype.type(0.5)
        b_hn_or_zero = np.zeros(H, dtype=dtype) if b_hn is None else b_hn.astype(dtype)

    for t in walker.steps():
        start, stop, n = walker.rows(t)
        h_prev = walker.previous(t, hidden, h0, h_scratch)
        rec = recurrent[:n]
        np.matmul(h_prev, w_hh_t, out=rec)  # (n, 3H), gate-major columns
        if steps is not None:
            steps.gru_forward_step(
                gates, start, n, rec, h_prev, b_hn_or_zero, recurrent_n, hidden, half
            )
            continue
        rec3 = rec.reshape(n, 3, H)
        pre_rz = gates[:2, start:stop]
        pre_rz += rec3[:, :2].transpose(1, 0, 2)
        np.tanh(pre_rz, out=pre_rz)
        pre_rz *= 0.5
        pre_rz += 0.5
        reset, update = pre_rz
        m = recurrent_n[start:stop]
        if b_hn is None:
            m[...] = rec3[:, 2]
        else:
            np.add(rec3[:, 2], b_hn, out=m)
        cand = gates[2, start:stop]
        np.multiply(reset, m, out=product[:n])
        cand += product[:n]
        np.tanh(cand, out=cand)
        # h_t = n + z (h_{t-1} - n)
        tmp = product[:n]
        np.subtract(h_prev, cand, out=tmp)
        tmp *= update
        np.add(cand, tmp, out=hidden[start:stop])

    final = walker.final_rows()
    cache = GRUCache(x, w_ih, w_hh, gates, recurrent_n, hidden, h0, walker)
    return hidden, hidden[final], cache


def gru_backward(
    d_hidden: np.ndarray | None,
    d_h_n: np.ndarray | None,
    cache: GRUCache,
    need_dx: bool = True,
    fused: bool | None = None,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray]:
    """BPTT through one GRU direction.

    Returns
    -------
    dx : (N, I) or None (``need_dx=False``); grads : ``{"w_ih", "w_hh", "b_ih", "b_hh"}``;
    dh0 : (B, H) sorted order.
    """
    walker = cache.walker
    dtype = cache.x.dtype
    num_rows, H = cache.hidden.shape
    batch = walker.layout.batch_size
    steps = fused_steps(dtype, fused)

    h_prev_all = walker.previous_rows(cache.hidden, cache.h0)
    if steps is None:
        reset, update, cand = cache.gates
        fac_n = (1 - update) * (1 - cand * cand)  # da_n = dh * fac_n
        fac_z = (h_prev_all - cand) * update * (1 - update)  # da_z = dh * fac_z
        fac_r = cache.recurrent_n * reset * (1 - reset)  # da_r = da_n * fac_r
    else:
        half = dtype.type(0.5)

    # dh_{t-1} carried to the next step BPTT visits (see lstm_backward).
    carried_h = np.empty((batch, H), dtype=dtype)
    direct = np.empty((batch, H), dtype=dtype)  # dh ⊙ z, the part that skips W_hh
    dh_step = np.empty((batch, H), dtype=dtype)
    # Pre-activation gradients [da_n, da_r, da_z, dm]: columns 0:3H feed dW_ih (gate order
    # n, r, z) and columns H:4H, [da_r, da_z, dm], feed dW_hh and dh_{t-1} (order r, z, n).
    d_pre = np.empty((num_rows, 4 * H), dtype=dtype)
    dh0 = np.zeros((batch, H), dtype=dtype)
    w_hh = cache.w_hh

    carried = 0
    for t in walker.steps_backward():
        start, stop, n = walker.rows(t)
        if carried < n:  # rows where a sequence's final state lives
            take_final(carried_h, d_h_n, carried, n)
        dh = carried_h[:n]
        if d_hidden is not None:
            dh += d_hidden[start:stop]
        block = d_pre[start:stop]
        if steps is not None:
            steps.gru_backward_step(
                cache.gates, start, n, dh, h_prev_all, cache.recurrent_n, d_pre, direct, half
            )
        else:
            da_n, da_r, da_z, dm = (block[:, k * H : (k + 1) * H] for k in range(4))
            np.multiply(dh, fac_n[start:stop], out=da_n)
            np.multiply(dh, fac_z[start:stop], out=da_z)
            np.multiply(da_n, fac_r[start:stop], out=da_r)
            np.multiply(da_n, reset[start:stop], out=dm)
            np.multiply(dh, update[start:stop], out=direct[:n])
        np.matmul(block[:, H:], w_hh, out=dh_step[:n])
        np.add(dh_step[:n], direct[:n], out=carried_h[:n])  # dh_{t-1}
        walker.to_initial(t, carried_h, dh0)
        carried = walker.continued(t)

    d_in, d_rec = d_pre[:, : 3 * H], d_pre[:, H:]
    w_ih_grad = d_in.T @ cache.x  # rows n, r, z
    sums = d_pre.sum(axis=0)
    grads = {
        "w_ih": np.concatenate([w_ih_grad[H:], w_ih_grad[:H]]),
        "w_hh": d_rec.T @ h_prev_all,
        "b_ih": np.concatenate([sums[H : 3 * H], sums[:H]]),
        "b_hh": sums[H:].copy(),
    }
    dx = None
    if need_dx:  # only when needed (see lstm_backward)
        w_ih = cache.w_ih
        dx = d_in @ np.concatenate([w_ih[2 * H :], w_ih[: 2 * H]])
    return dx, grads, dh0
