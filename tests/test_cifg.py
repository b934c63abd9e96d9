"""The coupled input-forget gate LSTM layer (CIFG, f = 1 - i): its equations against a plain
reference, float64 finite-difference gradients (stacked, bidirectional, padded, initial
states, dropout), padding without effect, the parameter count, the forget bias, and its
equality with an LSTM whose forget-gate pre-activation is the negated input-gate one."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.model.config import CELLS
from sparklstm.nn import CIFG, LSTM, make_stack
from sparklstm.nn.recurrent import STACK_CELLS
from tests.gradcheck import check_gradients, numerical_gradient, relative_error


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def cifg_sequence(x, w_ih, w_hh, b_ih, b_hh, h, c):
    """Straight from the equations, one step and one sequence at a time: x (T, I)."""
    H = w_hh.shape[1]
    outputs = []
    for x_t in x:
        a = w_ih @ x_t + w_hh @ h + b_ih + b_hh
        i, g, o = sigmoid(a[:H]), np.tanh(a[H : 2 * H]), sigmoid(a[2 * H :])
        f = 1.0 - i
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.array(outputs), h, c


def stacked_reference(params, x, num_layers, bidirectional, hidden):
    """The stack on one unpadded sequence, zero initial state: outputs, h_n, c_n."""
    layer_input, h_n, c_n = x, [], []
    for layer in range(num_layers):
        outs = []
        for direction in range(2 if bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            seq = layer_input[::-1] if direction else layer_input
            out, h, c = cifg_sequence(
                seq,
                params[f"weight_ih{sfx}"],
                params[f"weight_hh{sfx}"],
                params[f"bias_ih{sfx}"],
                params[f"bias_hh{sfx}"],
                np.zeros(hidden),
                np.zeros(hidden),
            )
            outs.append(out[::-1] if direction else out)
            h_n.append(h)
            c_n.append(c)
        layer_input = np.concatenate(outs, axis=1)
    return layer_input, np.array(h_n), np.array(c_n)


def random_cifg(bidirectional, num_layers=2, input_size=3, hidden=4, seed=0, **kw):
    layer = CIFG(
        input_size,
        hidden,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=np.float64,
        rng=seed,
        **kw,
    )
    rng = np.random.default_rng(seed + 100)
    for value in layer.params.values():
        value[...] = rng.normal(scale=0.5, size=value.shape)
    return layer


def tied_lstm(cifg: CIFG) -> LSTM:
    """An LSTM with the CIFG's weights whose forget-gate rows are the negated input-gate rows,
    so its forget-gate pre-activation is ``-a_i`` and ``f = σ(-a_i) = 1 - i``."""
    lstm = LSTM(
        cifg.input_size,
        cifg.hidden_size,
        num_layers=cifg.num_layers,
        bidirectional=cifg.bidirectional,
        dtype=cifg.dtype,
        rng=0,
    )
    H = cifg.hidden_size
    state = {}
    for name, value in cifg.params.items():
        i, g, o = value[:H], value[H : 2 * H], value[2 * H :]
        state[name] = np.concatenate([i, -i, g, o])
    lstm.load_state_dict(state)
    return lstm


def cifg_grads_from_lstm(lstm_grads: dict, hidden: int) -> dict:
    """The chain rule through the tie: a CIFG input-gate entry acts as the LSTM's input-gate
    entry and, negated, as its forget-gate entry, so its gradient is ``d_i - d_f``."""
    H = hidden
    out = {}
    for name, value in lstm_grads.items():
        i, f, g, o = value[:H], value[H : 2 * H], value[2 * H : 3 * H], value[3 * H :]
        out[name] = np.concatenate([i - f, g, o])
    return out


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padded_batch_equals_the_equations_one_sequence_at_a_time(bidirectional):
    layer = random_cifg(bidirectional)
    rng = np.random.default_rng(1)
    lengths = np.array([6, 2, 4, 6, 1, 3])
    x = rng.normal(size=(6, 7, 3))
    x[np.arange(7)[None, :] >= lengths[:, None]] = 1e3  # garbage in the padding must not matter
    out, (h_n, c_n) = layer.forward(x, lengths)
    for b, length in enumerate(lengths):
        ref_out, ref_h, ref_c = stacked_reference(layer.params, x[b, :length], 2, bidirectional, 4)
        np.testing.assert_allclose(out[b, :length], ref_out, rtol=0, atol=1e-12)
        assert np.all(out[b, length:] == 0)
        np.testing.assert_allclose(h_n[:, b], ref_h, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c_n[:, b], ref_c, rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2], ids=["one-layer", "stacked"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_gradients_match_finite_differences(bidirectional, num_layers):
    layer = random_cifg(bidirectional, num_layers=num_layers)
    rng = np.random.default_rng(2)
    lengths = np.array([5, 2, 5, 3, 1])  # padded rows: the checks include the padding
    x = rng.normal(size=(5, 5, 3))
    w_out = rng.normal(size=(5, 5, layer.output_size))
    n_states = num_layers * (2 if bidirectional else 1)
    w_h, w_c = rng.normal(size=(2, n_states, 5, 4))
    h0, c0 = rng.normal(size=(2, n_states, 5, 4))

    def loss():
        out, (h, c) = layer.forward(x, lengths, state=(h0, c0))
        return (out * w_out).sum() + (h * w_h).sum() + (c * w_c).sum()

    loss()
    dx = layer.backward(w_out, (w_h, w_c))
    errors = check_gradients(loss, layer.params, layer.grads, max_entries=None)
    assert len(errors) == 4 * n_states
    _, numeric = numerical_gradient(loss, x)
    assert relative_error(numeric, dx.reshape(-1)) < 1e-6
    assert np.all(dx[np.arange(5)[None, :] >= lengths[:, None]] == 0)
    dh0, dc0 = layer.state_grads
    _, numeric = numerical_gradient(loss, h0)
    assert relative_error(numeric, dh0.reshape(-1)) < 1e-6
    _, numeric = numerical_gradient(loss, c0)
    assert relative_error(numeric, dc0.reshape(-1)) < 1e-6


def test_gradients_with_a_fixed_dropout_mask_between_layers():
    layer = random_cifg(bidirectional=True, num_layers=3, dropout=0.3)
    x = np.random.default_rng(4).normal(size=(3, 4, 3))
    w = np.random.default_rng(5).normal(size=(3, 4, 8))

    def loss():
        out, _ = layer.forward(x, [4, 2, 3], rng=np.random.default_rng(11))
        return (out * w).sum()

    loss()
    layer.backward(w)
    check_gradients(loss, layer.params, layer.grads, max_entries=20)
    with_dropout = loss()
    layer.training = False  # the mask really was applied: without it the loss differs
    assert not np.isclose(loss(), with_dropout)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_leaves_outputs_and_gradients_bit_identical(bidirectional):
    layer = random_cifg(bidirectional)
    rng = np.random.default_rng(3)
    lengths = np.array([4, 2, 3])
    x = rng.normal(size=(3, 4, 3))
    d_out = rng.normal(size=(3, 4, layer.output_size))
    d_state = tuple(rng.normal(size=(2, 4 if bidirectional else 2, 3, 4)))
    out, state = layer.forward(x, lengths)
    dx = layer.backward(d_out, d_state)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    # Three more time steps, and garbage in every padded input and upstream gradient.
    pad = np.arange(7)[None, :] >= lengths[:, None]
    x_wide = rng.normal(size=(3, 7, 3)) * 100
    d_wide = rng.normal(size=(3, 7, layer.output_size)) * 100
    x_wide[~pad], d_wide[~pad] = x[~pad[:, :4]], d_out[~pad[:, :4]]
    out_wide, state_wide = layer.forward(x_wide, lengths)
    dx_wide = layer.backward(d_wide, d_state)
    np.testing.assert_array_equal(out_wide[:, :4], out)
    assert np.all(out_wide[pad] == 0)
    for a, b in zip(state_wide, state, strict=True):
        np.testing.assert_array_equal(a, b)
    for key, value in grads.items():
        np.testing.assert_array_equal(layer.grads[key], value, err_msg=key)
    np.testing.assert_array_equal(dx_wide[:, :4], dx)
    assert np.all(dx_wide[pad] == 0)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_equals_an_lstm_whose_forget_gate_is_the_negated_input_gate(bidirectional):
    cifg = random_cifg(bidirectional, num_layers=2)
    lstm = tied_lstm(cifg)
    rng = np.random.default_rng(6)
    lengths = np.array([5, 3, 1, 4])
    x = rng.normal(size=(4, 5, 3))
    n_states = 2 * (2 if bidirectional else 1)
    state = tuple(rng.normal(size=(2, n_states, 4, 4)))
    d_out = rng.normal(size=(4, 5, cifg.output_size))
    d_state = tuple(rng.normal(size=(2, n_states, 4, 4)))

    out_c, (h_c, c_c) = cifg.forward(x, lengths, state=state)
    out_l, (h_l, c_l) = lstm.forward(x, lengths, state=state)
    np.testing.assert_allclose(out_c, out_l, rtol=0, atol=1e-13)
    np.testing.assert_allclose(h_c, h_l, rtol=0, atol=1e-13)
    np.testing.assert_allclose(c_c, c_l, rtol=0, atol=1e-13)
    assert np.abs(out_c).max() > 0.1  # not a comparison of zeros

    dx_c = cifg.backward(d_out, d_state)
    dx_l = lstm.backward(d_out, d_state)
    np.testing.assert_allclose(dx_c, dx_l, rtol=0, atol=1e-12)
    for got, expected in zip(cifg.state_grads, lstm.state_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    expected = cifg_grads_from_lstm(lstm.grads, 4)
    for name, value in cifg.grads.items():
        np.testing.assert_allclose(value, expected[name], rtol=0, atol=1e-12, err_msg=name)


def test_parameter_names_shapes_and_count():
    X, H = 10, 20
    layer = CIFG(X, H, num_layers=2, bidirectional=True, rng=0)
    expected = {
        "weight_ih_l0": (3 * H, X),
        "weight_hh_l0": (3 * H, H),
        "bias_ih_l0": (3 * H,),
        "bias_hh_l0": (3 * H,),
        "weight_ih_l0_reverse": (3 * H, X),
        "weight_ih_l1": (3 * H, 2 * H),
        "weight_hh_l1_reverse": (3 * H, H),
        "bias_hh_l1_reverse": (3 * H,),
    }
    for name, shape in expected.items():
        assert layer.params[name].shape == shape
    assert len(layer.params) == 2 * 2 * 4 and set(layer.grads) == set(layer.params)
    # 3((I_k + H)H + 2H) per direction and layer (two biases); 3((I_k + H)H + H) with one.
    count = 2 * 3 * ((X + H) * H + 2 * H) + 2 * 3 * ((2 * H + H) * H + 2 * H)
    assert layer.num_parameters() == count == 2 * (3 * 20 * 30 + 120) + 2 * (3 * 20 * 60 + 120)
    assert layer.num_parameters(effective=True) == count - 4 * 3 * H
    one = CIFG(X, H, rng=0)
    assert one.num_parameters() == 3 * ((X + H) * H + 2 * H) == 1920
    assert one.num_parameters(effective=True) == 3 * ((X + H) * H + H) == 1860
    # Three quarters of the LSTM's, which has one more gate block.
    lstm = LSTM(X, H, num_layers=2, bidirectional=True, rng=0)
    assert 4 * layer.num_parameters() == 3 * lstm.num_parameters()


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_forget_bias_makes_f_start_at_sigmoid_of_it_as_in_the_lstm(forget_bias):
    H = 6
    cifg = CIFG(2, H, forget_bias=forget_bias, rng=0, dtype=np.float64)
    lstm = LSTM(2, H, forget_bias=forget_bias, rng=0, dtype=np.float64)
    bias = cifg.params["bias_ih_l0"] + cifg.params["bias_hh_l0"]
    np.testing.assert_array_equal(bias, np.r_[np.full(H, -forget_bias), np.zeros(2 * H)])
    # Zero input and h0, c0 = 1: a = b, g = tanh(0) = 0, so c_1 = f * 1 + i * 0 = f.
    x = np.zeros((1, 1, 2))
    ones = np.ones((1, 1, H))
    _, (_, c_cifg) = cifg.forward(x, state=(np.zeros((1, 1, H)), ones))
    _, (_, c_lstm) = lstm.forward(x, state=(np.zeros((1, 1, H)), ones))
    np.testing.assert_allclose(c_cifg, sigmoid(forget_bias), rtol=1e-15)
    np.testing.assert_allclose(c_lstm, c_cifg, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    layer = CIFG(3, 5, num_layers=2, bidirectional=True, dtype=dtype, rng=0)
    out, (h, c) = layer.forward(np.ones((2, 4, 3)), [4, 2])
    assert out.dtype == dtype and h.dtype == dtype and c.dtype == dtype
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and all(g.dtype == dtype for g in layer.grads.values())


def test_float32_matches_float64():
    c32 = CIFG(3, 8, num_layers=2, bidirectional=True, dtype=np.float32, rng=0)
    c64 = CIFG(3, 8, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    c64.load_state_dict(c32.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 9, 3))
    out32, _ = c32.forward(x, [9, 3, 5, 9])
    out64, _ = c64.forward(x, [9, 3, 5, 9])
    np.testing.assert_allclose(out32, out64, atol=2e-6)
    assert np.abs(out64).max() > 0.05


def test_initialisation_is_per_gate_and_seeded():
    layer = CIFG(16, 32, rng=0)
    H = 32
    w_hh = layer.params["weight_hh_l0"]
    for k in range(3):  # each gate's recurrent block is orthogonal
        block = w_hh[k * H : (k + 1) * H].astype(np.float64)
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
    assert not np.allclose(w_hh[:H], w_hh[H : 2 * H])
    same = CIFG(16, 32, rng=0).params["weight_ih_l0"]
    assert np.array_equal(same, layer.params["weight_ih_l0"])
    assert not np.array_equal(CIFG(16, 32, rng=1).params["weight_ih_l0"], same)


def test_make_stack_builds_every_cell_the_config_names():
    assert CELLS == STACK_CELLS and "cifg" in CELLS
    kinds = {cell: make_stack(cell, 3, 4, bidirectional=True, rng=0) for cell in CELLS}
    assert type(kinds["cifg"]) is CIFG and kinds["cifg"].params["weight_ih_l0"].shape == (12, 3)
    assert type(kinds["peephole"]) is LSTM and kinds["peephole"].peephole
    assert type(kinds["lstm"]) is LSTM and not kinds["lstm"].peephole
    assert kinds["gru"].cell == "gru"
    with pytest.raises(ValueError, match="cell must be one of .*'cifg'.*, got 'rnn'"):
        make_stack("rnn", 3, 4)


def test_bad_state_is_rejected_with_a_clear_message():
    layer = CIFG(3, 4, rng=0)
    with pytest.raises(TypeError, match="state must be a tuple \\(h, c\\) for CIFG"):
        layer.forward(np.ones((2, 3, 3)), state=np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="state \\(c\\) must have shape"):
        layer.forward(np.ones((2, 3, 3)), state=(np.zeros((1, 2, 4)), np.zeros((1, 2, 5))))
