"""The compiled element-wise steps (sparklstm.nn.numba_steps) against the NumPy reference.

Every kernel (LSTM, peephole, CIFG, GRU; both directions; ragged batches; with and without
output and final-state gradients) runs both ways on the same inputs: outputs, final states and
every gradient must agree to rounding (1e-12 in float64; float32 to its own precision). The
compiled ``tanh`` is checked against NumPy's float64 ``tanh`` on a dense grid, in ulps.
CI installs the ``fast`` extra, so these run there; without numba they fail rather than skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm.nn import fused as fused_module
from sparklstm.nn.gru_kernel import gru_backward, gru_forward
from sparklstm.nn.lstm_kernel import lstm_backward, lstm_forward
from sparklstm.nn.packing import PackedLayout

LENGTHS = np.array([7, 3, 7, 1, 5, 2])  # ragged, unsorted, with a length-1 sequence
INPUTS, HIDDEN = 5, 6
TOLERANCE = {np.float64: 1e-12, np.float32: 2e-5}


def _case(cell: str, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    layout = PackedLayout.from_lengths(LENGTHS, int(LENGTHS.max()))
    gates = 3 if cell in ("gru", "cifg") else 4
    batch = len(LENGTHS)

    def draw(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    return {
        "layout": layout,
        "x": draw(layout.num_rows, INPUTS, scale=1.0),
        "w_ih": draw(gates * HIDDEN, INPUTS),
        "w_hh": draw(gates * HIDDEN, HIDDEN),
        "b_ih": draw(gates * HIDDEN),
        "b_hh": draw(gates * HIDDEN),
        "peephole": draw(3, HIDDEN) if cell == "peephole" else None,
        "h0": draw(batch, HIDDEN),
        "c0": draw(batch, HIDDEN),
        "d_hidden": draw(layout.num_rows, HIDDEN, scale=1.0),
        "d_h_n": draw(batch, HIDDEN, scale=1.0),
        "d_c_n": draw(batch, HIDDEN, scale=1.0),
    }


def _run(cell, case, reverse, fused, with_output_grad, with_final_grad):
    """Forward then backward of one direction; every array that comes out, by name."""
    d_hidden = case["d_hidden"] if with_output_grad else None
    d_h_n = case["d_h_n"] if with_final_grad else None
    d_c_n = case["d_c_n"] if with_final_grad else None
    if cell == "gru":
        out, h_n, cache = gru_forward(
            case["x"], case["w_ih"], case["w_hh"], case["b_ih"], case["b_hh"], case["h0"],
            case["layout"], reverse, fused=fused,
        )  # fmt: skip
        dx, grads, dh0 = gru_backward(d_hidden, d_h_n, cache, need_dx=True, fused=fused)
        return {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0, **grads}
    out, h_n, c_n, cache = lstm_forward(
        case["x"], case["w_ih"], case["w_hh"], case["b_ih"] + case["b_hh"], case["peephole"],
        case["h0"], case["c0"], case["layout"], reverse, coupled=cell == "cifg", fused=fused,
    )  # fmt: skip
    dx, grads, dh0, dc0 = lstm_backward(d_hidden, d_h_n, d_c_n, cache, need_dx=True, fused=fused)
    return {"out": out, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0, **grads}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", ["lstm", "peephole", "cifg", "gru"])
@pytest.mark.parametrize(
    "with_output_grad,with_final_grad",
    [(True, True), (True, False), (False, True)],
    ids=["both-grads", "output-grad", "final-grad"],
)
def test_compiled_steps_equal_numpy(cell, reverse, dtype, with_output_grad, with_final_grad):
    case = _case(cell, dtype)
    reference = _run(cell, case, reverse, False, with_output_grad, with_final_grad)
    compiled = _run(cell, case, reverse, True, with_output_grad, with_final_grad)
    assert reference.keys() == compiled.keys()
    for name, value in reference.items():
        assert compiled[name].dtype == value.dtype, name
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(
            compiled[name], value, rtol=0, atol=TOLERANCE[dtype] * scale, err_msg=name
        )
    # The check is not vacuous: the gradients are far from zero.
    assert np.abs(reference["w_hh"]).max() > 0.1


def test_compiled_padding_rows_are_untouched_by_other_sequences():
    """A sequence's outputs do not depend on what else is in the batch (compiled path): each
    sequence alone gives the rows it gives in the ragged batch (to 1e-14: BLAS rounds a
    one-row GEMM differently from a six-row one)."""
    case = _case("lstm", np.float64)
    together = _run("lstm", case, False, True, True, True)
    layout = case["layout"]
    padded = layout.unpack(together["out"])
    for b, length in enumerate(LENGTHS):
        alone_layout = PackedLayout.from_lengths(np.array([length]), int(length))
        rows = layout.unpack(case["x"])[b : b + 1, :length]
        x_alone = alone_layout.pack(rows)
        out, _, _, _ = lstm_forward(
            x_alone, case["w_ih"], case["w_hh"], case["b_ih"] + case["b_hh"], None,
            case["h0"][layout.inverse_order[b] : layout.inverse_order[b] + 1],
            case["c0"][layout.inverse_order[b] : layout.inverse_order[b] + 1],
            alone_layout, fused=True,
        )  # fmt: skip
        np.testing.assert_allclose(
            alone_layout.unpack(out)[0], padded[b, :length], rtol=0, atol=1e-14
        )


@pytest.mark.parametrize("dtype,max_ulp", [(np.float64, 4), (np.float32, 8)])
def test_compiled_tanh_is_within_a_few_ulp(dtype, max_ulp):
    from sparklstm.nn.numba_steps import fast_tanh_array

    grid = np.concatenate(
        [
            np.linspace(-25.0, 25.0, 400_001),
            np.geomspace(1e-30, 25.0, 50_001),
            -np.geomspace(1e-30, 25.0, 50_001),
        ]
    ).astype(dtype)
    out = np.empty_like(grid)
    fast_tanh_array(grid, out)
    exact = np.tanh(grid.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    error = np.abs(out.astype(np.float64) - exact) / ulp
    assert error.max() <= max_ulp, (error.max(), grid[error.argmax()])
    special = np.array([np.nan, np.inf, -np.inf, 0.0], dtype=dtype)
    fast_tanh_array(special, out[:4])
    assert np.isnan(out[0]) and out[1] == 1 and out[2] == -1 and out[3] == 0


def test_selection(monkeypatch):
    """None follows the environment; False is always NumPy; True without numba says how to
    install it, in one line."""
    monkeypatch.delenv(fused_module.FUSED_ENV, raising=False)  # whatever the host has set
    assert fused_module.fused_available()
    assert fused_module.fused_steps(np.float32, None) is not None
    assert fused_module.fused_steps(np.float32, False) is None
    assert fused_module.fused_steps(np.int64, True) is None  # no compiled integer kernels
    monkeypatch.setenv(fused_module.FUSED_ENV, "0")
    assert fused_module.fused_steps(np.float64, None) is None
    assert fused_module.fused_steps(np.float64, True) is not None
    monkeypatch.setattr(fused_module, "_compiled", lambda: None)
    with pytest.raises(ImportError, match=r"pip install 'sparklstm\[fast\]'"):
        fused_module.fused_steps(np.float64, True)
