"""Data utilities: padding, batching, character text, word vectors and synthetic tasks.

Everything here needs NumPy only. The Arrow conversions live in :mod:`sparklstm.data.arrow`
(not imported here, so ``import sparklstm.data`` does not load pyarrow).
"""

from __future__ import annotations

from sparklstm.data.batching import (
    bucketed_batches,
    minibatch_indices,
    padding_fraction,
    train_validation_split,
)
from sparklstm.data.embeddings import (
    load_word_vectors,
    read_labelled_token_file,
    write_word_vectors,
)
from sparklstm.data.padding import lengths_to_mask, mask_to_lengths, pad_sequences, unpad
from sparklstm.data.synthetic import (
    adding_problem,
    copy_task,
    noisy_sines,
    parity,
    sine_forecasting,
)
from sparklstm.data.text import CharVocab, next_token_windows

__all__ = [
    "pad_sequences",
    "lengths_to_mask",
    "mask_to_lengths",
    "unpad",
    "minibatch_indices",
    "bucketed_batches",
    "padding_fraction",
    "train_validation_split",
    "CharVocab",
    "next_token_windows",
    "load_word_vectors",
    "read_labelled_token_file",
    "write_word_vectors",
    "adding_problem",
    "parity",
    "copy_task",
    "noisy_sines",
    "sine_forecasting",
]
