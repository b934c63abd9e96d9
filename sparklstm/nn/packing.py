"""Packed layout of a batch of variable-length sequences.

The recurrent kernels never see padding. A batch ``[batch, time, feature]`` with ``lengths`` is
sorted by length (longest first) and its valid steps are stored time-major, one row per
(step, sequence):

    packed row  = offsets[t] + k        for sorted sequence k < batch_sizes[t]
    batch_sizes[t] = #{sequences with length > t}           (non-increasing in t)

so the sequences alive at step ``t`` are always a contiguous prefix ``[0, batch_sizes[t])`` of
the sorted batch and their rows a contiguous block of the packed matrix. This is PyTorch's
``PackedSequence``; it makes padded steps cost nothing and change nothing: a state stops being
updated when its sequence ends, and no gradient ever reaches a padded position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PackedLayout"]


@dataclass(frozen=True, eq=False)
class PackedLayout:
    """Index bookkeeping for one packed batch.

    Parameters
    ----------
    lengths : array of int, shape (batch,)
        Valid length of each sequence, every one >= 1.
    max_len : int, optional
        Length of the padded time axis (default ``lengths.max()``).
    """

    lengths: np.ndarray
    max_len: int
    order: np.ndarray = field(repr=False)  # sorted position k -> original batch index
    inverse_order: np.ndarray = field(repr=False)  # original batch index -> sorted position
    batch_sizes: np.ndarray = field(repr=False)  # (T,) sequences alive at each step
    offsets: np.ndarray = field(repr=False)  # (T+1,) first packed row of each step
    row_batch: np.ndarray = field(repr=False)  # (N,) original batch index of each row
    row_time: np.ndarray = field(repr=False)  # (N,) time step of each row

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, max_len: int | None = None) -> PackedLayout:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1 or lengths.size == 0:
            raise ValueError(f"lengths must be a non-empty 1-D array, got shape {lengths.shape}")
        if lengths.min() < 1:
            raise ValueError(f"lengths must all be >= 1, got min {int(lengths.min())}")
        longest = int(lengths.max())
        if max_len is None:
            max_len = longest
        if longest > max_len:
            raise ValueError(f"lengths has {longest} > time axis {max_len}")
        order = np.argsort(-lengths, kind="stable")
        inverse_order = np.empty_like(order)
        inverse_order[order] = np.arange(order.size)
        sorted_lengths = lengths[order]
        steps = np.arange(longest)
        # batch_sizes[t] = number of sorted lengths > t (sorted descending).
        batch_sizes = np.searchsorted(-sorted_lengths, -steps, side="left").astype(np.int64)
        offsets = np.zeros(longest + 1, dtype=np.int64)
        np.cumsum(batch_sizes, out=offsets[1:])
        row_time = np.repeat(steps, batch_sizes)
        row_sorted = np.arange(offsets[-1]) - offsets[row_time]
        row_batch = order[row_sorted]
        return cls(
            lengths=lengths,
            max_len=int(max_len),
            order=order,
            inverse_order=inverse_order,
            batch_sizes=batch_sizes,
            offsets=offsets,
            row_batch=row_batch,
            row_time=row_time,
        )

    # ------------------------------------------------------------------ sizes
    @property
    def batch_size(self) -> int:
        return int(self.lengths.size)

    @property
    def num_steps(self) -> int:
        """Number of steps with at least one live sequence (``lengths.max()``)."""
        return int(self.batch_sizes.size)

    @property
    def num_rows(self) -> int:
        """Number of valid (step, sequence) pairs, ``lengths.sum()``."""
        return int(self.offsets[-1])

    def step_rows(self, t: int) -> tuple[int, int]:
        """``(start, stop)`` of the packed rows of step ``t``."""
        return int(self.offsets[t]), int(self.offsets[t + 1])

    # ---------------------------------------------------------- conversions
    def pack(self, padded: np.ndarray) -> np.ndarray:
        """``[batch, time, ...]`` -> ``[rows, ...]`` (a copy holding only valid steps)."""
        return padded[self.row_batch, self.row_time]

    def unpack(self, packed: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """``[rows, ...]`` -> ``[batch, max_len, ...]`` with ``fill`` at padded steps."""
        out = np.full((self.batch_size, self.max_len) + packed.shape[1:], fill, dtype=packed.dtype)
        out[self.row_batch, self.row_time] = packed
        return out

    def last_rows(self) -> np.ndarray:
        """Packed row of each sequence's last valid step, in original batch order."""
        sorted_pos = self.inverse_order
        return self.offsets[self.lengths - 1] + sorted_pos

    def first_rows(self) -> np.ndarray:
        """Packed row of each sequence's first step, in original batch order."""
        return self.inverse_order.copy()
