"""Scoring a pandas DataFrame of sequences with a :class:`~sparklstm.model.SequenceModel`: what
an MLflow ``pyfunc`` model of sparklstm does on ``predict`` (no MLflow import here).

Input: a DataFrame with a features column, one sequence per row (a list or array of numbers for
a univariate or token model, a list of per-step lists for a multivariate one) and optionally an
integer length column (each value in ``[1, steps]``; without it every step counts).

Output: a DataFrame with the input's index (``O`` = ``output_size``, ``T_i`` = row ``i``'s
length; numbers in the model's dtype)::

    task            head   prediction                           probability
    classification  last   int64 class index                    array (O)
    regression      last   number (O = 1) | array (O)           -
    classification  all    array of int64 (T_i)                 array (T_i) of arrays (O)
    regression      all    array (T_i) (O = 1) | T_i arrays (O) -

the same values as ``model.predict`` (class indices or regression values) and
``model.predict_proba`` give for those sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sparklstm.data.arrow import batch_to_numpy
from sparklstm.model import SequenceModel
from sparklstm.nn.losses import softmax

__all__ = ["SequenceScorer"]


class SequenceScorer:
    """Predicts with ``model`` for each row of a pandas DataFrame (see the module docstring).

    ``features_col`` names the sequence column, ``length_col`` the optional column of valid
    lengths (``None``: no such column); ``batch_size`` rows are run through the network at a
    time.
    """

    def __init__(
        self,
        model: SequenceModel,
        features_col: str = "features",
        length_col: str | None = None,
        batch_size: int = 512,
    ) -> None:
        self.model = model
        self.features_col = features_col
        self.length_col = length_col
        self.batch_size = batch_size

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """The predictions for every row of the DataFrame ``model_input`` (``params``: MLflow's
        inference parameters; this model takes none)."""
        import pandas as pd

        if not isinstance(model_input, pd.DataFrame):
            raise TypeError(
                f"model input must be a pandas DataFrame with a {self.features_col!r} column, "
                f"got {type(model_input).__name__}"
            )
        if params:
            raise ValueError(f"this model takes no inference parameters, got {sorted(params)}")
        inputs, lengths = self._sequences(model_input)
        outputs = self.model.forward(inputs, lengths, batch_size=self.batch_size)
        return pd.DataFrame(self._columns(outputs, lengths), index=model_input.index)

    def _sequences(self, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        """The padded inputs and lengths of ``frame``'s rows, checked as the Spark jobs check
        them (errors name the column)."""
        if self.features_col not in frame.columns:
            raise ValueError(
                f"features column {self.features_col!r} not found; the input has columns "
                f"{list(map(str, frame.columns))}"
            )
        columns = {self.features_col: _arrow_lists(frame[self.features_col], self.features_col)}
        length_col = None
        if self.length_col is not None and self.length_col in frame.columns:
            values = frame[self.length_col]
            if not values.isna().all():  # an optional column MLflow filled with nothing
                length_col = self.length_col
                columns[length_col] = _arrow_lengths(values, length_col)
        config = self.model.config
        inputs, lengths, _ = batch_to_numpy(
            pa.table(columns),
            self.features_col,
            length_col=length_col,
            dtype=np.dtype(config.dtype),
            num_features=None if config.uses_tokens else config.input_size,
        )
        if not config.uses_tokens and inputs.ndim == 2:  # univariate: one feature per step
            inputs = inputs[..., None]
        return inputs, lengths

    def _columns(self, outputs: np.ndarray, lengths: np.ndarray) -> dict[str, Any]:
        """``prediction`` (and ``probability`` for classification) from the head's outputs:
        ``(n, O)``, or ``(n, T, O)`` for head "all" (each row cut to its length)."""
        config = self.model.config
        classification = config.task == "classification"
        if classification:
            predicted = np.argmax(outputs, axis=-1)
        else:
            predicted = outputs[..., 0] if config.output_size == 1 else outputs
        columns = {"prediction": predicted}
        if classification:
            columns["probability"] = softmax(outputs.reshape(-1, outputs.shape[-1])).reshape(
                outputs.shape
            )
        if config.head == "last":
            return {
                name: list(values) if values.ndim > 1 else values
                for name, values in columns.items()
            }
        return {
            name: [row[:length] for row, length in zip(values, lengths, strict=True)]
            for name, values in columns.items()
        }


def _arrow_lists(values: Any, name: str) -> pa.Array:
    """A pandas column of per-row sequences (lists or NumPy arrays, nested for multivariate
    input; a 2-D array per row, as MLflow's input checks make them, is a list of steps) as an
    Arrow list array."""
    rows = [list(v) if isinstance(v, np.ndarray) and v.ndim > 1 else v for v in values]
    try:
        return pa.array(rows, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(
            f"features column {name!r}: each row must be a list of numbers or a list of per-step "
            f"lists of numbers ({exc})"
        ) from None


def _arrow_lengths(values: Any, name: str) -> pa.Array:
    """A pandas length column as Arrow int64; whole floats (MLflow's cast of an int column
    with gaps) are accepted, missing or fractional values are an error naming the column."""
    if values.isna().any():
        first = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(
            f"length column {name!r} has missing values (first at row {first}); give every row "
            "a length, or leave the column out"
        )
    numbers = values.to_numpy()
    if numbers.dtype.kind == "f":
        if not np.all(np.floor(numbers) == numbers):
            raise ValueError(f"length column {name!r} must hold whole numbers")
        numbers = numbers.astype(np.int64)
    if numbers.dtype.kind not in "iu":
        raise TypeError(f"length column {name!r} must be integer, got {numbers.dtype}")
    return pa.array(numbers.astype(np.int64))
