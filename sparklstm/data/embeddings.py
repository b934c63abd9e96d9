"""Word vectors and labelled token files in the reference project's text formats.

Dictionary file (one word per line)::

    word<TAB>v1,v2,...,vD

Labelled token file (one example per line)::

    label<TAB>tok1,tok2,...

Both are UTF-8; a trailing ``\\r`` is ignored and blank lines are skipped. Errors name the
file and the 1-based line number.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["load_word_vectors", "read_labelled_token_file", "write_word_vectors"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def _lines(path: PathLike) -> tuple[list[int], list[str]]:
    """1-based numbers and text of the non-blank lines of a UTF-8 file."""
    with open(path, encoding="utf-8", newline="") as f:
        raw = f.read().split("\n")
    numbers, lines = [], []
    for number, line in enumerate(raw, start=1):
        line = line.removesuffix("\r")
        if line.strip():
            numbers.append(number)
            lines.append(line)
    return numbers, lines


def _split_tab(path: PathLike, number: int, line: str, layout: str) -> tuple[str, str]:
    head, tab, rest = line.partition("\t")
    if not tab:
        raise ValueError(f"{path}, line {number}: no tab; expected '{layout}'")
    return head, rest


def load_word_vectors(
    path: PathLike, *, unknown_token: str = "UNKNOWN", dtype: DTypeLike = np.float32
) -> tuple[dict[str, int], np.ndarray]:
    """Read a dictionary file of word vectors.

    Parameters
    ----------
    path : str or os.PathLike
        File with lines ``word<TAB>v1,v2,...,vD``; every line has the same ``D``.
    unknown_token : str, default "UNKNOWN"
        Word that unknown tokens map to. If the file has no such row, a row of zeros is
        appended for it (as the last row, id ``V - 1``).
    dtype : floating dtype, default float32
        Dtype of the returned matrix.

    Returns
    -------
    vocab : dict of str to int
        Word -> row of ``vectors``, in file order (plus ``unknown_token`` if appended).
    vectors : np.ndarray
        ``[V, D]`` of ``dtype``.

    Raises
    ------
    ValueError
        Empty file, a line without a tab or with an empty word, a line whose number of values
        differs from the first line's, a value that is not a number or not finite, or a
        duplicate word. The message names the file and the line number.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    if not isinstance(unknown_token, str) or not unknown_token:
        raise TypeError("unknown_token must be a non-empty str")
    numbers, lines = _lines(path)
    if not lines:
        raise ValueError(f"{path}: no word vectors (the file is empty)")
    layout = "word<TAB>v1,v2,...,vD"
    words, fields = [], []
    for number, line in zip(numbers, lines, strict=True):
        word, values = _split_tab(path, number, line, layout)
        if not word:
            raise ValueError(f"{path}, line {number}: empty word before the tab")
        words.append(word)
        fields.append(values)

    widths = np.fromiter((v.count(",") + 1 for v in fields), dtype=np.int64, count=len(fields))
    wrong = np.flatnonzero(widths != widths[0])
    if wrong.size:
        i = int(wrong[0])
        raise ValueError(
            f"{path}, line {numbers[i]}: {widths[i]} values, but line {numbers[0]} has "
            f"{widths[0]}: every vector must have the same dimension"
        )
    dim = int(widths[0])
    try:
        matrix = np.array(",".join(fields).split(","), dtype=np.float64)
    except ValueError:
        for number, values in zip(numbers, fields, strict=True):
            for token in values.split(","):
                try:
                    float(token)
                except ValueError:
                    raise ValueError(f"{path}, line {number}: {token!r} is not a number") from None
        raise
    matrix = matrix.reshape(len(fields), dim)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{path}, line {numbers[i]}: vector holds NaN or Inf")

    vocab = {word: i for i, word in enumerate(words)}
    if len(vocab) != len(words):
        first: dict[str, int] = {}
        for number, word in zip(numbers, words, strict=True):
            if word in first:
                raise ValueError(
                    f"{path}, line {number}: duplicate word {word!r} (first on line {first[word]})"
                )
            first[word] = number
    if unknown_token not in vocab:
        logger.info(
            "%s has no %r row: appending a zero vector for it as row %d",
            path,
            unknown_token,
            len(vocab),
        )
        vocab[unknown_token] = len(vocab)
        matrix = np.concatenate([matrix, np.zeros((1, dim))], axis=0)
    return vocab, matrix.astype(dtype)


