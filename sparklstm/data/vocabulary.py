"""A character vocabulary with the special tokens of sequence-to-sequence models.

Ids ``0, 1, 2`` are the special tokens ``<pad>`` (:data:`PAD`), ``<start>`` (:data:`START`)
and ``<end>`` (:data:`END`); the characters follow from id 3 in the order given. Source and
target strings share one vocabulary. ``python -m jobs.make_data addition`` (and ``dates``)
writes it as ``OUT/vocabulary.json`` beside the splits; :meth:`CharVocabulary.load` reads it
back:

>>> vocab = CharVocabulary("0123456789+=")
>>> vocab.encode("3+45=").tolist()
[6, 13, 7, 8, 14]
>>> vocab.decode([1, 7, 11, 2, 0, 0])
'48'
>>> CharVocabulary.from_json(vocab.to_json()) == vocab
True

The JSON document is ``{"type": "CharVocabulary", "tokens": ["<pad>", "<start>", "<end>",
"0", "1", ...]}``: token ``i`` has id ``i``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CharVocabulary", "END", "PAD", "SPECIAL_TOKENS", "START"]

PAD = 0
START = 1
END = 2
#: The special tokens, in id order.
SPECIAL_TOKENS = ("<pad>", "<start>", "<end>")
_TYPE = "CharVocabulary"
_KEYS = ("type", "tokens")


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)


class CharVocabulary:
    """Immutable mapping between characters and ids, after the three special tokens.

    Parameters
    ----------
    characters : str or iterable of str
        The characters (one each, distinct), given ids ``3, 4, ...`` in this order.

    Raises
    ------
    ValueError
        A character that is not exactly one character, or appears twice.
    """

    __slots__ = ("_characters", "_sorted_codes", "_sorted_ids")

    def __init__(self, characters: str | Iterable[str]) -> None:
        if not isinstance(characters, str):
            characters = list(characters)
        seen: dict[str, int] = {}
        for i, char in enumerate(characters):
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"characters[{i}] = {char!r}: must be exactly one character")
            if char in seen:
                raise ValueError(f"characters[{i}] = {char!r} repeats characters[{seen[char]}]")
            seen[char] = i
        text = "".join(characters)
        codes = _code_points(text)
        order = np.argsort(codes, kind="stable")
        set_ = object.__setattr__
        set_(self, "_characters", text)
        set_(self, "_sorted_codes", codes[order])
        set_(self, "_sorted_ids", (order + len(SPECIAL_TOKENS)).astype(np.int32))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CharVocabulary is immutable (cannot set {name!r})")

    # -- what it holds -----------------------------------------------------------------------
    @property
    def characters(self) -> str:
        """The characters, in id order (ids 3, 4, ...)."""
        return self._characters

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every token in id order: the special tokens, then the characters."""
        return (*SPECIAL_TOKENS, *self._characters)

    @property
    def size(self) -> int:
        """Number of ids (special tokens included): the embedding and softmax size."""
        return len(SPECIAL_TOKENS) + len(self._characters)

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocabulary):
            return NotImplemented
        return self._characters == other._characters

    def __hash__(self) -> int:
        return hash(self._characters)

    def __repr__(self) -> str:
        return f"CharVocabulary({self._characters!r})"

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, text: str, *, start: bool = False, end: bool = False) -> np.ndarray:
        """Ids of the characters of ``text`` (``int32``), after :data:`START` if ``start`` and
        followed by :data:`END` if ``end``.

        Raises
        ------
        ValueError
            A character that is not in the vocabulary (named, with its position).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        codes = _code_points(text)
        ids = np.zeros(len(codes), dtype=np.int32)
        if len(codes):
            if not len(self._sorted_codes):
                raise ValueError(f"{text[0]!r} (position 0) is not in the vocabulary")
            pos = np.minimum(
                np.searchsorted(self._sorted_codes, codes), len(self._sorted_codes) - 1
            )
            found = self._sorted_codes[pos] == codes
            if not found.all():
                i = int(np.flatnonzero(~found)[0])
                raise ValueError(f"{text[i]!r} (position {i}) is not in the vocabulary")
            ids = self._sorted_ids[pos]
        parts = [np.array([START], np.int32)] * start + [ids] + [np.array([END], np.int32)] * end
        return np.concatenate(parts).astype(np.int32, copy=False)

    def decode(self, ids: ArrayLike) -> str:
        """The string of ``ids`` (1-D): characters up to the first :data:`END` (excluded),
        :data:`PAD` and :data:`START` skipped.

        Raises
        ------
        ValueError
            An id outside ``[0, size)`` before the first :data:`END`, or ids that are not 1-D.
        TypeError
            Ids that are not integers.
        """
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
        ends = np.flatnonzero(arr == END)
        if len(ends):
            arr = arr[: ends[0]]
        bad = (arr < 0) | (arr >= self.size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"ids[{i}] = {arr[i]} is outside the vocabulary [0, {self.size})")
        chars = arr[arr >= len(SPECIAL_TOKENS)] - len(SPECIAL_TOKENS)
        return "".join(self._characters[i] for i in chars.tolist())

    # -- files -------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The JSON document: ``{"type": "CharVocabulary", "tokens": [...]}``."""
        return {"type": _TYPE, "tokens": list(self.tokens)}

    @classmethod
    def from_config(cls, config: Any) -> CharVocabulary:
        """The vocabulary of a document :meth:`to_config` made; ValueError (one line) says
        what is wrong with any other."""
        if not isinstance(config, Mapping):
            raise ValueError(f"expected a JSON object, got {type(config).__name__}")
        if set(config) != set(_KEYS):
            raise ValueError(f"expected exactly the keys {list(_KEYS)}, got {sorted(config)}")
        if config["type"] != _TYPE:
            raise ValueError(f"type = {config['type']!r}: expected {_TYPE!r}")
        tokens = config["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens must be a list of strings")
        special = tuple(tokens[: len(SPECIAL_TOKENS)])
        if special != SPECIAL_TOKENS:
            raise ValueError(
                f"tokens must start with {list(SPECIAL_TOKENS)} (ids 0, 1, 2), got {list(special)}"
            )
        seen: dict[str, int] = {}
        for i, token in enumerate(tokens[len(SPECIAL_TOKENS) :], start=len(SPECIAL_TOKENS)):
            if len(token) != 1:
                raise ValueError(f"tokens[{i}] = {token!r}: must be exactly one character")
            if token in seen:
                raise ValueError(f"tokens[{i}] = {token!r} repeats tokens[{seen[token]}]")
            seen[token] = i
        return cls(tokens[len(SPECIAL_TOKENS) :])

    def to_json(self) -> str:
        """The JSON text of :meth:`to_config` (what ``vocabulary.json`` holds)."""
        return json.dumps(self.to_config(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> CharVocabulary:
        """The vocabulary of JSON text :meth:`to_json` made; ValueError (one line) says what is
        wrong with any other text."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        return cls.from_config(document)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocabulary:
        """Read a ``vocabulary.json``; ValueError ``<path>: <what is wrong>`` in one line."""
        data = Path(path).read_bytes()
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
