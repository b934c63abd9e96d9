"""The models learn real tasks, not just lower a loss: the adding problem (LSTM, regression),
parity of unseen bit strings (GRU, classification) and a memorised paragraph of text
(character-level LSTM, per-step head, generation).

Each test runs one fixed seed. The thresholds were checked with margin on other seeds (listed in
each test) before being fixed here; the whole file takes about 20 s on two cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.data.synthetic import adding_problem, parity
from sparklstm.data.text import CharVocab, next_token_windows

pytestmark = pytest.mark.slow

RNG = np.random.default_rng


# ------------------------------------------------------------------------------- adding problem
def test_lstm_solves_the_adding_problem():
    """Hochreiter & Schmidhuber (1997): a test sequence counts as solved when the absolute error
    of the predicted sum is below 0.04. Here (variable lengths 12..24) the LSTM must solve more
    than 95% of 1000 unseen sequences, with a test MSE below 0.01 (their other criterion).

    Fraction solved on seeds 0-4 with these settings: 0.997, 0.994, 0.999, 1.0, 0.999.
    """
    seed = 0
    rng = RNG(seed)
    x, y, lengths = adding_problem(2000, 24, rng, min_len=12)
    x_test, y_test, lengths_test = adding_problem(1000, 24, rng, min_len=12)
    # The criterion is not met by chance: always answering the mean sum (1.0) solves ~8%.
    assert np.mean(np.abs(1.0 - y_test) < 0.04) < 0.12

    model = SequenceModel(
        input_size=2, hidden_sizes=[24], task="regression", output_size=1, seed=seed
    )
    epochs, batch_size, lr = 40, 32, 0.02
    steps = epochs * math.ceil(len(y) / batch_size)
    history = model.fit(
        x,
        y,
        lengths,
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        schedule={"name": "cosine", "lr": lr, "total_steps": steps, "min_lr": lr / 20},
        clip_norm=1.0,
        seed=seed,
        progress=False,
    )
    error = model.predict(x_test, lengths_test) - y_test
    solved = np.mean(np.abs(error) < 0.04)
    mse = float(np.mean(error.astype(np.float64) ** 2))
    assert solved > 0.95, (solved, mse)
    assert mse < 0.01
    assert model.evaluate(x_test, y_test, lengths_test)["loss"] == pytest.approx(mse, rel=1e-4)
    assert history["loss"][-1] < history["loss"][0] / 100


# --------------------------------------------------------------------------------------- parity
def test_gru_computes_the_parity_of_unseen_bit_strings():
    """Parity of bit strings of lengths 1..16, trained on 2000 strings and tested on fresh
    strings that do not occur in the training set (so memorising cannot help): accuracy > 95%.
    Guessing gets 50%.

    Accuracy on seeds 0-3 with these settings: 1.0 each (the training accuracy reaches 1.0 by
    about epoch 6 of 30).
    """
    seed = 0
    rng = RNG(seed)
    x, y, lengths = parity(2000, 16, rng, min_len=1)
    x_test, y_test, lengths_test = parity(3000, 16, rng, min_len=1)

    def strings(bits, lengths_):
        return [bits[i, : lengths_[i], 0].tobytes() for i in range(len(lengths_))]

    seen = set(strings(x, lengths))
    unseen = np.array([s not in seen for s in strings(x_test, lengths_test)])
    assert unseen.sum() > 1000
    x_test, y_test, lengths_test = x_test[unseen], y_test[unseen], lengths_test[unseen]

    model = SequenceModel(input_size=1, cell="gru", hidden_sizes=[16], output_size=2, seed=seed)
    model.fit(
        x,
        y,
        lengths,
        epochs=30,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        clip_norm=1.0,
        seed=seed,
        progress=False,
    )
    accuracy = np.mean(model.predict(x_test, lengths_test) == y_test)
    assert accuracy > 0.95
    # Long strings too, not only the short ones.
    longest = lengths_test >= 14
    assert longest.sum() > 200
    assert np.mean(model.predict(x_test[longest], lengths_test[longest]) == y_test[longest]) > 0.95


# --------------------------------------------------------------------------- character model
# The opening of "Alice's Adventures in Wonderland" (Lewis Carroll, 1865; public domain).
PARAGRAPH = (
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of "
    "having nothing to do: once or twice she had peeped into the book her sister was "
    "reading, but it had no pictures or conversations in it, 'and what is the use of a "
    "book,' thought Alice 'without pictures or conversations?'"
)


def test_char_lstm_memorises_a_paragraph_and_recites_it():
    """A character-level LSTM (head "all", one next-character prediction per step) trained on
    overlapping 40-character windows of a 302-character paragraph: training bits per character
    < 0.5 and per-character accuracy > 90%; generation at a small temperature continues
    prefixes of the paragraph with the paragraph's own text.

    Bits per character on seeds 0-4 with these settings: 0.129, 0.129, 0.131, 0.145, 0.117
    (accuracy 0.973-0.978); all five recite the three continuations below.
    """
    seed = 0
    vocab = CharVocab.from_text(PARAGRAPH)
    ids = vocab.encode(PARAGRAPH)
    assert vocab.decode(ids) == PARAGRAPH
    x, y = next_token_windows(ids, 40, stride=4)
    assert x.shape == (66, 40)

    model = SequenceModel(
        vocab_size=len(vocab),
        embedding_dim=16,
        hidden_sizes=[64],
        head="all",
        output_size=len(vocab),
        seed=seed,
    )
    history = model.fit(
        x, y, epochs=40, batch_size=16, lr=0.01, clip_norm=5.0, seed=seed, progress=False
    )
    metrics = model.evaluate(x, y)
    bits_per_char = metrics["loss"] / math.log(2)
    assert bits_per_char < 0.5, bits_per_char
    assert metrics["accuracy"] > 0.9
    # An untrained model is near uniform: log2(28 symbols) = 4.8 bits.
    assert history["loss"][0] / math.log(2) > 4.0

    for prefix in ("Alice was beginning", "'and what is the use", "once or twice she had "):
        start = PARAGRAPH.index(prefix) + len(prefix)
        expected = PARAGRAPH[start : start + 20]
        for temperature in (0.05, 0.0):
            generated = model.generate(vocab.encode(prefix), 20, temperature=temperature, rng=0)
            assert vocab.decode(generated) == expected, (prefix, temperature)
