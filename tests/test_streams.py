"""Long streams with carried state: stateful reading equals one pass, truncated BPTT is exactly
the gradient of its definition (float64 finite differences), adds up to full BPTT when the
backward length covers the stream, and is the one-process trainer when one chunk covers the
streams; carried state learns what independent windows cannot; bad streams fail in one line."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.model.streams import StreamGroup
from sparklstm.training.streams import (
    StreamOptions,
    StreamStepper,
    chunk_plan,
    window_gradients,
)

CELLS = ("lstm", "peephole", "gru", "cifg")


def token_streams(lengths, vocab=5, seed=0):
    """Token streams and their next-token targets."""
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, vocab, size=n + 1) for n in lengths]
    return [s[:-1] for s in ids], [s[1:] for s in ids]


def float_streams(lengths, features=2, seed=0):
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(size=(n, features)) for n in lengths]
    return inputs, [rng.normal(size=(n, 1)) for n in lengths]


def model_for(kind, cell="lstm", layers=(5, 4), dtype="float64", seed=1):
    if kind == "tokens":
        return SequenceModel(
            vocab_size=5, embedding_dim=3, hidden_sizes=list(layers), cell=cell, head="all",
            output_size=5, dtype=dtype, seed=seed,
        )  # fmt: skip
    return SequenceModel(
        input_size=2, hidden_sizes=list(layers), cell=cell, head="all", task="regression",
        output_size=1, dtype=dtype, seed=seed,
    )  # fmt: skip


def padded(streams, fill=0):
    longest = max(len(s) for s in streams)
    shape = (len(streams), longest, *np.shape(streams[0])[1:])
    out = np.full(shape, fill, dtype=np.asarray(streams[0]).dtype)
    for k, s in enumerate(streams):
        out[k, : len(s)] = s
    return out


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["tokens", "floats"])
def test_reading_a_stream_chunk_by_chunk_equals_one_pass(cell, kind):
    model = model_for(kind, cell)
    inputs, _ = (token_streams if kind == "tokens" else float_streams)([61])
    whole = model.forward(inputs[0][None])[0]
    for chunk_length in (1, 7, 61, 100):
        np.testing.assert_allclose(
            model.stream_outputs(inputs[0], chunk_length), whole, rtol=1e-12, atol=1e-14
        )


def test_float32_streams_agree_to_float32_rounding():
    model = model_for("floats", dtype="float32")
    inputs, _ = float_streams([500])
    whole = model.forward(inputs[0][None].astype(np.float32))[0]
    np.testing.assert_allclose(model.stream_outputs(inputs[0], 37), whole, rtol=1e-4, atol=1e-5)


def run_chunks(model, inputs, targets, options):
    """Every chunk's truncated gradient at the fixed starting parameters (no update)."""
    group = StreamGroup.of(inputs, targets)
    stepper = StreamStepper(model.network, group, options)
    results = []
    for chunk in chunk_plan(group.longest, options):
        loss, grads, count, _ = stepper.step_gradients(chunk, np.random.default_rng(0))
        results.append((chunk, loss, grads, count))
    return stepper, results


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["tokens", "floats"])
def test_chunks_add_up_to_full_bptt_when_the_backward_length_covers_the_streams(cell, kind):
    lengths = [23, 17, 9]
    inputs, targets = (token_streams if kind == "tokens" else float_streams)(lengths, seed=2)
    model = model_for(kind, cell)
    options = StreamOptions(forward_length=5, backward_length=23)
    _, results = run_chunks(model, inputs, targets, options)
    assert [c.start for c, *_ in results] == [0, 5, 10, 15, 20]
    summed = {name: np.zeros_like(value) for name, value in model.params.items()}
    total = 0
    for _, _, grads, count in results:
        total += count
        for name, grad in grads.items():
            summed[name] += grad * count
    assert total == sum(lengths)
    x = padded(inputs)
    y = padded(targets)
    full_loss, full = model.loss_and_grads(x, y, lengths)
    # The mean loss of every step, and its gradient, from the chunks' means.
    assert sum(loss * count for _, loss, _, count in results) / total == pytest.approx(
        full_loss, rel=1e-12
    )
    for name, grad in full.items():
        np.testing.assert_allclose(summed[name] / total, grad, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("forward", "backward"), [(4, 6), (4, 2), (4, 4), (3, 8)])
def test_the_truncated_gradient_is_the_gradient_of_its_definition(cell, forward, backward):
    """At the chunk ``[8, 12)`` (k1 = 4) or ``[9, 12)`` (k1 = 3): the loss of the chunk's steps
    from ``w = end - k2`` on, computed from the carried state at ``w`` held fixed, differenced
    in float64 against the stepper's gradient."""
    inputs, targets = token_streams([14, 13, 10], seed=3)
    model = model_for("tokens", cell, layers=(4, 3))
    options = StreamOptions(forward_length=forward, backward_length=backward)
    group = StreamGroup.of(inputs, targets)
    stepper = StreamStepper(model.network, group, options)
    plan = chunk_plan(group.longest, options)
    target_chunk = next(c for c in plan if c.end == 12)
    for chunk in plan:
        if chunk == target_chunk:
            break
        stepper.step_gradients(chunk, np.random.default_rng(0))
    w = target_chunk.window_start
    assert w == max(0, 12 - backward)
    rows = group.running(target_chunk.loss_start)
    # The carried state at w, by one plain pass over [0, w) (zero state at w = 0).
    if w > 0:
        prefix, _, prefix_lengths = group.window(rows, 0, w, model.config)
        from sparklstm.model.streams import advance

        start_states = advance(model.network, prefix, prefix_lengths, None)[2]
    else:
        from sparklstm.model.streams import zero_states

        start_states = zero_states(model.network, len(rows))
    window = group.window(rows, w, 12, model.config)
    loss_from = target_chunk.loss_start - w

    def definition():
        return window_gradients(model.network, *window, start_states, loss_from)[0]

    loss, grads, count, _ = stepper.step_gradients(target_chunk, np.random.default_rng(0))
    assert loss == pytest.approx(definition(), rel=1e-12)
    assert count == sum(min(12, n) - target_chunk.loss_start for n in group.lengths[rows])
    rng = np.random.default_rng(4)
    eps = 1e-6
    for name, param in model.params.items():
        for flat in rng.choice(param.size, size=min(4, param.size), replace=False):
            index = np.unravel_index(flat, param.shape)
            keep = param[index]
            param[index] = keep + eps
            up = definition()
            param[index] = keep - eps
            down = definition()
            param[index] = keep
            numeric = (up - down) / (2 * eps)
            assert grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-9), name


