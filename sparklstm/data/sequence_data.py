"""Validated, model-ready arrays: inputs, targets and lengths checked once, sliced per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sparklstm.nn.packing import PackedLayout
from sparklstm.validation import as_float_sequences, check_finite, check_lengths

if TYPE_CHECKING:  # the data layer reads a config's fields; it does not import the model
    from sparklstm.model.config import ModelConfig

__all__ = ["SequenceData", "prepare_data"]


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Inputs ``[n, T, ...]``, optional targets, and lengths, all validated for one model."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray | None

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def take(self, index: np.ndarray) -> SequenceData:
        """Rows ``index``, with the time axis trimmed to their longest sequence."""
        lengths = self.lengths[index]
        t_max = int(lengths.max())
        targets = None
        if self.targets is not None:
            targets = self.targets[index]
            if targets.ndim >= 2 and targets.shape[1] == self.inputs.shape[1]:
                targets = targets[:, :t_max]
        return SequenceData(self.inputs[index, :t_max], lengths, targets)

    def layout(self) -> PackedLayout:
        return PackedLayout.from_lengths(self.lengths, self.inputs.shape[1])

    def num_targets(self, head: str) -> int:
        """Examples (head "last") or valid steps (head "all") that the loss averages over."""
        return len(self) if head == "last" else int(self.lengths.sum())


def _tokens(x: Any, config: ModelConfig, mask: np.ndarray | None, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of token ids, got {type(x).__name__}")
    if x.dtype == object:
        raise ValueError(f"{name} is ragged: pad it to [batch, time] and pass lengths=")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer token ids (the model has vocab_size), got {x.dtype}"
        )
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have shape [batch, time] of token ids, got {x.ndim}-D {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    valid = x if mask is None else x[mask]
    low, high = int(valid.min()), int(valid.max())
    if low < 0 or high >= config.vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds token id {bad}, outside [0, {config.vocab_size}) (vocab_size)"
        )
    out = x.astype(np.int64)
    if mask is not None:
        out[~mask] = 0  # padded ids are never used; make them harmless
    return out


def _targets(y: Any, config: ModelConfig, lengths: np.ndarray, t_max: int, dtype) -> np.ndarray:
    n = lengths.shape[0]
    y = np.asarray(y)
    if y.dtype == object:
        raise ValueError("y is ragged: pad per-step targets to [batch, time] like the inputs")
    if y.shape[:1] != (n,):
        raise ValueError(f"y has {y.shape[0] if y.ndim else 0} rows; the inputs have {n} sequences")
    per_step = config.head == "all"
    mask = None
    if per_step:
        if y.ndim < 2 or y.shape[1] != t_max:
            raise ValueError(
                f"y must have shape [batch, time{', ...' if config.task == 'regression' else ''}] "
                f"= [{n}, {t_max}] for head='all', got {y.shape}"
            )
        mask = np.arange(t_max)[None, :] < lengths[:, None]
    if config.task == "classification":
        expected_ndim = 2 if per_step else 1
        if y.ndim != expected_ndim:
            raise ValueError(
                f"y must hold one class index per {'step' if per_step else 'sequence'}: "
                f"expected {expected_ndim}-D, got shape {y.shape}"
            )
        if np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y[mask] if per_step else y).all() or not np.all(
                (y[mask] if per_step else y) == np.round(y[mask] if per_step else y)
            ):
                raise ValueError("y must hold integer class indices")
        elif not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
        valid = y[mask] if per_step else y
        low, high = valid.min(), valid.max()
        if low < 0 or high >= config.output_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"y holds class {bad}, outside [0, {config.output_size}) (output_size)"
            )
        out = y.astype(np.int64)
        if per_step:
            out[~mask] = 0
        return out
    # regression
    base_ndim = 2 if per_step else 1
    if y.ndim == base_ndim:
        if config.output_size != 1:
            raise ValueError(
                f"y has one target per {'step' if per_step else 'sequence'}, "
                f"but output_size is {config.output_size}"
            )
        y = y[..., None]
    if y.ndim != base_ndim + 1 or y.shape[-1] != config.output_size:
        raise ValueError(
            f"y must have {config.output_size} target(s) in its last axis, got {y.shape}"
        )
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    out = y.astype(dtype)
    check_finite("y", out[mask] if per_step else out)
    if per_step:
        out[~mask] = 0
    return out


def prepare_data(
    config: ModelConfig,
    x: Any,
    y: Any = None,
    lengths: Any = None,
    name: str = "X",
) -> SequenceData:
    """Validate ``x`` (and ``y``, ``lengths``) against ``config``; raise before any work."""
    dtype = np.dtype(config.dtype)
    if config.uses_tokens:
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 2:
            _tokens(x, config, None, name)  # raises the right error
        lengths_arr = check_lengths(lengths, shape[0], shape[1])
        mask = np.arange(shape[1])[None, :] < lengths_arr[:, None]
        inputs = _tokens(x, config, mask, name)
    else:
        x_arr = x
        if lengths is not None and isinstance(x, np.ndarray) and x.ndim == 3:
            # NaN in padding is tolerated: only valid steps must be finite.
            lengths_arr = check_lengths(lengths, x.shape[0], x.shape[1])
            mask = np.arange(x.shape[1])[None, :] < lengths_arr[:, None]
            if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x[~mask]).all():
                x_arr = np.where(mask[:, :, None], x, 0)
        inputs = as_float_sequences(x_arr, name, config.input_size, dtype)
        lengths_arr = check_lengths(lengths, inputs.shape[0], inputs.shape[1])
    targets = None
    if y is not None:
        targets = _targets(y, config, lengths_arr, inputs.shape[1], dtype)
    return SequenceData(inputs, lengths_arr, targets)
