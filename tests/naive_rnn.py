"""A deliberately plain, one-sequence-at-a-time reference of the recurrent equations.

Written straight from the equations (PyTorch's conventions), with no batching, packing or
activation tricks, so the fast kernels can be compared with something obviously right.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def lstm_sequence(x, w_ih, w_hh, b_ih, b_hh, h, c, peephole=None):
    """x: (T, I); returns outputs (T, H), h_T, c_T."""
    H = w_hh.shape[1]
    outputs = []
    for x_t in x:
        a = w_ih @ x_t + w_hh @ h + b_ih + b_hh
        a_i, a_f, a_g, a_o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        if peephole is not None:
            a_i = a_i + peephole[0] * c
            a_f = a_f + peephole[1] * c
        i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
        c = f * c + i * g
        if peephole is not None:
            a_o = a_o + peephole[2] * c
        o = sigmoid(a_o)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.array(outputs), h, c


def gru_sequence(x, w_ih, w_hh, b_ih, b_hh, h):
    H = w_hh.shape[1]
    outputs = []
    for x_t in x:
        gi = w_ih @ x_t + b_ih
        gh = w_hh @ h + b_hh
        r = sigmoid(gi[:H] + gh[:H])
        z = sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.array(outputs), h


def stack_sequence(params, x, cell, num_layers, bidirectional, hidden_size, peephole=False):
    """Run a stacked (bi)directional network on one unpadded sequence ``x`` (T, I).

    Returns outputs (T, D*H) and final h (L*D, H) (and c for LSTM) with zero initial states.
    """
    directions = 2 if bidirectional else 1
    layer_input = x
    h_n, c_n = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(directions):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            seq = layer_input[::-1] if d == 1 else layer_input
            h0 = np.zeros(hidden_size)
            if cell == "lstm":
                peep = params[f"weight_peephole{sfx}"] if peephole else None
                out, h, c = lstm_sequence(
                    seq,
                    params[f"weight_ih{sfx}"],
                    params[f"weight_hh{sfx}"],
                    params[f"bias_ih{sfx}"],
                    params[f"bias_hh{sfx}"],
                    h0,
                    np.zeros(hidden_size),
                    peep,
                )
                c_n.append(c)
            else:
                out, h = gru_sequence(
                    seq,
                    params[f"weight_ih{sfx}"],
                    params[f"weight_hh{sfx}"],
                    params[f"bias_ih{sfx}"],
                    params[f"bias_hh{sfx}"],
                    h0,
                )
            h_n.append(h)
            outs.append(out[::-1] if d == 1 else out)
        layer_input = np.concatenate(outs, axis=1)
    return layer_input, np.array(h_n), (np.array(c_n) if cell == "lstm" else None)
