"""Weights, outputs and gradients agree with torch.nn.LSTM / torch.nn.GRU.

torch is not a dependency of sparklstm; it comes with the ``parity`` extra, which ``make test``
installs. A developer who installed without it sees these tests skipped; in CI (``CI`` set in
the environment) a missing torch is an error, not a silent skip.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.nn import GRU, LSTM

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch", reason="pip install 'sparklstm[parity]'")


def _torch_run(module, x, lengths, d_out):
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
    )
    out_packed, state = module(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(
        out_packed, batch_first=True, total_length=x.shape[1]
    )
    (out * torch.tensor(d_out)).sum().backward()
    return out.detach().numpy(), state, xt.grad.numpy()


@pytest.mark.parametrize("ours,theirs", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_outputs_states_and_gradients(ours, theirs, bidirectional):
    torch.manual_seed(0)
    module = theirs(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    layer = ours(3, 5, num_layers=2, bidirectional=bidirectional, dtype=np.float64)
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    rng = np.random.default_rng(0)
    lengths = np.array([6, 2, 5, 1])
    x = rng.normal(size=(4, 6, 3))
    d_out = rng.normal(size=(4, 6, layer.output_size))
    d_out[np.arange(6)[None, :] >= lengths[:, None]] = 0
    ref_out, ref_state, ref_dx = _torch_run(module, x, lengths, d_out)
    out, state = layer.forward(x, lengths)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)
    if ours is LSTM:
        np.testing.assert_allclose(state[0], ref_state[0].detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(state[1], ref_state[1].detach().numpy(), atol=1e-12)
    else:
        np.testing.assert_allclose(state, ref_state.detach().numpy(), atol=1e-12)
    dx = layer.backward(d_out)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-11)
    for name, param in module.named_parameters():
        np.testing.assert_allclose(layer.grads[name], param.grad.numpy(), atol=1e-11, err_msg=name)
    # And back: our state_dict loads into torch unchanged.
    module.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})


def test_model_rnn_weights_load_into_torch():
    model = SequenceModel(
        input_size=3, hidden_sizes=[6, 6], cell="lstm", output_size=2, seed=0, dtype="float64"
    )
    module = torch.nn.LSTM(3, 6, num_layers=2, batch_first=True).double()
    rnn = {
        k[len("rnn.") :]: torch.tensor(v)
        for k, v in model.state_dict().items()
        if k.startswith("rnn.")
    }
    module.load_state_dict(rnn)
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    out, _ = module(torch.tensor(x))
    last = out[:, -1].detach().numpy()
    logits = last @ model.params["head.weight"].T + model.params["head.bias"]
    np.testing.assert_allclose(model.forward(x), logits, atol=1e-12)