def read_labelled_token_file(
    path: PathLike, vocab: Mapping[str, int], *, unknown_token: str = "UNKNOWN"
) -> tuple[list[np.ndarray], np.ndarray]:
    """Read labelled token sequences and map the tokens to ids.

    Parameters
    ----------
    path : str or os.PathLike
        File with lines ``label<TAB>tok1,tok2,...``; ``label`` is an integer.
    vocab : mapping of str to int
        Word -> id, e.g. from :func:`load_word_vectors`; must contain ``unknown_token``.
    unknown_token : str, default "UNKNOWN"
        Tokens missing from ``vocab`` get ``vocab[unknown_token]``.

    Returns
    -------
    sequences : list of np.ndarray
        One ``int64 [t_i]`` id array per example (pad with
        :func:`sparklstm.data.pad_sequences`).
    labels : np.ndarray
        ``int64 [n]``.

    Raises
    ------
    ValueError
        ``unknown_token`` not in ``vocab``, a file with no examples, or a malformed line (no
        tab, a label that is not an integer, an empty token list or an empty token); the
        message names the file and the line number.
    """
    if not isinstance(vocab, Mapping):
        raise TypeError(f"vocab must be a mapping of word -> id, got {type(vocab).__name__}")
    if unknown_token not in vocab:
        raise ValueError(f"vocab has no entry for unknown_token {unknown_token!r}")
    unknown_id = vocab[unknown_token]
    numbers, lines = _lines(path)
    if not lines:
        raise ValueError(f"{path}: no examples (the file is empty)")
    layout = "label<TAB>tok1,tok2,..."
    labels = np.empty(len(lines), dtype=np.int64)
    tokens: list[str] = []
    sizes = np.empty(len(lines), dtype=np.int64)
    for i, (number, line) in enumerate(zip(numbers, lines, strict=True)):
        label, rest = _split_tab(path, number, line, layout)
        try:
            labels[i] = int(label)
        except ValueError:
            raise ValueError(f"{path}, line {number}: label {label!r} is not an integer") from None
        if not rest.strip():
            raise ValueError(f"{path}, line {number}: empty token list")
        words = rest.split(",")
        if "" in words:
            raise ValueError(f"{path}, line {number}: empty token (two commas in a row?)")
        tokens.extend(words)
        sizes[i] = len(words)
    ids = np.fromiter((vocab.get(t, unknown_id) for t in tokens), dtype=np.int64, count=len(tokens))
    return np.split(ids, np.cumsum(sizes)[:-1]), labels


def write_word_vectors(path: PathLike, vocab: Mapping[str, int], vectors: ArrayLike) -> None:
    """Write word vectors in the dictionary format that :func:`load_word_vectors` reads.

    Rows are written in id order, so loading the file gives back ``vocab`` and ``vectors``
    (float32 values are written with 9 significant digits, others with 17: exact round trip).

    Parameters
    ----------
    path : str or os.PathLike
        Output file (overwritten).
    vocab : mapping of str to int
        Word -> row; the ids must be exactly ``0..V-1``. Words must be non-empty and contain
        no tab or line break.
    vectors : array_like, shape [V, D]
        Finite numbers.
    """
    matrix = np.asarray(vectors)
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise TypeError(f"vectors must hold numbers, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"vectors must be a non-empty 2-D [V, D] array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or Inf")
    if not isinstance(vocab, Mapping):
        raise TypeError(f"vocab must be a mapping of word -> id, got {type(vocab).__name__}")
    if len(vocab) != matrix.shape[0]:
        raise ValueError(f"vocab has {len(vocab)} words but vectors has {matrix.shape[0]} rows")
    words = [""] * matrix.shape[0]
    for word, row in vocab.items():
        if not isinstance(word, str):
            raise TypeError(f"vocab words must be str, got {type(word).__name__} {word!r}")
        if not word or any(c in word for c in "\t\r\n"):
            raise ValueError(f"vocab word {word!r} must be a non-empty str without tab or newline")
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"vocab[{word!r}] must be an integer id, got {row!r}")
        if not 0 <= row < matrix.shape[0] or words[row]:
            raise ValueError(
                f"vocab[{word!r}] = {row}: ids must be distinct and cover 0..{matrix.shape[0] - 1}"
            )
        words[row] = word
    fmt = "%.9g" if matrix.dtype in (np.float16, np.float32) else "%.17g"
    cells = np.char.mod(fmt, matrix.astype(np.float64))
    body = "".join(f"{w}\t{','.join(row)}\n" for w, row in zip(words, cells.tolist(), strict=True))
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(body)
