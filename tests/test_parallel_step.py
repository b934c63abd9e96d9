"""A minibatch step split across threads (sparklstm.training.parallel) gives the whole batch's
loss and gradient, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.data.synthetic import noisy_sines
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.blas import blas_threads
from sparklstm.training import parallel
from sparklstm.training.parallel import StepSplitter


def _sequence_case(task: str, head: str):
    rng = np.random.default_rng(3)
    x, y, lengths = noisy_sines(13, 9, 3, rng, min_len=2)  # 13: parts of unequal size
    if task == "regression":
        y = rng.standard_normal((13, 9, 2)) if head == "all" else rng.standard_normal((13, 2))
    model = SequenceModel(
        input_size=1,
        hidden_sizes=[6, 5],
        output_size=3 if task == "classification" else 2,
        task=task,
        head=head,
        dtype="float64",
        seed=0,
    )
    return model, model.prepare(x, y, lengths)


def _seq2seq_case():
    rng = np.random.default_rng(4)
    source = rng.integers(3, 9, size=(11, 6))
    targets = rng.integers(3, 9, size=(11, 5))
    model = Seq2SeqModel(
        source_vocab_size=10,
        target_vocab_size=10,
        hidden_sizes=[7],
        embedding_dim=4,
        attention="luong",
        dtype="float64",
        seed=1,
    )
    return model, model.prepare(source, targets, (np.full(11, 6), np.full(11, 5)))


@pytest.mark.parametrize(
    "case",
    ["classification-last", "regression-all", "regression-last", "seq2seq"],
)
@pytest.mark.parametrize("parts", [2, 3])
def test_split_step_equals_the_whole_batch(case, parts, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PART_WORK", 1)  # split even these small models
    if case == "seq2seq":
        model, batch = _seq2seq_case()
    else:
        task, head = case.split("-")
        model, batch = _sequence_case(task, head)
    rng = np.random.default_rng(0)
    loss, grads, count, metric = model.step_gradients(batch, rng)
    with StepSplitter(parts) as splitter:
        split_loss, split_grads, split_count, split_metric = splitter(model, batch, rng)
    assert split_count == count and split_metric == pytest.approx(metric, rel=1e-12)
    assert split_loss == pytest.approx(loss, rel=1e-12)
    assert split_grads.keys() == grads.keys()
    for name, value in grads.items():
        np.testing.assert_allclose(split_grads[name], value, rtol=0, atol=1e-12, err_msg=name)
    assert max(np.abs(value).max() for value in grads.values()) > 1e-3  # not vacuous


def test_fit_with_step_threads_is_reproducible_and_trains():
    """Batches of 32 and hidden size 128: 16 x 128² = 2**18, just worth splitting."""
    rng = np.random.default_rng(0)
    x, y, lengths = noisy_sines(256, 20, 3, rng, min_len=8)
    assert 32 // 2 * 128 * 128 >= parallel.MIN_PART_WORK

    def run():
        model = SequenceModel(input_size=1, hidden_sizes=[128], output_size=3, dropout=0.2, seed=0)
        history = model.fit(
            x, y, lengths, epochs=4, batch_size=32, step_threads=2, lr=0.01, progress=False
        )
        return model, history

    first, history = run()
    second, _ = run()
    for name, value in first.params.items():
        np.testing.assert_array_equal(second.params[name], value, err_msg=name)
    assert history.rows[-1]["loss"] < 0.7 * history.rows[0]["loss"]
    accuracy = (first.predict(x, lengths) == y).mean()
    assert accuracy > 0.6  # three classes: chance is 1/3


def test_blas_threads_come_back_after_a_split_run():
    before = blas_threads()
    with StepSplitter(2):
        assert blas_threads() in (1, None)
    assert blas_threads() == before


def test_batches_too_small_to_pay_for_a_thread_run_whole():
    """Parts below MIN_PART_WORK (and batches smaller than the parts) run as one part: the same
    bits as an unsplit step."""
    model, batch = _sequence_case("classification", "last")
    small = batch.take(np.arange(8))
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    whole = model.step_gradients(small, rng_a)
    with StepSplitter(3) as splitter:
        split = splitter(model, small, rng_b)
    for name, value in whole[1].items():
        np.testing.assert_array_equal(split[1][name], value)
