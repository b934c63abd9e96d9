"""Character-level language modelling: a character vocabulary and next-token windows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from sparklstm.data.padding import _check_int
from sparklstm.validation import check_config, check_str

__all__ = ["CharVocab", "next_token_windows"]

_CONFIG_TYPE = "CharVocab"


def _code_points(text: str) -> np.ndarray:
    """Unicode code points of ``text`` as ``uint32 [len(text)]``, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _check_char(name: str, value: Any) -> str:
    if len(check_str(name, value)) != 1:
        raise ValueError(f"{name} = {value!r}: must be exactly one character")
    return value


class CharVocab:
    """Immutable mapping between characters and integer ids.

    Id 0 is always the unknown symbol (``unknown``, U+FFFD by default): characters missing
    from the vocabulary encode to it. The other characters follow in code-point order when
    built with :meth:`from_text`, so the same text always gives the same ids.

    Parameters
    ----------
    symbols : iterable of str
        The known characters (one character each, distinct, not ``unknown``); they get ids
        ``1, 2, ...`` in the given order.
    unknown : str, default "\\ufffd"
        The unknown symbol, id 0.
    """

    __slots__ = ("_symbols", "_unknown", "_codes", "_sorted_codes", "_sorted_ids")

    def __init__(self, symbols: Iterable[str], *, unknown: str = "\ufffd") -> None:
        unknown = _check_char("unknown", unknown)
        if isinstance(symbols, str):
            symbols = list(symbols)
        chars = [unknown]
        seen = {unknown: 0}
        for i, s in enumerate(symbols):
            _check_char(f"symbols[{i}]", s)
            if s in seen:
                what = "the unknown symbol" if s == unknown else f"a duplicate of id {seen[s]}"
                raise ValueError(f"symbols[{i}] = {s!r} is {what}")
            seen[s] = len(chars)
            chars.append(s)
        codes = _code_points("".join(chars)).astype(np.int64)
        order = np.argsort(codes, kind="stable")
        set_ = object.__setattr__
        set_(self, "_symbols", tuple(chars))
        set_(self, "_unknown", unknown)
        set_(self, "_codes", codes)
        set_(self, "_sorted_codes", codes[order])
        set_(self, "_sorted_ids", order.astype(np.int32))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CharVocab is immutable (cannot set {name!r})")

    @classmethod
    def from_text(cls, text: str, min_count: int = 1, unknown: str = "\ufffd") -> CharVocab:
        """Vocabulary of the characters occurring at least ``min_count`` times in ``text``.

        Parameters
        ----------
        text : str
            Non-empty training text.
        min_count : int, default 1
            Rarer characters are left out (they encode to the unknown id).
        unknown : str, default "\\ufffd"
            The unknown symbol (id 0); if it occurs in ``text`` it simply maps to id 0.

        Returns
        -------
        CharVocab
            Ids ``1..`` for the kept characters in ascending code-point order.
        """
        check_str("text", text)
        if not text:
            raise ValueError("text is empty: cannot build a vocabulary")
        min_count = _check_int("min_count", min_count, 1)
        unknown = _check_char("unknown", unknown)
        codes, counts = np.unique(_code_points(text), return_counts=True)
        keep = codes[(counts >= min_count) & (codes != ord(unknown))]
        chars = keep.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        return cls(chars, unknown=unknown)

    @property
    def unknown(self) -> str:
        """The unknown symbol."""
        return self._unknown

    @property
    def unknown_id(self) -> int:
        """Id of the unknown symbol (always 0)."""
        return 0

    @property
    def symbols(self) -> tuple[str, ...]:
        """All symbols in id order (``symbols[0]`` is the unknown symbol)."""
        return self._symbols

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, char: object) -> bool:
        return isinstance(char, str) and len(char) == 1 and bool(self.encode(char)[0] != 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocab):
            return NotImplemented
        return self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)}, unknown={self._unknown!r})"

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``.

        Parameters
        ----------
        text : str

        Returns
        -------
        np.ndarray
            ``int32 [len(text)]``; characters not in the vocabulary get id 0.
        """
        check_str("text", text)
        codes = _code_points(text).astype(np.int64)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos = np.minimum(pos, self._sorted_codes.shape[0] - 1)
        found = self._sorted_codes[pos] == codes
        return np.where(found, self._sorted_ids[pos], np.int32(0)).astype(np.int32)

    def decode(self, ids: ArrayLike) -> str:
        """Text of a 1-D sequence of ids (id 0 decodes to the unknown symbol).

        Parameters
        ----------
        ids : array_like of int, shape [T]

        Returns
        -------
        str
            ``T`` characters.
        """
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"ids[{i}] = {arr[i]} is outside the vocabulary [0, {len(self)})")
        return self._codes[arr].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def to_config(self) -> dict[str, Any]:
        """JSON-safe description; :meth:`from_config` rebuilds an equal vocabulary."""
        return {
            "type": _CONFIG_TYPE,
            "unknown": self._unknown,
            "symbols": list(self._symbols[1:]),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CharVocab:
        """Inverse of :meth:`to_config`."""
        check_config(config, _CONFIG_TYPE, ("type", "unknown", "symbols"))
        symbols = config["symbols"]
        if isinstance(symbols, str) or not isinstance(symbols, (list, tuple)):
            raise TypeError(
                f"config['symbols'] must be a list of characters, got {type(symbols).__name__}"
            )
        return cls(symbols, unknown=config["unknown"])


def next_token_windows(
    ids: ArrayLike, seq_len: int, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Input/target windows for next-token prediction over one long id sequence.

    Window ``i`` starts at ``start_i = i * stride``; ``inputs[i, t] = ids[start_i + t]`` and
    ``targets[i, t] = ids[start_i + t + 1]``. Trailing ids that do not fill a whole window
    (``seq_len + 1`` ids) are not used.

    Parameters
    ----------
    ids : array_like of int, shape [L]
        Token ids, ``L >= seq_len + 1``.
    seq_len : int
        Window length, >= 1.
    stride : int, optional
        Step between window starts, >= 1; default ``seq_len`` (non-overlapping inputs).

    Returns
    -------
    inputs, targets : np.ndarray
        ``[N, seq_len]`` each, dtype of ``ids``, with ``N = (L - 1 - seq_len) // stride + 1``.
    """
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integer token ids, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
    seq_len = _check_int("seq_len", seq_len, 1)
    stride = seq_len if stride is None else _check_int("stride", stride, 1)
    if arr.shape[0] < seq_len + 1:
        raise ValueError(
            f"ids has {arr.shape[0]} tokens: need at least seq_len + 1 = {seq_len + 1}"
        )
    windows = sliding_window_view(arr, seq_len + 1)[::stride]
    return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])
