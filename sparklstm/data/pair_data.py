"""Prepared (source, target) pairs of a sequence-to-sequence model: both sides padded, with
their own lengths, validated once (:meth:`Seq2SeqModel.prepare`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairData"]


@dataclass(frozen=True)
class PairData:
    """``source`` ``[n, S(, I)]`` with ``source_lengths``, ``targets`` ``[n, T(, O)]`` with
    ``target_lengths``. ``lengths`` (the source's) is what minibatches are bucketed by."""

    source: np.ndarray
    source_lengths: np.ndarray
    targets: np.ndarray
    target_lengths: np.ndarray

    def __len__(self) -> int:
        return int(self.source_lengths.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return self.source_lengths

    def take(self, index: np.ndarray) -> PairData:
        """Rows ``index``, each side trimmed to its longest sequence among them."""
        source_lengths = self.source_lengths[index]
        target_lengths = self.target_lengths[index]
        return PairData(
            self.source[index, : int(source_lengths.max())],
            source_lengths,
            self.targets[index, : int(target_lengths.max())],
            target_lengths,
        )
