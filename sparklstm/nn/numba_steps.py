"""The element-wise part of one recurrent step, fused into one compiled loop (numba).

Optional (``pip install 'sparklstm[fast]'``): :mod:`sparklstm.nn.fused` decides whether these
run; the NumPy code in the kernels is the reference they are tested against. Each function does,
in one pass over a step's ``(n, H)`` block, what the NumPy path does in 10-15 separate calls
(gate activations, cell update, output; or all the gate derivatives of BPTT), so the block stays
in registers instead of being written and read back once per operation. The equations are those
in the docstrings of :mod:`sparklstm.nn.lstm_kernel` and :mod:`sparklstm.nn.gru_kernel`; the
arrays are the kernels' own buffers (packed rows, gate-major ``(G, N, H)`` gate buffers,
``(N, G*H)`` gate gradients in the weights' gate order), passed whole with the step's first row.

``tanh``
    NumPy's ``tanh`` is vectorised (SIMD); a compiled scalar ``math.tanh`` is a libm call per
    element, about 8x slower. So the compiled loops use their own ``tanh`` that LLVM vectorises:
    ``tanh(x) = sign(x) e / (e + 2)`` with ``e = expm1(2|x|)``, and ``expm1`` from the reduction
    ``2|x| = k ln 2 + r`` (``|r| <= ln 2 / 2``, Cody-Waite split of ``ln 2``), a Taylor
    polynomial for ``expm1(r)`` and ``expm1(2|x|) = 2^k expm1(r) + (2^k - 1)``. ``2^k`` is built
    from the bits of ``k`` by multiplications (no bit casts, so the loop stays vectorisable).
    The polynomial has 12 terms in float64 (relative error below 1e-15) and 7 in float32; for
    ``|x|`` beyond 22 (float64) or 9 (float32) the result is ``±1``, as exact arithmetic rounds it.
    The sigmoid gates use ``σ(a) = (1 + tanh(a/2)) / 2`` with the weights pre-scaled by 1/2, as
    the NumPy path does.

No ``fastmath``: the Cody-Waite split needs the additions in the order written. The loops
vectorise anyway (no reductions); ``error_model="numpy"`` removes the division-by-zero checks
that would otherwise keep them scalar.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

__all__ = [
    "fast_tanh_array",
    "gru_backward_step",
    "gru_forward_step",
    "lstm_backward_step",
    "lstm_forward_step",
]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


def fast_tanh(x):  # pragma: no cover - replaced by the overload inside compiled code
    raise NotImplementedError


def _tanh64(x):
    a = abs(x)
    a = 22.0 if a > 22.0 else a  # tanh(22) rounds to 1 in float64; NaN stays NaN
    y = 2.0 * a
    k = np.floor(y * 1.4426950408889634 + 0.5)
    r = y - k * 0.6931471803691238  # ln 2, high part (exact product with k <= 64)
    r = r - k * 1.9082149292705877e-10  # ln 2, low part
    # expm1(r) for |r| <= ln2/2: r + r^2/2! + ... + r^13/13!
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    em1_r = r + r * r * p
    # 2^k for 0 <= k <= 64, from k's bits.
    ki = np.int64(k)
    scale = 1.0
    scale *= 2.0 if (ki & 1) else 1.0
    scale *= 4.0 if (ki & 2) else 1.0
    scale *= 16.0 if (ki & 4) else 1.0
    scale *= 256.0 if (ki & 8) else 1.0
    scale *= 65536.0 if (ki & 16) else 1.0
    scale *= 4294967296.0 if (ki & 32) else 1.0
    scale *= 1.8446744073709552e19 if (ki & 64) else 1.0
    em1 = scale * em1_r + (scale - 1.0)
    t = em1 / (em1 + 2.0)
    return t if x >= 0.0 else -t


def _tanh32(x):
    # A rational minimax approximation (degree 13 / 6, the coefficients Eigen uses for its
    # float tanh), clamped where float32 tanh rounds to ±1: about 14 multiply-adds and one
    # division, less than half the work of the expm1 route, within a few ulp.
    a = np.float32(7.90531110763549805) if x > np.float32(7.90531110763549805) else x
    a = np.float32(-7.90531110763549805) if a < np.float32(-7.90531110763549805) else a
    a2 = a * a
    p = np.float32(-2.76076847742355e-16)
    p = p * a2 + np.float32(2.00018790482477e-13)
    p = p * a2 + np.float32(-8.60467152213735e-11)
    p = p * a2 + np.float32(5.12229709037114e-08)
    p = p * a2 + np.float32(1.48572235717979e-05)
    p = p * a2 + np.float32(6.37261928875436e-04)
    p = p * a2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * a2 + np.float32(1.18534705686654e-04)
    q = q * a2 + np.float32(2.26843463243900e-03)
    q = q * a2 + np.float32(4.89352518554385e-03)
    return a * p / q


@overload(fast_tanh, jit_options=dict(error_model="numpy"))
def _fast_tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh32
    if isinstance(x, types.Float):
        return _tanh64
    return None


@njit(**_JIT)
def fast_tanh_array(values, out):
    """``out[...] = tanh(values)`` with the compiled ``tanh`` (both 1-D); for the tests."""
    for j in range(values.shape[0]):
        out[j] = fast_tanh(values[j])


def lstm_forward_step(coupled: bool, has_peephole: bool):
    """The compiled forward step of one LSTM variant (the flags are compile-time constants:
    a branch inside the loop would keep LLVM from vectorising it)."""
    return _LSTM_FORWARD[(coupled, has_peephole)]


def lstm_backward_step(coupled: bool, has_peephole: bool, has_output_grad: bool):
    """The compiled BPTT step of one LSTM variant (see :func:`lstm_forward_step`)."""
    return _LSTM_BACKWARD[(coupled, has_peephole, has_output_grad)]


def _make_lstm_forward(coupled, has_peephole):
    @njit(**_JIT)
    def step(gates, start, n, rec, bias, c_prev, peephole, cell, tanh_cell, hidden, half):
        """One step's activations, cell update and output. ``gates`` (G, N, H) holds the
        input projections (sigmoid gates pre-scaled by 1/2) in rows ``start:start+n`` and
        receives the activated gates there; ``rec`` (n, G*H) is ``h_{t-1} W_hhᵀ`` and
        ``bias`` (G, H) the summed biases (same scaling); ``c_prev`` (n, H); ``peephole``
        (3, H) unscaled (read only with peepholes). Coupled: gates ``i, g, o`` and
        ``f = 1 - i``; otherwise ``i, f, g, o``."""
        H = cell.shape[1]
        one = half + half
        for r in range(n):
            row = start + r
            # One 1-D view per gate and row: LLVM vectorises the inner loop only when every
            # array it writes is a distinct view (offsets into one row would need H-dependent
            # overlap checks it gives up on).
            gate_i = gates[0, row]
            bias_i = bias[0]
            if coupled:
                gate_f = gates[0, row]  # unused
                gate_g, gate_o = gates[1, row], gates[2, row]
                rec_i, rec_f = rec[r, :H], rec[r, :H]
                rec_g, rec_o = rec[r, H : 2 * H], rec[r, 2 * H :]
                bias_f, bias_g, bias_o = bias[0], bias[1], bias[2]
            else:
                gate_f, gate_g, gate_o = gates[1, row], gates[2, row], gates[3, row]
                rec_i, rec_f = rec[r, :H], rec[r, H : 2 * H]
                rec_g, rec_o = rec[r, 2 * H : 3 * H], rec[r, 3 * H :]
                bias_f, bias_g, bias_o = bias[1], bias[2], bias[3]
            c_in, c_out, tc_out, h_out = c_prev[r], cell[row], tanh_cell[row], hidden[row]
            for j in range(H):
                cp = c_in[j]
                a_i = gate_i[j] + rec_i[j] + bias_i[j]
                if has_peephole:
                    a_i += half * peephole[0, j] * cp
                i = half + half * fast_tanh(a_i)
                if coupled:
                    f = one - i
                else:
                    a_f = gate_f[j] + rec_f[j] + bias_f[j]
                    if has_peephole:
                        a_f += half * peephole[1, j] * cp
                    f = half + half * fast_tanh(a_f)
                g = fast_tanh(gate_g[j] + rec_g[j] + bias_g[j])
                c = f * cp + i * g
                a_o = gate_o[j] + rec_o[j] + bias_o[j]
                if has_peephole:
                    a_o += half * peephole[2, j] * c
                o = half + half * fast_tanh(a_o)
                tc = fast_tanh(c)
                gate_i[j] = i
                if not coupled:
                    gate_f[j] = f
                gate_g[j] = g
                gate_o[j] = o
                c_out[j] = c
                tc_out[j] = tc
                h_out[j] = o * tc

    return step


def _make_lstm_backward(coupled, has_peephole, has_output_grad):
    @njit(**_JIT)
    def step(
        gates, start, n, d_hidden, carried_h, carried_c, c_prev, tanh_cell, peephole, d_gates,
        half,
    ):  # fmt: skip
        """One BPTT step up to the recurrent GEMM. ``dh`` is ``carried_h[r]`` (what step t+1
        sent back) plus ``d_hidden[start + r]`` (with an output gradient), ``dc`` is
        ``carried_c[r]``; the gate gradients go to ``d_gates[start:start+n]`` (columns in the
        weights' gate order) and ``dc_{t-1}`` replaces ``carried_c[:n]``."""
        H = tanh_cell.shape[1]
        one = half + half
        for r in range(n):
            row = start + r
            gate_i = gates[0, row]
            if coupled:
                gate_f = gates[0, row]  # unused
                gate_g, gate_o = gates[1, row], gates[2, row]
                da_i, da_f = d_gates[row, :H], d_gates[row, :H]
                da_g, da_o = d_gates[row, H : 2 * H], d_gates[row, 2 * H :]
            else:
                gate_f, gate_g, gate_o = gates[1, row], gates[2, row], gates[3, row]
                da_i, da_f = d_gates[row, :H], d_gates[row, H : 2 * H]
                da_g, da_o = d_gates[row, 2 * H : 3 * H], d_gates[row, 3 * H :]
            dh_in, dc_io = carried_h[r], carried_c[r]
            dh_out = d_hidden[row] if has_output_grad else carried_h[r]
            tc_in, c_in = tanh_cell[row], c_prev[r]
            for j in range(H):
                dh = dh_in[j]
                if has_output_grad:
                    dh += dh_out[j]
                tc = tc_in[j]
                cp = c_in[j]
                i = gate_i[j]
                g = gate_g[j]
                o = gate_o[j]
                f = one - i if coupled else gate_f[j]
                d_o = dh * tc * o * (one - o)
                dc = dc_io[j] + dh * o * (one - tc * tc)
                if has_peephole:
                    dc += peephole[2, j] * d_o
                da_g[j] = dc * i * (one - g * g)
                da_o[j] = d_o
                if coupled:
                    da_i[j] = dc * (g - cp) * i * (one - i)
                    dc_io[j] = dc * f
                else:
                    d_i = dc * g * i * (one - i)
                    d_f = dc * cp * f * (one - f)
                    da_i[j] = d_i
                    da_f[j] = d_f
                    dcp = dc * f
                    if has_peephole:
                        dcp += peephole[0, j] * d_i + peephole[1, j] * d_f
                    dc_io[j] = dcp

    return step


# (coupled, peephole) variants: the LSTM, the peephole LSTM and the CIFG (no peepholes).
_VARIANTS = ((False, False), (False, True), (True, False))
_LSTM_FORWARD = {flags: _make_lstm_forward(*flags) for flags in _VARIANTS}
_LSTM_BACKWARD = {
    (*flags, output): _make_lstm_backward(*flags, output)
    for flags in _VARIANTS
    for output in (False, True)
}


@njit(**_JIT)
def gru_forward_step(gates, start, n, rec, h_prev, b_hn, recurrent_n, hidden, half):
    """One GRU step: ``gates`` (3, N, H) holds the input projections (r, z pre-scaled by 1/2,
    biases folded in) and receives ``r, z, n``; ``rec`` (n, 3H) is ``h_{t-1} W_hhᵀ`` (same
    scaling); ``b_hn`` (H,) the recurrent bias of ``n`` (zeros without biases)."""
    H = hidden.shape[1]
    for r in range(n):
        row = start + r
        gate_r, gate_z, gate_n = gates[0, row], gates[1, row], gates[2, row]
        rec_r, rec_z, rec_n = rec[r, :H], rec[r, H : 2 * H], rec[r, 2 * H :]
        h_in, m_out, h_out = h_prev[r], recurrent_n[row], hidden[row]
        for j in range(H):
            reset = half + half * fast_tanh(gate_r[j] + rec_r[j])
            update = half + half * fast_tanh(gate_z[j] + rec_z[j])
            m = rec_n[j] + b_hn[j]
            cand = fast_tanh(gate_n[j] + reset * m)
            gate_r[j] = reset
            gate_z[j] = update
            gate_n[j] = cand
            m_out[j] = m
            h_out[j] = cand + update * (h_in[j] - cand)


@njit(**_JIT)
def gru_backward_step(gates, start, n, dh, h_prev_all, recurrent_n, d_pre, direct, half):
    """One step of GRU BPTT up to the recurrent GEMM: from the step's ``dh`` (n, H),
    ``[da_n, da_r, da_z, dm]`` into ``d_pre[start:start+n]`` and the direct part of
    ``dh_{t-1}`` (``dh ⊙ z``) into ``direct[:n]``; ``h_prev_all`` (N, H) holds every row's
    previous state."""
    H = dh.shape[1]
    one = half + half
    for r in range(n):
        row = start + r
        reset_in, update_in, cand_in = gates[0, row], gates[1, row], gates[2, row]
        d_n, d_r = d_pre[row, :H], d_pre[row, H : 2 * H]
        d_z, d_m = d_pre[row, 2 * H : 3 * H], d_pre[row, 3 * H :]
        dh_in, h_in, m_in, direct_out = dh[r], h_prev_all[row], recurrent_n[row], direct[r]
        for j in range(H):
            d = dh_in[j]
            reset = reset_in[j]
            update = update_in[j]
            cand = cand_in[j]
            da_n = d * (one - update) * (one - cand * cand)
            d_n[j] = da_n
            d_r[j] = da_n * m_in[j] * reset * (one - reset)
            d_z[j] = d * (h_in[j] - cand) * update * (one - update)
            d_m[j] = da_n * reset
            direct_out[j] = d * update
