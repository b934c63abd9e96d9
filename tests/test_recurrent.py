"""The recurrent layers: equations, padding, gradients, state handling, torch-compatible names."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.nn import GRU, LSTM, PackedLayout
from tests.gradcheck import check_gradients, numerical_gradient, relative_error
from tests.naive_rnn import stack_sequence

CASES = [
    pytest.param(LSTM, "lstm", {}, id="lstm"),
    pytest.param(LSTM, "lstm", {"peephole": True}, id="peephole"),
    pytest.param(GRU, "gru", {}, id="gru"),
]


def _random_layer(cls, kw, bidirectional, num_layers=2, input_size=3, hidden=4, seed=0):
    layer = cls(
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


@pytest.mark.parametrize("cls,cell,kw", CASES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padded_batch_equals_sequences_one_at_a_time(cls, cell, kw, bidirectional):
    layer = _random_layer(cls, kw, bidirectional)
    rng = np.random.default_rng(1)
    lengths = np.array([6, 2, 4, 6, 1, 3])
    x = rng.normal(size=(6, 7, 3))
    x[np.arange(7)[None, :] >= lengths[:, None]] = 1e3  # garbage in the padding must not matter
    out, state = layer.forward(x, lengths)
    h_n = state[0] if cell == "lstm" else state
    for b, length in enumerate(lengths):
        ref_out, ref_h, ref_c = stack_sequence(
            layer.params,
            x[b, :length],
            cell,
            2,
            bidirectional,
            4,
            peephole=kw.get("peephole", False),
        )
        np.testing.assert_allclose(out[b, :length], ref_out, rtol=0, atol=1e-12)
        assert np.all(out[b, length:] == 0)
        np.testing.assert_allclose(h_n[:, b], ref_h, rtol=0, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(state[1][:, b], ref_c, rtol=0, atol=1e-12)
        # The same sequence alone, unpadded, gives the same numbers.
        alone, _ = layer.forward(x[b : b + 1, :length])
        np.testing.assert_allclose(alone[0], out[b, :length], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls,cell,kw", CASES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_gradients_match_finite_differences(cls, cell, kw, bidirectional):
    layer = _random_layer(cls, kw, bidirectional)
    rng = np.random.default_rng(2)
    lengths = np.array([5, 2, 5, 3, 1])
    x = rng.normal(size=(5, 5, 3))
    w_out = rng.normal(size=(5, 5, layer.output_size))
    n_states = 2 * (2 if bidirectional else 1)
    w_h = rng.normal(size=(n_states, 5, 4))
    w_c = rng.normal(size=(n_states, 5, 4))
    h0 = rng.normal(size=(n_states, 5, 4))
    c0 = rng.normal(size=(n_states, 5, 4))
    initial = (h0, c0) if cell == "lstm" else h0

    def loss():
        out, state = layer.forward(x, lengths, state=initial)
        h = state[0] if cell == "lstm" else state
        total = (out * w_out).sum() + (h * w_h).sum()
        if cell == "lstm":
            total += (state[1] * w_c).sum()
        return total

    loss()
    d_state = (w_h, w_c) if cell == "lstm" else w_h
    dx = layer.backward(w_out, d_state)
    check_gradients(loss, layer.params, layer.grads, max_entries=30)
    # Input gradient, including zero gradient at padded steps.
    _, numeric = numerical_gradient(loss, x)
    assert relative_error(numeric, dx.reshape(-1)) < 1e-6
    assert np.all(dx[np.arange(5)[None, :] >= lengths[:, None]] == 0)
    # Initial-state gradients.
    dh0 = layer.state_grads[0] if cell == "lstm" else layer.state_grads
    _, numeric = numerical_gradient(loss, h0)
    assert relative_error(numeric, dh0.reshape(-1)) < 1e-6
    if cell == "lstm":
        _, numeric = numerical_gradient(loss, c0)
        assert relative_error(numeric, layer.state_grads[1].reshape(-1)) < 1e-6


@pytest.mark.parametrize("cls,cell,kw", CASES)
def test_padded_steps_get_no_gradient_and_change_nothing(cls, cell, kw):
    layer = _random_layer(cls, kw, bidirectional=True, num_layers=1)
    rng = np.random.default_rng(3)
    lengths = np.array([4, 2, 3])
    x = rng.normal(size=(3, 6, 3))
    d_out = rng.normal(size=(3, 6, layer.output_size))
    layer.forward(x, lengths)
    layer.backward(d_out)
    grads_a = {k: v.copy() for k, v in layer.grads.items()}
    # Change the padded inputs and the upstream gradient at padded steps: nothing moves.
    pad = np.arange(6)[None, :] >= lengths[:, None]
    x2, d_out2 = x.copy(), d_out.copy()
    x2[pad] = rng.normal(size=x2[pad].shape) * 100
    d_out2[pad] = rng.normal(size=d_out2[pad].shape) * 100
    out2, _ = layer.forward(x2, lengths)
    layer.backward(d_out2)
    for key, value in grads_a.items():
        np.testing.assert_array_equal(layer.grads[key], value)
    assert np.all(out2[pad] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    layer = LSTM(3, 5, dtype=dtype, rng=0)
    out, (h, c) = layer.forward(np.ones((2, 4, 3)))
    assert out.dtype == dtype and h.dtype == dtype and c.dtype == dtype
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and all(g.dtype == dtype for g in layer.grads.values())


def test_float32_matches_float64():
    l32 = LSTM(3, 8, num_layers=2, bidirectional=True, dtype=np.float32, rng=0)
    l64 = LSTM(3, 8, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    l64.load_state_dict(l32.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 9, 3))
    out32, _ = l32.forward(x, [9, 3, 5, 9])
    out64, _ = l64.forward(x, [9, 3, 5, 9])
    np.testing.assert_allclose(out32, out64, atol=2e-6)


@pytest.mark.parametrize(
    "cls,kw,expected",
    [
        # torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True) names and shapes
        (
            LSTM,
            {},
            {
                "weight_ih_l0": (80, 10),
                "weight_hh_l0": (80, 20),
                "bias_ih_l0": (80,),
                "bias_hh_l0": (80,),
                "weight_ih_l1": (80, 40),
                "weight_ih_l1_reverse": (80, 40),
                "weight_hh_l0_reverse": (80, 20),
            },
        ),
        (
            GRU,
            {},
            {
                "weight_ih_l0": (60, 10),
                "weight_hh_l0": (60, 20),
                "weight_ih_l1": (60, 40),
                "bias_hh_l1_reverse": (60,),
            },
        ),
        (
            LSTM,
            {"peephole": True},
            {"weight_peephole_l0": (3, 20), "weight_peephole_l1_reverse": (3, 20)},
        ),
    ],
)
def test_parameter_names_and_shapes_follow_torch(cls, kw, expected):
    layer = cls(10, 20, num_layers=2, bidirectional=True, rng=0, **kw)
    for name, shape in expected.items():
        assert layer.params[name].shape == shape
    per_direction_layer = 5 if kw.get("peephole") else 4
    assert len(layer.params) == 2 * 2 * per_direction_layer
    assert set(layer.grads) == set(layer.params)


def test_parameter_counts():
    # One-bias count 4((X+H)H + H) per direction-layer, torch's count with two biases.
    X, H = 10, 20
    lstm = LSTM(X, H, rng=0)
    assert lstm.num_parameters(effective=True) == 4 * ((X + H) * H + H)
    assert lstm.num_parameters() == 4 * ((X + H) * H + 2 * H)
    stacked = LSTM(X, H, num_layers=2, bidirectional=True, rng=0)
    torch_count = 2 * (4 * H * X + 4 * H * H + 8 * H) + 2 * (4 * H * 2 * H + 4 * H * H + 8 * H)
    assert stacked.num_parameters() == torch_count
    gru = GRU(X, H, rng=0)
    assert gru.num_parameters() == 3 * ((X + H) * H + 2 * H)
    assert gru.num_parameters(effective=True) == 3 * (X + H) * H + 4 * H


def test_initialisation_trains_from_a_sensible_start():
    layer = LSTM(16, 32, rng=0)
    H = 32
    b = layer.params["bias_ih_l0"] + layer.params["bias_hh_l0"]
    assert np.all(b[H : 2 * H] == 1.0) and np.all(b[:H] == 0) and np.all(b[2 * H :] == 0)
    w_hh = layer.params["weight_hh_l0"]
    for k in range(4):  # each gate's recurrent block is orthogonal
        block = w_hh[k * H : (k + 1) * H].astype(np.float64)
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
    assert not np.allclose(w_hh[:H], w_hh[H : 2 * H])  # gates differ (no re-seeding per gate)
    # Same seed -> same weights; different seed -> different weights.
    assert np.array_equal(LSTM(16, 32, rng=0).params["weight_ih_l0"], layer.params["weight_ih_l0"])
    assert not np.array_equal(
        LSTM(16, 32, rng=1).params["weight_ih_l0"], layer.params["weight_ih_l0"]
    )


def test_dropout_between_layers_only_in_training():
    layer = LSTM(3, 6, num_layers=2, dropout=0.5, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 5, 3))
    layer.training = False
    a, _ = layer.forward(x)
    b, _ = layer.forward(x)
    np.testing.assert_array_equal(a, b)
    layer.training = True
    c, _ = layer.forward(x, rng=np.random.default_rng(7))
    d, _ = layer.forward(x, rng=np.random.default_rng(7))
    e, _ = layer.forward(x, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(c, d)
    assert not np.allclose(c, a) and not np.allclose(c, e)


def test_gradients_with_dropout_mask_fixed():
    layer = _random_layer(LSTM, {}, bidirectional=False, num_layers=3)
    layer.dropout = 0.3
    x = np.random.default_rng(4).normal(size=(3, 4, 3))
    w = np.random.default_rng(5).normal(size=(3, 4, 4))

    def loss():
        out, _ = layer.forward(x, [4, 2, 3], rng=np.random.default_rng(11))
        return (out * w).sum()

    loss()
    layer.backward(w)
    check_gradients(loss, layer.params, layer.grads, max_entries=20)


def test_backward_is_a_function_of_its_cache():
    layer = LSTM(3, 4, rng=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 5, 3)), rng.normal(size=(3, 4, 3))
    layout1 = PackedLayout.from_lengths(np.array([5, 3]), 5)
    layout2 = PackedLayout.from_lengths(np.array([4, 4, 1]), 4)
    out1, _, _, cache1 = layer.forward_packed(layout1.pack(x1), layout1)
    out2, _, _, cache2 = layer.forward_packed(layout2.pack(x2), layout2)
    g1a = layer.backward_packed(np.ones_like(out1), cache1)[1]
    layer.backward_packed(np.ones_like(out2), cache2)
    g1b = layer.backward_packed(np.ones_like(out1), cache1)[1]
    for key in g1a:
        np.testing.assert_array_equal(g1a[key], g1b[key])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda l: l.forward(np.ones((2, 3))), "shape \\[batch, time, features\\]"),
        (lambda l: l.forward(np.ones((2, 3, 5))), "has 5 features per step; the model expects 3"),
        (lambda l: l.forward(np.ones((2, 3, 3)), lengths=[3, 4]), "exceeds the padded time axis"),
        (lambda l: l.forward(np.ones((2, 3, 3)), lengths=[3, 0]), "must be >= 1"),
        (lambda l: l.forward(np.ones((2, 3, 3)), lengths=[3]), "lengths must have shape"),
        (lambda l: l.forward(np.full((2, 3, 3), np.nan)), "NaN or Inf"),
        (lambda l: l.forward([np.ones((3, 3)), np.ones((2, 3))]), "ragged"),
        (lambda l: l.forward(np.ones((0, 3, 3))), "empty"),
        (
            lambda l: l.forward(
                np.ones((2, 3, 3)), state=(np.zeros((1, 2, 5)), np.zeros((1, 2, 5)))
            ),
            "state \\(h\\) must have shape",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(call, match):
    with pytest.raises(ValueError, match=match):
        call(LSTM(3, 4, rng=0))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size must be >= 1"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="dropout must be in"):
        LSTM(3, 4, dropout=1.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        GRU(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="state_dict mismatch"):
        LSTM(3, 4).load_state_dict({"weight_ih_l0": np.zeros((16, 3))})


def test_load_state_dict_round_trip_changes_outputs_consistently():
    a = GRU(3, 4, num_layers=2, rng=0)
    b = GRU(3, 4, num_layers=2, rng=1)
    x = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    assert not np.allclose(a.forward(x)[0], b.forward(x)[0])
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
