"""Encoder-decoder models: exact gradients (float64 finite differences) of encoder, bridge,
decoder, attention and output layer for every cell and option; padding on either side has
exactly no effect; scheduled sampling; greedy and beam search (beam search checked against an
exhaustive search); recursive forecasting; the model file; and learning a transduction."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sparklstm.io.model_files import ModelFileError
from sparklstm.model import decoding
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.nn.losses import log_softmax
from tests.gradcheck import check_gradients

SOURCE_LENGTHS = np.array([5, 2, 4, 1])
TARGET_LENGTHS = np.array([3, 1, 4, 2])
KINDS = {
    "tokens": {"source_vocab_size": 7, "target_vocab_size": 6, "embedding_dim": 3},
    "values": {"input_size": 2, "output_size": 3},
}


def batch(model, rng, source_time=5, target_time=4):
    """A source and target batch of the model's kinds (4 rows, ragged lengths)."""
    cfg = model.config
    if cfg.token_source:
        source = rng.integers(0, cfg.source_vocab_size, size=(4, source_time))
    else:
        source = rng.normal(size=(4, source_time, cfg.input_size))
    if cfg.token_target:
        # Ordinary tokens only: start (1) and end (2) are the model's to write.
        target = rng.integers(3, cfg.target_vocab_size, size=(4, target_time))
    else:
        target = rng.normal(size=(4, target_time, cfg.output_size))
    return source, target


def model_for(kind, **options):
    """A float64 model whose weights are drawn large enough that attention is not uniform
    and every gradient is well above the finite differences' rounding noise."""
    model = Seq2SeqModel(**KINDS[kind], hidden_sizes=[5, 4], dtype="float64", seed=1, **options)
    rng = np.random.default_rng(7)
    for value in model.params.values():
        value[...] = rng.normal(scale=0.6, size=value.shape)
    return model


CASES = [
    *(("tokens", cell, bi, att) for cell in ("lstm", "peephole", "gru") for bi in (False, True)
      for att in ("luong", "none")),
    *(("values", "lstm", bi, att) for bi in (False, True) for att in ("luong", "none")),
    ("values", "gru", True, "luong"),
]  # fmt: skip


@pytest.mark.parametrize("kind,cell,bidirectional,attention", CASES)
def test_gradients_match_finite_differences(kind, cell, bidirectional, attention):
    model = model_for(kind, cell=cell, bidirectional=bidirectional, attention=attention)
    source, target = batch(model, np.random.default_rng(0))

    def loss():
        return model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)[0]

    _, grads = model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)
    assert set(grads) == set(model.params)
    # Relative errors of central differences (eps 1e-6) in float64 are ~1e-7 here; 1e-5
    # leaves room for the smallest gradient entries, whose rounding noise is relatively larger.
    check_gradients(loss, model.params, grads, max_entries=12, tolerance=1e-5)