def test_a_long_backward_length_keeps_only_the_states_it_needs():
    inputs, targets = token_streams([200], seed=5)
    model = model_for("tokens", layers=(3,))
    options = StreamOptions(forward_length=10, backward_length=35)
    stepper, results = run_chunks(model, inputs, targets, options)
    assert len(results) == 20
    # After the last chunk: the boundaries a window of 35 steps behind the next end needs.
    assert sorted(stepper._kept) == [170, 180, 190, 200]


def test_one_chunk_over_whole_streams_is_the_one_process_trainer():
    lengths = [31, 26, 19, 12]  # distinct: both trainers pack the rows in the same order
    inputs, targets = token_streams(lengths, seed=6)
    options = dict(epochs=3, batch_size=4, lr=0.01, seed=7, clip_norm=1.0)
    streamed = model_for("tokens", dtype="float32")
    streamed.fit_streams(inputs, targets, forward_length=40, shuffle=False, **options)
    plain = model_for("tokens", dtype="float32")
    plain.fit(padded(inputs), padded(targets), lengths, progress=False, **options)
    for name, value in plain.params.items():
        np.testing.assert_array_equal(streamed.params[name], value, err_msg=name)


def delayed_copy(n_streams, length, delay, seed):
    """Token streams whose target at step t is the input at step t - delay (0 before)."""
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 4, size=length) for _ in range(n_streams)]
    targets = [np.concatenate([np.zeros(delay, np.int64), s[:-delay]]) for s in inputs]
    return inputs, targets


def test_carried_state_learns_what_crosses_a_chunk_boundary():
    """Targets that need the input 3 steps back, in chunks of 8: with the state carried, the
    first steps of every chunk are predictable too; cut into independent windows of 8, those
    3 of 8 steps are guesses (about 1/4 right)."""
    inputs, targets = delayed_copy(8, 800, 3, seed=8)
    val_inputs, val_targets = delayed_copy(2, 800, 3, seed=9)
    model = SequenceModel(
        vocab_size=4, embedding_dim=4, hidden_sizes=[24], head="all", output_size=4, seed=0
    )
    history = model.fit_streams(
        inputs, targets, forward_length=8, epochs=6, batch_size=8, lr=0.02, seed=0,
        validation=(val_inputs, val_targets), progress=False,
    )  # fmt: skip
    carried = model.evaluate_streams(val_inputs, val_targets, chunk_length=8)
    assert carried["accuracy"] > 0.97, carried
    assert history.rows[-1]["val_accuracy"] == pytest.approx(carried["accuracy"])
    assert carried["bits_per_step"] == pytest.approx(carried["loss"] / np.log(2))
    # The same model reading independent windows of 8 loses the steps behind each cut.
    windows = np.stack([s.reshape(-1, 8) for s in val_inputs]).reshape(-1, 8)
    window_targets = np.stack([s.reshape(-1, 8) for s in val_targets]).reshape(-1, 8)
    cut = model.evaluate(windows, window_targets)
    assert cut["accuracy"] < 0.75, cut


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(bidirectional=True), "bidirectional=True: a stream read chunk by chunk"),
        (dict(head="last"), "head='last': streams need per-step outputs"),
    ],
)
def test_models_that_cannot_read_streams_are_refused(change, message):
    inputs, targets = token_streams([20])
    options = dict(vocab_size=5, hidden_sizes=[3], head="all", output_size=5, seed=0)
    model = SequenceModel(**{**options, **change})
    with pytest.raises(ValueError, match=message):
        model.fit_streams(inputs, targets, epochs=1)


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        (
            [np.array([1, 2, 9])],
            [np.array([1, 2, 3])],
            r"stream 0: ids must be in \[0, 5\), found 9",
        ),
        ([np.array([1, 2, 3])], [np.array([1, 2])], "stream 0: 3 steps but 2 targets"),
        ([np.array([], np.int64)], [np.array([], np.int64)], "stream 0: empty"),
        (np.zeros((2, 5), np.int64), None, "a sequence of streams"),
        ([np.array([1, 2])], [np.array([0, 7])], r"stream 0 targets: ids must be in \[0, 5\)"),
        ([np.array([1.0, 2.0])], [np.array([0, 1])], "stream 0: ids must be integers"),
    ],
)
def test_bad_streams_fail_in_one_line_before_any_work(inputs, targets, message):
    model = model_for("tokens")
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit_streams(inputs, targets if targets is not None else inputs, epochs=1)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_stream_options_are_checked():
    with pytest.raises(ValueError, match="forward_length"):
        StreamOptions(forward_length=0)
    with pytest.raises(ValueError, match="backward_length"):
        StreamOptions(forward_length=5, backward_length=0)
