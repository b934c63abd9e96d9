"""The CIFG cell inside the models: float64 finite-difference gradients through every head (last,
all), loss, input kind, dropout and the seq2seq encoder-decoder; padding without effect, bit for
bit; equality with an LSTM model whose forget-gate pre-activation is the negated input-gate one;
the parameter count; the model file."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm import ModelConfig, SequenceModel
from tests.gradcheck import check_gradients
from tests.test_cifg import cifg_grads_from_lstm
from tests.test_seq2seq import SOURCE_LENGTHS, TARGET_LENGTHS, batch, model_for

RNG = np.random.default_rng


def float_batch(n=5, t=6, features=3, seed=0):
    rng = RNG(seed)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t
    return rng.normal(size=(n, t, features)), lengths


def targets(config: ModelConfig, lengths, t, seed=1):
    rng = RNG(seed)
    n = lengths.shape[0]
    if config.task == "classification":
        return rng.integers(0, config.output_size, size=(n,) if config.head == "last" else (n, t))
    shape = (n, config.output_size) if config.head == "last" else (n, t, config.output_size)
    return rng.normal(size=shape)


def randomise(params, scale=0.4, seed=5):
    rng = RNG(seed)
    for value in params.values():
        value[...] = rng.normal(scale=scale, size=value.shape)


GRAD_CASES = {
    "last-classification": dict(head="last", task="classification", output_size=3),
    "last-classification-bi": dict(
        head="last", task="classification", output_size=4, bidirectional=True
    ),
    "all-classification-bi-weights": dict(
        head="all",
        task="classification",
        output_size=3,
        bidirectional=True,
        class_weights=[1, 2, 0.5],
    ),
    "last-regression": dict(head="last", task="regression", output_size=2),
    "all-regression-bi": dict(head="all", task="regression", output_size=2, bidirectional=True),
}


@pytest.mark.parametrize("options", GRAD_CASES.values(), ids=GRAD_CASES.keys())
def test_model_gradients_float_inputs(options):
    model = SequenceModel(
        input_size=3, cell="cifg", hidden_sizes=[5, 4], dtype="float64", seed=0, **options
    )
    randomise(model.params)
    x, lengths = float_batch()
    assert lengths.min() < x.shape[1]  # padded rows are part of the check
    y = targets(model.config, lengths, x.shape[1])
    loss_value, grads = model.loss_and_grads(x, y, lengths)
    assert np.isfinite(loss_value)
    errors = check_gradients(
        lambda: model.loss_and_grads(x, y, lengths)[0], model.params, grads, max_entries=25
    )
    assert sum(name.startswith("rnn.") for name in errors) == 4 * 2 * model.config.num_directions


@pytest.mark.parametrize("head", ["last", "all"])
def test_model_gradients_token_inputs(head):
    vocab = 7
    model = SequenceModel(
        vocab_size=vocab,
        embedding_dim=4,
        hidden_sizes=[5],
        cell="cifg",
        head=head,
        output_size=vocab,
        dtype="float64",
        seed=0,
    )
    randomise(model.params)
    rng = RNG(3)
    lengths = np.array([6, 3, 5, 1])
    x = rng.integers(0, vocab, size=(4, 6))
    x[np.arange(6)[None, :] >= lengths[:, None]] = -1  # padding ids are never read
    y = rng.integers(0, vocab, size=(4,) if head == "last" else (4, 6))
    _, grads = model.loss_and_grads(x, y, lengths)
    check_gradients(
        lambda: model.loss_and_grads(x, y, lengths)[0], model.params, grads, max_entries=None
    )


def test_model_gradients_with_dropout_under_a_fixed_mask():
    model = SequenceModel(
        input_size=3, cell="cifg", hidden_sizes=[5, 5, 4], dropout=0.4, dtype="float64", seed=0
    )
    randomise(model.params)
    x, lengths = float_batch()
    y = targets(model.config, lengths, x.shape[1])

    def loss():
        return model.loss_and_grads(x, y, lengths, training=True, rng=RNG(9))[0]

    _, grads = model.loss_and_grads(x, y, lengths, training=True, rng=RNG(9))
    check_gradients(loss, model.params, grads, max_entries=20)
    assert loss() != model.loss_and_grads(x, y, lengths)[0]  # dropout really is active


@pytest.mark.parametrize("head", ["last", "all"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_leaves_loss_outputs_and_gradients_bit_identical(head, bidirectional):
    model = SequenceModel(
        input_size=3,
        cell="cifg",
        hidden_sizes=[5, 4],
        head=head,
        bidirectional=bidirectional,
        output_size=3,
        seed=0,
    )  # float32, the training dtype
    x, lengths = float_batch()
    y = targets(model.config, lengths, x.shape[1])
    loss, grads = model.loss_and_grads(x, y, lengths)
    outputs = model.forward(x, lengths)
    # Four more steps; every padded value (inputs and per-step labels) replaced by garbage.
    rng = RNG(4)
    wide_x = rng.normal(size=(5, 10, 3)) * 1e3
    valid = np.arange(6)[None, :] < lengths[:, None]
    wide_valid = np.arange(10)[None, :] < lengths[:, None]
    wide_x[wide_valid] = x[valid]
    wide_y = y
    if head == "all":
        wide_y = rng.integers(0, 3, size=(5, 10))
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


def tie_to_lstm(cifg_model: SequenceModel, lstm_model: SequenceModel) -> None:
    """Copy the CIFG model's weights into the LSTM model, its forget-gate rows the negated
    input-gate rows (forget pre-activation -a_i, so f = σ(-a_i) = 1 - i)."""
    state = {}
    for name, value in cifg_model.state_dict().items():
        if name.startswith("rnn."):
            H = value.shape[0] // 3
            i, g, o = value[:H], value[H : 2 * H], value[2 * H :]
            value = np.concatenate([i, -i, g, o])
        state[name] = value
    lstm_model.load_state_dict(state)


@pytest.mark.parametrize(
    "options",
    [
        dict(head="last", task="classification", output_size=3, bidirectional=True),
        dict(head="all", task="regression", output_size=2),
    ],
    ids=["last-bi", "all-uni"],
)
def test_equals_an_lstm_model_with_the_forget_gate_tied_to_the_input_gate(options):
    common = dict(input_size=3, hidden_sizes=[5, 4], dtype="float64", seed=0, **options)
    cifg = SequenceModel(cell="cifg", **common)
    lstm = SequenceModel(cell="lstm", **common)
    randomise(cifg.params, scale=0.6)
    tie_to_lstm(cifg, lstm)
    x, lengths = float_batch(seed=2)
    y = targets(cifg.config, lengths, x.shape[1])
    np.testing.assert_allclose(
        cifg.forward(x, lengths), lstm.forward(x, lengths), rtol=0, atol=1e-13
    )
    loss_c, grads_c = cifg.loss_and_grads(x, y, lengths)
    loss_l, grads_l = lstm.loss_and_grads(x, y, lengths)
    assert loss_c == pytest.approx(loss_l, rel=1e-13) and loss_c > 0.01
    # Head weights: the same gradient; recurrent weights: the input gate's is d_i - d_f.
    for name, value in grads_c.items():
        if name.startswith("rnn."):
            H = value.shape[0] // 3
            expected = cifg_grads_from_lstm({name: grads_l[name]}, H)[name]
        else:
            expected = grads_l[name]
        assert np.abs(value).max() > 1e-4, name
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-12, err_msg=name)


def test_parameter_count_formula():
    X, H1, H2, O = 3, 8, 5, 4
    model = SequenceModel(
        input_size=X, cell="cifg", hidden_sizes=[H1, H2], bidirectional=True, output_size=O
    )
    # Per direction and layer 3((I_k + H_k) H_k + 2 H_k); I_1 = 2 H1 (bidirectional below).
    rnn = 2 * 3 * ((X + H1) * H1 + 2 * H1) + 2 * 3 * ((2 * H1 + H2) * H2 + 2 * H2)
    head = 2 * H2 * O + O
    assert model.num_parameters() == rnn + head == 624 + 690 + 44
    assert model.num_parameters(effective=True) == rnn + head - 2 * 3 * (H1 + H2)
    lstm = SequenceModel(
        input_size=X, cell="lstm", hidden_sizes=[H1, H2], bidirectional=True, output_size=O
    )
    assert 3 * (lstm.num_parameters() - head) == 4 * rnn


def test_model_file_round_trip(tmp_path):
    config = dict(input_size=3, cell="cifg", hidden_sizes=[5, 4], bidirectional=True)
    model = SequenceModel(**config, output_size=3, seed=0, forget_bias=0.5)
    x, lengths = float_batch()
    y = targets(model.config, lengths, x.shape[1])
    model.fit(x, y, lengths, epochs=1, batch_size=2, lr=0.05, seed=1, progress=False)
    loaded = SequenceModel.load(model.save(tmp_path / "model"))
    assert loaded.config == model.config and loaded.config.cell == "cifg"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    np.testing.assert_array_equal(loaded.forward(x, lengths), model.forward(x, lengths))


# ------------------------------------------------------------------------------------ seq2seq
SEQ2SEQ_CASES = [
    *(("tokens", bi, att) for bi in (False, True) for att in ("luong", "none")),
    ("values", True, "luong"),
    ("values", False, "none"),
]


@pytest.mark.parametrize("kind,bidirectional,attention", SEQ2SEQ_CASES)
def test_seq2seq_gradients_match_finite_differences(kind, bidirectional, attention):
    model = model_for(kind, cell="cifg", bidirectional=bidirectional, attention=attention)
    source, target = batch(model, np.random.default_rng(0))
    assert model.params["encoder.rnn.weight_ih_l0"].shape[0] == 3 * 5  # three gate blocks

    def loss():
        return model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)[0]

    _, grads = model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)
    assert set(grads) == set(model.params)
    if bidirectional:  # the bridge carries c as well as h for a cell with a cell state
        assert "bridge.c_l0.weight" in grads
    check_gradients(loss, model.params, grads, max_entries=12, tolerance=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_seq2seq_padding_on_either_side_changes_nothing(bidirectional):
    model = model_for("tokens", cell="cifg", bidirectional=bidirectional)
    rng = np.random.default_rng(1)
    source, target = batch(model, rng)
    loss, grads = model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)
    wide_source, wide_target = batch(model, rng, source_time=8, target_time=7)
    wide_source[:, :5] = source
    wide_target[:, :4] = target
    for row, (s, t) in enumerate(zip(SOURCE_LENGTHS, TARGET_LENGTHS, strict=True)):
        wide_source[row, s:] = wide_source[row, s:][::-1]
        wide_target[row, t:] = wide_target[row, t:][::-1]
    wide_loss, wide_grads = model.loss_and_grads(
        wide_source, SOURCE_LENGTHS, wide_target, TARGET_LENGTHS
    )
    assert wide_loss == loss
    for name, value in grads.items():
        np.testing.assert_array_equal(wide_grads[name], value, err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_seq2seq_step_by_step_decoding_carries_the_cifg_state_as_teacher_forcing_does(
    bidirectional,
):
    # Forecasting runs the decoder one step at a time, (h, c) carried between calls; teacher
    # forcing on the forecast runs it in one kernel call over all steps: the same numbers.
    model = model_for("values", cell="cifg", bidirectional=bidirectional)
    source, _ = batch(model, np.random.default_rng(8))
    forecast = model.forecast(source, 4, SOURCE_LENGTHS)
    inputs, _, lengths = model.teacher_forcing(forecast, np.full(4, 4))
    replayed, cache = model.network.forward(source, SOURCE_LENGTHS, inputs, lengths)
    np.testing.assert_allclose(cache.layout.unpack(replayed), forecast, rtol=1e-10, atol=1e-12)
    assert np.abs(np.diff(forecast, axis=1)).max() > 1e-3  # the steps differ
    # Tokens: beam search of width one is greedy decoding.
    tokens = model_for("tokens", cell="cifg", bidirectional=bidirectional)
    source, _ = batch(tokens, np.random.default_rng(6))
    greedy = tokens.greedy_decode(source, SOURCE_LENGTHS, max_len=5)
    single = tokens.beam_search(source, SOURCE_LENGTHS, beam_width=1, max_len=5, length_penalty=0)
    for a, b in zip(greedy.sequences, single.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(greedy.log_probs, single.log_probs, rtol=1e-12)
