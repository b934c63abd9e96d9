"""SequenceModel: gradients through every head, loss and input kind; inference; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm import ModelConfig, SequenceModel
from sparklstm.nn.losses import mean_squared_error, softmax_cross_entropy
from tests.gradcheck import check_gradients, numerical_gradient, relative_error

RNG = np.random.default_rng


def _float_batch(n=5, t=6, features=3, seed=0):
    rng = RNG(seed)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t
    return rng.normal(size=(n, t, features)), lengths


def _targets(config: ModelConfig, lengths, t, seed=1):
    rng = RNG(seed)
    n = lengths.shape[0]
    if config.task == "classification":
        shape = (n,) if config.head == "last" else (n, t)
        return rng.integers(0, config.output_size, size=shape)
    shape = (n, config.output_size) if config.head == "last" else (n, t, config.output_size)
    return rng.normal(size=shape)


def _randomise(model, scale=0.4, seed=5):
    rng = RNG(seed)
    for value in model.params.values():
        value[...] = rng.normal(scale=scale, size=value.shape)


GRAD_CASES = [
    dict(cell="lstm", head="last", task="classification", output_size=3),
    dict(cell="lstm", head="all", task="classification", output_size=3),
    dict(cell="gru", head="last", task="regression", output_size=2),
    dict(cell="gru", head="all", task="regression", output_size=1),
    dict(cell="peephole", head="last", task="classification", output_size=4, bidirectional=True),
    dict(cell="lstm", head="all", task="regression", output_size=2, bidirectional=True),
    dict(
        cell="lstm",
        head="last",
        task="classification",
        output_size=3,
        class_weights=[0.2, 1.0, 3.0],
    ),
    dict(
        cell="gru",
        head="all",
        task="classification",
        output_size=3,
        bidirectional=True,
        class_weights=[1, 2, 0.5],
    ),
]


@pytest.mark.parametrize("options", GRAD_CASES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_model_gradients_float_inputs(options):
    model = SequenceModel(input_size=3, hidden_sizes=[5, 4], dtype="float64", seed=0, **options)
    _randomise(model)
    x, lengths = _float_batch()
    y = _targets(model.config, lengths, x.shape[1])
    loss_value, grads = model.loss_and_grads(x, y, lengths)
    assert np.isfinite(loss_value)
    check_gradients(
        lambda: model.loss_and_grads(x, y, lengths)[0], model.params, grads, max_entries=25
    )


@pytest.mark.parametrize("head", ["last", "all"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_gradients_token_inputs(head, cell):
    vocab = 7
    model = SequenceModel(
        vocab_size=vocab,
        embedding_dim=4,
        hidden_sizes=[5],
        cell=cell,
        head=head,
        output_size=vocab,
        dtype="float64",
        seed=0,
    )
    _randomise(model)
    rng = RNG(3)
    lengths = np.array([6, 3, 5, 1])
    x = rng.integers(0, vocab, size=(4, 6))
    x[np.arange(6)[None, :] >= lengths[:, None]] = -1  # padding ids are ignored, even invalid ones
    y = rng.integers(0, vocab, size=(4,) if head == "last" else (4, 6))
    _, grads = model.loss_and_grads(x, y, lengths)
    check_gradients(
        lambda: model.loss_and_grads(x, y, lengths)[0], model.params, grads, max_entries=None
    )
    used = np.unique(x[x >= 0])
    unused = np.setdiff1d(np.arange(vocab), used)
    assert np.all(grads["embedding.weight"][unused] == 0)


def test_gradients_with_dropout_under_a_fixed_mask():
    model = SequenceModel(
        input_size=3, hidden_sizes=[5, 5, 4], dropout=0.4, dtype="float64", seed=0
    )
    _randomise(model)
    x, lengths = _float_batch()
    y = _targets(model.config, lengths, x.shape[1])

    def loss():
        return model.loss_and_grads(x, y, lengths, training=True, rng=RNG(9))[0]

    _, grads = model.loss_and_grads(x, y, lengths, training=True, rng=RNG(9))
    check_gradients(loss, model.params, grads, max_entries=20)
    # Dropout really is active in training and off otherwise.
    assert loss() != model.loss_and_grads(x, y, lengths)[0]


def test_losses_against_direct_formulas():
    rng = RNG(0)
    logits = rng.normal(size=(6, 4)) * 30  # large logits: must stay finite
    labels = rng.integers(0, 4, size=6)
    weights = np.array([0.5, 2.0, 1.0, 0.1])
    loss, grad = softmax_cross_entropy(logits, labels, weights)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    expected = -(weights[labels] * np.log(p[np.arange(6), labels])).sum() / weights[labels].sum()
    assert np.isclose(loss, expected)
    _, numeric = numerical_gradient(
        lambda: softmax_cross_entropy(logits, labels, weights)[0], logits
    )
    assert relative_error(numeric, grad.reshape(-1)) < 1e-7
    pred, target = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    loss, grad = mean_squared_error(pred, target)
    assert np.isclose(loss, np.mean((pred - target) ** 2))
    _, numeric = numerical_gradient(lambda: mean_squared_error(pred, target)[0], pred)
    assert relative_error(numeric, grad.reshape(-1)) < 1e-7


def test_padding_does_not_change_predictions():
    model = SequenceModel(
        input_size=2, hidden_sizes=[8], head="all", task="regression", output_size=1, seed=0
    )
    rng = RNG(0)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    lengths = np.array([5, 2, 4])
    wide = np.concatenate([x, np.full((3, 4, 2), 7.0, np.float32)], axis=1)
    a = model.predict(x, lengths)
    b = model.predict(wide, lengths)
    np.testing.assert_array_equal(a, b[:, :5])
    assert np.all(np.isnan(b[:, 5:])) and np.isnan(a[1, 2:]).all() and np.isfinite(a[1, :2]).all()


def test_predict_proba_and_predict_agree():
    model = SequenceModel(input_size=3, hidden_sizes=[6], output_size=4, seed=1)
    x, lengths = _float_batch(n=9)
    p = model.predict_proba(x, lengths)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.predict(x, lengths), p.argmax(axis=1))
    # Batched prediction equals one-shot prediction.
    np.testing.assert_allclose(model.predict_proba(x, lengths, batch_size=2), p, atol=1e-6)


def test_evaluate_matches_manual_metrics():
    model = SequenceModel(input_size=3, hidden_sizes=[6], output_size=3, seed=1)
    x, lengths = _float_batch(n=11)
    y = RNG(2).integers(0, 3, size=11)
    metrics = model.evaluate(x, y, lengths, batch_size=4)
    p = model.predict_proba(x, lengths).astype(np.float64)
    assert np.isclose(metrics["loss"], -np.log(p[np.arange(11), y]).mean(), rtol=1e-5)
    assert metrics["accuracy"] == np.mean(p.argmax(axis=1) == y)
    reg = SequenceModel(input_size=3, hidden_sizes=[6], task="regression", output_size=1, seed=1)
    target = RNG(3).normal(size=11)
    m = reg.evaluate(x, target, lengths, batch_size=4)
    pred = reg.predict(x, lengths).astype(np.float64)
    assert np.isclose(m["rmse"], np.sqrt(np.mean((pred - target) ** 2)), rtol=1e-5)
    assert np.isclose(m["mae"], np.mean(np.abs(pred - target)), rtol=1e-5)


def test_num_parameters_formula():
    X, H, O = 10, 20, 3
    model = SequenceModel(input_size=X, hidden_sizes=[H], output_size=O, seed=0)
    head = O * H + O
    assert model.num_parameters(effective=True) == 4 * ((X + H) * H + H) + head
    assert model.num_parameters() == 4 * ((X + H) * H + 2 * H) + head


def test_different_hidden_sizes_per_layer_and_state_dict_names():
    model = SequenceModel(
        input_size=3, hidden_sizes=[8, 5], bidirectional=True, cell="gru", output_size=2, seed=0
    )
    sd = model.state_dict()
    assert sd["rnn.weight_ih_l0"].shape == (24, 3)
    assert sd["rnn.weight_ih_l1"].shape == (15, 16)
    assert sd["rnn.weight_hh_l1_reverse"].shape == (15, 5)
    assert sd["head.weight"].shape == (2, 10)
    other = SequenceModel(
        input_size=3, hidden_sizes=[8, 5], bidirectional=True, cell="gru", output_size=2, seed=1
    )
    x, lengths = _float_batch()
    assert not np.allclose(other.forward(x, lengths), model.forward(x, lengths))
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other.forward(x, lengths), model.forward(x, lengths))


def test_same_seed_same_model_and_predictions():
    a = SequenceModel(input_size=3, hidden_sizes=[6], seed=42)
    b = SequenceModel(input_size=3, hidden_sizes=[6], seed=42)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])


def test_generate_is_seeded_and_greedy_is_deterministic():
    model = SequenceModel(
        vocab_size=6, embedding_dim=4, hidden_sizes=[8], head="all", output_size=6, seed=0
    )
    prime = np.array([1, 2, 3])
    a = model.generate(prime, 10, temperature=1.0, rng=3)
    b = model.generate(prime, 10, temperature=1.0, rng=3)
    assert a.shape == (10,) and np.array_equal(a, b) and a.min() >= 0 and a.max() < 6
    greedy = model.generate(np.array([[1, 2, 3], [4, 0, 5]]), 5, temperature=0)
    # Greedy generation continues the argmax of the full forward pass.
    full = model.forward(np.array([[1, 2, 3], [4, 0, 5]]))
    np.testing.assert_array_equal(greedy[:, 0], full[:, -1].argmax(axis=1))
    seq = np.concatenate([np.array([[1, 2, 3], [4, 0, 5]]), greedy[:, :1]], axis=1)
    np.testing.assert_array_equal(greedy[:, 1], model.forward(seq)[:, -1].argmax(axis=1))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(), ValueError, "exactly one of input_size"),
        (dict(input_size=3, vocab_size=4), ValueError, "exactly one of input_size"),
        (dict(input_size=3, cell="rnn"), ValueError, "cell must be one of"),
        (dict(input_size=3, head="first"), ValueError, "head must be one of"),
        (dict(input_size=3, hidden_sizes=[]), ValueError, "hidden_sizes"),
        (dict(input_size=3, hidden_sizes=[4, 0]), ValueError, "hidden_sizes\\[1\\] must be >= 1"),
        (dict(input_size=3, output_size=1), ValueError, "output_size must be >= 2 classes"),
        (dict(input_size=3, class_weights=[1.0]), ValueError, "class_weights has 1 entries"),
        (dict(input_size=3, dtype="float16"), TypeError, "dtype must be float32 or float64"),
        (dict(input_size=3, hidden_size=4), TypeError, "unknown option\\(s\\) 'hidden_size'"),
    ],
)
def test_bad_model_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        SequenceModel(**kwargs)


@pytest.mark.parametrize(
    "x,y,lengths,match",
    [
        (np.ones((4, 5)), np.zeros(4, int), None, "must have shape \\[batch, time, features\\]"),
        (
            np.ones((4, 5, 2)),
            np.zeros(4, int),
            None,
            "has 2 features per step; the model expects 3",
        ),
        (np.ones((4, 5, 3)), np.zeros(4, int), [5, 5, 6, 1], "exceeds the padded time axis"),
        (np.ones((4, 5, 3)), np.zeros(4, int), [5, 5, 0, 1], "must be >= 1"),
        (np.ones((4, 5, 3)), np.array([0, 1, 3, 0]), None, "class 3, outside \\[0, 3\\)"),
        (np.ones((4, 5, 3)), np.array([0, 1, -1, 0]), None, "class -1, outside"),
        (np.ones((4, 5, 3)), np.zeros(3, int), None, "y has 3 rows; the inputs have 4"),
        (np.ones((4, 5, 3)), np.zeros((4, 2), int), None, "one class index per sequence"),
        (np.ones((4, 5, 3)), np.array([0.5, 1, 2, 0]), None, "integer class indices"),
        (np.ones((0, 5, 3)), np.zeros(0, int), None, "empty"),
        (
            np.where(np.eye(5, 3)[None].repeat(4, 0) > 0, np.inf, 1.0),
            np.zeros(4, int),
            None,
            "NaN or Inf",
        ),
        ([np.ones((5, 3)), np.ones((4, 3))], np.zeros(2, int), None, "ragged"),
    ],
)
def test_bad_data_is_rejected_before_work(x, y, lengths, match):
    model = SequenceModel(input_size=3, hidden_sizes=[4], output_size=3, seed=0)
    before = model.state_dict()
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(x, y, lengths)
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value)


def test_nan_only_in_padding_is_accepted():
    model = SequenceModel(input_size=3, hidden_sizes=[4], output_size=3, seed=0)
    x = np.ones((2, 4, 3))
    x[1, 2:] = np.nan
    loss, _ = model.loss_and_grads(x, np.array([0, 1]), [4, 2])
    assert np.isfinite(loss)


def test_token_model_rejects_out_of_vocabulary_ids():
    model = SequenceModel(vocab_size=5, hidden_sizes=[4], output_size=2, seed=0)
    with pytest.raises(ValueError, match="token id 5, outside \\[0, 5\\)"):
        model.predict(np.array([[1, 5, 2]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model.predict(np.ones((1, 3)))


def test_regression_targets_shape_checks():
    model = SequenceModel(input_size=3, hidden_sizes=[4], task="regression", output_size=2, seed=0)
    with pytest.raises(ValueError, match="output_size is 2"):
        model.loss_and_grads(np.ones((2, 3, 3)), np.ones(2))
    per_step = SequenceModel(
        input_size=3, hidden_sizes=[4], head="all", task="regression", output_size=1
    )
    with pytest.raises(ValueError, match="for head='all'"):
        per_step.loss_and_grads(np.ones((2, 3, 3)), np.ones((2, 4)))