@pytest.mark.parametrize("kind", ["tokens", "values"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_on_either_side_changes_nothing(kind, bidirectional):
    model = model_for(kind, bidirectional=bidirectional)
    rng = np.random.default_rng(1)
    source, target = batch(model, rng)
    loss, grads = model.loss_and_grads(source, SOURCE_LENGTHS, target, TARGET_LENGTHS)
    # Three more padded steps on both sides, filled with garbage.
    wide_source, wide_target = batch(model, rng, source_time=8, target_time=7)
    wide_source[:, :5] = source
    wide_target[:, :4] = target
    for row, (s, t) in enumerate(zip(SOURCE_LENGTHS, TARGET_LENGTHS, strict=True)):
        wide_source[row, s:] = wide_source[row, s:][::-1]  # anything but the valid steps
        wide_target[row, t:] = wide_target[row, t:][::-1]
    padded_loss, padded_grads = model.loss_and_grads(
        wide_source, SOURCE_LENGTHS, wide_target, TARGET_LENGTHS
    )
    assert padded_loss == loss
    for name, value in grads.items():
        np.testing.assert_array_equal(padded_grads[name], value, err_msg=name)


def test_padded_source_steps_get_exactly_zero_attention():
    model = model_for("tokens")
    source, _ = batch(model, np.random.default_rng(2))
    decoded = model.greedy_decode(source, SOURCE_LENGTHS, max_len=6)
    memory, encoder = model.network.encode(source, SOURCE_LENGTHS)
    mask = np.arange(5)[None, :] < SOURCE_LENGTHS[:, None]
    states = list(zip(*model.network.bridge(encoder), strict=True))
    _, _, weights = model.network.decode_step(np.full(4, 1), states, memory, mask)
    assert np.all(weights[~mask] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    for row, attention in enumerate(decoded.attention):
        assert attention.shape[1] == SOURCE_LENGTHS[row]  # only the valid steps are kept


def test_scheduled_sampling_feeds_back_the_models_own_previous_token():
    model = model_for("tokens", sampling_rate=0.5)
    source, target = batch(model, np.random.default_rng(3))
    inputs, _, lengths = model.teacher_forcing(target, TARGET_LENGTHS)
    mixed = model._sampled_inputs(
        source, SOURCE_LENGTHS, inputs, lengths, 0.5, np.random.default_rng(9)
    )
    predicted, cache = model.network.forward(source, SOURCE_LENGTHS, inputs, lengths)
    own = cache.layout.unpack(predicted).argmax(axis=2)
    replace = np.random.default_rng(9).random(inputs.shape) < 0.5
    replace[:, 0] = False
    assert replace.any() and (~replace[:, 1:]).any()
    np.testing.assert_array_equal(mixed[:, 0], 1)  # the start token is never replaced
    np.testing.assert_array_equal(mixed[:, 1:][replace[:, 1:]], own[:, :-1][replace[:, 1:]])
    np.testing.assert_array_equal(mixed[~replace], inputs[~replace])
    # The loss and gradients are those of teacher forcing on the mixed inputs.
    loss, grads = model.loss_and_grads(
        source, SOURCE_LENGTHS, target, TARGET_LENGTHS, np.random.default_rng(9)
    )
    again, cache = model.network.forward(source, SOURCE_LENGTHS, mixed, lengths)
    _, outputs, _ = model.teacher_forcing(target, TARGET_LENGTHS)
    expected, d_outputs = model._loss(again, cache.layout.pack(outputs))
    assert loss == expected
    for name, value in model.network.backward(d_outputs, cache).items():
        np.testing.assert_array_equal(grads[name], value, err_msg=name)


def test_teacher_forcing_layout():
    model = Seq2SeqModel(**KINDS["tokens"])
    target = np.array([[4, 5, 3], [5, 0, 0]])
    inputs, outputs, lengths = model.teacher_forcing(target, np.array([3, 1]))
    np.testing.assert_array_equal(inputs, [[1, 4, 5, 3], [1, 5, 0, 0]])
    np.testing.assert_array_equal(outputs[0], [4, 5, 3, 2])
    np.testing.assert_array_equal(outputs[1, :2], [5, 2])
    np.testing.assert_array_equal(lengths, [4, 2])


# ------------------------------------------------------------------------------- decoding
def _sequence_log_prob(model, source, length, tokens):
    """log p(tokens, <end> | source) by the teacher-forced network (an independent path)."""
    target = np.asarray(tokens, dtype=np.int64)[None]
    inputs, outputs, lengths = model.teacher_forcing(target, np.array([len(tokens)]))
    logits, cache = model.network.forward(source[None], np.array([length]), inputs, lengths)
    wanted = cache.layout.pack(outputs)
    return float(log_softmax(logits)[np.arange(len(wanted)), wanted].sum())


def test_beam_search_finds_the_exhaustive_optimum_and_width_one_is_greedy():
    model = Seq2SeqModel(
        source_vocab_size=5, target_vocab_size=5, hidden_sizes=[6], dtype="float64", seed=4
    )
    for value in model.params.values():
        value[...] = np.random.default_rng(5).normal(scale=0.8, size=value.shape)
    source = np.random.default_rng(6).integers(0, 5, size=(3, 4))
    lengths = np.array([4, 2, 3])
    max_len = 3
    greedy = model.greedy_decode(source, lengths, max_len=max_len)
    single = model.beam_search(source, lengths, beam_width=1, max_len=max_len, length_penalty=0)
    for a, b in zip(greedy.sequences, single.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(greedy.log_probs, single.log_probs, rtol=1e-12)
    # Every complete sequence of at most max_len - 1 ordinary tokens (3 and 4) then <end>.
    candidates = [
        list(tokens) for n in range(max_len) for tokens in itertools.product([3, 4], repeat=n)
    ]
    wide = model.beam_search(source, lengths, beam_width=25, max_len=max_len, length_penalty=0)
    for row in range(3):
        scores = [_sequence_log_prob(model, source[row], lengths[row], c) for c in candidates]
        best = int(np.argmax(scores))
        # A hypothesis may also use start/end ids mid-way or stop at max_len without <end>;
        # the search covers those too, so its best is at least the best complete one.
        assert wide.log_probs[row] >= scores[best] - 1e-12
        if list(wide.sequences[row]) in candidates:
            found = _sequence_log_prob(model, source[row], lengths[row], wide.sequences[row])
            assert found == pytest.approx(wide.log_probs[row], abs=1e-9)


def test_recursive_forecast_feeds_each_prediction_back():
    model = model_for("values")
    source, _ = batch(model, np.random.default_rng(8))
    horizon = 4
    forecast = model.forecast(source, horizon, SOURCE_LENGTHS)
    assert forecast.shape == (4, horizon, 3)
    # Teacher forcing on the forecast itself reproduces it (the same inputs at every step).
    inputs, _, lengths = model.teacher_forcing(forecast, np.full(4, horizon))
    replayed, cache = model.network.forward(source, SOURCE_LENGTHS, inputs, lengths)
    np.testing.assert_allclose(cache.layout.unpack(replayed), forecast, rtol=1e-10, atol=1e-12)


def test_decoding_refuses_the_wrong_kind_and_bad_arguments():
    tokens, values = model_for("tokens"), model_for("values")
    source, _ = batch(tokens, np.random.default_rng(0))
    with pytest.raises(ValueError, match="recursive_forecast"):
        decoding.greedy_decode(
            values.network,
            *values.prepare_source(batch(values, np.random.default_rng(0))[0], SOURCE_LENGTHS),
            3,
        )
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        tokens.beam_search(source, SOURCE_LENGTHS, beam_width=0)
    with pytest.raises(ValueError, match="max_len"):
        tokens.greedy_decode(source, SOURCE_LENGTHS, max_len=0)
    with pytest.raises(ValueError, match="source token ids"):
        tokens.greedy_decode(source + 10, SOURCE_LENGTHS)


# ---------------------------------------------------------------------------- model files
def test_save_and_load_round_trip(tmp_path):
    model = model_for("tokens", bidirectional=True, cell="gru")
    source, _ = batch(model, np.random.default_rng(0))
    path = model.save(tmp_path / "s2s", metadata={"vocabulary": "chars"})
    loaded = Seq2SeqModel.load(path)
    assert loaded.config == model.config and loaded.metadata == {"vocabulary": "chars"}
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    a = model.beam_search(source, SOURCE_LENGTHS, beam_width=3, max_len=5)
    b = loaded.beam_search(source, SOURCE_LENGTHS, beam_width=3, max_len=5)
    for x, y in zip(a.sequences, b.sequences, strict=True):
        np.testing.assert_array_equal(x, y)
    model_for("tokens").save(tmp_path / "other")  # same kind, other shapes: still loads
    from sparklstm import SequenceModel

    SequenceModel(input_size=1, hidden_sizes=[3]).save(tmp_path / "sequence")
    with pytest.raises(ModelFileError):
        Seq2SeqModel.load(tmp_path / "sequence")


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="exactly one of input_size and source_vocab_size"):
        Seq2SeqModel(target_vocab_size=5)
    with pytest.raises(ValueError, match="target_vocab_size"):
        Seq2SeqModel(input_size=1)
    with pytest.raises(ValueError, match="end_token=7 is not below target_vocab_size=5"):
        Seq2SeqModel(input_size=1, target_vocab_size=5, end_token=7)
    with pytest.raises(ValueError, match="attention"):
        Seq2SeqModel(input_size=1, output_size=1, attention="bahdanau")


# ------------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_learns_to_reverse_strings_with_attention():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 8, size=1200)
    sources = [rng.integers(3, 10, size=n) for n in lengths]
    targets = [s[::-1] for s in sources]
    model = Seq2SeqModel(
        source_vocab_size=10, target_vocab_size=10, hidden_sizes=[48], embedding_dim=16, seed=0
    )
    model.fit(sources[:1000], targets[:1000], epochs=12, batch_size=32, lr=0.01, seed=0)
    scores = model.evaluate(sources[1000:], targets[1000:])
    assert scores["sequence_accuracy"] > 0.9, scores
    decoded = model.beam_search(sources[1000:1010], beam_width=3, max_len=10)
    assert (
        sum(
            np.array_equal(d, t) for d, t in zip(decoded.sequences, targets[1000:1010], strict=True)
        )
        >= 9
    )


# ------------------------------------------------------------------- the shared trainer
def _reversal(n, seed):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, 8, size=k) for k in rng.integers(2, 6, size=n)]
    return sources, [s[::-1] for s in sources]


def test_fit_is_the_shared_trainer_two_calls_of_one_epoch_are_one_call_of_two():
    sources, targets = _reversal(120, 0)
    options = {"batch_size": 16, "lr": 0.01, "seed": 3, "clip_norm": 5.0}

    def fresh():
        return Seq2SeqModel(
            source_vocab_size=8, target_vocab_size=8, hidden_sizes=[12], sampling_rate=0.25, seed=1
        )

    once, twice = fresh(), fresh()
    history = once.fit(sources, targets, epochs=2, **options)
    twice.fit(sources, targets, epochs=1, **options)
    twice.fit(sources, targets, epochs=1, **options)
    for name, value in once.params.items():
        np.testing.assert_array_equal(twice.params[name], value, err_msg=name)
    assert [row["epoch"] for row in history.rows] == [1, 2]
    assert set(history.rows[0]) >= {"loss", "accuracy", "lr", "seconds"}


def test_validation_metrics_come_from_decoding_and_add_up_over_batches():
    sources, targets = _reversal(90, 1)
    model = Seq2SeqModel(source_vocab_size=8, target_vocab_size=8, hidden_sizes=[10], seed=2)
    history = model.fit(
        sources[:60], targets[:60], epochs=2, batch_size=16, validation=(sources[60:], targets[60:])
    )
    last = history.rows[-1]
    assert {"val_loss", "val_sequence_accuracy", "val_token_accuracy"} <= set(last)
    data = model.prepare(sources[60:], targets[60:])
    whole = model.evaluate_data(data, batch_size=1000)
    # float32 losses summed in other groupings: equal to float32 rounding.
    assert whole == pytest.approx(model.evaluate_data(data, batch_size=7), rel=1e-6)
    assert whole["loss"] == pytest.approx(last["val_loss"], rel=1e-12)
    decoded = model.greedy_decode(sources[60:], max_len=7)
    exact = np.mean(
        [np.array_equal(d, t) for d, t in zip(decoded.sequences, targets[60:], strict=True)]
    )
    assert whole["sequence_accuracy"] == exact


def test_forecasting_metrics_are_those_of_the_recursive_forecast():
    rng = np.random.default_rng(4)
    source = rng.normal(size=(20, 6, 1))
    target = rng.normal(size=(20, 3, 1))
    model = Seq2SeqModel(input_size=1, output_size=1, hidden_sizes=[6], seed=0, dtype="float64")
    scores = model.evaluate(source, target)
    error = model.forecast(source, 3) - target
    assert scores["rmse"] == pytest.approx(float(np.sqrt(np.mean(error**2))), rel=1e-12)
    assert scores["mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=1e-12)
