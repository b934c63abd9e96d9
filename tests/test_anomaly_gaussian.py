"""The Gaussian negative log-likelihood head (``regression_loss="gaussian_nll"``): the loss
against hand-computed values and torch's GaussianNLLLoss, its float64 finite-difference
gradient (alone and through the heads "last" and "all", every cell, stacked), the log-variance
clip, padding without any effect bit for bit, the config's checks and the model file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparklstm import ModelConfig, SequenceModel
from sparklstm.nn.losses import LOG_VAR_MAX, gaussian_nll, gaussian_nll_terms
from tests.gradcheck import check_gradients, numerical_gradient, relative_error

RNG = np.random.default_rng


def test_loss_equals_the_hand_computed_value():
    # Two rows, one target: (y, μ, s) = (1, 0, 0) and (3, 1, log 4).
    outputs = np.array([[0.0, 0.0], [1.0, math.log(4.0)]])
    targets = np.array([[1.0], [3.0]])
    loss, grad = gaussian_nll(outputs, targets)
    # ½(log 2π + 0 + 1) and ½(log 2π + log 4 + 4/4), averaged.
    first = 0.5 * (math.log(2 * math.pi) + 1.0)
    second = 0.5 * (math.log(2 * math.pi) + math.log(4.0) + 1.0)
    assert loss == pytest.approx((first + second) / 2, rel=1e-15)
    # dL/dμ = -(y - μ) e^{-s} / N; dL/ds = ½(1 - (y - μ)² e^{-s}) / N.
    np.testing.assert_allclose(grad, [[-0.5, 0.0], [-0.25, 0.0]], rtol=1e-15, atol=1e-15)
    terms = gaussian_nll_terms(outputs, targets)
    np.testing.assert_allclose(terms[:, 0], [first, second], rtol=1e-15)


def test_loss_equals_torch_gaussian_nll_loss_full():
    torch = pytest.importorskip("torch")
    rng = RNG(0)
    outputs = rng.normal(size=(7, 6))
    targets = rng.normal(size=(7, 3))
    loss, _ = gaussian_nll(outputs, targets)
    expected = torch.nn.GaussianNLLLoss(full=True, eps=0.0)(
        torch.tensor(outputs[:, :3]), torch.tensor(targets), torch.tensor(np.exp(outputs[:, 3:]))
    )
    assert loss == pytest.approx(float(expected), rel=1e-12)


def test_loss_gradient_matches_finite_differences_inside_and_beyond_the_clip():
    rng = RNG(1)
    outputs = rng.normal(size=(6, 4))
    outputs[0, 2] = LOG_VAR_MAX + 3.0  # clipped: the loss is flat in it, so is the gradient
    targets = rng.normal(size=(6, 2))
    _, grad = gaussian_nll(outputs, targets)
    _, numeric = numerical_gradient(lambda: gaussian_nll(outputs, targets)[0], outputs)
    assert relative_error(numeric, grad.reshape(-1)) < 1e-8
    assert grad[0, 2] == 0.0 and numeric.reshape(6, 4)[0, 2] == 0.0


def test_mismatched_widths_are_refused_in_one_line():
    with pytest.raises(ValueError, match="two per target"):
        gaussian_nll(np.zeros((3, 3)), np.zeros((3, 2)))


def float_batch(n=5, t=6, features=2, seed=0):
    rng = RNG(seed)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t
    return rng.normal(size=(n, t, features)), lengths


def randomise(params, scale=0.4, seed=5):
    rng = RNG(seed)
    for value in params.values():
        value[...] = rng.normal(scale=scale, size=value.shape)


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole", "cifg"])
@pytest.mark.parametrize("head", ["last", "all"])
def test_model_gradients_match_finite_differences(cell, head):
    model = SequenceModel(
        input_size=2,
        cell=cell,
        hidden_sizes=[5, 4],
        head=head,
        task="regression",
        regression_loss="gaussian_nll",
        output_size=2,
        dtype="float64",
        seed=0,
    )
    assert model.params["head.weight"].shape == (4, 4)  # mean and log-variance per target
    randomise(model.params)
    x, lengths = float_batch()
    assert lengths.min() < x.shape[1]  # padded steps are part of the check
    shape = (5, 2) if head == "last" else (5, 6, 2)
    y = RNG(2).normal(size=shape)
    _, grads = model.loss_and_grads(x, y, lengths)
    check_gradients(
        lambda: model.loss_and_grads(x, y, lengths)[0], model.params, grads, max_entries=20
    )


@pytest.mark.parametrize("head", ["last", "all"])
def test_padding_has_exactly_no_effect(head):
    model = SequenceModel(
        input_size=2,
        hidden_sizes=[5],
        head=head,
        task="regression",
        regression_loss="gaussian_nll",
        output_size=1,
        seed=0,
    )  # float32, the training dtype
    x, lengths = float_batch()
    y = RNG(2).normal(size=(5, 1) if head == "last" else (5, 6, 1))
    loss, grads = model.loss_and_grads(x, y, lengths)
    outputs = model.forward(x, lengths)
    rng = RNG(4)
    wide_x = rng.normal(size=(5, 9, 2)) * 1e3  # garbage in every padded step
    valid = np.arange(6)[None, :] < lengths[:, None]
    wide_valid = np.arange(9)[None, :] < lengths[:, None]
    wide_x[wide_valid] = x[valid]
    wide_y = y
    if head == "all":
        wide_y = rng.normal(size=(5, 9, 1)) * 1e3
        wide_y[wide_valid] = y[valid]
    wide_loss, wide_grads = model.loss_and_grads(wide_x, wide_y, lengths)
    assert wide_loss == loss
    for name, value in grads.items():
        np.testing.assert_array_equal(wide_grads[name], value, err_msg=name)
    wide_outputs = model.forward(wide_x, lengths)
    if head == "last":
        np.testing.assert_array_equal(wide_outputs, outputs)
    else:
        np.testing.assert_array_equal(wide_outputs[wide_valid], outputs[valid])


def test_predictions_metrics_and_streams_read_the_mean_and_variance():
    model = SequenceModel(
        input_size=1,
        hidden_sizes=[4],
        head="all",
        task="regression",
        regression_loss="gaussian_nll",
        output_size=1,
        dtype="float64",
        seed=3,
    )
    randomise(model.params, scale=0.3)
    x, lengths = float_batch(n=3, t=7, features=1)
    y = RNG(6).normal(size=(3, 7, 1))
    raw = model.forward(x, lengths)
    mean, variance = model.predict_gaussian(x, lengths)
    np.testing.assert_array_equal(model.predict(x, lengths), raw[..., 0])
    np.testing.assert_array_equal(mean, raw[..., 0])
    np.testing.assert_allclose(variance, np.exp(raw[..., 1]), rtol=1e-15)
    valid = np.arange(7)[None, :] < lengths[:, None]
    metrics = model.evaluate(x, y, lengths)
    terms = gaussian_nll_terms(raw[valid], y[valid])
    assert metrics["loss"] == pytest.approx(terms.mean(), rel=1e-12)
    assert metrics["loss"] == pytest.approx(model.loss_and_grads(x, y, lengths)[0], rel=1e-12)
    squared = (raw[valid][:, 0] - y[valid][:, 0]) ** 2
    assert metrics["mse"] == pytest.approx(squared.mean(), rel=1e-12)
    assert metrics["rmse"] == pytest.approx(math.sqrt(squared.mean()), rel=1e-12)
    # One stream read in chunks of 2 with carried state: both head outputs, as one pass.
    stream = x[0, : lengths[0]]
    np.testing.assert_allclose(
        model.stream_outputs(stream, chunk_length=2), raw[0, : lengths[0]], rtol=1e-12
    )
    with pytest.raises(ValueError, match="stream_outputs"):
        model.fit_streams([stream], [y[0, : lengths[0]]])


def test_config_checks_and_model_file(tmp_path):
    with pytest.raises(ValueError, match="task='regression' only"):
        ModelConfig(input_size=1, task="classification", regression_loss="gaussian_nll")
    with pytest.raises(ValueError, match="regression_loss"):
        ModelConfig(input_size=1, task="regression", output_size=1, regression_loss="huber")
    plain = ModelConfig(input_size=1, task="regression", output_size=1)
    assert "regression_loss" not in plain.to_dict()  # the files of models without it are unchanged
    assert plain.head_size == 1
    gaussian = ModelConfig(
        input_size=1, task="regression", output_size=3, regression_loss="gaussian_nll"
    )
    assert gaussian.head_size == 6 and gaussian.to_dict()["regression_loss"] == "gaussian_nll"
    model = SequenceModel(config=gaussian)
    model.save(tmp_path / "m")
    loaded = SequenceModel.load(tmp_path / "m")
    assert loaded.config == gaussian
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
